//! The engine against the simulated dataset: tables, values, pushdown,
//! read-only enforcement, limits and the H3 functions.

mod common;

use posbon_model::Span;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{CountingStore, engine, engine_over, fixture, start};
use posbon_geo::{CellIndex, Resolution};
use posbon_model::{EnrichedEvent, Event, EventKind};
use posbon_sql::datafusion::arrow::array::{Array, AsArray};
use posbon_sql::datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, UInt64Type};
use posbon_sql::datafusion::physical_plan::displayable;
use posbon_sql::{QueryOutput, SqlErrorKind, SqlLimits, output};
use posbon_store::keys::{EVENT_BY_CELL, EVENT_BY_TIME, cell_time_prefix, time_range};

/// The single Int64 value of a one-row, one-column result.
fn scalar_i64(out: &QueryOutput) -> i64 {
    assert_eq!(out.rows, 1, "one row expected");
    out.batches[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0)
}

async fn count(sql: &str) -> i64 {
    scalar_i64(&engine().query(sql).await.expect(sql))
}

fn ts(t: DateTime<Utc>) -> String {
    format!("TIMESTAMPTZ '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

fn micros(e: &EnrichedEvent) -> i64 {
    e.event.occurred_at().timestamp_micros()
}

/// A dotted name of many parts, which the parser takes exponential time
/// over, is refused before parsing, at once, naming where.
#[tokio::test]
async fn a_long_dotted_name_is_refused_before_parsing() {
    let engine = common::engine();
    for query in [
        format!(
            "SELECT count(*) FROM events a, events b WHERE a.{}lat > 1",
            "b. ".repeat(190)
        ),
        format!("SELECT * FROM events m WHERE m{}.a.-b", ".a".repeat(30)),
    ] {
        let started = std::time::Instant::now();
        let e = engine.query(&query).await.expect_err("refused");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(e.kind().as_str(), "invalid_query", "{e}");
        assert!(
            e.message().contains("dotted name of more than 8 parts"),
            "{e}"
        );
    }
}

/// A query the parser would take 2^30 steps over (an unclosed chain of
/// `ARRAY[`, found by fuzzing) is refused once it has taken its budget of
/// steps, naming the budget; an ordinary query of the same words parses.
#[tokio::test]
async fn a_query_too_costly_to_parse_is_refused() {
    let engine = common::engine();
    let chain = format!("SELECT {}1", "ARRAY[".repeat(30));
    let started = std::time::Instant::now();
    let e = engine.query(&chain).await.expect_err("refused");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(e.kind().as_str(), "invalid_query", "{e}");
    assert_eq!(e.sqlstate(), "54001", "{e}");
    assert!(
        e.message().contains(&format!(
            "its 62 tokens took more than {} parser steps",
            posbon_sql::parse_budget(62)
        )),
        "{e}"
    );
    let closed = format!("SELECT {}1{} AS a", "ARRAY[".repeat(8), "]".repeat(8));
    engine.query(&closed).await.expect("a closed chain parses");
}

#[tokio::test]
async fn every_event_is_in_its_tables() {
    let fx = fixture();
    assert!(fx.events.len() > 5_000, "{} events", fx.events.len());
    assert_eq!(
        count("SELECT count(*) FROM events").await,
        fx.events.len() as i64
    );
    for (table, kind) in [
        ("incidents", EventKind::Incident),
        ("camera_alerts", EventKind::CameraAlert),
        ("fraud_flags", EventKind::FraudFlag),
    ] {
        let want = fx.events.iter().filter(|e| e.event.kind() == kind).count() as i64;
        assert!(want > 0, "{table}");
        assert_eq!(
            count(&format!("SELECT count(*) FROM {table}")).await,
            want,
            "{table}"
        );
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM events WHERE kind = '{kind}'"
            ))
            .await,
            want,
            "events of kind {kind}"
        );
    }
    let unassigned = fx.events.iter().filter(|e| e.mahalla_id.is_none()).count() as i64;
    assert!(unassigned >= 5);
    assert_eq!(
        count("SELECT count(*) FROM events WHERE mahalla_id IS NULL").await,
        unassigned
    );
}

