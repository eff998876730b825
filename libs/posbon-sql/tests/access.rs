//! Per-caller access over the simulated dataset: a scoped caller reads only
//! its rows whatever the query says, masked columns read as NULL and cannot
//! be probed, a table with no geographic key is refused to a scoped caller,
//! and full access is the plain engine.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta, Utc};
use common::{engine_over, fixture};
use posbon_model::{
    Escalation, EscalationRecord, EscalationStatus, MeasureName, RiskLevel, RuleMeasure,
};
use posbon_sql::datafusion::arrow::array::{
    Array, AsArray, DictionaryArray, RecordBatch, StringArray,
};
use posbon_sql::datafusion::arrow::datatypes::{DataType, Field, Int8Type, Int64Type, Schema};
use posbon_sql::datafusion::catalog::MemTable;
use posbon_sql::stored::{StoredTable, put_table};
use posbon_sql::{QueryOutput, SqlAccess, SqlEngine, SqlErrorKind, SqlLimits, output};
use posbon_store::{EscalationStoreExt, EventStoreExt, MemoryStore, Store};
use serde_json::Value;

/// The dates of the dataset.
fn dates() -> Vec<NaiveDate> {
    (1..=3)
        .map(|d| NaiveDate::from_ymd_opt(2026, 5, d).expect("date"))
        .collect()
}

/// The single Int64 value of a one-row, one-column result.
fn scalar_i64(out: &QueryOutput) -> i64 {
    assert_eq!(out.rows, 1, "one row expected");
    out.batches[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0)
}

