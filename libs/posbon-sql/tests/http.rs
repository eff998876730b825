//! `POST /v1/sql` through its router: formats, errors, the row limit.

mod common;

use posbon_model::Span;
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
        assert_eq!(v["code"], kind, "{body}: {v}");
        assert!(!v["error"].as_str().expect("message").is_empty(), "{body}");
    }
    let limits = SqlLimits {
        timeout: Span::from_millis(20),
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
    assert_eq!(v["code"], "timeout");
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

/// The Python with pyarrow and geojson (`scripts/install-test-deps.sh`
/// sets `POSBON_PYTHON`); a missing one fails the test saying so.
fn python() -> std::path::PathBuf {
    let path = std::env::var_os("POSBON_PYTHON")
        .map_or_else(|| "python3".into(), std::path::PathBuf::from);
    let works = std::process::Command::new(&path)
        .args(["-c", "import pyarrow.parquet, geojson"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        works,
        "{} has no pyarrow and geojson: run `eval \"$(scripts/install-test-deps.sh)\"` (sets POSBON_PYTHON)",
        path.display()
    );
    path
}

/// Runs `script` with the files as arguments; it prints one JSON value.
fn check_with_python(script: &str, files: &[&std::path::Path]) -> serde_json::Value {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// One answer of the route, checked to be a 200 attachment of `media` with
/// the file extension `ext`, saved in `dir`.
async fn export(
    app: &axum::Router,
    sql: &str,
    accept: Option<&str>,
    query: &str,
    media: &str,
    ext: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let body = serde_json::json!({ "query": sql }).to_string();
    let r = app
        .clone()
        .oneshot(post(&body, accept, query))
        .await
        .expect("call");
    let status = r.status();
    let headers = r.headers().clone();
    let data = bytes(r).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&data));
    assert_eq!(headers["content-type"], media);
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(
        disposition.starts_with("attachment; filename=\"posbon-sql-")
            && disposition.ends_with(&format!(".{ext}\"")),
        "{disposition}"
    );
    let path = dir.join(format!("out.{ext}"));
    std::fs::write(&path, data).expect("write");
    path
}

const EVENTS_OF_A_DAY: &str = "SELECT id, kind, occurred_at, local_date, lat, lng, cell, \
     mahalla_id, severity FROM events WHERE local_date = DATE '2026-05-01' ORDER BY id";

#[tokio::test]
async fn parquet_is_read_back_by_pyarrow_with_the_same_rows_and_types() {
    let app = app(SqlLimits::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = export(
        &app,
        EVENTS_OF_A_DAY,
        Some("application/vnd.apache.parquet"),
        "",
        "application/vnd.apache.parquet",
        "parquet",
        dir.path(),
    )
    .await;
    let r = app
        .clone()
        .oneshot(post(
            &serde_json::json!({ "query": EVENTS_OF_A_DAY }).to_string(),
            None,
            "",
        ))
        .await
        .expect("call");
    let json: serde_json::Value = serde_json::from_slice(&bytes(r).await).expect("json");
    let rows = json["rows"].as_array().expect("rows");
    let read = check_with_python(
        r#"
import json, sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(json.dumps({
    "rows": t.num_rows,
    "types": {f.name: str(f.type) for f in t.schema},
    "first_id": t.column("id")[0].as_py(),
    "last_cell": t.column("cell")[t.num_rows - 1].as_py(),
}))
"#,
        &[&file],
    );
    assert_eq!(read["rows"], rows.len(), "{read}");
    assert_eq!(read["first_id"], rows[0][0], "{read}");
    assert_eq!(read["last_cell"], rows[rows.len() - 1][6], "{read}");
    assert_eq!(
        read["types"]["occurred_at"], "timestamp[us, tz=UTC]",
        "{read}"
    );
    assert_eq!(read["types"]["lat"], "double", "{read}");
    assert_eq!(read["types"]["cell"], "uint64", "{read}");
    assert_eq!(read["types"]["local_date"], "date32[day]", "{read}");
}

#[tokio::test]
async fn geojson_from_points_cells_and_wkt_is_valid() {
    let app = app(SqlLimits::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let validate = r#"
import json, sys, geojson
with open(sys.argv[1]) as f:
    fc = geojson.load(f)
print(json.dumps({
    "valid": fc.is_valid,
    "errors": fc.errors(),
    "features": len(fc["features"]),
    "types": sorted({f["geometry"]["type"] for f in fc["features"] if f["geometry"]}),
    "properties": sorted(fc["features"][0]["properties"].keys()),
}))
"#;
    for (sql, query, accept, geometry, properties) in [
        (
            "SELECT id, lat, lng, mahalla_id FROM incidents ORDER BY id LIMIT 300",
            "?format=geojson",
            None,
            "Point",
            vec!["id", "lat", "lng", "mahalla_id"],
        ),
        (
            "SELECT cell, count(*) AS n FROM events GROUP BY cell ORDER BY n DESC LIMIT 50",
            "",
            Some("application/geo+json"),
            "Polygon",
            vec!["cell", "n"],
        ),
        (
            "SELECT h3_cell_to_boundary_wkt(h3_cell_to_parent(cell, 8)) AS wkt, count(*) AS n \
             FROM events GROUP BY 1 ORDER BY n DESC LIMIT 20",
            "?format=geojson",
            None,
            "Polygon",
            vec!["n"],
        ),
    ] {
        let file = export(
            &app,
            sql,
            accept,
            query,
            "application/geo+json",
            "geojson",
            dir.path(),
        )
        .await;
        let read = check_with_python(validate, &[&file]);
        assert_eq!(read["valid"], true, "{sql}: {read}");
        assert!(read["features"].as_u64().expect("n") > 1, "{sql}: {read}");
        assert_eq!(
            read["types"],
            serde_json::json!([geometry]),
            "{sql}: {read}"
        );
        assert_eq!(
            read["properties"],
            serde_json::json!(properties),
            "{sql}: {read}"
        );
    }
    // Without a geometry the request is refused, saying what it needs.
    let r = app
        .clone()
        .oneshot(post(
            r#"{"query": "SELECT kind, count(*) FROM events GROUP BY kind"}"#,
            None,
            "?format=geojson",
        ))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = String::from_utf8(bytes(r).await).expect("utf8");
    assert!(body.contains("geojson needs lat and lng columns"), "{body}");
}

#[tokio::test]
async fn csv_text_that_a_spreadsheet_would_run_is_guarded() {
    let app = app(SqlLimits::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = export(
        &app,
        "SELECT '=HYPERLINK(\"http://x\")' AS a, '+1' AS b, '@SUM(1)' AS c, 'plain' AS d, -5 AS n",
        None,
        "?format=csv",
        "text/csv",
        "csv",
        dir.path(),
    )
    .await;
    let text = std::fs::read_to_string(file).expect("read");
    assert_eq!(
        text,
        "a,b,c,d,n\r\n\"'=HYPERLINK(\"\"http://x\"\")\",'+1,'@SUM(1),plain,-5\r\n"
    );
}
