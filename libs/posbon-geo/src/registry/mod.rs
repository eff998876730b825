//! The mahalla registry: features, hierarchy and the H3 lookup table.

mod build;
mod claim;
mod hierarchy;
mod lookup;
mod overlaps;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use geo::MultiPolygon;
use h3o::geom::{ContainmentMode, TilerBuilder};
use h3o::{CellIndex, LatLng, Resolution};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::error::RegistryError;
use crate::geojson::read_features;
use crate::grid::Grid;
use crate::pip::{PipArena, PolyRef};

/// How a registry is loaded.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The H3 storage resolution: events are tagged with their cell at this
    /// resolution and the lookup table is built at it. Default 10 (about
    /// 15,000 m² per cell).
    pub resolution: Resolution,
    /// Two mahallas may overlap by at most this many square metres (slivers left
    /// by digitising); more is an error that names both. Default 10 m².
    pub overlap_tolerance_m2: f64,
    /// Worker threads for covering mahallas with cells; 0 means one per core.
    pub threads: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            resolution: Resolution::Ten,
            overlap_tolerance_m2: 10.0,
            threads: 0,
        }
    }
}

/// Position of a mahalla in its registry; cheap to copy and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MahallaIdx(pub u32);

/// One mahalla (neighbourhood community).
#[derive(Debug, Clone)]
pub struct Mahalla {
    /// Unique id, a subject-safe token such as `chilonzor-017`.
    pub id: String,
    /// Name, e.g. `Qatortol`.
    pub name: String,
    /// Id of its district.
    pub district_id: String,
    /// Id of its region.
    pub region_id: String,
    /// Residents, when known.
    pub population: Option<u32>,
    /// The responsible mahalla inspector, when known.
    pub inspector: Option<String>,
    /// How to reach the inspector (a phone number, an e-mail address or a
    /// Telegram chat id): the `@inspector` target of notifications.
    pub inspector_contact: Option<String>,
    /// Its boundary, `x` = longitude and `y` = latitude.
    pub geometry: MultiPolygon<f64>,
    /// Its area in square metres.
    pub area_m2: f64,
    /// Properties of the feature that the registry does not interpret, kept as given.
    pub extra: Map<String, Value>,
}

/// A district: a group of mahallas within one region.
#[derive(Debug, Clone)]
pub struct District {
    /// Unique id, a subject-safe token such as `chilonzor`.
    pub id: String,
    /// Display name, e.g. `Chilonzor`.
    pub name: String,
    /// Id of its region.
    pub region_id: String,
    /// Its mahallas, in registry order.
    pub mahallas: Vec<MahallaIdx>,
}

/// A region (viloyat, Tashkent city or Karakalpakstan).
#[derive(Debug, Clone)]
pub struct Region {
    /// Unique id, a subject-safe token such as `tashkent`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ids of its districts, in registry order.
    pub districts: Vec<String>,
}

/// What [`Registry::locate`] found for a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The H3 cell of the point at the registry's storage resolution.
    pub cell: CellIndex,
    /// The mahalla that contains the point, or `None` when the point lies
    /// outside every mahalla (it is then reported as unassigned).
    pub mahalla: Option<MahallaIdx>,
}

/// Cell table entries are a mahalla index, or with this bit set, the offset of a
/// candidate list `[len, idx, idx, ...]` in `Registry::candidates`.
const BOUNDARY: u32 = 1 << 31;

/// The mahalla registry: every mahalla with its geometry, the district and
/// region hierarchy, and an H3 table for exact, near-O(1) point lookup.
///
/// Lookup: the point's cell at the storage resolution is found in a hash table.
/// A cell that lies wholly inside one mahalla and touches no other answers at
/// once; a cell crossed by mahalla boundaries lists its candidate mahallas, and an
/// exact point-in-polygon test (the same predicate as `geo::Intersects`) decides.
/// A cell that no mahalla touches is unassigned. A point on the shared boundary
/// of two mahallas, or in an overlap within the tolerance, goes to the mahalla that
/// comes first in the registry.
#[derive(Debug)]
pub struct Registry {
    resolution: Resolution,
    mahallas: Vec<Mahalla>,
    pips: PipArena,
    parts: Vec<Vec<PolyRef>>,
    districts: Vec<District>,
    regions: Vec<Region>,
    by_id: HashMap<String, MahallaIdx>,
    district_by_id: HashMap<String, usize>,
    region_by_id: HashMap<String, usize>,
    grid: Grid,
    candidates: Vec<Candidate>,
    coverage: Vec<OnceLock<Vec<CellIndex>>>,
    stats: RegistryStats,
    digest: String,
}