#[tokio::test]
async fn columns_are_typed() {
    let out = engine()
        .query("SELECT * FROM events LIMIT 1")
        .await
        .expect("query");
    let schema = out.schema;
    let t = |name: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    assert_eq!(
        t("occurred_at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        t("ingested_at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(t("local_date"), DataType::Date32);
    assert_eq!(t("cell"), DataType::UInt64);
    assert!(matches!(t("kind"), DataType::Dictionary(..)));
    assert!(matches!(t("category"), DataType::Dictionary(..)));
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for required in [
        "id",
        "kind",
        "occurred_at",
        "ingested_at",
        "lat",
        "lng",
        "cell",
        "mahalla_id",
        "district_id",
        "region_id",
        "source",
    ] {
        assert!(names.contains(&required), "{required} in {names:?}");
    }
}

#[tokio::test]
async fn values_match_the_stored_events() {
    let fx = fixture();
    let out = engine()
        .query(
            "SELECT id, kind, occurred_at, ingested_at, lat, lng, cell, mahalla_id, region_id, \
             source, category, severity, confidence, amount_uzs, local_date \
             FROM events ORDER BY id",
        )
        .await
        .expect("query");
    let json = output::to_json(&out).expect("json");
    let rows = json["rows"].as_array().expect("rows");
    let by_id: BTreeMap<&str, &EnrichedEvent> =
        fx.events.iter().map(|e| (e.event.id(), e)).collect();
    assert_eq!(rows.len(), by_id.len());
    for (row, (id, e)) in rows.iter().zip(&by_id) {
        assert_eq!(row[0], *id);
        assert_eq!(row[1], e.event.kind().as_str());
        let occurred = e.event.occurred_at().with_timezone(&Utc);
        assert_eq!(
            DateTime::parse_from_rfc3339(row[2].as_str().expect("time")).expect("rfc3339"),
            occurred
        );
        assert_eq!(
            DateTime::parse_from_rfc3339(row[3].as_str().expect("time")).expect("rfc3339"),
            e.ingested_at
        );
        assert_eq!(row[4].as_f64(), Some(e.event.location().lat));
        assert_eq!(row[5].as_f64(), Some(e.event.location().lng));
        assert_eq!(row[6].as_u64(), Some(e.cell.get()));
        assert_eq!(row[7].as_str(), e.mahalla_id.as_deref());
        assert_eq!(row[8].as_str(), e.region_id.as_deref());
        assert_eq!(row[9], e.event.source());
        match &e.event {
            Event::Incident(i) => {
                assert_eq!(row[10], i.category.as_str());
                assert_eq!(row[11].as_u64(), Some(u64::from(i.severity)));
                assert!(row[12].is_null() && row[13].is_null());
            }
            Event::CameraAlert(c) => {
                assert_eq!(row[10], c.detection.as_str());
                assert_eq!(row[12].as_f64(), Some(c.confidence));
                assert!(row[11].is_null());
            }
            Event::FraudFlag(f) => {
                assert_eq!(row[10], f.scheme.as_str());
                assert_eq!(row[13].as_f64(), Some(f.amount_uzs));
            }
        }
        let local = e
            .event
            .occurred_at()
            .with_timezone(&chrono_tz::Asia::Tashkent)
            .date_naive();
        assert_eq!(row[14], local.to_string());
    }
}

#[tokio::test]
async fn per_kind_tables_hold_their_fields() {
    let fx = fixture();
    let out = engine()
        .query(
            "SELECT id, category, severity, status, victim_woman, domestic FROM incidents ORDER BY id",
        )
        .await
        .expect("incidents");
    let json = output::to_json(&out).expect("json");
    let incidents: Vec<_> = {
        let mut v: Vec<_> = fx
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Incident(i) => Some(i),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.header.id.cmp(&b.header.id));
        v
    };
    for (row, i) in json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .zip(&incidents)
    {
        assert_eq!(row[0], i.header.id.as_str());
        assert_eq!(row[1], i.category.as_str());
        assert_eq!(row[2].as_u64(), Some(u64::from(i.severity)));
        assert_eq!(row[3], i.status.as_str());
        assert_eq!(row[4].as_bool(), Some(i.flags.victim_woman));
        assert_eq!(row[5].as_bool(), Some(i.flags.domestic));
    }
    let sum_amount = fx
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::FraudFlag(f) => Some(f.amount_uzs),
            _ => None,
        })
        .sum::<f64>();
    let out = engine()
        .query("SELECT sum(amount_uzs), count(DISTINCT account_ref) FROM fraud_flags")
        .await
        .expect("fraud");
    let got = out.batches[0]
        .column(0)
        .as_primitive::<posbon_sql::datafusion::arrow::datatypes::Float64Type>()
        .value(0);
    assert!(
        (got - sum_amount).abs() <= 1e-6 * sum_amount.abs(),
        "{got} vs {sum_amount}"
    );
    // Every field of the other two kinds, and the attributes.
    let by_id: BTreeMap<&str, &EnrichedEvent> =
        fx.events.iter().map(|e| (e.event.id(), e)).collect();
    let out = engine()
        .query("SELECT id, camera_id, detection, model, snapshot_uri, confidence, attributes FROM camera_alerts")
        .await
        .expect("cameras");
    let json = output::to_json(&out).expect("json");
    for row in json["rows"].as_array().expect("rows") {
        let Event::CameraAlert(c) = &by_id[row[0].as_str().expect("id")].event else {
            panic!("not a camera alert: {row}");
        };
        assert_eq!(row[1], c.camera_id.as_str());
        assert_eq!(row[2], c.detection.as_str());
        assert_eq!(row[3], c.model.as_str());
        assert_eq!(row[4].as_str(), c.snapshot_uri.as_deref());
        assert_eq!(row[5].as_f64(), Some(c.confidence));
        let attributes: Option<BTreeMap<String, String>> = row[6]
            .as_str()
            .map(|a| serde_json::from_str(a).expect("attributes are json"));
        assert_eq!(attributes.unwrap_or_default(), c.header.attributes);
    }
    let out = engine()
        .query("SELECT id, scheme, channel, payment_system, account_ref, detector_score, source FROM fraud_flags")
        .await
        .expect("fraud");
    let json = output::to_json(&out).expect("json");
    assert!(!json["rows"].as_array().expect("rows").is_empty());
    for row in json["rows"].as_array().expect("rows") {
        let Event::FraudFlag(f) = &by_id[row[0].as_str().expect("id")].event else {
            panic!("not a fraud flag: {row}");
        };
        assert_eq!(row[1], f.scheme.as_str());
        assert_eq!(row[2], f.channel.as_str());
        assert_eq!(row[3], f.payment_system.as_str());
        assert_eq!(row[4], f.account_ref.as_str());
        assert!(f.account_ref.starts_with("hmac2:k1:"));
        assert_eq!(row[5].as_f64(), Some(f.detector_score));
        assert_eq!(row[6], f.header.source.as_str());
    }
    let camera = count(
        "SELECT count(*) FROM camera_alerts WHERE confidence >= 0.8 AND detection = 'drug_handoff'",
    )
    .await;
    let want = fx
        .events
        .iter()
        .filter(|e| matches!(&e.event, Event::CameraAlert(c) if c.confidence >= 0.8 && c.detection.as_str() == "drug_handoff"))
        .count() as i64;
    assert_eq!(camera, want);
}

