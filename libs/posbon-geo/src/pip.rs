//! Exact point-in-polygon with an edge index.
//!
//! The test is the one geo uses for `Intersects<Point> for Polygon`
//! (`coord_pos_relative_to_ring`: winding number with robust `orient2d`, points on
//! a ring count as on the boundary), applied to only the edges whose y-range holds
//! the point. An edge whose y-range does not hold the point never changes the
//! winding number nor touches the point, so the answer is identical to geo's,
//! bit for bit, at a fraction of the cost: the edges are bucketed by latitude.

use geo::{Coord, Kernel, MultiPolygon, Orientation, kernels::RobustKernel};

/// One polygon edge, tagged with its ring (0 = exterior, 1.. = holes).
#[derive(Debug, Clone, Copy)]
struct Edge {
    a: Coord<f64>,
    b: Coord<f64>,
    ring: u32,
}

/// Where one polygon's edge index lives in a [`PipArena`], with its bounding
/// box: small and `Copy`, so candidate lists carry it inline and a lookup goes
/// straight to the edges it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolyRef {
    min: Coord<f64>,
    max: Coord<f64>,
    slab_height: f64,
    /// Index in `PipArena::offsets` of this polygon's first slab offset.
    offsets_at: u32,
    slabs: u32,
}

/// The edges of many polygons, bucketed into horizontal slabs, in two flat
/// arrays: `offsets[at + i]..offsets[at + i + 1]` are the edges of slab `i` of
/// the polygon whose `offsets_at` is `at`, sorted by ring.
#[derive(Debug, Clone, Default)]
pub(crate) struct PipArena {
    offsets: Vec<u32>,
    edges: Vec<Edge>,
}

impl PipArena {
    /// Adds every polygon of `mp`. Cost is linear in its edges.
    pub(crate) fn add(&mut self, mp: &MultiPolygon<f64>) -> Vec<PolyRef> {
        mp.0.iter().map(|p| self.add_polygon(p)).collect()
    }

    fn add_polygon(&mut self, poly: &geo::Polygon<f64>) -> PolyRef {
        let mut edges = Vec::new();
        for (ring, ls) in std::iter::once(poly.exterior())
            .chain(poly.interiors())
            .enumerate()
        {
            for w in ls.0.windows(2) {
                edges.push(Edge {
                    a: w[0],
                    b: w[1],
                    ring: ring as u32,
                });
            }
        }
        let mut min = Coord {
            x: f64::INFINITY,
            y: f64::INFINITY,
        };
        let mut max = Coord {
            x: f64::NEG_INFINITY,
            y: f64::NEG_INFINITY,
        };
        for e in &edges {
            for c in [e.a, e.b] {
                min.x = min.x.min(c.x);
                min.y = min.y.min(c.y);
                max.x = max.x.max(c.x);
                max.y = max.y.max(c.y);
            }
        }
        // About one edge per slab: a lookup reads a couple of edges.
        let slabs = edges.len().clamp(1, 8192);
        let height = (max.y - min.y) / slabs as f64;
        let slab_height = if height > 0.0 { height } else { 1.0 };
        let mut buckets: Vec<Vec<Edge>> = vec![Vec::new(); slabs];
        for e in &edges {
            let (lo, hi) = if e.a.y <= e.b.y {
                (e.a.y, e.b.y)
            } else {
                (e.b.y, e.a.y)
            };
            let (from, to) = (
                slab_of(lo, min.y, slab_height, slabs),
                slab_of(hi, min.y, slab_height, slabs),
            );
            for bucket in &mut buckets[from..=to] {
                bucket.push(*e);
            }
        }
        let offsets_at = self.offsets.len() as u32;
        self.offsets.push(self.edges.len() as u32);
        for b in buckets {
            // Edges were pushed ring by ring, so each bucket is sorted by ring.
            self.edges.extend(b);
            self.offsets.push(self.edges.len() as u32);
        }
        PolyRef {
            min,
            max,
            slab_height,
            offsets_at,
            slabs: slabs as u32,
        }
    }

    /// True when `p` lies inside or on the boundary of the polygon: the same
    /// answer as `geo::Intersects`.
    #[inline]
    pub(crate) fn intersects(&self, poly: &PolyRef, p: Coord<f64>) -> bool {
        match self.classify(poly, p) {
            None => false,
            Some(Class::OnBoundary) => true,
            Some(Class::Windings(inside)) => inside,
        }
    }

    /// True when `p` lies inside the polygon and not on its boundary.
    pub(crate) fn strictly_inside(&self, poly: &PolyRef, p: Coord<f64>) -> bool {
        matches!(self.classify(poly, p), Some(Class::Windings(true)))
    }

