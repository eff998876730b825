//! Errors of the simulator.

/// Anything that can go wrong while simulating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Options out of their allowed range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A duration such as `24h` could not be parsed.
    #[error(
        "invalid duration {0:?}: expected a number followed by s, m, h, d or w, e.g. 90m, 24h, 7d"
    )]
    InvalidDuration(String),
    /// Cells could not be turned into polygons (or similar geometry trouble).
    #[error("geometry: {0}")]
    Geometry(String),
    /// A registry document could not be read.
    #[error("registry: {0}")]
    Registry(String),
    /// Writing output failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// Serialising JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
