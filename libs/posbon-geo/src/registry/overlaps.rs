//! Rejecting neighbouring mahallas that overlap by more than the
//! tolerance.

use geo::{BooleanOps, ChamberlainDuquetteArea, Coord, InteriorPoint};

use crate::error::RegistryError;
use crate::pip::{PipArena, PolyRef};

use super::Mahalla;

/// Rejects neighbouring mahallas that overlap by more than `tolerance_m2`.
///
/// Pairs are probed cheaply first: a vertex, an edge midpoint or the interior
/// point of one strictly inside the other. Only probed pairs have their overlap
/// measured (boolean intersection). Every overlap of two digitised boundaries
/// (slivers, shifted edges, duplicates, one inside the other) trips a probe; two
/// shapes crossing like a plus sign with no probe point inside the other would
/// not, and are accepted.
pub(super) fn check_overlaps(
    mahallas: &[Mahalla],
    pips: &PipArena,
    parts: &[Vec<PolyRef>],
    pairs: &[(u32, u32)],
    tolerance_m2: f64,
) -> Result<(), RegistryError> {
    let strictly_inside = |of: usize, inside: usize| -> bool {
        let geometry = &mahallas[of].geometry;
        let probe = geometry.interior_point().map(|p| p.0);
        geometry
            .0
            .iter()
            .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
            .flat_map(|ring| {
                // Vertices and edge midpoints: a sliver between two shapes that
                // share their corners has an edge midpoint inside the other.
                ring.lines().flat_map(|l| {
                    [
                        l.start,
                        Coord {
                            x: (l.start.x + l.end.x) / 2.0,
                            y: (l.start.y + l.end.y) / 2.0,
                        },
                    ]
                })
            })
            .chain(probe)
            .any(|c| parts[inside].iter().any(|p| pips.strictly_inside(p, c)))
    };
    for &(a, b) in pairs {
        let (a, b) = (a as usize, b as usize);
        if !(strictly_inside(a, b) || strictly_inside(b, a)) {
            continue;
        }
        let overlap = mahallas[a]
            .geometry
            .intersection(&mahallas[b].geometry)
            .chamberlain_duquette_unsigned_area();
        if overlap > tolerance_m2 {
            return Err(RegistryError::Overlap {
                first: a,
                first_id: mahallas[a].id.clone(),
                second: b,
                second_id: mahallas[b].id.clone(),
                overlap_m2: overlap,
                tolerance_m2,
            });
        }
    }
    Ok(())
}