/// Every scan of the store, checked to lie inside `[lo, hi)`; returns the
/// entries read by scans that are not one-entry probes.
fn entries_read(store: &CountingStore, lo: &[u8], hi: &[u8]) -> usize {
    let scans = store.take();
    assert!(!scans.is_empty());
    let mut read = 0;
    for s in scans {
        assert!(
            s.start.as_slice() >= lo && s.end.as_slice() <= hi,
            "scan outside the range: {:?}..{:?}",
            s.start,
            s.end
        );
        if s.limit > 1 {
            read += s.returned;
        }
    }
    read
}

#[tokio::test]
async fn a_time_window_reads_only_its_range() {
    let fx = fixture();
    let store = Arc::new(CountingStore::new(fx.store.clone()));
    let engine = engine_over(store.clone(), SqlLimits::default());
    let from = start().with_timezone(&Utc) + TimeDelta::hours(30);
    let to = from + TimeDelta::hours(2);
    let sql = format!(
        "SELECT count(*) FROM events WHERE occurred_at >= {} AND occurred_at < {}",
        ts(from),
        ts(to)
    );
    let want = fx
        .events
        .iter()
        .filter(|e| (from.timestamp_micros()..to.timestamp_micros()).contains(&micros(e)))
        .count();
    assert!(want > 50, "{want}");
    store.take();
    let got = scalar_i64(&engine.query(&sql).await.expect("query"));
    assert_eq!(got as usize, want);
    let (lo, hi) = time_range(from.timestamp_micros(), to.timestamp_micros());
    assert_eq!(
        entries_read(&store, &lo, &hi),
        want,
        "reads only the window"
    );

    // EXPLAIN shows the pushed range.
    let explain = engine
        .query(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain");
    let text = output::to_text_table(&explain).expect("text");
    assert!(
        text.contains("StoreScanExec: table=events, path=time"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "window=[{}, {})",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        )),
        "{text}"
    );

    // A local day is a window too, and BETWEEN.
    let day_sql = "SELECT count(*) FROM incidents WHERE local_date = DATE '2026-05-02'";
    let want = fx
        .events
        .iter()
        .filter(|e| {
            e.event.kind() == EventKind::Incident
                && e.event
                    .occurred_at()
                    .with_timezone(&chrono_tz::Asia::Tashkent)
                    .date_naive()
                    .to_string()
                    == "2026-05-02"
        })
        .count();
    store.take();
    assert_eq!(
        scalar_i64(&engine.query(day_sql).await.expect("day")) as usize,
        want
    );
    let day_start = start().with_timezone(&Utc) + TimeDelta::days(1);
    let (lo, hi) = time_range(
        day_start.timestamp_micros(),
        (day_start + TimeDelta::days(1)).timestamp_micros(),
    );
    let read = entries_read(&store, &lo, &hi);
    assert!(read < fx.events.len() / 2, "{read} of {}", fx.events.len());
}