async fn count(engine: &SqlEngine, sql: &str) -> i64 {
    scalar_i64(&engine.query(sql).await.expect(sql))
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

/// The first column of a result, as strings (NULL as `None`).
async fn strings(engine: &SqlEngine, sql: &str) -> Vec<Option<String>> {
    rows(engine, sql)
        .await
        .into_iter()
        .map(|r| r[0].as_str().map(str::to_owned))
        .collect()
}

/// `'a', 'b', ...` for an `IN` list.
fn sql_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dataset in a store of its own, with escalations (one per mahalla)
/// and the stored tables `mahalla_days` and `daily_reports` of every day.
struct Setup {
    national: SqlEngine,
    /// The district the scoped caller has: the one with most mahallas.
    district: String,
    /// Its mahallas, sorted.
    inside: Vec<String>,
    /// A mahalla of another district.
    outside: String,
    /// The caller limited to `district`, with the sensitive columns.
    scoped: SqlEngine,
}

async fn setup() -> Setup {
    let fx = fixture();
    let memory = Arc::new(MemoryStore::new());
    for chunk in fx.events.chunks(1000) {
        memory.put_events(chunk).await.expect("put events");
    }
    let opened = Utc::now() - TimeDelta::days(1);
    for (i, m) in fx.registry.mahallas().iter().enumerate() {
        let record = EscalationRecord::opened(
            Escalation {
                id: Escalation::deterministic_id(&m.id, "test", i as u64),
                mahalla_id: m.id.clone(),
                district_id: m.district_id.clone(),
                region_id: m.region_id.clone(),
                level: RiskLevel::High,
                previous_level: RiskLevel::Normal,
                score: 4.0,
                rule: "test".into(),
                // The first has what fired its rule; the others are records
                // made before that was kept.
                measure: (i == 0).then_some(RuleMeasure {
                    name: MeasureName::Count,
                    value: 5.0,
                    threshold: 3.0,
                    z: Some(3.5),
                    min_z: Some(3.0),
                }),
                counts: BTreeMap::new(),
                hot_cells: vec![],
                evidence: vec![],
                window_start: opened,
                window_end: opened,
                opened_at: opened,
                status: EscalationStatus::Open,
            },
            i as u64,
            opened,
        );
        memory
            .put_escalation(&record)
            .await
            .expect("put escalation");
    }
    let store: Store = memory;
    let national = engine_over(store.clone(), SqlLimits::default());
    for date in dates() {
        for (table, sql) in [
            (StoredTable::MahallaDays, mahalla_days_sql(date)),
            (StoredTable::DailyReports, daily_reports_sql(date)),
            (StoredTable::DailyReportFocusGroups, focus_groups_sql(date)),
            (StoredTable::DailyReportDifficult, difficult_sql(date)),
            (StoredTable::DailyReportRepeatCells, repeat_cells_sql(date)),
        ] {
            let out = national.query(&sql).await.expect(&sql);
            put_table(&store, table, date, &out.batches)
                .await
                .expect("put table");
        }
    }
    // The district with the most mahallas (not all of them).
    let mut per_district: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in fx.registry.mahallas() {
        per_district
            .entry(m.district_id.as_str())
            .or_default()
            .push(m.id.clone());
    }
    let (district, inside) = per_district
        .iter()
        .max_by_key(|(_, ms)| ms.len())
        .map(|(d, ms)| (d.to_string(), ms.clone()))
        .expect("a district");
    assert!(per_district.len() > 1, "the city has several districts");
    let mut inside = inside;
    inside.sort();
    let outside = fx
        .registry
        .mahallas()
        .iter()
        .find(|m| m.district_id != district)
        .map(|m| m.id.clone())
        .expect("a mahalla outside");
    let access = SqlAccess::for_mahallas(&fx.registry, inside.clone(), true);
    assert_eq!(
        access.districts.as_deref().map(|d| d.len()),
        Some(1),
        "one district"
    );
    let scoped = national.for_access(&access).await.expect("scoped engine");
    Setup {
        national,
        district,
        inside,
        outside,
        scoped,
    }
}

/// `mahalla_days` of `date`, counted from the events.
fn mahalla_days_sql(date: NaiveDate) -> String {
    format!(
        "SELECT local_date AS date, mahalla_id, district_id, region_id, \
         count(*) AS events, \
         count(*) FILTER (WHERE kind = 'incident') AS incidents, \
         count(*) FILTER (WHERE kind = 'camera_alert') AS camera_alerts, \
         count(*) FILTER (WHERE kind = 'fraud_flag') AS fraud_flags, \
         0 AS offences, 0 AS cyber, 0 AS harm, \
         count(*) FILTER (WHERE kind = 'incident') AS victim_minor, 1 AS victim_youth, \
         1 AS victim_woman, 1 AS offender_minor, 1 AS offender_youth, 1 AS domestic, \
         1 AS offender_youth_drugs \
         FROM events WHERE local_date = DATE '{date}' \
         GROUP BY local_date, mahalla_id, district_id, region_id"
    )
}

/// `daily_reports` of `date`: a row for the nation, each region, district
/// and mahalla, and the unassigned events, with their event counts.
fn daily_reports_sql(date: NaiveDate) -> String {
    format!(
        "WITH counts AS ( \
           SELECT mahalla_id, count(*) AS n FROM events \
           WHERE local_date = DATE '{date}' GROUP BY mahalla_id \
         ), units AS ( \
           SELECT m.mahalla_id, m.district_id, m.region_id, coalesce(c.n, 0) AS n \
           FROM mahallas m LEFT JOIN counts c ON c.mahalla_id = m.mahalla_id \
         ), scopes AS ( \
           SELECT 'nation' AS scope, 'nation' AS scope_id, CAST(NULL AS VARCHAR) AS rid, \
             CAST(NULL AS VARCHAR) AS did, sum(n) AS n, count(*) AS k FROM units \
           UNION ALL SELECT 'region' AS scope, region_id AS scope_id, \
             CAST(NULL AS VARCHAR) AS rid, CAST(NULL AS VARCHAR) AS did, sum(n) AS n, \
             count(*) AS k FROM units GROUP BY region_id \
           UNION ALL SELECT 'district' AS scope, district_id AS scope_id, region_id AS rid, \
             CAST(NULL AS VARCHAR) AS did, sum(n) AS n, count(*) AS k \
             FROM units GROUP BY district_id, region_id \
           UNION ALL SELECT 'mahalla' AS scope, mahalla_id AS scope_id, region_id AS rid, \
             district_id AS did, n, 1 AS k FROM units \
           UNION ALL SELECT 'unassigned' AS scope, 'unassigned' AS scope_id, \
             CAST(NULL AS VARCHAR) AS rid, CAST(NULL AS VARCHAR) AS did, n, 0 AS k \
             FROM counts WHERE mahalla_id IS NULL \
         ) \
         SELECT DATE '{date}' AS date, scope, scope_id, scope_id AS name, rid AS region_id, \
           did AS district_id, k AS mahallas, 0 AS crime_free_mahallas, n AS events, \
           0 AS incidents, 0 AS camera_alerts, 0 AS fraud_flags, 0 AS offences, 0 AS cyber, \
           CAST(NULL AS DOUBLE) AS cyber_share, 0 AS harm, 0.0 AS baseline7, \
           7 AS baseline7_days, 0.0 AS z7, 0.0 AS baseline28, 28 AS baseline28_days, 0.0 AS z28, \
           1.0 AS dispersion, 0.0 AS camera_alerts_baseline7, 0.0 AS camera_alerts_z7, \
           0 AS escalations_opened, 0 AS escalations_closed, \
           CAST(NULL AS BIGINT) AS crime_free_days, CAST(NULL AS BIGINT) AS crime_free_days_before, \
           CAST(NULL AS DATE) AS last_offence, CAST(NULL AS DATE) AS records_since, \
           0 AS crime_free_30d, 0 AS crime_free_90d, 0 AS crime_free_180d, \
           0 AS difficult_mahallas, 0 AS newly_difficult, 0 AS recovered_mahallas, \
           n AS place_offences, 0 AS repeat_cells, 0 AS repeat_offences, \
           CAST(NULL AS BIGINT) AS near_repeat_offences, CAST(NULL AS DOUBLE) AS near_repeat_share, \
           CAST(NULL AS BIGINT) AS near_repeat_pairs, CAST(NULL AS DOUBLE) AS near_repeat_expected, \
           CAST(NULL AS DOUBLE) AS near_repeat_ratio, CAST(NULL AS DOUBLE) AS near_repeat_excess \
         FROM scopes"
    )
}

/// `daily_report_focus_groups` of `date`, from the stored `daily_reports`:
/// one group per scope, its count the scope's events.
fn focus_groups_sql(date: NaiveDate) -> String {
    format!(
        "SELECT date, scope, scope_id, 'victim_minor' AS focus_group, events AS offences, \
           1.0 AS baseline7, 7 AS baseline7_days, 0.5 AS z7, 1.0 AS baseline28, \
           28 AS baseline28_days, 0.5 AS z28 \
         FROM daily_reports WHERE date = DATE '{date}'"
    )
}

/// `daily_report_difficult` of `date`: every mahalla, difficult.
fn difficult_sql(date: NaiveDate) -> String {
    format!(
        "SELECT DATE '{date}' AS date, 'mahalla' AS scope, mahalla_id AS scope_id, name, \
           region_id, district_id, inspector, 'difficult' AS status, true AS newly, \
           DATE '{date}' AS difficult_since, 3 AS difficult_days, 3 AS escalation_days, \
           0 AS score_days, 0 AS days_scored, 5 AS offences_7d, 1 AS offences_prev_7d, \
           'rising' AS trend, 1 AS open_escalations, 'high' AS open_level \
         FROM mahallas"
    )
}

/// `daily_report_repeat_cells` of `date`: per scope of the stored
/// `daily_reports`, one repeat cell for each mahalla of it with events (so
/// the nation's list names mahallas of every district).
fn repeat_cells_sql(date: NaiveDate) -> String {
    format!(
        "SELECT date, scope, scope_id, \
           row_number() OVER (PARTITION BY scope, scope_id ORDER BY mahalla_id) AS rank, \
           cell, 'theft' AS category, mahalla_id, 2 AS offences, first_offence, last_offence \
         FROM ( \
           SELECT r.date, r.scope, r.scope_id, e.mahalla_id, min(e.cell) AS cell, \
             min(e.occurred_at) AS first_offence, max(e.occurred_at) AS last_offence \
           FROM daily_reports r JOIN events e ON e.mahalla_id IS NOT NULL AND ( \
             r.scope = 'nation' OR (r.scope = 'region' AND e.region_id = r.scope_id) \
             OR (r.scope = 'district' AND e.district_id = r.scope_id) \
             OR (r.scope = 'mahalla' AND e.mahalla_id = r.scope_id)) \
           WHERE r.date = DATE '{date}' AND r.scope <> 'unassigned' \
           GROUP BY r.date, r.scope, r.scope_id, e.mahalla_id \
         ) c"
    )
}

/// The tables keyed by mahalla.
const MAHALLA_TABLES: [&str; 7] = [
    "events",
    "incidents",
    "camera_alerts",
    "fraud_flags",
    "escalations",
    "mahalla_days",
    "mahallas",
];

#[tokio::test]
async fn a_district_reads_its_own_rows() {
    let s = setup().await;
    let list = sql_list(&s.inside);
    for table in MAHALLA_TABLES {
        let all = count(&s.national, &format!("SELECT count(*) FROM {table}")).await;
        let want = count(
            &s.national,
            &format!("SELECT count(*) FROM {table} WHERE mahalla_id IN ({list})"),
        )
        .await;
        let got = count(&s.scoped, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(got, want, "{table}");
        assert!(got > 0 && got < all, "{table}: {got} of {all}");
        let want = count(
            &s.national,
            &format!(
                "SELECT count(*) FROM {table} WHERE district_id = '{}'",
                s.district
            ),
        )
        .await;
        assert_eq!(got, want, "{table} by district");
        // Per mahalla too.
        let by = |where_: &str| {
            format!(
                "SELECT mahalla_id, count(*) AS n FROM {table} {where_} \
                 GROUP BY mahalla_id ORDER BY mahalla_id"
            )
        };
        assert_eq!(
            rows(&s.scoped, &by("")).await,
            rows(&s.national, &by(&format!("WHERE mahalla_id IN ({list})"))).await,
            "{table} by mahalla"
        );
    }
    // A time window, and a mahalla of the scope: the same rows as the
    // national engine's.
    for filter in [
        "local_date = DATE '2026-05-02'".to_owned(),
        format!("mahalla_id = '{}'", s.inside[0]),
        format!(
            "mahalla_id = '{}' AND local_date >= DATE '2026-05-02'",
            s.inside[0]
        ),
    ] {
        let want = count(
            &s.national,
            &format!("SELECT count(*) FROM events WHERE {filter} AND mahalla_id IN ({list})"),
        )
        .await;
        let got = count(
            &s.scoped,
            &format!("SELECT count(*) FROM events WHERE {filter}"),
        )
        .await;
        assert_eq!(got, want, "{filter}");
        assert!(got > 0, "{filter}");
    }
    // The original engine still reads everything, through `query` and its
    // context alike.
    assert_eq!(
        count(&s.national, "SELECT count(*) FROM events").await,
        fixture().events.len() as i64
    );
    let batches = s
        .national
        .context()
        .sql("SELECT count(*) FROM events")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        fixture().events.len() as i64
    );
}

#[tokio::test]
async fn the_scan_reads_only_the_scope() {
    let s = setup().await;
    let plan = rows(&s.scoped, "EXPLAIN SELECT count(*) FROM events").await;
    let text = format!("{plan:?}");
    assert!(text.contains("ScopedExec: table=events"), "{text}");
    assert!(
        text.contains(&format!("rows=mahalla_id in {} mahallas", s.inside.len())),
        "{text}"
    );
    // The scope becomes the cells that cover its mahallas.
    assert!(text.contains("from mahalla cover"), "{text}");
}

#[tokio::test]
async fn queries_cannot_leave_the_scope() {
    let s = setup().await;
    let inside: BTreeSet<&str> = s.inside.iter().map(String::as_str).collect();
    let total = count(&s.scoped, "SELECT count(*) FROM events").await;
    let outside = &s.outside;
    let zero = [
        format!("SELECT count(*) FROM events WHERE mahalla_id = '{outside}'"),
        format!("SELECT count(*) FROM incidents WHERE mahalla_id IN ('{outside}')"),
        "SELECT count(*) FROM events WHERE mahalla_id IS NULL".to_owned(),
        format!(
            "SELECT count(*) FROM events WHERE district_id <> '{}'",
            s.district
        ),
        format!(
            "SELECT count(*) FROM events WHERE id IN \
             (SELECT id FROM events WHERE mahalla_id = '{outside}')"
        ),
        format!("SELECT count(*) FROM (SELECT * FROM events) e WHERE e.mahalla_id = '{outside}'"),
        format!(
            "SELECT count(*) FROM mahallas m JOIN events e ON e.district_id = m.district_id \
             WHERE m.mahalla_id = '{outside}'"
        ),
        format!("SELECT count(*) FROM escalations WHERE mahalla_id = '{outside}'"),
        format!("SELECT count(*) FROM mahalla_days WHERE mahalla_id = '{outside}'"),
        "SELECT count(*) FROM mahalla_days WHERE mahalla_id IS NULL".to_owned(),
        format!("SELECT count(*) FROM mahallas WHERE mahalla_id = '{outside}'"),
        "SELECT count(*) FROM daily_reports WHERE scope IN ('nation', 'unassigned')".to_owned(),
        format!("SELECT count(*) FROM daily_reports WHERE scope_id = '{outside}'"),
        "SELECT count(*) FROM daily_report_focus_groups WHERE scope IN ('nation', 'unassigned')"
            .to_owned(),
        format!("SELECT count(*) FROM daily_report_focus_groups WHERE scope_id = '{outside}'"),
        "SELECT count(*) FROM daily_report_repeat_cells WHERE scope IN ('nation', 'region')"
            .to_owned(),
        format!("SELECT count(*) FROM daily_report_repeat_cells WHERE scope_id = '{outside}'"),
        format!("SELECT count(*) FROM daily_report_difficult WHERE scope_id = '{outside}'"),
        format!(
            "SELECT count(*) FROM daily_report_difficult WHERE district_id <> '{}'",
            s.district
        ),
        format!("SELECT count(*) FROM posbon.public.events WHERE mahalla_id = '{outside}'"),
    ];
    for sql in &zero {
        assert_eq!(count(&s.scoped, sql).await, 0, "{sql}");
    }
    // The same queries do find rows nationally.
    for sql in &zero {
        assert!(count(&s.national, sql).await > 0, "national: {sql}");
    }
    for sql in [
        format!("SELECT count(*) FROM events WHERE mahalla_id = '{outside}' OR 1 = 1"),
        format!("SELECT count(*) FROM events WHERE mahalla_id = '{outside}' OR true"),
        "SELECT count(*) FROM events WHERE 1 = 1 OR mahalla_id IS NULL".to_owned(),
    ] {
        assert_eq!(count(&s.scoped, &sql).await, total, "{sql}");
    }
    // The cell of an event outside: nothing there.
    let cells = strings(
        &s.national,
        &format!("SELECT CAST(cell AS VARCHAR) FROM events WHERE mahalla_id = '{outside}' LIMIT 3"),
    )
    .await;
    for cell in cells.into_iter().flatten() {
        let sql = format!("SELECT count(*) FROM events WHERE cell = {cell}");
        assert!(count(&s.national, &sql).await > 0);
        assert_eq!(count(&s.scoped, &sql).await, 0, "{sql}");
    }
    // Whatever is selected, unions, joins and limits included, only the
    // scope's mahallas come back.
    for sql in [
        "SELECT DISTINCT mahalla_id FROM events".to_owned(),
        "SELECT mahalla_id FROM events LIMIT 10".to_owned(),
        "SELECT DISTINCT mahalla_id FROM ( \
           SELECT mahalla_id FROM events UNION ALL SELECT mahalla_id FROM incidents \
           UNION ALL SELECT mahalla_id FROM camera_alerts \
           UNION ALL SELECT mahalla_id FROM fraud_flags \
           UNION ALL SELECT mahalla_id FROM escalations \
           UNION ALL SELECT mahalla_id FROM mahalla_days \
           UNION SELECT mahalla_id FROM mahallas)"
            .to_owned(),
        "SELECT m.mahalla_id FROM mahallas m LEFT JOIN events e \
         ON e.mahalla_id = m.mahalla_id GROUP BY m.mahalla_id"
            .to_owned(),
        "SELECT e.mahalla_id FROM events e FULL OUTER JOIN mahallas m \
         ON e.district_id = m.district_id GROUP BY e.mahalla_id"
            .to_owned(),
        "SELECT m.mahalla_id FROM mahallas m WHERE EXISTS \
         (SELECT 1 FROM escalations x WHERE x.mahalla_id = m.mahalla_id)"
            .to_owned(),
        "SELECT scope_id FROM daily_reports WHERE scope = 'mahalla'".to_owned(),
    ] {
        let got = strings(&s.scoped, &sql).await;
        assert!(!got.is_empty(), "{sql}");
        for id in got {
            let id = id.expect("no NULL mahalla");
            assert!(inside.contains(id.as_str()), "{sql}: {id}");
        }
    }
    for sql in [
        "SELECT DISTINCT district_id FROM events",
        "SELECT DISTINCT district_id FROM incidents UNION SELECT district_id FROM escalations",
        "SELECT DISTINCT district_id FROM mahallas",
    ] {
        assert_eq!(
            strings(&s.scoped, sql).await,
            vec![Some(s.district.clone())],
            "{sql}"
        );
    }
    // The report: the scope's mahallas and its district (all of whose
    // mahallas are in scope), each day; a region only if this district is
    // all of it; never the nation nor the unassigned events.
    let fx = fixture();
    let region = fx
        .registry
        .mahalla_by_id(&s.inside[0])
        .map(|(_, m)| m.region_id.clone())
        .expect("region");
    let region_whole = fx
        .registry
        .mahallas()
        .iter()
        .filter(|m| m.region_id == region)
        .all(|m| m.district_id == s.district);
    let got = rows(
        &s.scoped,
        "SELECT scope, count(*) FROM daily_reports GROUP BY scope ORDER BY scope",
    )
    .await;
    let mut want = vec![
        vec![Value::from("district"), Value::from(3)],
        vec![Value::from("mahalla"), Value::from(3 * s.inside.len())],
    ];
    if region_whole {
        want.push(vec![Value::from("region"), Value::from(3)]);
    }
    assert_eq!(got, want);
    // The repeat cells and the difficult mahallas follow the same scopes:
    // a repeat cell of the nation's or a region's list is not the caller's
    // even when its mahalla is (its rank is the nation's).
    let list = sql_list(&s.inside);
    let of = |scope: &str, filter: &str| {
        format!(
            "SELECT count(*) FROM daily_report_repeat_cells WHERE scope = '{scope}' AND {filter}"
        )
    };
    assert!(
        count(
            &s.national,
            &of("nation", &format!("mahalla_id IN ({list})"))
        )
        .await
            > 0
    );
    for scope in ["nation", "region"] {
        if scope == "region" && region_whole {
            continue;
        }
        assert_eq!(count(&s.scoped, &of(scope, "true")).await, 0, "{scope}");
    }
    let district_rows = of("district", &format!("scope_id = '{}'", s.district));
    assert_eq!(
        count(&s.scoped, &of("district", "true")).await,
        count(&s.national, &district_rows).await
    );
    let mahalla_rows = of("mahalla", &format!("scope_id IN ({list})"));
    assert_eq!(
        count(&s.scoped, &of("mahalla", "true")).await,
        count(&s.national, &mahalla_rows).await
    );
    assert_eq!(
        count(&s.scoped, "SELECT count(*) FROM daily_report_difficult").await,
        3 * s.inside.len() as i64
    );
    assert_eq!(
        strings(
            &s.scoped,
            "SELECT DISTINCT scope_id FROM daily_reports WHERE scope = 'district'"
        )
        .await,
        vec![Some(s.district.clone())]
    );
    // A caller with one mahalla of the district sees its row, not the
    // district's (a total over mahallas outside its scope).
    let one = SqlAccess::for_mahallas(&fx.registry, [s.inside[0].clone()], true);
    let one = s.national.for_access(&one).await.expect("engine");
    assert_eq!(
        rows(&one, "SELECT DISTINCT scope, scope_id FROM daily_reports").await,
        vec![vec![
            Value::from("mahalla"),
            Value::from(s.inside[0].clone())
        ]]
    );
    // The catalog lists the same tables as ever.
    assert_eq!(
        count(
            &s.scoped,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .await,
        posbon_sql::TABLES.len() as i64
    );
    // A caller with no mahalla sees nothing.
    let none = SqlAccess {
        mahallas: Some(Arc::new(HashSet::new())),
        ..SqlAccess::default()
    };
    let none = s.national.for_access(&none).await.expect("engine");
    for table in MAHALLA_TABLES.iter().chain(&["daily_reports"]) {
        assert_eq!(
            count(&none, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn explain_analyze_shows_no_rows_outside() {
    let s = setup().await;
    let indent = |line: &str| line.len() - line.trim_start().len();
    for table in MAHALLA_TABLES.iter().chain(&["daily_reports"]) {
        let sql = format!("EXPLAIN ANALYZE SELECT * FROM {table} WHERE true");
        let plan = rows(&s.scoped, &sql).await;
        let text = plan[0][1].as_str().expect("plan").to_owned();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with("ScopedExec"))
            .unwrap_or_else(|| panic!("{sql}: {text}"));
        // The wrapper is a leaf: nothing below it shows, metrics included.
        if let Some(next) = lines.get(at + 1) {
            assert!(indent(next) <= indent(lines[at]), "{sql}: {text}");
        }
        assert!(lines[at].contains("metrics=[output_rows="), "{sql}: {text}");
    }
    // Small tables give exact counts: the scope's mahallas, not the city's.
    let text = format!(
        "{:?}",
        rows(&s.scoped, "EXPLAIN ANALYZE SELECT * FROM mahallas").await
    );
    assert!(
        text.contains(&format!("metrics=[output_rows={}", s.inside.len())),
        "{text}"
    );
    let all = fixture().registry.mahallas().len();
    assert!(!text.contains(&format!("output_rows={all}")), "{text}");
}

/// Queries over the sensitive columns.
const SENSITIVE: [(&str, &str); 6] = [
    (
        "incidents",
        "description, attributes, victim_minor, victim_youth, victim_woman, \
         offender_minor, offender_youth, domestic",
    ),
    ("fraud_flags", "account_ref, attributes"),
    ("camera_alerts", "snapshot_uri, attributes"),
    ("events", "attributes"),
    (
        "mahalla_days",
        "victim_minor, victim_youth, victim_woman, offender_minor, offender_youth, domestic, \
         offender_youth_drugs",
    ),
    (
        "daily_report_focus_groups",
        "offences, baseline7, baseline7_days, z7, baseline28, baseline28_days, z28",
    ),
];

#[tokio::test]
async fn masked_columns_read_as_null_and_cannot_be_probed() {
    let s = setup().await;
    let fx = fixture();
    let plain = &s.national;
    // The values are there for who may read them.
    assert!(count(plain, "SELECT count(*) FROM incidents WHERE victim_minor").await > 0);
    assert!(count(plain, "SELECT count(description) FROM incidents").await > 0);
    assert!(count(plain, "SELECT count(account_ref) FROM fraud_flags").await > 0);
    assert!(count(plain, "SELECT count(attributes) FROM events").await > 0);
    assert!(
        count(
            &s.scoped,
            "SELECT count(*) FROM incidents WHERE victim_minor"
        )
        .await
            > 0
    );
    let account = strings(plain, "SELECT account_ref FROM fraud_flags LIMIT 1").await[0]
        .clone()
        .expect("account");
    let description = strings(
        plain,
        "SELECT description FROM incidents WHERE description IS NOT NULL LIMIT 1",
    )
    .await[0]
        .clone()
        .expect("description");

    let national = plain
        .for_access(&SqlAccess::national(false))
        .await
        .expect("engine");
    let scoped = plain
        .for_access(&SqlAccess::for_mahallas(
            &fx.registry,
            s.inside.clone(),
            false,
        ))
        .await
        .expect("engine");
    for (name, engine) in [("national", &national), ("scoped", &scoped)] {
        for (table, columns) in SENSITIVE {
            // Every row, every value NULL.
            let want = count(engine, &format!("SELECT count(*) FROM {table}")).await;
            let out = engine
                .query(&format!("SELECT {columns} FROM {table}"))
                .await
                .expect("query");
            assert_eq!(out.rows as i64, want, "{name} {table}");
            for batch in &out.batches {
                for (i, column) in batch.columns().iter().enumerate() {
                    assert_eq!(
                        column.null_count(),
                        column.len(),
                        "{name} {table}.{}",
                        batch.schema().field(i).name()
                    );
                }
            }
            // The types are the table's; the masked columns may be NULL.
            let full = plain
                .query(&format!("SELECT {columns} FROM {table} LIMIT 0"))
                .await
                .expect("query");
            for (a, b) in out.schema.fields().iter().zip(full.schema.fields()) {
                assert_eq!(a.data_type(), b.data_type(), "{table}.{}", a.name());
                assert!(a.is_nullable(), "{table}.{}", a.name());
            }
            for column in columns.split(", ") {
                for sql in [
                    format!("SELECT count({column}) FROM {table}"),
                    format!("SELECT count(*) FROM {table} WHERE {column} IS NOT NULL"),
                    format!("SELECT count(DISTINCT {column}) FROM {table}"),
                    format!(
                        "SELECT count(*) FROM {table} a JOIN {table} b ON a.{column} = b.{column}"
                    ),
                ] {
                    assert_eq!(count(engine, &sql).await, 0, "{name}: {sql}");
                }
                assert_eq!(
                    count(
                        engine,
                        &format!("SELECT count(*) FROM {table} WHERE {column} IS NULL")
                    )
                    .await,
                    want,
                    "{name} {table}.{column}"
                );
            }
        }
        for sql in [
            "SELECT count(*) FROM incidents WHERE victim_minor".to_owned(),
            "SELECT count(*) FROM incidents WHERE NOT victim_minor".to_owned(),
            "SELECT count(*) FROM incidents WHERE victim_minor = true OR domestic".to_owned(),
            "SELECT count(*) FROM incidents WHERE coalesce(victim_minor, true) AND \
             coalesce(offender_youth, false)"
                .to_owned(),
            "SELECT count(*) FROM incidents WHERE description LIKE '%'".to_owned(),
            format!(
                "SELECT count(*) FROM incidents WHERE description = '{}'",
                description.replace('\'', "''")
            ),
            format!(
                "SELECT count(*) FROM fraud_flags WHERE account_ref = '{}'",
                account.replace('\'', "''")
            ),
            "SELECT count(*) FROM fraud_flags WHERE length(account_ref) > 0".to_owned(),
            "SELECT count(*) FROM events WHERE attributes LIKE '%unit%'".to_owned(),
            "SELECT count(*) FROM camera_alerts WHERE snapshot_uri IS NOT NULL".to_owned(),
            "SELECT count(*) FROM incidents i WHERE EXISTS \
             (SELECT 1 FROM incidents j WHERE j.id = i.id AND j.victim_minor)"
                .to_owned(),
            "SELECT count(*) FROM (SELECT CASE WHEN victim_minor THEN 1 END AS x FROM incidents) \
             WHERE x = 1"
                .to_owned(),
        ] {
            assert_eq!(count(engine, &sql).await, 0, "{name}: {sql}");
        }
        assert_eq!(
            rows(
                engine,
                "SELECT min(description), max(account_ref) FROM incidents, \
                 (SELECT account_ref FROM fraud_flags LIMIT 1)"
            )
            .await,
            vec![vec![Value::Null, Value::Null]],
            "{name}"
        );
        // The other columns are read as ever.
        assert!(count(engine, "SELECT count(category) FROM incidents").await > 0);
    }
    // Nationally, only the columns change.
    assert_eq!(
        rows(
            &national,
            "SELECT id, category, severity, lat FROM incidents ORDER BY id"
        )
        .await,
        rows(
            plain,
            "SELECT id, category, severity, lat FROM incidents ORDER BY id"
        )
        .await
    );
}

/// A table with no geographic key.
fn audit_table() -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("who", DataType::Utf8, false),
        Field::new("what", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["admin", "analyst"])),
            Arc::new(StringArray::from(vec!["login", "sql"])),
        ],
    )
    .expect("batch");
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table"))
}

#[tokio::test]
async fn a_table_without_a_place_is_refused_to_a_scoped_caller() {
    let s = setup().await;
    let fx = fixture();
    let with_audit = s
        .national
        .with_table("audit", audit_table())
        .await
        .expect("engine");
    let mut access = SqlAccess::for_mahallas(&fx.registry, s.inside.clone(), true);
    // Not one of the caller's tables: unknown.
    let engine = with_audit.for_access(&access).await.expect("engine");
    let err = engine
        .query("SELECT count(*) FROM audit")
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), SqlErrorKind::InvalidQuery, "{err}");
    // One of them: refused, with a clear message, whatever the query.
    access.extra_tables.insert("audit".to_owned());
    let engine = with_audit.for_access(&access).await.expect("engine");
    for sql in [
        "SELECT count(*) FROM audit",
        "SELECT * FROM audit",
        "SELECT who FROM audit WHERE what = 'login'",
        "SELECT e.id FROM events e JOIN audit a ON a.who = e.id",
        "EXPLAIN ANALYZE SELECT * FROM audit",
    ] {
        let err = engine.query(sql).await.expect_err(sql);
        assert_eq!(err.kind(), SqlErrorKind::Forbidden, "{sql}: {err}");
        assert_eq!(
            err.message(),
            "table audit is not available to a caller limited to part of the country",
            "{sql}"
        );
    }
    // EXPLAIN shows the plan's error in place of the physical plan.
    let text = format!("{:?}", rows(&engine, "EXPLAIN SELECT * FROM audit").await);
    assert!(
        text.contains("table audit is not available to a caller limited to part of the country"),
        "{text}"
    );
    // The caller's other tables still answer.
    assert!(count(&engine, "SELECT count(*) FROM events").await > 0);
    // A national caller reads it.
    let mut national = SqlAccess::national(false);
    national.extra_tables.insert("audit".to_owned());
    let engine = with_audit.for_access(&national).await.expect("engine");
    assert_eq!(count(&engine, "SELECT count(*) FROM audit").await, 2);
}

