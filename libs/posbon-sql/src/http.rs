//! `POST /v1/sql`: analysts' queries over HTTP.
//!
//! The body is `{"query": "..."}`. The answer's format follows `Accept`
//! (or a `format` query parameter, `json`, `csv`, `arrow`, `parquet` or
//! `geojson`, which wins):
//!
//! | `Accept` | body |
//! |---|---|
//! | `application/json`, `*/*`, none | [`to_json`](crate::output::to_json) |
//! | `text/csv` | CSV with a header line ([`to_csv`](crate::output::to_csv): formula-like text guarded) |
//! | `application/vnd.apache.arrow.stream` | an Arrow IPC stream |
//! | `application/vnd.apache.parquet` | a Parquet file |
//! | `application/geo+json` | a FeatureCollection ([`to_geojson`](crate::output::to_geojson)) |
//!
//! CSV, Parquet and GeoJSON come as attachments with a file name
//! (`Content-Disposition: attachment; filename="posbon-sql-<UTC time>.csv"`).
//!
//! A result longer than the row limit is cut: JSON says `"truncated": true`,
//! and every format carries the header `Posbon-Truncated: true` (status
//! 200). Errors are problem documents (`posbon_auth::http::problem`) whose
//! `code` is the kind:
//!
//! | status | kind | when |
//! |---|---|---|
//! | 400 | `invalid_request` | the body is not `{"query": "..."}` |
//! | 400 | `invalid_query` | bad SQL, unknown table (`audit` for a caller who is not an administrator), column or function, type errors |
//! | 400 | `forbidden` | DDL, DML, `COPY`, `SET` and the like: only reads are allowed; a table with no geographic column (`audit`) for a caller limited to part of the country |
//! | 400 | `resources_exhausted` | the query needs more memory than its limit |
//! | 406 | `not_acceptable` | `Accept` names no format offered here |
//! | 504 | `timeout` | the query ran longer than its time limit and was stopped |
//! | 500 | `internal` | the store failed (details in the server log) |

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use posbon_auth::{Access, Auth, Caller, Guarded, Permission};

use crate::caller::{access_of, record_query};
use crate::engine::{QueryOutput, SqlEngine};
use crate::error::{SqlError, SqlErrorKind};
use crate::output::{
    ARROW_STREAM, CSV, GEOJSON, JSON, PARQUET, to_arrow_ipc, to_csv, to_geojson, to_json,
    to_parquet,
};

/// The header that marks a result cut at the row limit.
pub const TRUNCATED_HEADER: &str = "posbon-truncated";

/// The body of `POST /v1/sql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One read-only SQL statement.
    pub query: String,
}

/// A response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// CSV.
    Csv,
    /// Arrow IPC stream.
    Arrow,
    /// Parquet.
    Parquet,
    /// GeoJSON.
    GeoJson,
}

impl Format {
    /// The format asked for by a `format` parameter or an `Accept` header;
    /// `None` when nothing offered is acceptable.
    pub fn negotiate(param: Option<&str>, accept: Option<&str>) -> Result<Self, String> {
        if let Some(p) = param {
            return match p {
                "json" => Ok(Format::Json),
                "csv" => Ok(Format::Csv),
                "arrow" => Ok(Format::Arrow),
                "parquet" => Ok(Format::Parquet),
                "geojson" => Ok(Format::GeoJson),
                other => Err(format!(
                    "unknown format {other:?}, expected json, csv, arrow, parquet or geojson"
                )),
            };
        }
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Format::Json);
        };
        for item in accept.split(',') {
            let media = item.split(';').next().unwrap_or_default().trim();
            match media.to_ascii_lowercase().as_str() {
                "application/json" | "*/*" | "application/*" => return Ok(Format::Json),
                "text/csv" | "text/*" => return Ok(Format::Csv),
                ARROW_STREAM => return Ok(Format::Arrow),
                PARQUET => return Ok(Format::Parquet),
                GEOJSON => return Ok(Format::GeoJson),
                _ => {}
            }
        }
        Err(format!(
            "cannot answer with {accept}: ask for {JSON}, {CSV}, {ARROW_STREAM}, {PARQUET} or {GEOJSON}"
        ))
    }

    /// The media type.
    pub const fn media_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Csv => CSV,
            Format::Arrow => ARROW_STREAM,
            Format::Parquet => PARQUET,
            Format::GeoJson => GEOJSON,
        }
    }

    /// The file name extension of an attachment in this format (`None`:
    /// shown inline).
    pub const fn extension(self) -> Option<&'static str> {
        match self {
            Format::Json | Format::Arrow => None,
            Format::Csv => Some("csv"),
            Format::Parquet => Some("parquet"),
            Format::GeoJson => Some("geojson"),
        }
    }
}

