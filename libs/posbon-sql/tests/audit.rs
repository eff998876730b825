//! The `audit` table: the audit log as SQL, for national administrators
//! only; unknown to every other caller, refused to a scoped one.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{CountingStore, engine_over, fixture};
use posbon_auth::{AuditLog, Caller, Permission, ResolvedScope, Role, Via};
use posbon_sql::datafusion::arrow::array::AsArray;
use posbon_sql::datafusion::arrow::datatypes::{DataType, UInt64Type};
use posbon_sql::datafusion::physical_plan::displayable;
use posbon_sql::{
    AUDIT_TABLE, QueryOutput, SqlAccess, SqlEngine, SqlErrorKind, SqlLimits, TABLES, caller, http,
    output, timestamp_type,
};
use posbon_store::{MemoryStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A log of six records: three `sql`, two `login`, one `report_read`.
async fn write_log(store: &Store) -> AuditLog {
    let log = AuditLog::new(store.clone());
    let caller = Caller::system("t");
    for (i, action) in ["login", "sql", "sql", "report_read", "login", "sql"]
        .into_iter()
        .enumerate()
    {
        log.append(caller.audit(action, None, "ok", json!({ "n": i, "query": "SELECT 1" })))
            .await
            .expect("append");
    }
    log
}

/// National, with the sensitive columns, granted `audit`.
fn admin_access() -> SqlAccess {
    let mut access = SqlAccess::national(true);
    access.extra_tables.insert(AUDIT_TABLE.to_owned());
    access
}

/// The rows of a result as JSON arrays.
async fn rows(engine: &SqlEngine, sql: &str) -> Vec<Vec<Value>> {
    let out = engine.query(sql).await.expect(sql);
    let json = output::to_json(&out).expect("json");
    json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").clone())
        .collect()
}

/// The first column of a result, as `u64`s.
fn u64s(out: &QueryOutput) -> Vec<u64> {
    out.batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
        .collect()
}

async fn seqs(engine: &SqlEngine, sql: &str) -> Vec<u64> {
    u64s(&engine.query(sql).await.expect(sql))
}

#[tokio::test]
async fn an_administrator_reads_the_log() {
    let store: Store = Arc::new(MemoryStore::new());
    let log = write_log(&store).await;
    let plain = engine_over(store.clone(), SqlLimits::default());
    let engine = plain.for_access(&admin_access()).await.expect("engine");
    assert_eq!(
        rows(
            &engine,
            "SELECT action, count(*) AS n FROM audit GROUP BY action ORDER BY action"
        )
        .await,
        vec![
            vec![json!("login"), json!(2)],
            vec![json!("report_read"), json!(1)],
            vec![json!("sql"), json!(3)],
        ]
    );
    assert_eq!(
        seqs(&engine, "SELECT seq FROM audit WHERE seq > 2 ORDER BY seq").await,
        vec![3, 4, 5, 6]
    );
    for (sql, expected) in [
        ("SELECT seq FROM audit WHERE seq >= 5", vec![5, 6]),
        ("SELECT seq FROM audit WHERE 4 < seq", vec![5, 6]),
        ("SELECT seq FROM audit WHERE seq = 4", vec![4]),
        (
            "SELECT seq FROM audit WHERE seq > 2 AND seq <= 4",
            vec![3, 4],
        ),
        (
            "SELECT seq FROM audit WHERE seq BETWEEN 2 AND 3",
            vec![2, 3],
        ),
        ("SELECT seq FROM audit WHERE seq < 3", vec![1, 2]),
        (
            "SELECT seq FROM audit WHERE seq > -1",
            vec![1, 2, 3, 4, 5, 6],
        ),
        ("SELECT seq FROM audit WHERE seq > 6", vec![]),
        ("SELECT seq FROM audit WHERE seq > 4 AND seq < 3", vec![]),
        (
            "SELECT seq FROM audit WHERE seq <> 3 AND seq < 5",
            vec![1, 2, 4],
        ),
        (
            "SELECT seq FROM audit WHERE action = 'sql' AND seq > 2",
            vec![3, 6],
        ),
        (
            "SELECT seq FROM audit ORDER BY seq DESC LIMIT 2",
            vec![6, 5],
        ),
        ("SELECT seq FROM audit LIMIT 2", vec![1, 2]),
    ] {
        assert_eq!(seqs(&engine, sql).await, expected, "{sql}");
    }

    // Every column, as the log has it.
    let records = log.list(0, 100).await.expect("list");
    let out = engine
        .query("SELECT * FROM audit ORDER BY seq")
        .await
        .expect("query");
    let names: Vec<&str> = out
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "seq", "at", "actor", "role", "action", "target", "outcome", "detail", "prev", "hash"
        ]
    );
    assert_eq!(out.schema.field(1).data_type(), &timestamp_type());
    assert_eq!(out.schema.field(7).data_type(), &DataType::Utf8);
    assert!(out.schema.field(3).is_nullable() && out.schema.field(5).is_nullable());
    let table = rows(&engine, "SELECT * FROM audit ORDER BY seq").await;
    assert_eq!(table.len(), records.len());
    for (row, record) in table.iter().zip(&records) {
        assert_eq!(row[0], json!(record.seq));
        let at =
            chrono::DateTime::parse_from_rfc3339(row[1].as_str().expect("at")).expect("a time");
        assert_eq!(at.timestamp_micros(), record.at.timestamp_micros());
        assert_eq!(row[2], json!("token:t"));
        assert_eq!(row[3], json!("admin"));
        assert_eq!(row[4], json!(record.action));
        assert_eq!(row[5], Value::Null);
        assert_eq!(row[6], json!("ok"));
        let detail: Value = serde_json::from_str(row[7].as_str().expect("detail")).expect("json");
        assert_eq!(detail, record.detail);
        assert_eq!(row[8], json!(record.prev));
        assert_eq!(row[9], json!(record.hash));
    }
    // The chain reads in SQL: each record's `prev` is the hash before it.
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*) FROM audit a JOIN audit b ON b.seq = a.seq + 1 WHERE b.prev = a.hash"
        )
        .await,
        vec![vec![json!(5)]]
    );
    // JSON functions are not needed to search the detail.
    assert_eq!(
        seqs(
            &engine,
            r#"SELECT seq FROM audit WHERE detail LIKE '%"n":3%'"#
        )
        .await,
        vec![4]
    );

    // Read when the query runs: a record written after the engine was made
    // is in the next query.
    log.append(Caller::system("later").audit("logout", Some("s1".into()), "ok", json!({})))
        .await
        .expect("append");
    assert_eq!(
        rows(
            &engine,
            "SELECT seq, actor, target FROM audit WHERE action = 'logout'"
        )
        .await,
        vec![vec![json!(7), json!("token:later"), json!("s1")]]
    );

    // Without the sensitive columns it reads the same: none of its columns
    // is one of them.
    let mut access = SqlAccess::national(false);
    access.extra_tables.insert(AUDIT_TABLE.to_owned());
    let engine = plain.for_access(&access).await.expect("engine");
    assert_eq!(
        seqs(&engine, "SELECT seq FROM audit ORDER BY seq")
            .await
            .len(),
        7
    );

    // The full engine has it too.
    assert_eq!(
        seqs(&plain, "SELECT seq FROM audit WHERE seq = 7").await,
        vec![7]
    );
}