#[tokio::test]
async fn a_table_added_to_a_scoped_engine_is_scoped_too() {
    let s = setup().await;
    // `events` held in memory, as the reporter does.
    let out = s
        .national
        .query("SELECT * FROM events")
        .await
        .expect("query");
    let day = MemTable::try_new(Arc::clone(&out.schema), vec![out.batches]).expect("table");
    let engine = s
        .scoped
        .with_table("events", Arc::new(day))
        .await
        .expect("engine");
    assert_eq!(
        count(&engine, "SELECT count(*) FROM events").await,
        count(&s.scoped, "SELECT count(*) FROM events").await
    );
    assert_eq!(
        count(
            &engine,
            &format!(
                "SELECT count(*) FROM events WHERE mahalla_id = '{}'",
                s.outside
            )
        )
        .await,
        0
    );
    // A table of another shape: scoped by its `mahalla_id`, whatever its
    // type; its unassigned rows are outside.
    let schema = Arc::new(Schema::new(vec![
        Field::new("visit", DataType::Utf8, false),
        Field::new(
            "mahalla_id",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            true,
        ),
    ]));
    let ids: DictionaryArray<Int8Type> = vec![
        Some(s.inside[0].as_str()),
        Some(s.outside.as_str()),
        None,
        Some(s.inside[1].as_str()),
    ]
    .into_iter()
    .collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
            Arc::new(ids),
        ],
    )
    .expect("batch");
    let visits = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    let engine = s
        .scoped
        .with_table("visits", Arc::new(visits))
        .await
        .expect("engine");
    assert_eq!(
        strings(&engine, "SELECT visit FROM visits ORDER BY visit").await,
        vec![Some("a".to_owned()), Some("d".to_owned())]
    );
}

