//! Columnar day segments: a query gives the same rows with and without
//! them, reads no records of the days they cover, and never uses one that
//! a later write made stale.

mod common;

use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta};
use common::{CountingStore, build, start};
use posbon_model::EnrichedEvent;
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::datafusion::arrow::util::pretty::pretty_format_batches;
use posbon_sql::segments::build_day;
use posbon_sql::{SqlEngine, SqlLimits, output};
use posbon_store::keys::{EVENT_BY_TIME, time_range};
use posbon_store::{DocumentStoreExt, EventStoreExt, Store};

fn date(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, d).expect("date")
}

/// Queries over every event table and many column types; rows ordered so
/// that two runs compare equal.
const QUERIES: &[&str] = &[
    "SELECT * FROM events WHERE local_date BETWEEN DATE '2026-05-01' AND DATE '2026-05-03' ORDER BY id",
    "SELECT * FROM incidents WHERE local_date = DATE '2026-05-02' ORDER BY id",
    "SELECT * FROM camera_alerts WHERE local_date >= DATE '2026-05-01' ORDER BY id",
    "SELECT * FROM fraud_flags ORDER BY id",
    "SELECT mahalla_id, kind, count(*) AS n, sum(severity) AS s FROM events \
     WHERE occurred_at >= TIMESTAMPTZ '2026-05-01 00:00:00+05:00' \
       AND occurred_at < TIMESTAMPTZ '2026-05-03 00:00:00+05:00' \
     GROUP BY mahalla_id, kind ORDER BY mahalla_id NULLS LAST, kind",
    // A window that starts and ends inside days: partial days from records.
    "SELECT count(*) AS n, min(id) AS a, max(id) AS b FROM events \
     WHERE occurred_at >= TIMESTAMPTZ '2026-05-01 12:00:00+05:00' \
       AND occurred_at < TIMESTAMPTZ '2026-05-03 06:00:00+05:00'",
    "SELECT count(*) AS n FROM events",
    "SELECT id FROM events WHERE local_date = DATE '2026-05-02' ORDER BY id LIMIT 7",
];

async fn run_all(engine: &SqlEngine) -> Vec<String> {
    let mut out = Vec::new();
    for sql in QUERIES {
        let result = engine.query(sql).await.expect(sql);
        let batches: Vec<RecordBatch> = result.batches;
        out.push(pretty_format_batches(&batches).expect("format").to_string());
    }
    out
}

