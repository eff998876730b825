//! The daily report's SQL on the embedded store against DuckDB on Parquet.
//!
//! Loads `POSBON_BENCH_SQL_EVENTS` (default 10,000,000) simulated events of
//! the national registry (about 10,000 mahallas), spread over
//! `POSBON_BENCH_SQL_DAYS` (default 30) days, into a fresh embedded store,
//! exports the tables the report reads to Parquet, and times, in the same
//! run:
//!
//! 1. the national daily report of the last day: the four SQL files of
//!    `services/posbon-reporter/sql/` (the per-mahalla figures of the day,
//!    then scopes, categories and hot cells, with the 28 days before already
//!    stored as `mahalla_days`), each reading the store, and
//!    `Reporter::generate` end to end (it reads the day's events once, runs
//!    the four files on them and stores the rows);
//! 2. the same aggregation over all the days: `mahalla_day.sql` and
//!    `report_categories.sql` with a window of every day;
//!
//! with the columnar day segments (`posbon_sql::segments`) of every day
//! made first, as the reporter keeps them for closed days (the time to make
//! them is printed);
//!
//! each beside DuckDB running the same SQL, with the same parameters, on the
//! same rows exported to Parquet (DuckDB materialises each result in a
//! temporary table, as the engine collects its result). Every figure is the
//! best of `POSBON_BENCH_SQL_REPEAT` (default 3) runs after one warm-up.
//!
//! DuckDB runs from its Python wheel: `python3 -m venv
//! ~/.cache/posbon-tools/duckdb && ~/.cache/posbon-tools/duckdb/bin/pip
//! install duckdb==2.0.1 h3==4.5.0 numpy==2.4.6`, or `POSBON_DUCKDB_PYTHON`
//! names a Python that imports `duckdb`, `h3` and `numpy` (Uber's H3 stands in for DuckDB's h3
//! extension, a download, as a Python function: DuckDB's time for
//! `recurrence.sql` is an upper bound). Without them the benchmark fails
//! with that command.
//!
//! Run: `cargo bench -p posbon-benches --bench sql`. The store takes about
//! 1.6 KB per event on disk (16 GB for 10M) in a temporary directory,
//! removed at the end unless `POSBON_BENCH_SQL_KEEP` names a directory to
//! keep (and reuse on the next run) the store and the Parquet files in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use futures::StreamExt;
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, Event};
use posbon_reporter::Reporter;
use posbon_reporter::reporter::{KEPT_TABLES, SQL_FILES, day_window, params, report_limits};
use posbon_sim::{
    EventOptions, EventStream, NationalOptions, SimBody, SimRegistry, national_registry,
};
use posbon_sql::SqlEngine;
use posbon_sql::datafusion::common::ScalarValue;
use posbon_sql::datafusion::parquet::arrow::ArrowWriter;
use posbon_store::{EmbeddedStore, EventStoreExt, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Events written per durable batch while loading.
const LOAD_BATCH: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// The Python that runs DuckDB.
fn duckdb_python() -> PathBuf {
    let path = std::env::var_os("POSBON_DUCKDB_PYTHON").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/posbon-tools/duckdb/bin/python")
        },
        PathBuf::from,
    );
    let ok = Command::new(&path)
        .args(["-c", "import duckdb, h3, numpy; print(duckdb.__version__)"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Python with duckdb at {}: install it with `python3 -m venv ~/.cache/posbon-tools/duckdb && \
         ~/.cache/posbon-tools/duckdb/bin/pip install duckdb==2.0.1 h3==4.5.0 numpy==2.4.6` or set POSBON_DUCKDB_PYTHON",
        path.display()
    );
    path
}

/// The DuckDB side: views over the Parquet files, then each query timed
/// `repeat` times after a warm-up; prints one JSON object of best times.
const DUCKDB_SCRIPT: &str = r#"
import datetime, json, re, sys, time
import duckdb

spec = json.load(open(sys.argv[1]))
con = duckdb.connect()
con.execute(f"SET threads = {spec['threads']}")
for name, path in spec["tables"].items():
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")

