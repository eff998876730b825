//! [`SqlError`]: what went wrong with a query, and whose fault it is.

use std::fmt;
use std::time::Duration;

use datafusion::error::DataFusionError;

/// What kind of failure a [`SqlError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlErrorKind {
    /// The query text is not valid SQL, names an unknown table, column or
    /// function, or mixes types that do not go together (HTTP 400).
    InvalidQuery,
    /// The statement is not a read-only query: DDL (`CREATE`, `DROP`), DML
    /// (`INSERT`, `COPY`), session statements (`SET`) or file access
    /// (HTTP 400).
    Forbidden,
    /// The query ran longer than its time limit and was stopped (HTTP 504).
    Timeout,
    /// The query needed more memory than its limit (HTTP 400).
    ResourcesExhausted,
    /// Too many queries are running and waiting; try again shortly (HTTP
    /// 503 with `Retry-After`).
    Busy,
    /// The store could not be read, or another failure that is not the
    /// caller's (HTTP 500).
    Internal,
}

impl SqlErrorKind {
    /// A short lowercase name, e.g. `invalid_query`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidQuery => "invalid_query",
            Self::Forbidden => "forbidden",
            Self::Timeout => "timeout",
            Self::ResourcesExhausted => "resources_exhausted",
            Self::Busy => "busy",
            Self::Internal => "internal",
        }
    }

    /// True when the caller caused it (a different query may succeed).
    pub const fn is_caller_error(self) -> bool {
        !matches!(self, Self::Internal)
    }
}

impl fmt::Display for SqlErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of [`SqlEngine::query`](crate::SqlEngine::query) and friends.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    kind: SqlErrorKind,
    message: String,
}

impl SqlError {
    /// An error of `kind` with a lowercase message.
    pub fn new(kind: SqlErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A [`SqlErrorKind::InvalidQuery`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(SqlErrorKind::InvalidQuery, message)
    }

    /// A [`SqlErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(SqlErrorKind::Internal, message)
    }

    /// A [`SqlErrorKind::Timeout`] error for a limit of `limit`.
    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            SqlErrorKind::Timeout,
            format!(
                "query stopped: it ran longer than the time limit of {:.1} s",
                limit.as_secs_f64()
            ),
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> SqlErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The PostgreSQL error code (SQLSTATE) of this error, for the
    /// PostgreSQL protocol: `42601` syntax, `42P01` unknown table, `42703`
    /// unknown column, `42883` unknown function, `42000` other invalid
    /// queries; `25006` a statement that writes (read-only), `42501` a table
    /// outside the caller's grant; `57014` the time limit; `53200` memory;
    /// `53000` busy; `XX000` internal.
    pub fn sqlstate(&self) -> &'static str {
        let m = self.message.as_str();
        match self.kind {
            SqlErrorKind::InvalidQuery => {
                let lower = m.to_ascii_lowercase();
                if lower.starts_with("syntax error") {
                    "42601"
                } else if lower.starts_with("the query is too costly to parse")
                    || lower.starts_with("a dotted name of more than")
                {
                    // statement_too_complex
                    "54001"
                } else if lower.contains("table") && lower.contains("not found") {
                    "42P01"
                } else if lower.contains("no field named") {
                    "42703"
                } else if lower.contains("invalid function") {
                    "42883"
                } else {
                    "42000"
                }
            }
            SqlErrorKind::Forbidden if m.starts_with("only read-only") => "25006",
            SqlErrorKind::Forbidden => "42501",
            SqlErrorKind::Timeout => "57014",
            SqlErrorKind::ResourcesExhausted => "53200",
            SqlErrorKind::Busy => "53000",
            SqlErrorKind::Internal => "XX000",
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        classify(e)
    }
}

impl From<posbon_store::StoreError> for SqlError {
    fn from(e: posbon_store::StoreError) -> Self {
        let kind = match e.kind() {
            posbon_store::StoreErrorKind::InvalidRequest => SqlErrorKind::InvalidQuery,
            _ => SqlErrorKind::Internal,
        };
        Self::new(kind, e.to_string())
    }
}

/// Sorts a DataFusion error into a kind, with a message for the caller.
fn classify(e: DataFusionError) -> SqlError {
    match e.find_root() {
        DataFusionError::SQL(parse, _) => SqlError::invalid(format!("syntax error: {parse}")),
        DataFusionError::Plan(message) => plan_error(message),
        DataFusionError::SchemaError(e, _) => SqlError::invalid(e.to_string()),
        DataFusionError::NotImplemented(message) => {
            SqlError::invalid(format!("not supported: {message}"))
        }
        DataFusionError::ResourcesExhausted(message) => SqlError::new(
            SqlErrorKind::ResourcesExhausted,
            format!("the query needs more memory than its limit: {message}"),
        ),
        DataFusionError::Execution(message) => SqlError::invalid(first_line(message)),
        DataFusionError::ArrowError(e, _) => SqlError::invalid(e.to_string()),
        DataFusionError::External(e) => {
            if let Some(sql) = e.downcast_ref::<SqlError>() {
                SqlError::new(sql.kind, sql.message.clone())
            } else if let Some(store) = e.downcast_ref::<posbon_store::StoreError>() {
                SqlError::internal(store.to_string())
            } else {
                SqlError::internal(e.to_string())
            }
        }
        other => SqlError::internal(first_line(&other.to_string())),
    }
}

/// Plan errors, with the read-only refusals named as such.
fn plan_error(message: &str) -> SqlError {
    for (prefix, what) in [
        ("DDL not supported", "data definition (CREATE, DROP, ALTER)"),
        (
            "DML not supported",
            "data modification or file output (INSERT, UPDATE, DELETE, COPY)",
        ),
        (
            "Statement not supported",
            "session statements (SET, PREPARE, transactions)",
        ),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return SqlError::new(
                SqlErrorKind::Forbidden,
                format!(
                    "only read-only queries are allowed: {what} is refused ({}{rest})",
                    prefix.to_lowercase()
                ),
            );
        }
    }
    SqlError::invalid(first_line(message))
}

/// DataFusion's messages sometimes carry a backtrace hint; keep the first line.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_owned()
}