async fn explain(engine: &SqlEngine, sql: &str) -> String {
    let out = engine
        .query(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain");
    output::to_text_table(&out).expect("text")
}

/// Records (`t` entries) read in `[from, to)` since the last `take`, by
/// page reads (the scan's probes for the first and last event of a window
/// read one entry at a time and are not counted).
fn records_read(store: &CountingStore, from: i64, to: i64) -> usize {
    let (lo, hi) = time_range(from, to);
    store
        .take()
        .iter()
        .filter(|c| {
            c.limit > 1 && c.start.first() == Some(&EVENT_BY_TIME) && c.start < hi && c.end > lo
        })
        .map(|c| c.returned)
        .sum()
}

#[tokio::test]
async fn segments_give_the_same_rows_and_skip_the_records() {
    let fx = build(common::DAYS, 120.0);
    let counting = Arc::new(CountingStore::new(fx.store.clone()));
    let store: Store = counting.clone();
    let engine = engine_on(&store, &fx);
    let before = run_all(&engine).await;

    // Build the three days; a second build finds them current.
    let mut rows = 0;
    for d in 1..=3 {
        let built = build_day(&store, date(d)).await.expect("build");
        assert!(built.built, "{built:?}");
        assert!(built.rows > 1000, "{built:?}");
        assert!(built.bytes > 0, "{built:?}");
        rows += built.rows;
        let again = build_day(&store, date(d)).await.expect("build");
        assert!(!again.built, "current: {again:?}");
        assert_eq!(again.rows, built.rows);
    }
    let in_days = fx
        .events
        .iter()
        .filter(|e| {
            let day = e
                .event
                .occurred_at()
                .with_timezone(&chrono_tz::Asia::Tashkent)
                .date_naive();
            (date(1)..=date(3)).contains(&day)
        })
        .count() as u64;
    assert_eq!(rows, in_days);

    // The same rows, every query.
    let after = run_all(&engine).await;
    for ((sql, a), b) in QUERIES.iter().zip(&before).zip(&after) {
        assert_eq!(a, b, "{sql}");
    }

    // Whole days come from segments: no records read.
    let day_from = start().timestamp_micros();
    let day_to = (start() + TimeDelta::days(3)).timestamp_micros();
    counting.take();
    engine.query(QUERIES[0]).await.expect("query");
    assert_eq!(records_read(&counting, day_from, day_to), 0);
    let text = explain(&engine, QUERIES[0]).await;
    assert!(text.contains("path=segments,"), "{text}");
    assert!(text.contains("s[2026-05-02 "), "{text}");
    // Partial days come from records.
    let text = explain(&engine, QUERIES[5]).await;
    assert!(text.contains("path=segments+time"), "{text}");
    assert!(text.contains("s[2026-05-02 "), "{text}");
    assert!(!text.contains("s[2026-05-01 "), "{text}");
}

/// An engine over `store` with the fixture's registry.
fn engine_on(store: &Store, fx: &common::Fixture) -> SqlEngine {
    SqlEngine::new(
        store.clone(),
        Arc::clone(&fx.registry),
        SqlLimits::default(),
    )
    .expect("engine")
}

/// The number in a one-cell text table.
fn n(table: &str) -> i64 {
    table
        .lines()
        .filter_map(|l| l.trim_matches(|c| c == '|' || c == ' ').parse().ok())
        .next()
        .expect("a number")
}

#[tokio::test]
async fn a_late_event_makes_its_day_read_from_records_until_rebuilt() {
    let fx = build(common::DAYS, 60.0);
    let store: Store = fx.store.clone();
    let engine = engine_on(&store, &fx);
    for d in 1..=3 {
        build_day(&store, date(d)).await.expect("build");
    }
    let count_sql = "SELECT count(*) FROM events WHERE local_date = DATE '2026-05-02'";
    let count = |engine: SqlEngine| async move {
        let out = engine.query(count_sql).await.expect("count");
        n(&output::to_text_table(&out).expect("text"))
    };
    let before = count(engine.clone()).await;

    // A late event for 2026-05-02: a copy of one of its events, new id.
    let mut late: EnrichedEvent = fx
        .events
        .iter()
        .find(|e| {
            e.event
                .occurred_at()
                .with_timezone(&chrono_tz::Asia::Tashkent)
                .date_naive()
                == date(2)
        })
        .cloned()
        .expect("an event of the day");
    late.event.header_mut().id = "late-1".into();
    store.put_events(&[late]).await.expect("put");

    let text = explain(&engine, count_sql).await;
    assert!(text.contains("path=time"), "stale segment not used: {text}");
    let after = count(engine.clone()).await;
    assert_eq!(after, before + 1);
    // The other days keep theirs.
    let other = "SELECT count(*) FROM events WHERE local_date = DATE '2026-05-03'";
    assert!(explain(&engine, other).await.contains("path=segments,"));

    // Rebuilt: the segment again, with the late event.
    let rebuilt = build_day(&store, date(2)).await.expect("build");
    assert!(rebuilt.built);
    assert!(explain(&engine, count_sql).await.contains("path=segments,"));
    assert_eq!(count(engine.clone()).await, after);
    // The replaced version's columns are gone: one document per column.
    let kinds = store
        .document_keys("segment.events.id", "2026-05-02", "2026-05-03")
        .await
        .expect("keys");
    assert_eq!(kinds.len(), 1, "{kinds:?}");

    // A column that disappears under a reader (replaced meanwhile): the
    // day's records are read instead.
    store
        .delete_document("segment.events.id", &kinds[0])
        .await
        .expect("delete");
    let ids = "SELECT count(DISTINCT id) FROM events WHERE local_date = DATE '2026-05-02'";
    let out = engine.query(ids).await.expect("query");
    assert_eq!(n(&output::to_text_table(&out).expect("text")), after);
}

#[tokio::test]
async fn an_empty_day_has_an_empty_segment() {
    let fx = build(1, 30.0);
    let store: Store = fx.store.clone();
    let engine = engine_on(&store, &fx);
    let built = build_day(&store, date(20)).await.expect("build");
    assert!(built.built);
    assert_eq!(built.rows, 0);
    let out = engine
        .query("SELECT count(*) FROM events WHERE local_date = DATE '2026-05-20'")
        .await
        .expect("query");
    assert_eq!(n(&output::to_text_table(&out).expect("text")), 0);
}