#[tokio::test]
async fn a_parent_cell_reads_only_its_cells() {
    let fx = fixture();
    // The res-7 parent of the busiest storage cell.
    let mut per_parent: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &fx.events {
        let c = CellIndex::try_from(e.cell.get()).expect("cell");
        *per_parent
            .entry(u64::from(c.parent(Resolution::Seven).expect("parent")))
            .or_default() += 1;
    }
    let (&parent, &want) = per_parent.iter().max_by_key(|(_, n)| **n).expect("cells");
    assert!(want > 20 && want < fx.events.len() / 2, "{want}");
    let store = Arc::new(CountingStore::new(fx.store.clone()));
    let engine = engine_over(store.clone(), SqlLimits::default());
    let sql = format!("SELECT count(*) FROM events WHERE h3_cell_to_parent(cell, 7) = {parent}");
    store.take();
    assert_eq!(
        scalar_i64(&engine.query(&sql).await.expect("query")) as usize,
        want
    );
    let span =
        posbon_geo::children_range(CellIndex::try_from(parent).expect("cell"), Resolution::Ten)
            .expect("range");
    let lo = cell_time_prefix(*span.start(), i64::MIN);
    let hi = cell_time_prefix(*span.end(), i64::MAX);
    assert_eq!(entries_read(&store, &lo, &hi), want);
    assert!(lo[0] == EVENT_BY_CELL && hi[0] == EVENT_BY_CELL);

    let plan = engine.physical_plan(&sql, Vec::new()).await.expect("plan");
    let text = displayable(plan.as_ref()).indent(true).to_string();
    assert!(text.contains("path=cells"), "{text}");
    assert!(text.contains("cells=1 from parent cell"), "{text}");

    // With a narrow time window too.
    let from = start().with_timezone(&Utc) + TimeDelta::hours(12);
    let to = from + TimeDelta::hours(12);
    let sql = format!(
        "SELECT id FROM events WHERE h3_cell_to_parent(cell, 7) = {parent} \
         AND occurred_at >= {} AND occurred_at < {} ORDER BY id",
        ts(from),
        ts(to)
    );
    let mut want: Vec<&str> = fx
        .events
        .iter()
        .filter(|e| {
            span.contains(&e.cell.get())
                && (from.timestamp_micros()..to.timestamp_micros()).contains(&micros(e))
        })
        .map(|e| e.event.id())
        .collect();
    want.sort_unstable();
    let out = engine.query(&sql).await.expect("query");
    let got: Vec<String> = out
        .batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_string::<i32>();
            (0..ids.len())
                .map(|i| ids.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_grid_disk_reads_only_its_cells() {
    let fx = fixture();
    let busiest = {
        let mut per: BTreeMap<u64, usize> = BTreeMap::new();
        for e in &fx.events {
            *per.entry(e.cell.get()).or_default() += 1;
        }
        *per.iter().max_by_key(|(_, n)| **n).expect("cells").0
    };
    let disk: Vec<u64> = CellIndex::try_from(busiest)
        .expect("cell")
        .grid_disk::<Vec<_>>(1)
        .into_iter()
        .map(u64::from)
        .collect();
    let want = fx
        .events
        .iter()
        .filter(|e| disk.contains(&e.cell.get()))
        .count();
    let store = Arc::new(CountingStore::new(fx.store.clone()));
    let engine = engine_over(store.clone(), SqlLimits::default());
    for sql in [
        format!("SELECT count(*) FROM events WHERE array_has(h3_grid_disk({busiest}, 1), cell)"),
        format!(
            "SELECT count(*) FROM events WHERE cell IN (SELECT unnest(h3_grid_disk({busiest}, 1)))"
        ),
    ] {
        store.take();
        assert_eq!(
            scalar_i64(&engine.query(&sql).await.expect(&sql)) as usize,
            want,
            "{sql}"
        );
    }
    // The first form is pushed down: only e keys of the disk's cells.
    store.take();
    let sql =
        format!("SELECT count(*) FROM events WHERE array_has(h3_grid_disk({busiest}, 1), cell)");
    engine.query(&sql).await.expect("query");
    let scans = store.take();
    let read: usize = scans.iter().map(|s| s.returned).sum();
    assert_eq!(read, want);
    for s in &scans {
        let cell = u64::from_be_bytes(s.start[1..9].try_into().expect("cell"));
        assert_eq!(s.start[0], EVENT_BY_CELL);
        assert!(disk.contains(&cell), "{cell:x}");
    }
    let explain = output::to_text_table(
        &engine
            .query(&format!("EXPLAIN {sql}"))
            .await
            .expect("explain"),
    )
    .expect("text");
    assert!(
        explain.contains(&format!("cells={} from", disk.len())),
        "{explain}"
    );
}

#[tokio::test]
async fn a_mahalla_reads_its_cover() {
    let fx = fixture();
    let id = fx
        .events
        .iter()
        .find_map(|e| e.mahalla_id.clone())
        .expect("mahalla");
    let want = fx
        .events
        .iter()
        .filter(|e| e.mahalla_id.as_deref() == Some(id.as_str()))
        .count();
    let store = Arc::new(CountingStore::new(fx.store.clone()));
    let engine = engine_over(store.clone(), SqlLimits::default());
    let sql = format!("SELECT count(*) FROM events WHERE mahalla_id = '{id}'");
    store.take();
    assert_eq!(
        scalar_i64(&engine.query(&sql).await.expect("query")) as usize,
        want
    );
    let scans = store.take();
    assert!(scans.iter().all(|s| s.start[0] == EVENT_BY_CELL));
    let read: usize = scans.iter().map(|s| s.returned).sum();
    assert!(read < fx.events.len() / 4, "{read}");
    // An unknown mahalla is not pushed down (events may carry ids of an
    // older registry) and simply matches nothing here.
    store.take();
    assert_eq!(
        count("SELECT count(*) FROM events WHERE mahalla_id = 'no-such'").await,
        0
    );
}

#[tokio::test]
async fn projection_decodes_only_what_is_asked() {
    // count(*) with a time window decodes no record: same answer, and the
    // plan projects nothing.
    let explain = engine()
        .query("EXPLAIN SELECT count(*) FROM events WHERE local_date = DATE '2026-05-01'")
        .await
        .expect("explain");
    let text = output::to_text_table(&explain).expect("text");
    assert!(text.contains("projection=[]"), "{text}");
    let explain = engine()
        .query("EXPLAIN SELECT mahalla_id, count(*) FROM events GROUP BY mahalla_id")
        .await
        .expect("explain");
    let text = output::to_text_table(&explain).expect("text");
    assert!(text.contains("projection=[mahalla_id]"), "{text}");
}

#[tokio::test]
async fn writes_and_file_access_are_refused() {
    let engine = engine();
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT * FROM events",
        "DROP TABLE events",
        "INSERT INTO events SELECT * FROM events",
        "COPY (SELECT * FROM events) TO '/tmp/out.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let e = engine.query(sql).await.expect_err(sql);
        assert_eq!(e.kind(), SqlErrorKind::Forbidden, "{sql}: {e}");
        assert!(
            e.message()
                .starts_with("only read-only queries are allowed"),
            "{e}"
        );
    }
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM no_such_table",
        "SELEC 1",
        "",
        "SELECT 1; SELECT 2",
    ] {
        let e = engine.query(sql).await.expect_err(sql);
        assert_eq!(e.kind(), SqlErrorKind::InvalidQuery, "{sql}: {e}");
    }
    let e = engine
        .query("SELECT h3_cell_to_parent(cell) FROM events")
        .await
        .expect_err("args");
    assert!(
        e.message()
            .contains("h3_cell_to_parent(cell, resolution) takes 2 arguments, got 1"),
        "{e}"
    );
}