/// The `format` query parameter.
#[derive(Debug, Deserialize)]
struct FormatParam {
    format: Option<String>,
}

/// What the SQL route shares.
#[derive(Clone)]
struct SqlState {
    engine: Arc<SqlEngine>,
    auth: Arc<Auth>,
}

/// A ready router for `POST /v1/sql` (it needs `read_sql`).
pub fn router(engine: Arc<SqlEngine>, auth: Arc<Auth>) -> Guarded {
    let router = Router::new()
        .route("/v1/sql", post(handle))
        .with_state(SqlState { engine, auth });
    Guarded::new(
        router,
        [(
            Method::POST,
            "/v1/sql",
            Access::Permission(Permission::ReadSql),
        )],
    )
}

/// An error answer: the problem document of every service, `kind` as its
/// `code`.
pub fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    posbon_auth::http::error(status, kind, message)
}

/// The answer for a failed query.
pub fn sql_error_response(e: &SqlError) -> Response {
    let status = match e.kind() {
        SqlErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        SqlErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        SqlErrorKind::Busy => {
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                e.kind().as_str(),
                e.message(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        _ => StatusCode::BAD_REQUEST,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "sql query failed");
        return error_response(
            status,
            e.kind().as_str(),
            "the query failed inside the server; the server log has the details",
        );
    }
    error_response(status, e.kind().as_str(), e.message())
}

/// Renders a query result in `format`.
pub fn render(output: &QueryOutput, format: Format) -> Response {
    let body = match format {
        Format::Json => to_json(output).map(|v| Body::from(v.to_string())),
        Format::Csv => to_csv(output).map(Body::from),
        Format::Arrow => to_arrow_ipc(output).map(Body::from),
        Format::Parquet => to_parquet(output).map(Body::from),
        Format::GeoJson => to_geojson(output).map(|v| Body::from(v.to_string())),
    };
    let mut response = match body {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.media_type())],
            body,
        )
            .into_response(),
        Err(e) => return sql_error_response(&e),
    };
    if output.truncated {
        response
            .headers_mut()
            .insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    if let Some(extension) = format.extension() {
        let name = format!(
            "attachment; filename=\"posbon-sql-{}.{extension}\"",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        );
        if let Ok(value) = HeaderValue::from_str(&name) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

async fn handle(
    State(state): State<SqlState>,
    caller: Caller,
    Query(param): Query<FormatParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = match Format::negotiate(param.format.as_deref(), accept) {
        Ok(f) => f,
        Err(message) if param.format.is_some() => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_request", &message);
        }
        Err(message) => {
            return error_response(StatusCode::NOT_ACCEPTABLE, "not_acceptable", &message);
        }
    };
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the body must be {{\"query\": \"...\"}}: {e}"),
            );
        }
    };
    let started = std::time::Instant::now();
    let result = match state.engine.for_access(&access_of(&caller)).await {
        Ok(engine) => engine.query(&request.query).await,
        Err(e) => Err(e),
    };
    record_query(
        &state.auth,
        &caller,
        "http",
        &request.query,
        &result,
        started.elapsed(),
    )
    .await;
    match result {
        Ok(output) => render(&output, format),
        Err(e) => sql_error_response(&e),
    }
}
