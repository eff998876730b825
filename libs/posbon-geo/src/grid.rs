//! The lookup grid: a planar grid of squares over the registry, each square
//! either inside one mahalla, crossed by boundaries (a list of candidates), or
//! empty.
//!
//! Why not a table keyed by H3 cell: the cell of a point is known only after
//! h3o's computation (about 450 ns), and a national table does not fit in
//! cache, so its read is a cache miss that adds to that time. The grid square
//! of a point is two multiplications away, so `locate` reads its entry first and
//! computes the H3 cell while the read is in flight: the miss overlaps h3o's
//! work instead of following it.
//!
//! Squares are 1/1024 degree (about 110 m × 85 m in Uzbekistan), grouped in
//! tiles of 32 × 32 squares. A dense directory over the registry's bounding box
//! maps a tile to its block of 1024 entries, or directly to the one value that
//! fills it (empty land, or the inside of one large mahalla).
//!
//! Exactness. A square's *preimage* is the set of points whose computed square
//! index is that square; because the index computation `floor((x - x0) * 1024)`
//! is monotone, the preimage is a product of two intervals, hence connected. A
//! boundary edge is marked in every square that any of its points can map to
//! (pieces of at most half a square, bounding boxes widened by 1e-9°, indexes
//! computed with the same arithmetic). A square that no edge of a mahalla marks
//! therefore holds no point of its boundary, so its preimage lies wholly inside
//! or wholly outside, and the point-in-polygon answer at its centre holds for
//! every point that maps to it.

use crate::error::RegistryError;

/// Squares per degree.
pub(crate) const SCALE: f64 = 1024.0;
/// Squares per tile side (a power of two).
const TILE: u64 = 32;
const TILE_SHIFT: u32 = 5;
const TILE_LEN: usize = (TILE * TILE) as usize;
/// Largest directory (tiles) accepted: 64° × 64° at 32 tiles per degree.
const MAX_DIRECTORY: usize = 2048 * 2048;

/// No mahalla holds a point of the square.
pub(crate) const EMPTY: u32 = u32::MAX;
/// Directory entries with this bit hold the value of every square of the tile.
const UNIFORM: u32 = 1 << 31;

/// Where the grid lies: its south-west corner, tile-aligned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GridOrigin {
    pub(crate) lng0: f64,
    pub(crate) lat0: f64,
    width_tiles: u64,
    height_tiles: u64,
}

impl GridOrigin {
    /// A grid that covers the box `[min_lng, max_lng] × [min_lat, max_lat]`.
    pub(crate) fn covering(
        min_lng: f64,
        min_lat: f64,
        max_lng: f64,
        max_lat: f64,
    ) -> Result<Self, RegistryError> {
        let tiles_per_degree = SCALE / TILE as f64;
        let lng0 = (min_lng * tiles_per_degree).floor() / tiles_per_degree - 1.0 / tiles_per_degree;
        let lat0 = (min_lat * tiles_per_degree).floor() / tiles_per_degree - 1.0 / tiles_per_degree;
        let width_tiles = ((max_lng - lng0) * tiles_per_degree).ceil() as u64 + 2;
        let height_tiles = ((max_lat - lat0) * tiles_per_degree).ceil() as u64 + 2;
        if (width_tiles * height_tiles) as usize > MAX_DIRECTORY {
            return Err(RegistryError::Document(format!(
                "registry spans {:.1}° × {:.1}°, more than the 64° × 64° a registry may cover",
                max_lng - min_lng,
                max_lat - min_lat
            )));
        }
        Ok(GridOrigin {
            lng0,
            lat0,
            width_tiles,
            height_tiles,
        })
    }

    /// The square of a point, `None` outside the grid. The one place where a
    /// coordinate becomes a square index: building and lookup both use it.
    #[inline]
    pub(crate) fn square(&self, lng: f64, lat: f64) -> Option<(u64, u64)> {
        let x = ((lng - self.lng0) * SCALE).floor();
        let y = ((lat - self.lat0) * SCALE).floor();
        if x < 0.0 || y < 0.0 {
            return None;
        }
        let (x, y) = (x as u64, y as u64);
        if (x >> TILE_SHIFT) >= self.width_tiles || (y >> TILE_SHIFT) >= self.height_tiles {
            return None;
        }
        Some((x, y))
    }