#[tokio::test]
async fn results_are_cut_at_the_byte_limit() {
    let limits = SqlLimits {
        max_result_bytes: 1 << 20,
        ..SqlLimits::default()
    };
    let engine = engine_over(fixture().store.clone(), limits);
    let out = engine
        .query("SELECT repeat('x', 2000 + value) AS big FROM generate_series(1, 1000)")
        .await
        .expect("query");
    assert!(out.truncated);
    assert!(out.rows > 0 && out.rows < 1000, "{} rows", out.rows);
    let out = engine
        .query("SELECT value FROM generate_series(1, 100)")
        .await
        .expect("small");
    assert!(!out.truncated);
    assert_eq!(out.rows, 100);
}

#[tokio::test]
async fn results_are_cut_at_the_row_limit() {
    let limits = SqlLimits {
        max_rows: 100,
        ..SqlLimits::default()
    };
    let engine = engine_over(fixture().store.clone(), limits);
    let out = engine.query("SELECT id FROM events").await.expect("query");
    assert_eq!(out.rows, 100);
    assert!(out.truncated);
    assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    let out = engine
        .query("SELECT id FROM events LIMIT 100")
        .await
        .expect("query");
    assert!(!out.truncated);
}

/// A query refused as busy is a 503 with `Retry-After` over HTTP.
#[test]
fn busy_is_503_with_retry_after() {
    let e = posbon_sql::SqlError::new(SqlErrorKind::Busy, "the server is running 4 queries");
    let response = posbon_sql::http::sql_error_response(&e);
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or("")),
        Some("1")
    );
}

