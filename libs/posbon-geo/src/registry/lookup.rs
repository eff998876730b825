//! Finding the mahalla of a point: the lookup grid first, then an exact
//! point-in-polygon test in squares that a boundary crosses.

use geo::Coord;
use h3o::LatLng;

use crate::error::GeoError;
use crate::grid::EMPTY;

use super::{BOUNDARY, Candidate, Located, MahallaIdx, Registry};

impl Registry {
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
