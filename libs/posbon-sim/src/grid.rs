//! Partitioning sets of H3 cells into connected regions, and turning regions
//! into polygons whose shared edges are bit-identical.
//!
//! A region set is grown from seeds like a multiplicatively weighted Voronoi
//! diagram, but a cell is only ever claimed from an adjacent cell of the same
//! region, so every region is one connected piece by construction.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use geo::{Coord, LineString, MultiPolygon, Polygon};
use h3o::geom::SolventBuilder;
use h3o::{CellIndex, LatLng, VertexIndex};
use rand::RngExt;

use crate::error::SimError;

/// Metres per degree of latitude (mean).
const M_PER_DEG_LAT: f64 = 111_132.0;

/// A local equirectangular projection to metres around a reference point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Projection {
    lat0: f64,
    lng0: f64,
    m_per_deg_lng: f64,
}

impl Projection {
    /// A projection centred on `lat0, lng0` (degrees).
    pub(crate) fn new(lat0: f64, lng0: f64) -> Self {
        Self {
            lat0,
            lng0,
            m_per_deg_lng: M_PER_DEG_LAT * lat0.to_radians().cos(),
        }
    }

    /// Degrees to metres east / north of the reference point.
    pub(crate) fn to_xy(self, lat: f64, lng: f64) -> (f64, f64) {
        (
            (lng - self.lng0) * self.m_per_deg_lng,
            (lat - self.lat0) * M_PER_DEG_LAT,
        )
    }

    /// Metres east / north back to degrees (lat, lng).
    pub(crate) fn to_latlng(self, x: f64, y: f64) -> (f64, f64) {
        (
            self.lat0 + y / M_PER_DEG_LAT,
            self.lng0 + x / self.m_per_deg_lng,
        )
    }
}

/// A set of cells of one resolution with their adjacency and planar centres.
#[derive(Debug)]
pub(crate) struct CellGraph {
    /// The cells, sorted.
    pub(crate) cells: Vec<CellIndex>,
    /// Position of each cell in `cells`.
    pub(crate) index: HashMap<CellIndex, u32>,
    /// Neighbours inside the set (`u32::MAX` = none).
    pub(crate) neighbours: Vec<[u32; 6]>,
    /// Cell centres in metres (see [`Projection`]).
    pub(crate) xy: Vec<(f64, f64)>,
}

/// Marks a missing neighbour or an unassigned cell.
pub(crate) const NONE: u32 = u32::MAX;

impl CellGraph {
    /// Builds the graph of `cells` (duplicates are removed).
    pub(crate) fn new(mut cells: Vec<CellIndex>, projection: Projection) -> Self {
        cells.sort_unstable();
        cells.dedup();
        let index: HashMap<CellIndex, u32> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as u32))
            .collect();
        let mut neighbours = Vec::with_capacity(cells.len());
        let mut xy = Vec::with_capacity(cells.len());
        for &cell in &cells {
            let mut n = [NONE; 6];
            let mut k = 0;
            for other in cell.grid_disk::<Vec<CellIndex>>(1) {
                if other == cell {
                    continue;
                }
                if let Some(&j) = index.get(&other)
                    && k < 6
                {
                    n[k] = j;
                    k += 1;
                }
            }
            neighbours.push(n);
            let ll = LatLng::from(cell);
            xy.push(projection.to_xy(ll.lat(), ll.lng()));
        }
        Self {
            cells,
            index,
            neighbours,
            xy,
        }
    }

    /// Number of cells.
    pub(crate) fn len(&self) -> usize {
        self.cells.len()
    }

    /// Neighbours of cell `i` inside the set.
    pub(crate) fn neighbours(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        self.neighbours[i as usize]
            .iter()
            .copied()
            .filter(|&j| j != NONE)
    }
}

/// A seed of a region: a cell, the point it grows from and its weight (a
/// bigger weight claims proportionally farther cells).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seed {
    /// The cell the seed sits in (must be a member).
    pub(crate) cell: u32,
    /// Growth centre, metres.
    pub(crate) xy: (f64, f64),
    /// Weight, > 0.
    pub(crate) weight: f64,
}

/// Grows one region per seed over the cells where `member[i] == group`,
/// writing the seed index into `label` (cells of other groups are left
/// alone). Each cell goes to the seed with the least weighted distance among
/// the regions that can reach it through their own cells, so every region is
/// connected. Cells no seed can reach keep `NONE`.
pub(crate) fn grow(
    graph: &CellGraph,
    member: &[u32],
    group: u32,
    seeds: &[Seed],
    label: &mut [u32],
) {
    let mut heap: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
    let cost = |cell: u32, s: u32| -> u64 {
        let seed = seeds[s as usize];
        let (x, y) = graph.xy[cell as usize];
        let d = ((x - seed.xy.0).powi(2) + (y - seed.xy.1).powi(2)).sqrt() / seed.weight;
        d.to_bits()
    };
    for (s, seed) in seeds.iter().enumerate() {
        heap.push(Reverse((cost(seed.cell, s as u32), seed.cell, s as u32)));
    }
    while let Some(Reverse((_, cell, s))) = heap.pop() {
        if label[cell as usize] != NONE {
            continue;
        }
        label[cell as usize] = s;
        for n in graph.neighbours(cell) {
            if member[n as usize] == group && label[n as usize] == NONE {
                heap.push(Reverse((cost(n, s), n, s)));
            }
        }
    }
}

