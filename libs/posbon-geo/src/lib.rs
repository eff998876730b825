//! Mahallas on H3: the registry of Posbon's geography.
//!
//! A registry is loaded from GeoJSON (one Polygon or MultiPolygon feature per
//! mahalla, with its district and region; format in
//! `schemas/mahalla-registry.md`). Bad geometry (unclosed rings,
//! self-intersections, empty shapes, mahallas that overlap beyond a tolerance)
//! is rejected with an error that names the feature.
//!
//! Each mahalla is covered with H3 cells at the storage resolution (default 10).
//! [`Registry::locate`] answers from a table for cells that lie wholly inside one
//! mahalla and falls back to an exact point-in-polygon test for cells crossed by
//! a boundary, so the answer is exact and costs little more than computing the
//! cell itself. A point outside every mahalla is unassigned, never an error.
//!
//! ```
//! use posbon_geo::{Registry, RegistryOptions};
//!
//! let geojson = br#"{"type": "FeatureCollection", "features": [{
//!   "type": "Feature",
//!   "properties": {"id": "chilonzor-001", "name": "Qatortol", "district": "chilonzor",
//!                  "region": "tashkent", "population": 8000},
//!   "geometry": {"type": "Polygon", "coordinates": [[[69.20, 41.28], [69.21, 41.28],
//!                [69.21, 41.29], [69.20, 41.29], [69.20, 41.28]]]}}]}"#;
//! let registry = Registry::from_geojson(geojson, &RegistryOptions::default())?;
//! let found = registry.locate(41.285, 69.205)?;
//! let mahalla = registry.mahalla(found.mahalla.expect("inside"));
//! assert_eq!(mahalla.id, "chilonzor-001");
//! assert_eq!(registry.locate(41.30, 69.205)?.mahalla, None); // unassigned
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cells;
mod error;
pub mod features;
mod geojson;
mod grid;
mod id;
mod pip;
mod registry;

pub use cells::{children_range, contains_raw, grid_disk, parent};
pub use error::{GeoError, RegistryError};
pub use h3o::{CellIndex, LatLng, Resolution};
pub use id::{MAX_ID_LEN, check_place_id};
pub use registry::{
    District, Located, Mahalla, MahallaIdx, Region, Registry, RegistryOptions, RegistryStats,
};
