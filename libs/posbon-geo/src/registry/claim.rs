//! Claiming squares of the lookup grid: those each mahalla's boundary may
//! pass through and those wholly inside it, on several threads, within
//! bounds on the work of a load.

use geo::{BoundingRect, ChamberlainDuquetteArea, Coord, MultiPolygon};

use crate::error::RegistryError;
use crate::geojson::FeatureRecord;
use crate::grid::{GridOrigin, SCALE};
use crate::pip::PipArena;

/// The grid over every feature's bounding box.
pub(super) fn grid_origin(features: &[FeatureRecord]) -> Result<GridOrigin, RegistryError> {
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
pub(super) fn check_extent(
    features: &[FeatureRecord],
    origin: &GridOrigin,
) -> Result<(), RegistryError> {
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

pub(super) struct Claimed {
    /// `(square, wholly inside)` for every square that holds a point of the mahalla.
    pub(super) squares: Vec<(u64, bool)>,
    pub(super) area_m2: f64,
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

pub(super) fn claim_all(
    features: &[FeatureRecord],
    origin: &GridOrigin,
    threads: usize,
) -> Vec<Claimed> {
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