#[tokio::test]
async fn the_rows_come_in_seq_order() {
    let store: Store = Arc::new(MemoryStore::new());
    write_log(&store).await;
    let engine = engine_over(store, SqlLimits::default())
        .for_access(&admin_access())
        .await
        .expect("engine");
    let plan = engine
        .physical_plan("SELECT seq, action FROM audit ORDER BY seq", Vec::new())
        .await
        .expect("plan");
    let text = displayable(plan.as_ref()).indent(true).to_string();
    assert!(!text.contains("SortExec"), "{text}");
    assert!(text.contains("StreamingTableExec"), "{text}");
}

#[tokio::test]
async fn a_filter_on_seq_starts_the_reading_there() {
    let memory = Arc::new(MemoryStore::new());
    let counting = Arc::new(CountingStore::new(Arc::clone(&memory)));
    let store: Store = counting.clone();
    // More than one page (4,096 records).
    let log = AuditLog::new(store.clone());
    let caller = Caller::system("t");
    for i in 0..4100u32 {
        log.append(caller.audit("sql", None, "ok", json!({ "n": i })))
            .await
            .expect("append");
    }
    let engine = engine_over(store, SqlLimits::default())
        .for_access(&admin_access())
        .await
        .expect("engine");
    let audit_scans = |counting: &CountingStore| -> Vec<(u64, usize)> {
        counting
            .take()
            .into_iter()
            .filter(|s| s.start.len() == 10 && s.start.starts_with(b"ar"))
            .map(|s| {
                let seq = u64::from_be_bytes(s.start[2..].try_into().expect("8 bytes"));
                (seq, s.returned)
            })
            .collect()
    };
    counting.take();
    assert_eq!(
        rows(&engine, "SELECT count(*), max(seq) FROM audit").await,
        vec![vec![json!(4100), json!(4100)]]
    );
    // Every record, a page at a time, until a page comes back empty.
    assert_eq!(
        audit_scans(&counting),
        vec![(1, 4096), (4097, 4), (4101, 0)]
    );
    assert_eq!(
        seqs(
            &engine,
            "SELECT seq FROM audit WHERE seq > 4097 ORDER BY seq"
        )
        .await,
        vec![4098, 4099, 4100]
    );
    assert_eq!(audit_scans(&counting), vec![(4098, 3), (4101, 0)]);
    // An upper bound stops the reading there.
    assert_eq!(
        seqs(
            &engine,
            "SELECT seq FROM audit WHERE seq >= 10 AND seq < 13"
        )
        .await,
        vec![10, 11, 12]
    );
    assert_eq!(audit_scans(&counting), vec![(10, 3)]);
    assert_eq!(
        seqs(&engine, "SELECT seq FROM audit WHERE seq = 4100").await,
        vec![4100]
    );
    assert_eq!(audit_scans(&counting), vec![(4100, 1)]);
    assert_eq!(
        seqs(&engine, "SELECT seq FROM audit WHERE seq BETWEEN 20 AND 21").await,
        vec![20, 21]
    );
    assert_eq!(audit_scans(&counting), vec![(20, 2)]);
    // A limit with no filter reads no more than it needs.
    assert_eq!(
        seqs(&engine, "SELECT seq FROM audit LIMIT 5").await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(audit_scans(&counting), vec![(1, 5)]);
}

#[tokio::test]
async fn other_callers_do_not_see_it() {
    let store: Store = Arc::new(MemoryStore::new());
    write_log(&store).await;
    let plain = engine_over(store, SqlLimits::default());
    assert!(!TABLES.contains(&AUDIT_TABLE));
    // Not granted: unknown, like any table the engine does not have.
    for access in [SqlAccess::national(true), SqlAccess::national(false)] {
        let engine = plain.for_access(&access).await.expect("engine");
        for sql in [
            "SELECT count(*) FROM audit",
            "SELECT action, count(*) FROM audit GROUP BY action",
        ] {
            let err = engine.query(sql).await.expect_err(sql);
            assert_eq!(err.kind(), SqlErrorKind::InvalidQuery, "{sql}: {err}");
            assert!(err.message().contains("audit"), "{sql}: {err}");
            assert!(err.message().contains("not found"), "{sql}: {err}");
        }
        assert!(
            !rows(
                &engine,
                "SELECT table_name FROM information_schema.tables WHERE table_name = 'audit'"
            )
            .await
            .iter()
            .any(|r| r[0] == json!("audit")),
            "audit is not listed"
        );
        assert!(!engine.table_names().contains(&AUDIT_TABLE.to_owned()));
    }
    // Granted to a caller limited to part of the country: refused.
    let fx = fixture();
    let some: Vec<String> = fx
        .registry
        .mahallas()
        .iter()
        .take(3)
        .map(|m| m.id.clone())
        .collect();
    let mut access = SqlAccess::for_mahallas(&fx.registry, some, true);
    access.extra_tables.insert(AUDIT_TABLE.to_owned());
    let engine = plain.for_access(&access).await.expect("engine");
    let err = engine
        .query("SELECT seq FROM audit WHERE seq > 2")
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), SqlErrorKind::Forbidden, "{err}");
    assert_eq!(
        err.message(),
        "table audit is not available to a caller limited to part of the country"
    );
}

