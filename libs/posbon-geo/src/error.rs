//! Errors of the mahalla registry and of point lookups.

use thiserror::Error;

/// Why a mahalla registry could not be loaded.
///
/// Every variant that concerns one feature names it by its position in the
/// `features` array and, when known, by its `id`, so the author of the file can
/// find it.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read registry {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The document is not a GeoJSON FeatureCollection of the expected shape.
    #[error("registry is not a valid geojson feature collection: {0}")]
    Document(String),
    /// One feature is wrong; `what` says how.
    #[error("feature {index}{}: {what}", id.as_deref().map(|id| format!(" (id {id:?})")).unwrap_or_default())]
    Feature {
        /// Position of the feature in the `features` array.
        index: usize,
        /// The feature's mahalla id, when it could be read.
        id: Option<String>,
        /// What is wrong with it.
        what: String,
    },
    /// Two mahallas overlap by more than the configured tolerance.
    #[error(
        "features {first} (id {first_id:?}) and {second} (id {second_id:?}) overlap by {overlap_m2:.1} m², more than the tolerance of {tolerance_m2} m²"
    )]
    Overlap {
        /// Position of the first feature.
        first: usize,
        /// Mahalla id of the first feature.
        first_id: String,
        /// Position of the second feature.
        second: usize,
        /// Mahalla id of the second feature.
        second_id: String,
        /// Area of the overlap in square metres.
        overlap_m2: f64,
        /// The tolerance that was exceeded.
        tolerance_m2: f64,
    },
    /// The registry holds no mahalla at all.
    #[error("registry holds no mahalla")]
    Empty,
}

impl RegistryError {
    pub(crate) fn feature(index: usize, id: Option<&str>, what: impl Into<String>) -> Self {
        RegistryError::Feature {
            index,
            id: id.map(str::to_owned),
            what: what.into(),
        }
    }
}

/// Why a point could not be looked up. A point outside every mahalla is not an
/// error: it is reported as unassigned.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GeoError {
    /// Latitude or longitude is not a finite number in range.
    #[error(
        "invalid coordinate lat {lat}, lng {lng}: latitude must be in -90..90 and longitude in -180..180"
    )]
    InvalidCoordinate {
        /// The latitude given.
        lat: f64,
        /// The longitude given.
        lng: f64,
    },
}
