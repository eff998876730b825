//! Building a registry from its features: the hierarchy, the squares each
//! mahalla claims, the lookup grid with its candidate lists, and the
//! overlap check.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use crate::error::RegistryError;
use crate::geojson::FeatureRecord;
use crate::grid::Grid;
use crate::pip::PipArena;

use super::claim::{check_extent, claim_all, grid_origin};
use super::hierarchy::hierarchy;
use super::overlaps::check_overlaps;
use super::{BOUNDARY, Candidate, Mahalla, Registry, RegistryOptions, RegistryStats};

fn since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

impl Registry {
    pub(super) fn from_records(
        features: Vec<FeatureRecord>,
        options: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        if features.is_empty() {
            return Err(RegistryError::Empty);
        }
        let (districts, regions, by_id, district_by_id, region_by_id) = hierarchy(&features)?;
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let started = Instant::now();
        let origin = grid_origin(&features)?;
        check_extent(&features, &origin)?;
        let claimed = claim_all(&features, &origin, threads);
        let cover_ms = since(started);
        let started = Instant::now();
        let mut mahallas = Vec::with_capacity(features.len());
        let mut pips = PipArena::default();
        let mut parts = Vec::with_capacity(features.len());
        let mut triples: Vec<(u64, u32, bool)> = Vec::new();
        for (i, (f, c)) in features.into_iter().zip(claimed).enumerate() {
            triples.extend(c.squares.iter().map(|&(sq, inside)| (sq, i as u32, inside)));
            parts.push(pips.add(&f.geometry));
            mahallas.push(Mahalla {
                id: f.id,
                name: f.name,
                district_id: f.district_id,
                region_id: f.region_id,
                population: f.population,
                inspector: f.inspector,
                inspector_contact: f.inspector_contact,
                area_m2: c.area_m2,
                geometry: f.geometry,
                extra: f.extra,
            });
        }
        triples.sort_unstable();
        let mut entries: Vec<(u64, u32)> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut interned: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut pairs: HashSet<(u32, u32)> = HashSet::new();
        let mut stats = RegistryStats {
            cover_ms,
            ..RegistryStats::default()
        };
        for group in triples.chunk_by(|a, b| a.0 == b.0) {
            let square = group[0].0;
            if group.len() == 1 && group[0].2 {
                entries.push((square, group[0].1));
                stats.interior_squares += 1;
                continue;
            }
            stats.boundary_squares += 1;
            // Squares along one border share their list: intern it, so lists
            // stay few and warm in cache.
            let ids: Vec<u32> = group.iter().map(|t| t.1).collect();
            let offset = match interned.get(&ids) {
                Some(&offset) => offset,
                None => {
                    let offset = candidates.len() as u32;
                    if offset >= BOUNDARY - 1 {
                        return Err(RegistryError::Document(
                            "registry too large for the lookup grid".into(),
                        ));
                    }
                    for &m in &ids {
                        for part in &parts[m as usize] {
                            candidates.push(Candidate {
                                mahalla: m,
                                last: false,
                                poly: *part,
                            });
                        }
                    }
                    if let Some(last) = candidates.last_mut() {
                        last.last = true;
                    }
                    for (k, &a) in ids.iter().enumerate() {
                        for &b in &ids[k + 1..] {
                            pairs.insert((a, b));
                        }
                    }
                    interned.insert(ids, offset);
                    offset
                }
            };
            entries.push((square, BOUNDARY | offset));
        }
        let grid = Grid::build(origin, &entries);
        let mut pairs: Vec<(u32, u32)> = pairs.into_iter().collect();
        pairs.sort_unstable();
        stats.overlap_checks = pairs.len();
        stats.grid_bytes = grid.memory_bytes();
        stats.index_ms = since(started);
        let started = Instant::now();
        check_overlaps(
            &mahallas,
            &pips,
            &parts,
            &pairs,
            options.overlap_tolerance_m2,
        )?;
        stats.overlap_ms = since(started);
        let coverage = (0..mahallas.len()).map(|_| OnceLock::new()).collect();
        Ok(Registry {
            resolution: options.resolution,
            mahallas,
            pips,
            parts,
            districts,
            regions,
            by_id,
            district_by_id,
            region_by_id,
            grid,
            candidates,
            coverage,
            stats,
            digest: String::new(),
        })
    }
}