#[tokio::test]
async fn full_access_is_the_plain_engine() {
    let s = setup().await;
    let full = s
        .national
        .for_access(&SqlAccess::national(true))
        .await
        .expect("engine");
    for sql in [
        "SELECT * FROM events ORDER BY id",
        "SELECT * FROM incidents ORDER BY id",
        "SELECT * FROM camera_alerts ORDER BY id",
        "SELECT * FROM fraud_flags ORDER BY id",
        "SELECT * FROM mahallas ORDER BY mahalla_id",
        "SELECT * FROM escalations ORDER BY id",
        "SELECT * FROM mahalla_days ORDER BY date, mahalla_id",
        "SELECT * FROM daily_reports ORDER BY date, scope, scope_id",
        "SELECT count(*) FROM incidents WHERE victim_minor AND description IS NOT NULL",
        "SELECT mahalla_id, count(*) FROM events GROUP BY mahalla_id ORDER BY mahalla_id",
        "EXPLAIN SELECT count(*) FROM events WHERE local_date = DATE '2026-05-02'",
    ] {
        let a = full.query(sql).await.expect(sql);
        let b = s.national.query(sql).await.expect(sql);
        assert_eq!(a.schema, b.schema, "{sql}");
        let (mut a, mut b) = (
            output::to_json(&a).expect("json"),
            output::to_json(&b).expect("json"),
        );
        for v in [&mut a, &mut b] {
            v["elapsed_ms"] = Value::Null;
        }
        assert_eq!(a, b, "{sql}");
    }
}

#[tokio::test]
async fn an_escalation_shows_what_fired_its_rule() {
    let s = setup().await;
    let got = rows(
        &s.national,
        "SELECT measure, measure_value, measure_threshold, measure_z, measure_min_z \
         FROM escalations ORDER BY measure NULLS LAST, id LIMIT 2",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![
                Value::from("count"),
                Value::from(5.0),
                Value::from(3.0),
                Value::from(3.5),
                Value::from(3.0)
            ],
            vec![Value::Null; 5],
        ]
    );
}
