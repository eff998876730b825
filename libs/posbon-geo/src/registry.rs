//! The mahalla registry: features, hierarchy and the H3 lookup table.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use geo::{BooleanOps, BoundingRect, ChamberlainDuquetteArea, Coord, InteriorPoint, MultiPolygon};
use h3o::geom::{ContainmentMode, TilerBuilder};
use h3o::{CellIndex, LatLng, Resolution};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{GeoError, RegistryError};
use crate::geojson::{FeatureRecord, read_features};
use crate::grid::{EMPTY, Grid, GridOrigin, SCALE};
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

fn since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
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

    fn from_records(
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

    /// The storage resolution of the lookup table.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// Figures about the lookup table.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    /// Locates many points, appending one result per point to `out`: the same
    /// answers as [`Registry::locate`], at a lower cost per point.
    ///
    /// On a national registry most of the cost of a single lookup beyond the
    /// H3 cell computation is waiting for memory (the grid entry, then the
    /// polygon edges of boundary squares). A batch reads the grid entries of
    /// all its points first, then the edges their tests will need, so the
    /// reads of different points are in flight together, and only then
    /// computes the cells and runs the tests on data already in cache.
    pub fn locate_many(&self, points: &[(f64, f64)], out: &mut Vec<Result<Located, GeoError>>) {
        const BATCH: usize = 64;
        out.reserve(points.len());
        let mut entries = [EMPTY; BATCH];
        for chunk in points.chunks(BATCH) {
            // 1: grid entries, independent reads.
            for (e, &(lat, lng)) in entries.iter_mut().zip(chunk) {
                *e = self.grid.entry(lng, lat);
            }
            // 2: the slabs the boundary tests will read.
            let mut token = 0u64;
            for (&e, &(lat, lng)) in entries.iter().zip(chunk) {
                if e != EMPTY && e & BOUNDARY != 0 {
                    let p = Coord { x: lng, y: lat };
                    for c in self.candidate_list(e) {
                        token ^= self.pips.warm(&c.poly, p);
                    }
                }
            }
            std::hint::black_box(token);
            // 3: cells and answers.
            for (&e, &(lat, lng)) in entries.iter().zip(chunk) {
                out.push(self.finish(e, lat, lng));
            }
        }
    }

    /// Finds the cell and the mahalla of a point.
    ///
    /// Exact: the mahalla returned is the first mahalla in registry order whose
    /// polygon contains the point or has it on its boundary; `None` when there is
    /// none. Errors only for coordinates that are not a point on Earth.
    #[inline]
    pub fn locate(&self, lat: f64, lng: f64) -> Result<Located, GeoError> {
        // Read the grid entry before computing the cell: the read (often a cache
        // miss on a national registry) is then in flight while h3o computes.
        let entry = self.grid.entry(lng, lat);
        self.finish(entry, lat, lng)
    }

    /// The cell of a point and the mahalla its grid entry leads to.
    #[inline]
    fn finish(&self, entry: u32, lat: f64, lng: f64) -> Result<Located, GeoError> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
            return Err(GeoError::InvalidCoordinate { lat, lng });
        }
        let ll = LatLng::new(lat, lng).map_err(|_| GeoError::InvalidCoordinate { lat, lng })?;
        let cell = ll.to_cell(self.resolution);
        let mahalla = match entry {
            EMPTY => None,
            entry if entry & BOUNDARY == 0 => Some(MahallaIdx(entry)),
            entry => {
                let p = Coord { x: lng, y: lat };
                self.candidate_list(entry)
                    .find(|c| self.pips.intersects(&c.poly, p))
                    .map(|c| MahallaIdx(c.mahalla))
            }
        };
        Ok(Located { cell, mahalla })
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

    /// Exact containment of a point in one mahalla (inside or on its boundary),
    /// without the cell table: the reference that [`Registry::locate`] agrees with.
    pub fn contains(&self, idx: MahallaIdx, lat: f64, lng: f64) -> bool {
        let p = Coord { x: lng, y: lat };
        self.parts[idx.0 as usize]
            .iter()
            .any(|part| self.pips.intersects(part, p))
    }

    /// The candidates of a boundary entry, in registry order, one per polygon part.
    #[inline]
    fn candidate_list(&self, entry: u32) -> impl Iterator<Item = &Candidate> {
        let from = (entry & !BOUNDARY) as usize;
        let mut done = false;
        self.candidates[from..].iter().take_while(move |c| {
            let more = !done;
            done = c.last;
            more
        })
    }
}

