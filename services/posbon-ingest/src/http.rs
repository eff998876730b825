//! `POST /v1/events`: one JSON event, a JSON array, or NDJSON.
//!
//! Answers with the verdict on every item: `200` when none was rejected,
//! `422` when every item was rejected, `200` with per-item results when some
//! were; `413` for a body over the limit or a batch of more than
//! `max_batch_items` items, `415` for a content type other than
//! `application/json` or `application/x-ndjson`, `503` when the bus did not
//! take the events, with `Retry-After` (event ids make retries safe).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use posbon_model::ErrorCode;
use serde::Serialize;

use crate::enrich::BodyFormat;
use crate::service::{Body, Ingest, ItemReport, ItemStatus, Source};

/// The ingest HTTP routes, with bodies limited to `max_body_bytes`.
pub(crate) fn router(ingest: Arc<Ingest>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(ingest)
}

#[derive(Serialize)]
struct Summary<'a> {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    items: &'a [ItemReport],
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    posbon_auth::http::error(status, code, &message)
}

async fn post_events(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let content_type = posbon_auth::http::media_type(&headers);
    let format = match content_type.as_deref() {
        Some("application/json") => BodyFormat::Json,
        Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
            BodyFormat::Ndjson
        }
        Some(other) => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type {other:?} is not supported: send application/json (one event or an array) or application/x-ndjson"
                ),
            );
        }
        None => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "missing content type: send application/json or application/x-ndjson".into(),
            );
        }
    };
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) => {
            let status = rejection.status();
            let (code, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
                (
                    "body_too_large",
                    "body is larger than the limit: split it into smaller batches".to_owned(),
                )
            } else {
                ("invalid_body", rejection.body_text().to_lowercase())
            };
            return error(status, code, message);
        }
    };
    let body = Body {
        bytes,
        format,
        source: Source::Http,
        // The request's span: it continues the caller's traceparent.
        span: tracing::Span::current(),
    };
    let mut results = ingest.process(std::slice::from_ref(&body)).await;
    match results.pop() {
        Some(Ok(items)) => {
            let count = |f: fn(&ItemStatus) -> bool| items.iter().filter(|i| f(&i.status)).count();
            let summary = Summary {
                accepted: count(|s| matches!(s, ItemStatus::Accepted { .. })),
                duplicates: count(|s| matches!(s, ItemStatus::Duplicate { .. })),
                rejected: count(|s| matches!(s, ItemStatus::Rejected { .. })),
                items: &items,
            };
            let too_large = matches!(
                items.as_slice(),
                [ItemReport { status: ItemStatus::Rejected { errors }, .. }]
                    if errors.iter().any(|e| e.code == ErrorCode::BatchTooLarge)
            );
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else if summary.rejected > 0 && summary.rejected == items.len() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            (status, axum::Json(summary)).into_response()
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "bus refused an http batch");
            posbon_auth::http::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "events could not be published now; retry (ids make retries safe)",
                Some(1),
            )
        }
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no result".into(),
        ),
    }
}