/// Figures about a loaded registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Grid squares that answer without a polygon test.
    pub interior_squares: usize,
    /// Grid squares crossed by a boundary, answered by a polygon test.
    pub boundary_squares: usize,
    /// Pairs of neighbouring mahallas probed for overlap.
    pub overlap_checks: usize,
    /// Bytes held by the lookup grid.
    pub grid_bytes: usize,
    /// Milliseconds spent finding the grid squares of every mahalla.
    pub cover_ms: u64,
    /// Milliseconds spent building the lookup grid.
    pub index_ms: u64,
    /// Milliseconds spent checking neighbours for overlaps.
    pub overlap_ms: u64,
}

impl Registry {
    /// Loads a registry from GeoJSON bytes (see `schemas/mahalla-registry.md`).
    pub fn from_geojson(bytes: &[u8], options: &RegistryOptions) -> Result<Self, RegistryError> {
        let features = read_features(bytes)?;
        let mut registry = Self::from_records(features, options)?;
        registry.digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        Ok(registry)
    }

    /// `sha256:<hex>` of the GeoJSON it was read from: services that load
    /// the same file agree on it, so they can check that they agree on the
    /// mahallas (`posbon_service::registry`).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Loads a registry from a GeoJSON file.
    pub fn from_path(path: &Path, options: &RegistryOptions) -> Result<Self, RegistryError> {
        let bytes = std::fs::read(path).map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_geojson(&bytes, options)
    }

    /// The storage resolution of the lookup table.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// Figures about the lookup table.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    /// The mahalla at `idx`.
    ///
    /// # Panics
    /// When `idx` does not come from this registry.
    pub fn mahalla(&self, idx: MahallaIdx) -> &Mahalla {
        &self.mahallas[idx.0 as usize]
    }

    /// Every mahalla, in registry order (the order of the features in the file).
    pub fn mahallas(&self) -> &[Mahalla] {
        &self.mahallas
    }

    /// The mahalla with this id.
    pub fn mahalla_by_id(&self, id: &str) -> Option<(MahallaIdx, &Mahalla)> {
        self.by_id.get(id).map(|&i| (i, self.mahalla(i)))
    }

    /// Every district, in order of first appearance.
    pub fn districts(&self) -> &[District] {
        &self.districts
    }

    /// The district with this id.
    pub fn district(&self, id: &str) -> Option<&District> {
        self.district_by_id.get(id).map(|&i| &self.districts[i])
    }

    /// Every region, in order of first appearance.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region with this id.
    pub fn region(&self, id: &str) -> Option<&Region> {
        self.region_by_id.get(id).map(|&i| &self.regions[i])
    }

    /// The cells that cover a mahalla at `resolution`: every cell that holds a
    /// point of it. At or above the storage resolution these are the parents of
    /// its storage cells, so that a scan of them finds all its events; finer
    /// resolutions are tiled from the polygon.
    pub fn mahalla_cells(&self, idx: MahallaIdx, resolution: Resolution) -> Vec<CellIndex> {
        let mahalla = self.mahalla(idx);
        let mut out: Vec<CellIndex> = if resolution <= self.resolution {
            // Computed once per mahalla, on first use.
            let storage = self.coverage[idx.0 as usize].get_or_init(|| {
                covering_cells(&mahalla.geometry, self.resolution)
                    .map(|cells| cells.into_iter().map(|(c, _)| c).collect())
                    .unwrap_or_default()
            });
            storage
                .iter()
                .filter_map(|c| c.parent(resolution))
                .collect()
        } else {
            covering_cells(&mahalla.geometry, resolution)
                .map(|cells| cells.into_iter().map(|(c, _)| c).collect())
                .unwrap_or_default()
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// One polygon part of a candidate mahalla of a boundary cell.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    mahalla: u32,
    /// The last record of its list.
    last: bool,
    poly: PolyRef,
}

/// Every cell that holds a point of `mp`, with whether it lies wholly inside.
fn covering_cells(
    mp: &MultiPolygon<f64>,
    resolution: Resolution,
) -> Result<Vec<(CellIndex, bool)>, String> {
    let mut tiler = TilerBuilder::new(resolution)
        .containment_mode(ContainmentMode::Covers)
        .build();
    for poly in &mp.0 {
        tiler.add(poly.clone()).map_err(|e| e.to_string())?;
    }
    let mut cells: Vec<(CellIndex, bool)> = tiler
        .into_annotated_coverage()
        .map(|a| (a.cell, a.is_fully_contained))
        .collect();
    // A polygon smaller than a cell and touching no cell edge yields nothing in
    // Covers mode: add the cell of every vertex so that such a mahalla is found.
    for poly in &mp.0 {
        for c in poly.exterior().coords() {
            if let Ok(ll) = LatLng::new(c.y, c.x) {
                cells.push((ll.to_cell(resolution), false));
            }
        }
    }
    // One entry per cell; a cell is fully inside only if every report says so.
    cells.sort_unstable_by_key(|&(c, full)| (c, full));
    cells.dedup_by_key(|&mut (c, _)| c);
    Ok(cells)
}
