//! `POST /v1/sql` through its router: formats, errors, the row limit.

mod common;

use std::io::Cursor;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use posbon_sql::datafusion::arrow::ipc::reader::StreamReader;
use posbon_sql::{SqlLimits, http};
use tower::ServiceExt;

/// The route behind the guard, called by a national analyst.
async fn app(limits: SqlLimits) -> axum::Router {
    let fx = common::fixture();
    let auth = posbon_auth::Auth::new(
        Arc::new(posbon_store::MemoryStore::new()),
        fx.registry.clone(),
        Default::default(),
    )
    .expect("auth");
    let (_, token) = auth
        .identities()
        .create_token("analyst", posbon_auth::Role::Analyst, vec![], None, "test")
        .await
        .expect("token");
    posbon_testkit::http::as_bearer(
        http::router(
            Arc::new(common::engine_over(fx.store.clone(), limits)),
            auth.clone(),
        )
        .into_router(auth),
        &token,
    )
}

fn post(body: &str, accept: Option<&str>, query: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(format!("/v1/sql{query}"))
        .header("content-type", "application/json");
    if let Some(a) = accept {
        b = b.header("accept", a);
    }
    b.body(Body::from(body.to_owned())).expect("request")
}

async fn bytes(r: axum::response::Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), 1 << 26)
        .await
        .expect("body")
        .to_vec()
}

const QUERY: &str = r#"{"query": "SELECT kind, count(*) AS n, min(cell) AS first_cell, min(occurred_at) AS first FROM events GROUP BY kind ORDER BY kind"}"#;

#[tokio::test]
async fn json_is_columns_and_rows() {
    let r = app(SqlLimits::default())
        .await
        .oneshot(post(QUERY, None, ""))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get(http::TRUNCATED_HEADER).is_none());
    let v: serde_json::Value = serde_json::from_slice(&bytes(r).await).expect("json");
    assert_eq!(
        v["columns"],
        serde_json::json!([
            {"name": "kind", "type": "VARCHAR"},
            {"name": "n", "type": "BIGINT"},
            {"name": "first_cell", "type": "UBIGINT"},
            {"name": "first", "type": "TIMESTAMPTZ"},
        ])
    );
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][0], "camera_alert");
    assert!(rows[0][1].as_u64().expect("count") > 0);
    assert!(
        rows[0][2].as_u64().expect("cell") > 1 << 53,
        "exact 64-bit cells"
    );
    assert!(
        rows[0][3].as_str().expect("time").ends_with('Z'),
        "{}",
        rows[0][3]
    );
    assert_eq!(v["row_count"], 3);
    assert_eq!(v["truncated"], false);
}

#[tokio::test]
async fn csv_and_arrow_by_accept_or_format() {
    for (accept, query) in [(Some("text/csv"), ""), (None, "?format=csv")] {
        let r = app(SqlLimits::default())
            .await
            .oneshot(post(QUERY, accept, query))
            .await
            .expect("call");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/csv");
        let text = String::from_utf8(bytes(r).await).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "kind,n,first_cell,first");
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("camera_alert,"), "{}", lines[1]);
    }
    let r = app(SqlLimits::default())
        .await
        .oneshot(post(QUERY, Some("application/vnd.apache.arrow.stream"), ""))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    let reader = StreamReader::try_new(Cursor::new(bytes(r).await), None).expect("arrow stream");
    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert_eq!(batches[0].schema().field(2).name(), "first_cell");
}

#[tokio::test]
async fn errors_say_what_is_wrong() {
    let cases = [
        (
            r#"{"query": "DROP TABLE events"}"#,
            None,
            "",
            StatusCode::BAD_REQUEST,
            "forbidden",
        ),
        (
            r#"{"query": "SELECT nope FROM events"}"#,
            None,
            "",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            r#"{"sql": "SELECT 1"}"#,
            None,
            "",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "not json",
            None,
            "",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            QUERY,
            Some("image/png"),
            "",
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
        ),
        (
            QUERY,
            None,
            "?format=xml",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, accept, query, status, kind) in cases {
        let r = app(SqlLimits::default())
            .await
            .oneshot(post(body, accept, query))
            .await
            .expect("call");
        assert_eq!(r.status(), status, "{body}");
        let v: serde_json::Value = serde_json::from_slice(&bytes(r).await).expect("json");
        assert_eq!(v["kind"], kind, "{body}: {v}");
        assert!(!v["error"].as_str().expect("message").is_empty(), "{body}");
    }
    let limits = SqlLimits {
        timeout_ms: 20,
        ..SqlLimits::default()
    };
    let r = app(limits).await
        .oneshot(post(
            r#"{"query": "SELECT count(*) FROM events a, events b, events c WHERE a.lat + b.lat > c.lat"}"#,
            None,
            "",
        ))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let v: serde_json::Value = serde_json::from_slice(&bytes(r).await).expect("json");
    assert_eq!(v["kind"], "timeout");
    assert!(v["error"].as_str().expect("message").contains("time limit"));
}

#[tokio::test]
async fn long_results_are_cut_and_marked() {
    let limits = SqlLimits {
        max_rows: 10,
        ..SqlLimits::default()
    };
    let r = app(limits)
        .await
        .oneshot(post(
            r#"{"query": "SELECT id FROM events"}"#,
            Some("text/csv"),
            "",
        ))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[http::TRUNCATED_HEADER], "true");
    let text = String::from_utf8(bytes(r).await).expect("utf-8");
    assert_eq!(text.lines().count(), 11);
}