#[tokio::test]
async fn slow_queries_are_stopped() {
    let limits = SqlLimits {
        timeout: Span::from_millis(50),
        ..SqlLimits::default()
    };
    let engine = engine_over(fixture().store.clone(), limits);
    let started = std::time::Instant::now();
    let e = engine
        .query("SELECT count(*) FROM events a, events b, events c WHERE a.lat + b.lat > c.lat")
        .await
        .expect_err("too slow");
    assert_eq!(e.kind(), SqlErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// A query that would run for minutes is answered as timed out on time,
/// without holding up the caller's runtime (queries run on their own pool),
/// and stops: its turn comes free for the next query.
#[tokio::test(flavor = "current_thread")]
async fn a_runaway_query_is_stopped_and_frees_its_turn() {
    let limits = SqlLimits {
        timeout: Span::from_millis(500),
        max_concurrent: 1,
        max_queued: 4,
        ..SqlLimits::default()
    };
    let engine = engine_over(fixture().store.clone(), limits);
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let started = std::time::Instant::now();
    let e = engine
        .query(
            "SELECT count(*) FROM generate_series(1, 200000) a, generate_series(1, 200000) b \
             WHERE (a.value * b.value) % 7 = 3",
        )
        .await
        .expect_err("runaway");
    assert_eq!(e.kind(), SqlErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered {:?} after the start",
        started.elapsed()
    );
    assert!(
        ticks.load(std::sync::atomic::Ordering::Relaxed) >= 10,
        "the caller's runtime kept running while the query did"
    );
    // The one turn comes free once the query stopped.
    let timed_out = std::time::Instant::now();
    loop {
        match engine.query("SELECT 1").await {
            Ok(out) => {
                assert_eq!(out.rows, 1);
                break;
            }
            // Busy while the runaway holds the one turn; a time-out while
            // the pool's threads are still inside a runaway's poll (this
            // test's, or another test's on the shared pool) that has not
            // reached its next yield.
            Err(e) if matches!(e.kind(), SqlErrorKind::Busy | SqlErrorKind::Timeout) => {
                assert!(
                    timed_out.elapsed() < std::time::Duration::from_secs(60),
                    "the runaway query never stopped"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("turn free {:?} after the time-out", timed_out.elapsed());
    ticker.abort();
}

#[tokio::test]
async fn h3_functions_give_duckdbs_results() {
    // Expected values from the tests of DuckDB's h3 extension.
    let out = engine()
        .query(
            "SELECT h3_latlng_to_cell(37.7752702151959, -122.418307270836, 9), \
                    h3_cell_to_parent(586265647244115967, 1), \
                    h3_grid_distance(605035864166236159, 605034941150920703), \
                    h3_h3_to_string(10000000000000000), \
                    h3_string_to_h3('85283473fffffff'), \
                    h3_get_resolution(586265647244115967), \
                    h3_get_resolution('822d57fffffffff'), \
                    h3_cell_to_lat(h3_string_to_h3('85283473fffffff')), \
                    h3_cell_to_lng('85283473fffffff'), \
                    h3_cell_area('8928308280fffff', 'm^2'), \
                    h3_cell_to_boundary_wkt(h3_string_to_h3('822d57fffffffff')), \
                    h3_cell_to_children(586265647244115967, 3), \
                    h3_grid_disk(586265647244115967, 1), \
                    h3_grid_ring(586265647244115967, 1)",
        )
        .await
        .expect("query");
    let json = output::to_json(&out).expect("json");
    let row = &json["rows"][0];
    assert_eq!(row[0].as_u64(), Some(0x8928308280fffff));
    assert_eq!(row[1].as_u64(), Some(581764796395814911));
    assert_eq!(row[2].as_i64(), Some(5));
    assert_eq!(row[3], "2386f26fc10000");
    assert_eq!(row[4].as_u64(), Some(0x85283473fffffff));
    assert_eq!(row[5].as_i64(), Some(2));
    assert_eq!(row[6].as_i64(), Some(2));
    let close = |v: &serde_json::Value, want: f64| {
        let got = v.as_f64().expect("number");
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    };
    close(&row[7], 37.34579337536848);
    close(&row[8], -121.9763759725512);
    close(&row[9], 109398.18864648319);
    assert_eq!(
        row[10],
        "POLYGON ((38.777546 44.198571, 39.938746 42.736298, 42.150674 42.631271, 43.258395 44.047542, 42.146575 45.539505, 39.897167 45.559577, 38.777546 44.198571))"
    );
    assert_eq!(
        row[11],
        serde_json::json!([
            590768765835149311u64,
            590768834554626047u64,
            590768903274102783u64,
            590768971993579519u64,
            590769040713056255u64,
            590769109432532991u64,
            590769178152009727u64
        ])
    );
    assert_eq!(
        row[12],
        serde_json::json!([
            586265647244115967u64,
            586260699441790975u64,
            586244756523188223u64,
            586245306279002111u64,
            586266196999929855u64,
            586264547732488191u64,
            586267846267371519u64
        ])
    );
    let mut ring: Vec<u64> = row[13]
        .as_array()
        .expect("ring")
        .iter()
        .map(|v| v.as_u64().expect("cell"))
        .collect();
    ring.sort_unstable();
    let mut want = vec![
        586267846267371519u64,
        586260699441790975,
        586244756523188223,
        586245306279002111,
        586266196999929855,
        586264547732488191,
    ];
    want.sort_unstable();
    assert_eq!(ring, want);

    // Invalid input gives NULL, like DuckDB.
    let out = engine()
        .query(
            "SELECT h3_latlng_to_cell(0, 0, -1), h3_cell_to_parent(586265647244115967, -1), \
                    h3_cell_to_children(586265647244115967, 30), h3_grid_disk(594615896891195391, -1), \
                    h3_grid_distance(605035864166236159, 0), h3_string_to_h3(',,,,,'), \
                    h3_cell_to_lat(h3_string_to_h3('ffffffffffffffff')), h3_cell_area('8928308280fffff', 'km'), \
                    h3_cell_to_boundary_wkt('zzz'), h3_latlng_to_cell(NULL, 1, 9)",
        )
        .await
        .expect("nulls");
    let json = output::to_json(&out).expect("json");
    let row = json["rows"][0].as_array().expect("row");
    for (i, v) in row.iter().enumerate() {
        if i == 8 {
            assert_eq!(v, "", "boundary of an invalid cell is empty, as in duckdb");
        } else {
            assert!(v.is_null(), "column {i}: {v}");
        }
    }
    // The limits that protect memory say what they are.
    let e = engine()
        .query("SELECT h3_cell_to_children(h3_latlng_to_cell(41.3, 69.2, 0), 15)")
        .await
        .expect_err("too many");
    assert!(
        e.message().contains("more than the limit of 1000000"),
        "{e}"
    );
    // Within the per-row limits, many rows at once are bounded per batch:
    // 1,000 disks of 30,301 cells would be 30 million cells (240 MB).
    for sql in [
        "SELECT h3_grid_disk(h3_latlng_to_cell(41.3 + value * 0.001, 69.2, 9), 100) FROM generate_series(1, 1000)",
        "SELECT h3_cell_to_children(h3_latlng_to_cell(41.3 + value * 0.001, 69.2, 5), 11) FROM generate_series(1, 1000)",
    ] {
        let e = engine().query(sql).await.expect_err("too many cells");
        assert!(
            e.message().contains("more than the limit of 4000000"),
            "{sql}: {e}"
        );
    }
    // A constant list is repeated on every row by DataFusion: refused when
    // long, at planning; selected once, it is fine.
    let e = engine()
        .query("SELECT h3_grid_disk(h3_latlng_to_cell(41.3, 69.2, 9), 100) FROM generate_series(1, 100000)")
        .await
        .expect_err("a constant disk on every row");
    assert!(e.message().contains("constant list of 30301 values"), "{e}");
    let once = engine()
        .query("SELECT h3_grid_disk(h3_latlng_to_cell(41.3, 69.2, 9), 100)")
        .await
        .expect("once");
    assert_eq!(once.rows, 1);
    // A handful of rows is fine.
    let out = engine()
        .query("SELECT h3_grid_disk(h3_latlng_to_cell(41.3 + value * 0.001, 69.2, 9), 100) FROM generate_series(1, 10)")
        .await
        .expect("ten disks");
    assert_eq!(out.rows, 10);
}

#[tokio::test]
async fn mahalla_of_is_the_registrys_answer() {
    let fx = fixture();
    let out = engine()
        .query("SELECT id, mahalla_of(lat, lng) = mahalla_id OR (mahalla_of(lat, lng) IS NULL AND mahalla_id IS NULL) FROM events")
        .await
        .expect("query");
    let mut n = 0;
    for b in &out.batches {
        let ok = b.column(1).as_boolean();
        for i in 0..ok.len() {
            assert!(ok.value(i), "row {i}");
            n += 1;
        }
    }
    assert_eq!(n, fx.events.len());
    let mahallas = count("SELECT count(*) FROM mahallas").await;
    assert_eq!(mahallas as usize, fx.registry.mahallas().len());
}

#[tokio::test]
async fn cells_round_trip_through_strings() {
    let out = engine()
        .query("SELECT count(*) FROM events WHERE h3_string_to_h3(h3_h3_to_string(cell)) <> cell OR h3_get_resolution(cell) <> 10")
        .await
        .expect("query");
    assert_eq!(scalar_i64(&out), 0);
    let out = engine()
        .query("SELECT cell FROM events ORDER BY cell LIMIT 1")
        .await
        .expect("query");
    let c = out.batches[0]
        .column(0)
        .as_primitive::<UInt64Type>()
        .value(0);
    assert!(CellIndex::try_from(c).is_ok());
    let _ = EVENT_BY_TIME;
}

/// A store written by earlier releases holds JSON records (version 1): every
/// table reads them exactly like the compact records written now.
#[tokio::test]
async fn json_records_read_like_compact_ones() {
    use posbon_store::codec::{EVENT_COMPACT_V2, EVENT_JSON_V1, decode_event};
    use posbon_store::{EventStore, MemoryStore};

    let fx = fixture();
    let entries = fx
        .store
        .scan(&[0], &[0xff], usize::MAX)
        .await
        .expect("scan");
    let mut rewritten = 0;
    let json_store = Arc::new(MemoryStore::new());
    let entries = entries
        .into_iter()
        .map(|(key, value)| {
            if matches!(key[0], EVENT_BY_CELL | EVENT_BY_TIME) {
                assert_eq!(value[0], EVENT_COMPACT_V2, "records are written compact");
                let event = decode_event(&value).expect("decodes");
                let mut json = vec![EVENT_JSON_V1];
                serde_json::to_writer(&mut json, &event).expect("json");
                rewritten += 1;
                (key, json)
            } else {
                (key, value)
            }
        })
        .collect();
    json_store.put_batch(entries).await.expect("put");
    assert_eq!(rewritten, 2 * fx.events.len());
    let json_engine = engine_over(json_store, SqlLimits::default());
    let compact_engine = engine();
    let out = compact_engine
        .query("SELECT attributes FROM events WHERE id = 'outside-1'")
        .await
        .expect("attributes");
    assert_eq!(
        output::to_json(&out).expect("json")["rows"][0][0],
        r#"{"post":"Yo'l \"1\" ✓","unit":"102"}"#
    );
    let first = CellIndex::try_from(fx.events[0].cell.get()).expect("cell");
    let parent = u64::from(first.parent(Resolution::Seven).expect("parent"));
    for sql in [
        "SELECT * FROM events ORDER BY id".to_owned(),
        "SELECT * FROM incidents ORDER BY id".to_owned(),
        "SELECT * FROM camera_alerts ORDER BY id".to_owned(),
        "SELECT * FROM fraud_flags ORDER BY id".to_owned(),
        // The cell path (`e` keys).
        format!("SELECT * FROM events WHERE h3_cell_to_parent(cell, 7) = {parent} ORDER BY id"),
    ] {
        let compact = compact_engine.query(&sql).await.expect(&sql);
        let json = json_engine.query(&sql).await.expect(&sql);
        assert!(compact.rows > 0, "{sql}");
        let (json, compact) = (
            output::to_json(&json).expect("json"),
            output::to_json(&compact).expect("json"),
        );
        assert_eq!(json["columns"], compact["columns"], "{sql}");
        let (json, compact) = (
            json["rows"].as_array().expect("rows"),
            compact["rows"].as_array().expect("rows"),
        );
        assert_eq!(json.len(), compact.len(), "{sql}");
        for (j, c) in json.iter().zip(compact) {
            assert_eq!(j, c, "{sql}");
        }
    }
}