/// Assigns cells of `group` that no seed reached to the region of a reached
/// neighbour (breadth first), so isolated leftovers join an adjacent region.
/// Returns the number of cells still unassigned (those in components with no
/// seed at all).
pub(crate) fn absorb_unreached(
    graph: &CellGraph,
    member: &[u32],
    group: u32,
    label: &mut [u32],
) -> usize {
    let mut frontier: Vec<u32> = (0..graph.len() as u32)
        .filter(|&i| member[i as usize] == group && label[i as usize] != NONE)
        .collect();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &cell in &frontier {
            for n in graph.neighbours(cell) {
                if member[n as usize] == group && label[n as usize] == NONE {
                    label[n as usize] = label[cell as usize];
                    next.push(n);
                }
            }
        }
        frontier = next;
    }
    (0..graph.len())
        .filter(|&i| member[i] == group && label[i] == NONE)
        .count()
}

/// Picks `count` well-spread seed cells among `members` (Mitchell's best
/// candidate sampling). `spacing` scales the wanted distance at a point: seeds
/// end up denser where it is small.
pub(crate) fn spread_seeds<R: RngExt + ?Sized>(
    rng: &mut R,
    graph: &CellGraph,
    members: &[u32],
    count: usize,
    spacing: impl Fn((f64, f64)) -> f64,
) -> Vec<u32> {
    let mut seeds: Vec<u32> = Vec::with_capacity(count);
    if members.is_empty() {
        return seeds;
    }
    let count = count.min(members.len());
    let mut taken = std::collections::HashSet::new();
    while seeds.len() < count {
        let mut best: Option<(f64, u32)> = None;
        for _ in 0..12 {
            let cand = members[rng.random_range(0..members.len())];
            if taken.contains(&cand) {
                continue;
            }
            let (cx, cy) = graph.xy[cand as usize];
            let nearest = seeds
                .iter()
                .map(|&s| {
                    let (sx, sy) = graph.xy[s as usize];
                    (sx - cx).powi(2) + (sy - cy).powi(2)
                })
                .fold(f64::INFINITY, f64::min)
                .sqrt();
            let score = nearest / spacing((cx, cy)).max(1e-9);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, cand));
            }
        }
        if let Some((_, cand)) = best {
            taken.insert(cand);
            seeds.push(cand);
        } else if let Some(&free) = members.iter().find(|m| !taken.contains(*m)) {
            taken.insert(free);
            seeds.push(free);
        }
    }
    seeds
}

/// Canonical coordinates of cell vertices, so that every polygon built from
/// the same cell grid uses bit-identical coordinates for a shared vertex (h3o
/// computes an edge's vertices from its origin cell, so the two sides of an
/// edge can differ in the last bits).
#[derive(Debug, Default)]
pub(crate) struct VertexSnapper {
    by_key: HashMap<(i64, i64), Vec<Coord>>,
}

/// Quantum of the lookup key, degrees (about 1 m; vertices are ≥ 8 m apart at
/// resolution 12 and coarser).
const SNAP_QUANTUM: f64 = 1e-5;

impl VertexSnapper {
    fn key(c: Coord) -> (i64, i64) {
        (
            (c.x / SNAP_QUANTUM).floor() as i64,
            (c.y / SNAP_QUANTUM).floor() as i64,
        )
    }

    /// Registers the vertices of `cells`.
    pub(crate) fn add_cells(&mut self, cells: &[CellIndex]) {
        let mut seen: std::collections::HashSet<VertexIndex> = std::collections::HashSet::new();
        for cell in cells {
            for v in cell.vertexes() {
                if seen.insert(v) {
                    let ll = LatLng::from(v);
                    let c = Coord {
                        x: ll.lng(),
                        y: ll.lat(),
                    };
                    let list = self.by_key.entry(Self::key(c)).or_default();
                    if !list.contains(&c) {
                        list.push(c);
                    }
                }
            }
        }
    }

    /// The canonical coordinate near `c` (within 1e-9 degree), or `c`.
    fn snap(&self, c: Coord) -> Coord {
        let (kx, ky) = Self::key(c);
        let mut best: Option<(f64, Coord)> = None;
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(list) = self.by_key.get(&(kx + dx, ky + dy)) {
                    for &v in list {
                        let d = (v.x - c.x).abs().max((v.y - c.y).abs());
                        if d < 1e-9 && best.is_none_or(|(bd, _)| d < bd) {
                            best = Some((d, v));
                        }
                    }
                }
            }
        }
        best.map_or(c, |(_, v)| v)
    }

    fn snap_ring(&self, ring: &LineString<f64>) -> LineString<f64> {
        LineString::new(ring.0.iter().map(|&c| self.snap(c)).collect())
    }

    /// Snaps every coordinate of `mp`.
    pub(crate) fn snap_multipolygon(&self, mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
        MultiPolygon::new(
            mp.0.iter()
                .map(|p| {
                    Polygon::new(
                        self.snap_ring(p.exterior()),
                        p.interiors().iter().map(|r| self.snap_ring(r)).collect(),
                    )
                })
                .collect(),
        )
    }
}

/// Dissolves a region's cells into its outline (degrees, [lng, lat]),
/// snapped to canonical vertices.
pub(crate) fn dissolve(
    cells: &[CellIndex],
    snapper: &VertexSnapper,
) -> Result<MultiPolygon<f64>, SimError> {
    let mp = SolventBuilder::new()
        .build()
        .dissolve(cells.iter().copied())
        .map_err(|e| SimError::Geometry(format!("dissolving {} cells: {e}", cells.len())))?;
    Ok(snapper.snap_multipolygon(&mp))
}