/// A caller of `role` over the whole country, by token.
fn caller(role: Role) -> Caller {
    Caller {
        name: "x".into(),
        role,
        scope: ResolvedScope::national(),
        via: Via::Token { id: "x".into() },
    }
}

#[test]
fn only_administrators_are_granted_the_table() {
    for role in Role::ALL {
        let access = caller::access_of(&caller(role));
        let expected: HashSet<String> = if role.may(Permission::Admin) {
            HashSet::from([AUDIT_TABLE.to_owned()])
        } else {
            HashSet::new()
        };
        assert_eq!(access.extra_tables, expected, "{role}");
    }
    assert!(
        caller::access_of(&caller(Role::Admin))
            .extra_tables
            .contains("audit")
    );
    assert!(
        caller::access_of(&caller(Role::Analyst))
            .extra_tables
            .is_empty()
    );
    assert!(
        caller::access_of(&caller(Role::Supervisor))
            .extra_tables
            .is_empty()
    );
}

fn post(sql: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/v1/sql")
        .header("content-type", "application/json")
        .body(Body::from(json!({ "query": sql }).to_string()))
        .expect("request")
}

async fn answer(app: &axum::Router, sql: &str) -> (StatusCode, Value) {
    let r = app.clone().oneshot(post(sql)).await.expect("call");
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).expect("json"))
}