    /// A point that maps to square `(x, y)`: its centre.
    pub(crate) fn centre(&self, x: u64, y: u64) -> (f64, f64) {
        (
            self.lng0 + (x as f64 + 0.5) / SCALE,
            self.lat0 + (y as f64 + 0.5) / SCALE,
        )
    }

    /// The range of squares any point of the box can map to, clamped to the grid.
    pub(crate) fn squares_of_box(
        &self,
        min_lng: f64,
        min_lat: f64,
        max_lng: f64,
        max_lat: f64,
    ) -> Option<((u64, u64), (u64, u64))> {
        let clamp_x = |v: f64| ((v - self.lng0) * SCALE).floor().max(0.0) as u64;
        let clamp_y = |v: f64| ((v - self.lat0) * SCALE).floor().max(0.0) as u64;
        let max_x = self.width_tiles * TILE - 1;
        let max_y = self.height_tiles * TILE - 1;
        let (x0, y0) = (clamp_x(min_lng).min(max_x), clamp_y(min_lat).min(max_y));
        let (x1, y1) = (clamp_x(max_lng).min(max_x), clamp_y(max_lat).min(max_y));
        Some(((x0, y0), (x1, y1)))
    }
}

/// Square → entry (a mahalla index, a candidate list with the top bit, or
/// [`EMPTY`]).
#[derive(Debug)]
pub(crate) struct Grid {
    origin: GridOrigin,
    directory: Vec<u32>,
    tiles: Vec<u32>,
}

impl Grid {
    /// Builds the grid from `(square, entry)` pairs sorted by square, squares
    /// packed as `y << 32 | x`.
    pub(crate) fn build(origin: GridOrigin, squares: &[(u64, u32)]) -> Self {
        let mut directory =
            vec![UNIFORM | (EMPTY & !UNIFORM); (origin.width_tiles * origin.height_tiles) as usize];
        // Group squares by tile.
        let mut by_tile: Vec<(u64, u64, u32)> = squares
            .iter()
            .map(|&(sq, entry)| {
                let (x, y) = (sq & 0xffff_ffff, sq >> 32);
                let tile = (y >> TILE_SHIFT) * origin.width_tiles + (x >> TILE_SHIFT);
                let pos = (y & (TILE - 1)) * TILE + (x & (TILE - 1));
                (tile, pos, entry)
            })
            .collect();
        by_tile.sort_unstable();
        let mut tiles = Vec::new();
        for group in by_tile.chunk_by(|a, b| a.0 == b.0) {
            let tile = group[0].0 as usize;
            let first = group[0].2;
            let uniform = group.len() == TILE_LEN
                && first & UNIFORM == 0
                && group.iter().all(|g| g.2 == first);
            if uniform {
                directory[tile] = UNIFORM | first;
                continue;
            }
            let block = (tiles.len() / TILE_LEN) as u32;
            tiles.resize(tiles.len() + TILE_LEN, EMPTY);
            for &(_, pos, entry) in group {
                tiles[block as usize * TILE_LEN + pos as usize] = entry;
            }
            directory[tile] = block;
        }
        Grid {
            origin,
            directory,
            tiles,
        }
    }

    /// The entry of the square that holds the point.
    #[inline]
    pub(crate) fn entry(&self, lng: f64, lat: f64) -> u32 {
        let Some((x, y)) = self.origin.square(lng, lat) else {
            return EMPTY;
        };
        let tile = (y >> TILE_SHIFT) * self.origin.width_tiles + (x >> TILE_SHIFT);
        let dir = self.directory[tile as usize];
        if dir & UNIFORM != 0 {
            let value = dir & !UNIFORM;
            return if value == EMPTY & !UNIFORM {
                EMPTY
            } else {
                value
            };
        }
        let pos = (y & (TILE - 1)) * TILE + (x & (TILE - 1));
        self.tiles[dir as usize * TILE_LEN + pos as usize]
    }

    /// Bytes held by the directory and the tiles.
    pub(crate) fn memory_bytes(&self) -> usize {
        (self.directory.len() + self.tiles.len()) * 4
    }
}
