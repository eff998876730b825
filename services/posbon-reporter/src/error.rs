//! [`ReportError`]: why a report could not be made or shown.

use posbon_sql::SqlError;

/// An error of the reporter.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request is wrong: a bad date or scope (HTTP 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// No such report or scope (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The scope is outside the caller's (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A report query failed.
    #[error("report query {query}: {source}")]
    Query {
        /// The SQL file.
        query: &'static str,
        /// What went wrong.
        source: SqlError,
    },
    /// The store failed, or stored rows are not what they should be.
    #[error("{0}")]
    Internal(String),
}

impl From<SqlError> for ReportError {
    fn from(e: SqlError) -> Self {
        ReportError::Internal(e.to_string())
    }
}

impl From<posbon_store::StoreError> for ReportError {
    fn from(e: posbon_store::StoreError) -> Self {
        ReportError::Internal(format!("store: {e}"))
    }
}