    /// Reads the memory a test of `p` will read (the slab offset and its first
    /// edge) and returns a value made from it, so the reads are not optimised
    /// away. Used to start the cache misses of many points at once.
    #[inline]
    pub(crate) fn warm(&self, poly: &PolyRef, p: Coord<f64>) -> u64 {
        if p.y < poly.min.y || p.y > poly.max.y {
            return 0;
        }
        let slab = slab_of(p.y, poly.min.y, poly.slab_height, poly.slabs as usize);
        let first = self.offsets[poly.offsets_at as usize + slab] as usize;
        self.edges.get(first).map_or(0, |e| e.a.x.to_bits())
    }

    /// `None` outside the bounding box.
    #[inline]
    fn classify(&self, poly: &PolyRef, p: Coord<f64>) -> Option<Class> {
        if p.x < poly.min.x || p.x > poly.max.x || p.y < poly.min.y || p.y > poly.max.y {
            return None;
        }
        // `slab_of` is monotone in y, so every edge whose y-range holds p.y was
        // filed in p's slab: one slab holds all the edges that matter.
        let slab = slab_of(p.y, poly.min.y, poly.slab_height, poly.slabs as usize);
        let at = poly.offsets_at as usize + slab;
        let edges = &self.edges[self.offsets[at] as usize..self.offsets[at + 1] as usize];
        Some(classify(edges, p))
    }
}

/// The slab of latitude `y`; monotone in `y`, so an edge filed in the slabs of
/// its end points' latitudes is in the slab of every latitude between them.
#[inline]
fn slab_of(y: f64, min_y: f64, slab_height: f64, slabs: usize) -> usize {
    (((y - min_y) / slab_height) as usize).min(slabs - 1)
}

enum Class {
    OnBoundary,
    /// Inside the exterior ring and outside every hole.
    Windings(bool),
}

/// Winding numbers per ring over `edges` (sorted by ring), geo's edge rules.
#[inline]
fn classify(edges: &[Edge], p: Coord<f64>) -> Class {
    let mut exterior_winding = 0i32;
    let mut in_hole = false;
    let mut ring = 0u32;
    let mut winding = 0i32;
    let finish = |ring: u32, winding: i32, exterior_winding: &mut i32, in_hole: &mut bool| {
        if ring == 0 {
            *exterior_winding = winding;
        } else if winding != 0 {
            *in_hole = true;
        }
    };
    for e in edges {
        if e.ring != ring {
            finish(ring, winding, &mut exterior_winding, &mut in_hole);
            ring = e.ring;
            winding = 0;
        }
        if e.a.y <= p.y {
            if e.b.y >= p.y {
                let o = RobustKernel::orient2d(e.a, e.b, p);
                if o == Orientation::CounterClockwise && e.b.y != p.y {
                    winding += 1;
                } else if o == Orientation::Collinear && between(p.x, e.a.x, e.b.x) {
                    return Class::OnBoundary;
                }
            }
        } else if e.b.y <= p.y {
            let o = RobustKernel::orient2d(e.a, e.b, p);
            if o == Orientation::Clockwise {
                winding -= 1;
            } else if o == Orientation::Collinear && between(p.x, e.a.x, e.b.x) {
                return Class::OnBoundary;
            }
        }
    }
    finish(ring, winding, &mut exterior_winding, &mut in_hole);
    Class::Windings(exterior_winding != 0 && !in_hole)
}

#[inline]
fn between(x: f64, a: f64, b: f64) -> bool {
    (a <= x && x <= b) || (b <= x && x <= a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Intersects, Point, polygon};

    #[test]
    fn agrees_with_geo_on_a_polygon_with_a_hole() {
        let poly = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 5.0, y: 12.0), (x: 0.0, y: 10.0)],
            interiors: [[(x: 3.0, y: 3.0), (x: 6.0, y: 3.0), (x: 6.0, y: 6.0), (x: 3.0, y: 6.0)]],
        );
        let mp = MultiPolygon::new(vec![poly.clone()]);
        let mut arena = PipArena::default();
        let parts = arena.add(&mp);
        let mut n = 0;
        for i in -5..=60 {
            for j in -5..=65 {
                let p = Coord {
                    x: i as f64 * 0.25 - 0.5,
                    y: j as f64 * 0.25 - 0.5,
                };
                assert_eq!(
                    parts.iter().any(|part| arena.intersects(part, p)),
                    poly.intersects(&Point::from(p)),
                    "point {p:?}"
                );
                n += 1;
            }
        }
        assert!(n > 4000);
    }
}