def value(v):
    kind, text = v
    if kind == "date":
        return datetime.date.fromisoformat(text)
    if kind == "text":
        return text
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return datetime.datetime.fromisoformat(text)

# DuckDB's h3 extension is a download; the report's one H3 function
# (h3_grid_disk) comes from Uber's h3 package as a Python function instead,
# which makes DuckDB's time for recurrence.sql an upper bound.
from h3.api import basic_int as h3i
con.create_function(
    "h3_grid_disk",
    lambda cell, k: sorted(h3i.grid_disk(cell, k)),
    ["UBIGINT", "INTEGER"],
    "UBIGINT[]",
)

out = {"version": duckdb.__version__}
for case in spec["cases"]:
    sql = open(case["file"]).read()
    # DuckDB refuses parameters a statement does not use.
    params = {k: value(v) for k, v in case["params"].items() if re.search(r"\$" + k + r"\b", sql)}
    best = None
    rows = None
    for i in range(spec["repeat"] + 1):
        started = time.perf_counter()
        con.execute("CREATE OR REPLACE TEMP TABLE result AS " + sql, params)
        elapsed = time.perf_counter() - started
        rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
        if i > 0:
            best = elapsed if best is None else min(best, elapsed)
    out[case["name"]] = {"seconds": best, "rows": rows}
    # A result later files read as a table (baseline_days.sql, scores.sql).
    if case.get("keep_as"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {case['keep_as']} AS SELECT * FROM result")
print(json.dumps(out))
"#;

/// Generates the national city's events and loads them into `store`.
async fn load(store: &Store, registry: &Registry, sim: Arc<SimRegistry>, events: usize, days: i64) {
    let start = posbon_sim::tashkent_offset()
        .with_ymd_and_hms(2026, 4, 1, 0, 0, 0)
        .single()
        .expect("start");
    let rate = events as f64 / (days as f64 * 24.0);
    let stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 2026,
            rate_per_hour: rate,
            duration: TimeDelta::days(days),
            start,
            bad_fraction: 0.0,
            situations: Default::default(),
        },
    )
    .expect("stream");
    let started = Instant::now();
    let mut batch: Vec<EnrichedEvent> = Vec::with_capacity(LOAD_BATCH);
    let mut loaded = 0usize;
    let key =
        posbon_model::PseudonymKeys::single("k1", b"posbon benchmark pseudonym key").expect("key");
    for item in stream {
        let SimBody::Valid { event, .. } = item.body else {
            continue;
        };
        let mut event = *event;
        if let Event::FraudFlag(f) = &mut event {
            f.pseudonymise(&key);
        }
        let ingested_at = event.occurred_at().with_timezone(&Utc) + TimeDelta::seconds(2);
        batch.push(
            posbon_sim::enrich(registry, event, ingested_at).expect("simulated points are valid"),
        );
        if batch.len() == LOAD_BATCH {
            loaded += store.put_events(&batch).await.expect("load").written;
            batch.clear();
            if loaded % 1_000_000 < LOAD_BATCH {
                println!(
                    "  loaded {loaded} events ({:.0}/s)",
                    loaded as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    loaded += store.put_events(&batch).await.expect("load").written;
    println!(
        "loaded {loaded} events in {:.1} s ({:.0} events/s: simulate, locate, encode, durable write)",
        started.elapsed().as_secs_f64(),
        loaded as f64 / started.elapsed().as_secs_f64()
    );
}

/// Writes a query's result to a Parquet file; returns rows and seconds.
async fn export(engine: &SqlEngine, sql: &str, path: &Path) -> (usize, Duration) {
    let started = Instant::now();
    let df = engine.context().sql(sql).await.expect("export query");
    let mut stream = df.execute_stream().await.expect("export stream");
    let file = std::fs::File::create(path).expect("parquet file");
    let mut writer = ArrowWriter::try_new(file, stream.schema(), None).expect("parquet writer");
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("export batch");
        rows += batch.num_rows();
        writer.write(&batch).expect("parquet write");
    }
    writer.close().expect("parquet close");
    (rows, started.elapsed())
}

/// The best of `repeat` runs (after one warm-up) of a parameterised query.
async fn time_query(
    engine: &SqlEngine,
    sql: &str,
    params: &[(String, ScalarValue)],
    repeat: usize,
) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut rows = 0;
    for i in 0..=repeat {
        let started = Instant::now();
        let out = engine
            .query_with_params(sql, params.to_vec())
            .await
            .expect("benchmark query");
        let elapsed = started.elapsed();
        assert!(!out.truncated);
        rows = out.rows;
        if i > 0 {
            best = best.min(elapsed);
        }
    }
    (best, rows)
}

/// A parameter for the DuckDB script.
fn py_param(v: &ScalarValue) -> serde_json::Value {
    match v {
        ScalarValue::Date32(Some(d)) => {
            let date = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + TimeDelta::days(i64::from(*d));
            serde_json::json!(["date", date.to_string()])
        }
        ScalarValue::TimestampMicrosecond(Some(us), _) => {
            let t = chrono::DateTime::from_timestamp_micros(*us).expect("time");
            serde_json::json!(["timestamp", t.to_rfc3339()])
        }
        ScalarValue::Utf8(Some(t)) => serde_json::json!(["text", t]),
        ScalarValue::Int64(Some(n)) => serde_json::json!(["int", n.to_string()]),
        ScalarValue::Float64(Some(x)) => serde_json::json!(["float", x.to_string()]),
        other => panic!("no python form for {other:?}"),
    }
}

fn main() {
    let events = env_usize("POSBON_BENCH_SQL_EVENTS", 10_000_000);
    let days = env_usize("POSBON_BENCH_SQL_DAYS", 30) as i64;
    let repeat = env_usize("POSBON_BENCH_SQL_REPEAT", 3);
    assert!(
        days > 28,
        "the report needs 28 days of baseline before the day it reports"
    );
    let python = duckdb_python();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let keep = std::env::var_os("POSBON_BENCH_SQL_KEEP").map(PathBuf::from);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!(
        "sql benchmark: {events} events over {days} days, {threads} threads, in {}",
        dir.display()
    );

    let started = Instant::now();
    let national = national_registry(&NationalOptions::default()).expect("national registry");
    let registry = Arc::new(national.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_generated(&national).expect("sim registry"));
    println!(
        "national registry: {} mahallas, {} districts ({:.1} s)",
        registry.mahallas().len(),
        registry.districts().len(),
        started.elapsed().as_secs_f64()
    );

    runtime.block_on(async {
        let store_dir = dir.join("store");
        let marker = dir.join(format!("loaded-{events}-{days}"));
        let fresh = !marker.exists();
        if fresh && store_dir.exists() {
            std::fs::remove_dir_all(&store_dir).expect("old store");
        }
        let store: Store = Arc::new(EmbeddedStore::open(&store_dir).expect("store"));
        if fresh {
            load(&store, &registry, Arc::clone(&sim), events, days).await;
            std::fs::write(&marker, b"").expect("marker");
        } else {
            println!("reusing the store in {}", store_dir.display());
        }
        let reporter = Reporter::new(store.clone(), Arc::clone(&registry), report_limits()).expect("reporter");
        let engine = reporter.engine();

        // The days of data: the last full local day is the report's.
        let bounds = engine
            .query("SELECT min(local_date), max(local_date), count(*) FROM events")
            .await
            .expect("bounds");
        let json = posbon_sql::output::to_json(&bounds).expect("json");
        let first: NaiveDate = json["rows"][0][0].as_str().expect("first").parse().expect("date");
        let last: NaiveDate = json["rows"][0][1].as_str().expect("last").parse().expect("date");
        let total = json["rows"][0][2].as_u64().expect("count");
        // The stream starts at a local midnight: the last day is full.
        let day = last;
        println!("events {total}, local days {first} .. {last}; report day {day}");

        // The columnar day segments, as the reporter keeps them for the
        // closed days (`segment_days`): made here when missing or stale.
        let t = Instant::now();
        let (mut built, mut rows, mut bytes) = (0, 0, 0);
        let mut date = first;
        while date <= last {
            let b = posbon_sql::segments::build_day(&store, date).await.expect("segments");
            if b.built {
                built += 1;
                bytes += b.bytes;
            }
            rows += b.rows;
            date = date.succ_opt().expect("next day");
        }
        println!(
            "columnar day segments of {} days ({rows} events): {built} built in {:.1} s ({:.0} MB of columns)",
            (last - first).num_days() + 1,
            t.elapsed().as_secs_f64(),
            bytes as f64 / 1e6
        );

        // The first report: the baseline days not stored yet computed too.
        let stored = posbon_sql::stored::stored_dates(
            &store,
            posbon_sql::StoredTable::MahallaDays,
            None,
            None,
        )
        .await
        .expect("stored days");
        let t = Instant::now();
        let report = reporter.generate(day).await.expect("first report");
        let nation = report.row(&posbon_reporter::Scope::nation()).expect("nation").clone();
        println!(
            "first report of {day} ({} stored days of figures before, the missing baseline days \
             computed from events): {:.2} s; nation: {} events, {} offences, cyber share {:.1}%, \
             z28 {}, {} of {} mahallas crime-free",
            stored.len(),
            t.elapsed().as_secs_f64(),
            nation.events,
            nation.offences,
            nation.cyber_share.unwrap_or(0.0) * 100.0,
            nation.z28.map_or_else(|| "withheld (not enough history)".to_owned(), |z| format!("{z:+.2}")),
            nation.crime_free_mahallas,
            nation.mahallas
        );

        // Export what the report reads, for DuckDB.
        let files = [
            ("events", "SELECT * FROM events"),
            ("incidents", "SELECT * FROM incidents"),
            ("mahalla_days", "SELECT * FROM mahalla_days"),
            ("mahallas", "SELECT * FROM mahallas"),
            ("escalations", "SELECT * FROM escalations"),
            ("daily_reports", "SELECT * FROM daily_reports"),
            ("daily_report_difficult", "SELECT * FROM daily_report_difficult"),
        ];
        let mut tables = serde_json::Map::new();
        for (name, sql) in files {
            let path = dir.join(format!("{name}.parquet"));
            let (rows, took) = export(engine, sql, &path).await;
            if name == "events" {
                println!(
                    "full scan of events to parquet: {rows} rows in {:.2} s ({:.0} rows/s)",
                    took.as_secs_f64(),
                    rows as f64 / took.as_secs_f64()
                );
            }
            tables.insert(name.into(), path.display().to_string().into());
        }

        // The cases, each with its parameters.
        let sql_dir = manifest_dir().join("../services/posbon-reporter/sql");
        let day_params = params(day).expect("params");
        let (window_start, _) = day_window(first).expect("window");
        let (_, window_end) = day_window(last).expect("window");
        let mut month_params = params(first).expect("params");
        for (name, value) in &mut month_params {
            match name.as_str() {
                "day_start" => {
                    *value = ScalarValue::TimestampMicrosecond(Some(window_start.timestamp_micros()), Some("UTC".into()));
                }
                "day_end" => {
                    *value = ScalarValue::TimestampMicrosecond(Some(window_end.timestamp_micros()), Some("UTC".into()));
                }
                _ => {}
            }
        }
        let month_days = (last - first).num_days() + 1;
        let mut cases = Vec::new();
        for (file, _) in SQL_FILES {
            cases.push((format!("day/{file}"), file, day_params.clone()));
        }
        for file in ["mahalla_day.sql", "report_categories.sql"] {
            cases.push((format!("{month_days} days/{file}"), file, month_params.clone()));
        }

        // DuckDB first (it reads files, the store is then idle).
        let spec = serde_json::json!({
            "threads": threads,
            "repeat": repeat,
            "tables": tables,
            "cases": cases.iter().map(|(name, file, p)| serde_json::json!({
                "name": name,
                "file": sql_dir.join(file).display().to_string(),
                "keep_as": KEPT_TABLES.iter().find(|(f, _)| f == file).map(|(_, t)| *t),
                "params": p.iter().map(|(k, v)| (k.clone(), py_param(v))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
        });
        let spec_path = dir.join("duckdb-spec.json");
        let script_path = dir.join("duckdb-bench.py");
        std::fs::write(&spec_path, spec.to_string()).expect("spec");
        std::fs::write(&script_path, DUCKDB_SCRIPT).expect("script");
        let output = Command::new(&python)
            .arg(&script_path)
            .arg(&spec_path)
            .output()
            .expect("run duckdb");
        assert!(
            output.status.success(),
            "duckdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let duck: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("duckdb output is json");

        println!();
        println!(
            "{:<38} {:>10} {:>10} {:>8} {:>10}",
            "query (national, best of runs)", "posbon s", "duckdb s", "ratio", "rows"
        );
        let mut day_total = (0.0, 0.0);
        let mut month_total = (0.0, 0.0);
        // The files after baseline_days.sql and scores.sql read their rows
        // as tables, as the reporter holds them.
        let mut kept: Option<SqlEngine> = None;
        for (name, file, p) in &cases {
            let sql = std::fs::read_to_string(sql_dir.join(file)).expect("sql file");
            let on = match (name.starts_with("day/"), &kept) {
                (true, Some(e)) => e,
                _ => engine,
            };
            let (ours, rows) = time_query(on, &sql, p, repeat).await;
            if let Some((_, table_name)) = KEPT_TABLES.iter().find(|(f, _)| f == file) {
                let out = on
                    .query_with_params(&sql, p.clone())
                    .await
                    .expect("kept table");
                let table = posbon_sql::datafusion::catalog::MemTable::try_new(
                    out.schema,
                    vec![out.batches],
                )
                .expect("table");
                kept = Some(
                    on.with_table(table_name, Arc::new(table))
                        .await
                        .expect("engine"),
                );
            }
            let theirs = duck[name]["seconds"].as_f64().expect("duckdb seconds");
            let their_rows = duck[name]["rows"].as_u64().expect("duckdb rows");
            assert_eq!(rows as u64, their_rows, "{name}: both engines give the same number of rows");
            let ours = ours.as_secs_f64();
            println!(
                "{name:<38} {ours:>10.3} {theirs:>10.3} {:>7.1}x {rows:>10}",
                ours / theirs
            );
            let total = if name.starts_with("day/") { &mut day_total } else { &mut month_total };
            total.0 += ours;
            total.1 += theirs;
        }
        println!(
            "{:<38} {:>10.3} {:>10.3} {:>7.1}x",
            "national daily report, one day", day_total.0, day_total.1, day_total.0 / day_total.1
        );
        println!(
            "{:<38} {:>10.3} {:>10.3} {:>7.1}x",
            format!("same aggregation, {month_days} days"),
            month_total.0,
            month_total.1,
            month_total.0 / month_total.1
        );

        // The report end to end, with its baselines stored: it reads the
        // day's events once (`Reporter::day_engine`) and runs the four
        // files on them.
        let mut best = Duration::MAX;
        for _ in 0..=repeat {
            let t = Instant::now();
            reporter.generate(day).await.expect("report");
            best = best.min(t.elapsed());
        }
        let mut snapshot = Duration::MAX;
        for _ in 0..=repeat {
            let t = Instant::now();
            reporter.day_engine(day).await.expect("day");
            snapshot = snapshot.min(t.elapsed());
        }
        println!(
            "{:<38} {:>10.3} {:>10.3} {:>7.1}x   (reads the day once: {:.3} s; stores the rows)",
            "Reporter::generate, one day",
            best.as_secs_f64(),
            day_total.1,
            best.as_secs_f64() / day_total.1,
            snapshot.as_secs_f64()
        );
        println!("duckdb {}", duck["version"]);
    });
    if keep.is_none() {
        drop(temp);
    }
}

/// The package directory of this checkout: cargo sets `CARGO_MANIFEST_DIR`
/// when it runs the test, and a binary built in another checkout with the
/// same target directory (which cargo reuses) would otherwise look there.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
