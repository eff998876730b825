//! Hot cells by Getis-Ord Gi* over H3 neighbours.
//!
//! The study area is the occupied cells (cells with events of the mahalla in
//! the window) plus their first ring, where unoccupied cells count as zero.
//! Weights are binary over the grid disk of radius 1, the cell itself
//! included (the "star" of Gi*). For a cell `i` with neighbourhood weight
//! `Wᵢ = |disk(i)|` in a study area of `n` cells with mean `X̄` and standard
//! deviation `S` (population form):
//!
//! ```text
//! Gi* = (Σⱼ∈disk(i) xⱼ − X̄·Wᵢ) / (S·√((n·Wᵢ − Wᵢ²) / (n − 1)))
//! ```
//!
//! (Getis and Ord 1992; Ord and Getis 1995), a z-score under the null of no
//! spatial association. Every neighbour of an occupied cell is in the study
//! area by construction, so `Σⱼ wᵢⱼ² = Wᵢ`.

use std::collections::{BTreeMap, BTreeSet};

use h3o::CellIndex;
use posbon_model::{CellId, HotCell};

/// One occupied cell: its value (decayed harm) and its events in the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Occupied {
    pub(crate) value: f64,
    pub(crate) events: u64,
}

fn disk(cell: u64) -> Vec<u64> {
    match CellIndex::try_from(cell) {
        Ok(c) => c
            .grid_disk::<Vec<CellIndex>>(1)
            .into_iter()
            .map(u64::from)
            .collect(),
        Err(_) => vec![cell],
    }
}

/// Gi* z-scores of the occupied cells, those at or above `min_z`, hottest
/// first (ties by cell), at most `max_cells`.
pub(crate) fn getis_ord(
    occupied: &BTreeMap<u64, Occupied>,
    min_z: f64,
    max_cells: usize,
) -> Vec<HotCell> {
    if occupied.is_empty() || max_cells == 0 {
        return Vec::new();
    }
    let disks: Vec<(u64, Vec<u64>)> = occupied.keys().map(|&c| (c, disk(c))).collect();
    let mut area: BTreeSet<u64> = BTreeSet::new();
    for (_, d) in &disks {
        area.extend(d.iter().copied());
    }
    let n = area.len() as f64;
    if n < 2.0 {
        return Vec::new();
    }
    let value = |c: &u64| occupied.get(c).map_or(0.0, |o| o.value);
    let sum: f64 = occupied.values().map(|o| o.value).sum();
    let sum_sq: f64 = occupied.values().map(|o| o.value * o.value).sum();
    let mean = sum / n;
    let var = sum_sq / n - mean * mean;
    if var <= 0.0 || !var.is_finite() {
        return Vec::new();
    }
    let s = var.sqrt();
    let mut out: Vec<HotCell> = Vec::new();
    for (c, d) in &disks {
        let w = d.len() as f64;
        let local: f64 = d.iter().map(value).sum();
        let denom = s * ((n * w - w * w) / (n - 1.0)).sqrt();
        if denom <= 0.0 || !denom.is_finite() {
            continue;
        }
        let z = (local - mean * w) / denom;
        if z >= min_z
            && let Some(cell) = CellId::new(*c)
        {
            out.push(HotCell {
                cell,
                gi_z: z,
                events: occupied.get(c).map_or(0, |o| o.events),
            });
        }
    }
    out.sort_by(|a, b| b.gi_z.total_cmp(&a.gi_z).then(a.cell.cmp(&b.cell)));
    out.truncate(max_cells);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use h3o::{LatLng, Resolution};

    #[test]
    fn a_cluster_stands_out_and_a_flat_field_does_not() {
        let centre = LatLng::new(41.3, 69.25)
            .expect("valid")
            .to_cell(Resolution::Ten);
        let mut occupied = BTreeMap::new();
        // A hot centre with warm neighbours, and scattered single events.
        for c in centre.grid_disk::<Vec<CellIndex>>(1) {
            let value = if c == centre { 10.0 } else { 4.0 };
            occupied.insert(u64::from(c), Occupied { value, events: 3 });
        }
        for c in centre.grid_ring_fast(6).flatten().step_by(3) {
            occupied.insert(
                u64::from(c),
                Occupied {
                    value: 1.0,
                    events: 1,
                },
            );
        }
        let hot = getis_ord(&occupied, 1.96, 5);
        assert!(!hot.is_empty());
        assert_eq!(hot[0].cell.get(), u64::from(centre));
        assert!(hot[0].gi_z > 3.0, "{}", hot[0].gi_z);
        assert!(hot.windows(2).all(|w| w[0].gi_z >= w[1].gi_z));
        // Gi* of the centre by hand.
        let area: BTreeSet<u64> = occupied.keys().flat_map(|&c| disk(c)).collect();
        let n = area.len() as f64;
        let xs: Vec<f64> = area
            .iter()
            .map(|c| occupied.get(c).map_or(0.0, |o| o.value))
            .collect();
        let mean = xs.iter().sum::<f64>() / n;
        let s = (xs.iter().map(|x| x * x).sum::<f64>() / n - mean * mean).sqrt();
        let local = 10.0 + 6.0 * 4.0;
        let want = (local - 7.0 * mean) / (s * ((n * 7.0 - 49.0) / (n - 1.0)).sqrt());
        assert!((hot[0].gi_z - want).abs() < 1e-9);

        let flat: BTreeMap<u64, Occupied> = centre
            .grid_disk::<Vec<CellIndex>>(6)
            .into_iter()
            .map(|c| {
                (
                    u64::from(c),
                    Occupied {
                        value: 1.0,
                        events: 1,
                    },
                )
            })
            .collect();
        let hot = getis_ord(&flat, 1.96, 5);
        assert!(hot.is_empty(), "{hot:?}");
    }
}