#[tokio::test]
async fn over_http_an_administrator_reads_the_queries_audited() {
    let fx = fixture();
    // One store for the identities, the audit log and the engine.
    let store: Store = Arc::new(MemoryStore::new());
    let auth = posbon_auth::Auth::new(store.clone(), fx.registry.clone(), Default::default())
        .expect("auth");
    let app_for = |token: &str| {
        posbon_testkit::http::as_bearer(
            http::router(
                Arc::new(engine_over(store.clone(), SqlLimits::default())),
                auth.clone(),
            )
            .into_router(auth.clone()),
            token,
        )
    };
    let (_, admin) = auth
        .identities()
        .create_token("root", Role::Admin, vec![], None, "test")
        .await
        .expect("token");
    let (_, analyst) = auth
        .identities()
        .create_token("ana", Role::Analyst, vec![], None, "test")
        .await
        .expect("token");
    let (admin, analyst) = (app_for(&admin), app_for(&analyst));

    // The analyst: no such table (and the refusal is audited).
    let (status, body) = answer(&analyst, "SELECT count(*) FROM audit").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_query", "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("audit"),
        "{body}"
    );
    // The administrator reads it, the analyst's attempt included.
    let (status, body) = answer(
        &admin,
        "SELECT actor, outcome, detail FROM audit WHERE action = 'sql' ORDER BY seq",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0][0], "token:ana");
    assert_eq!(rows[0][1], "refused");
    let detail: Value = serde_json::from_str(rows[0][2].as_str().expect("detail")).expect("json");
    assert_eq!(detail["query"], "SELECT count(*) FROM audit");
}