type Hierarchy = (
    Vec<District>,
    Vec<Region>,
    HashMap<String, MahallaIdx>,
    HashMap<String, usize>,
    HashMap<String, usize>,
);

fn hierarchy(features: &[FeatureRecord]) -> Result<Hierarchy, RegistryError> {
    let mut by_id = HashMap::with_capacity(features.len());
    let mut districts: Vec<District> = Vec::new();
    let mut regions: Vec<Region> = Vec::new();
    let mut district_by_id: HashMap<String, usize> = HashMap::new();
    let mut region_by_id: HashMap<String, usize> = HashMap::new();
    for (i, f) in features.iter().enumerate() {
        let idx = MahallaIdx(i as u32);
        if let Some(prev) = by_id.insert(f.id.clone(), idx) {
            return Err(RegistryError::feature(
                i,
                Some(&f.id),
                format!("properties.id is also used by feature {}", prev.0),
            ));
        }
        match district_by_id.get(&f.district_id) {
            Some(&d) => {
                let district = &mut districts[d];
                if district.region_id != f.region_id {
                    return Err(RegistryError::feature(
                        i,
                        Some(&f.id),
                        format!(
                            "district {:?} is in region {:?} here but in region {:?} in an earlier feature",
                            f.district_id, f.region_id, district.region_id
                        ),
                    ));
                }
                if district.name != f.district_name {
                    return Err(RegistryError::feature(
                        i,
                        Some(&f.id),
                        format!(
                            "district {:?} is named {:?} here but {:?} in an earlier feature",
                            f.district_id, f.district_name, district.name
                        ),
                    ));
                }
                district.mahallas.push(idx);
            }
            None => {
                district_by_id.insert(f.district_id.clone(), districts.len());
                districts.push(District {
                    id: f.district_id.clone(),
                    name: f.district_name.clone(),
                    region_id: f.region_id.clone(),
                    mahallas: vec![idx],
                });
                match region_by_id.get(&f.region_id) {
                    Some(&r) => {
                        if regions[r].name != f.region_name {
                            return Err(RegistryError::feature(
                                i,
                                Some(&f.id),
                                format!(
                                    "region {:?} is named {:?} here but {:?} in an earlier feature",
                                    f.region_id, f.region_name, regions[r].name
                                ),
                            ));
                        }
                        regions[r].districts.push(f.district_id.clone());
                    }
                    None => {
                        region_by_id.insert(f.region_id.clone(), regions.len());
                        regions.push(Region {
                            id: f.region_id.clone(),
                            name: f.region_name.clone(),
                            districts: vec![f.district_id.clone()],
                        });
                    }
                }
            }
        }
    }
    Ok((districts, regions, by_id, district_by_id, region_by_id))
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

/// The grid over every feature's bounding box.
fn grid_origin(features: &[FeatureRecord]) -> Result<GridOrigin, RegistryError> {
    let mut min = Coord {
        x: f64::INFINITY,
        y: f64::INFINITY,
    };
    let mut max = Coord {
        x: f64::NEG_INFINITY,
        y: f64::NEG_INFINITY,
    };
    for f in features {
        if let Some(r) = f.geometry.bounding_rect() {
            min.x = min.x.min(r.min().x);
            min.y = min.y.min(r.min().y);
            max.x = max.x.max(r.max().x);
            max.y = max.y.max(r.max().y);
        }
    }
    GridOrigin::covering(min.x, min.y, max.x, max.y)
}

/// Most grid squares the bounding box of one mahalla may cover: 4° × 4°
/// (about 150,000 km² at Tashkent's latitude), more than any mahalla.
const MAX_MAHALLA_SQUARES: u64 = 4096 * 4096;

/// Most grid squares the bounding boxes of all mahallas may cover together:
/// 2^28, about 2.5 million km², five times Uzbekistan.
const MAX_TOTAL_SQUARES: u64 = 1 << 28;

/// Bounds the work of a load. Claiming scans every square of a mahalla's
/// bounding box and keeps those inside (16 bytes each), so one wrong
/// coordinate (`1` for `41.31`) stretched a mahalla over a continent: a file
/// of a few hundred bytes took hours and tens of GB to load.
fn check_extent(features: &[FeatureRecord], origin: &GridOrigin) -> Result<(), RegistryError> {
    let mut total: u64 = 0;
    for (i, f) in features.iter().enumerate() {
        let Some(r) = f.geometry.bounding_rect() else {
            continue;
        };
        let Some(((x0, y0), (x1, y1))) =
            origin.squares_of_box(r.min().x, r.min().y, r.max().x, r.max().y)
        else {
            continue;
        };
        let squares = (x1 - x0 + 1).saturating_mul(y1 - y0 + 1);
        if squares > MAX_MAHALLA_SQUARES {
            return Err(RegistryError::feature(
                i,
                Some(&f.id),
                format!(
                    "geometry: spans {:.2}° × {:.2}°, more than the 4° × 4° a mahalla may cover (is a coordinate wrong?)",
                    r.width(),
                    r.height()
                ),
            ));
        }
        total = total.saturating_add(squares);
        if total > MAX_TOTAL_SQUARES {
            return Err(RegistryError::Document(format!(
                "the bounding boxes of the first {} mahallas cover more than {MAX_TOTAL_SQUARES} squares of 1/1024° (about 2.5 million km²), more than a registry may",
                i + 1
            )));
        }
    }
    Ok(())
}

struct Claimed {
    /// `(square, wholly inside)` for every square that holds a point of the mahalla.
    squares: Vec<(u64, bool)>,
    area_m2: f64,
}

#[inline]
fn pack(x: u64, y: u64) -> u64 {
    (y << 32) | x
}

/// The squares a mahalla claims: those its boundary may pass through, and those
/// wholly inside it (see the exactness argument in `grid.rs`).
fn claim(mp: &MultiPolygon<f64>, origin: &GridOrigin) -> Claimed {
    const EPS: f64 = 1e-9;
    let mut crossing: Vec<u64> = Vec::new();
    for poly in &mp.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for line in ring.lines() {
                let (a, b) = (line.start, line.end);
                let span = (b.x - a.x).abs().max((b.y - a.y).abs());
                let pieces = ((span * SCALE * 2.0).ceil() as usize).max(1);
                let at = |k: usize| -> Coord<f64> {
                    if k == 0 {
                        a
                    } else if k == pieces {
                        b
                    } else {
                        let t = k as f64 / pieces as f64;
                        Coord {
                            x: a.x + t * (b.x - a.x),
                            y: a.y + t * (b.y - a.y),
                        }
                    }
                };
                for k in 0..pieces {
                    let (p, q) = (at(k), at(k + 1));
                    if let Some(((x0, y0), (x1, y1))) = origin.squares_of_box(
                        p.x.min(q.x) - EPS,
                        p.y.min(q.y) - EPS,
                        p.x.max(q.x) + EPS,
                        p.y.max(q.y) + EPS,
                    ) {
                        for y in y0..=y1 {
                            for x in x0..=x1 {
                                crossing.push(pack(x, y));
                            }
                        }
                    }
                }
            }
        }
    }
    crossing.sort_unstable();
    crossing.dedup();
    let mut local = PipArena::default();
    let local_parts = local.add(mp);
    let mut squares: Vec<(u64, bool)> = crossing.iter().map(|&sq| (sq, false)).collect();
    if let Some(r) = mp.bounding_rect()
        && let Some(((x0, y0), (x1, y1))) =
            origin.squares_of_box(r.min().x, r.min().y, r.max().x, r.max().y)
    {
        for y in y0..=y1 {
            for x in x0..=x1 {
                let sq = pack(x, y);
                if crossing.binary_search(&sq).is_ok() {
                    continue;
                }
                let (lng, lat) = origin.centre(x, y);
                let c = Coord { x: lng, y: lat };
                if local_parts.iter().any(|p| local.intersects(p, c)) {
                    squares.push((sq, true));
                }
            }
        }
    }
    Claimed {
        squares,
        area_m2: mp.chamberlain_duquette_unsigned_area(),
    }
}

fn claim_all(features: &[FeatureRecord], origin: &GridOrigin, threads: usize) -> Vec<Claimed> {
    let threads = threads.clamp(1, 64).min(features.len().max(1));
    let chunk = features.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = features
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|f| claim(&f.geometry, origin))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Rejects neighbouring mahallas that overlap by more than `tolerance_m2`.
///
/// Pairs are probed cheaply first: a vertex, an edge midpoint or the interior
/// point of one strictly inside the other. Only probed pairs have their overlap
/// measured (boolean intersection). Every overlap of two digitised boundaries
/// (slivers, shifted edges, duplicates, one inside the other) trips a probe; two
/// shapes crossing like a plus sign with no probe point inside the other would
/// not, and are accepted.
fn check_overlaps(
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
