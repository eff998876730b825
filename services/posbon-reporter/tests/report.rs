//! The daily report against the simulated city: every figure checked
//! against a computation in Rust over the same events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use posbon_i18n::Lang;
use posbon_model::{EnrichedEvent, EscalationRecord, EscalationStatus, Event, RiskLevel};
use posbon_reporter::reporter::{day_window, report_limits};
use posbon_reporter::{DailyReport, ReportError, Reporter, Scope, ScopeKind, render};
use posbon_sql::StoredTable;
use posbon_store::{DocumentStoreExt, EscalationStoreExt, EventStoreExt, Store};
use tower::ServiceExt;

mod common;
use common::{build, start, store_of, tashkent};

const DAYS: i64 = 10;

fn local_day(e: &EnrichedEvent) -> NaiveDate {
    e.event
        .occurred_at()
        .with_timezone(&tashkent())
        .date_naive()
}

fn is_offence(e: &EnrichedEvent) -> bool {
    matches!(e.event, Event::Incident(_) | Event::FraudFlag(_))
}

fn is_cyber(e: &EnrichedEvent) -> bool {
    match &e.event {
        Event::FraudFlag(_) => true,
        Event::Incident(i) => matches!(i.category.as_str(), "fraud" | "cybercrime"),
        Event::CameraAlert(_) => false,
    }
}

/// The harm points of the report's SQL, written again in Rust.
fn harm(e: &EnrichedEvent) -> i64 {
    match &e.event {
        Event::Incident(i) => {
            let w = match i.category.as_str() {
                "homicide" => 10,
                "robbery" | "drug_trafficking" => 5,
                "assault" | "weapons" | "domestic_violence" => 4,
                "theft" | "fraud" | "cybercrime" => 2,
                _ => 1,
            };
            i64::from(i.severity) * w
        }
        Event::CameraAlert(c) => {
            let w = match c.detection.as_str() {
                "weapon" => 6.0,
                "drug_handoff" | "fight" => 4.0,
                "intrusion" | "plate_match" => 2.0,
                _ => 1.0,
            };
            (c.confidence * w).round() as i64
        }
        Event::FraudFlag(f) => {
            let w = match f.scheme.as_str() {
                "account_takeover" | "investment_scam" => 3,
                "card_fraud" | "phishing" | "scam_call" => 2,
                _ => 1,
            };
            let a = if f.amount_uzs < 1e6 {
                1
            } else if f.amount_uzs < 1e7 {
                2
            } else if f.amount_uzs < 1e8 {
                3
            } else {
                4
            };
            w * a
        }
    }
}

fn z(observed: i64, expected: f64) -> f64 {
    2.0 * ((observed as f64).sqrt() - expected.sqrt())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn escalation(
    id: u64,
    mahalla: &str,
    opened: DateTime<Utc>,
    closed: Option<DateTime<Utc>>,
) -> EscalationRecord {
    common::escalation(
        id,
        mahalla,
        RiskLevel::High,
        opened,
        closed.map(|t| (t, EscalationStatus::Resolved)),
    )
}

#[tokio::test]
async fn the_report_adds_up() {
    let fx = build(start(), DAYS);
    let store = store_of(&fx.events).await;
    let date = NaiveDate::from_ymd_opt(2026, 5, 9).expect("date");
    let (day_start, _) = day_window(date).expect("window");
    let mahallas: Vec<&str> = fx
        .registry
        .mahallas()
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    // Escalations: two opened on the day in the first mahalla, one of them
    // closed on the day; one opened the day before, closed on the day.
    let first = mahallas[0];
    store
        .put_escalation_batch(
            &[
                escalation(
                    1,
                    first,
                    day_start + TimeDelta::hours(2),
                    Some(day_start + TimeDelta::hours(5)),
                ),
                escalation(2, first, day_start + TimeDelta::hours(3), None),
                escalation(
                    3,
                    mahallas[1],
                    day_start - TimeDelta::hours(3),
                    Some(day_start + TimeDelta::hours(1)),
                ),
            ],
            &[],
        )
        .await
        .expect("escalations");

    let reporter =
        Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let report = reporter.generate(date).await.expect("report");
    assert_eq!(report.date, date);
    assert_eq!(report.time_zone, "Asia/Tashkent");

    let today: Vec<&EnrichedEvent> = fx.events.iter().filter(|e| local_day(e) == date).collect();
    assert!(today.len() > 500, "{} events", today.len());
    let nation = report.row(&Scope::nation()).expect("nation");
    let offences = today.iter().filter(|e| is_offence(e)).count() as i64;
    let cyber = today.iter().filter(|e| is_cyber(e)).count() as i64;
    assert_eq!(nation.events, today.len() as i64);
    assert_eq!(nation.offences, offences);
    assert_eq!(nation.cyber, cyber);
    assert_eq!(nation.incidents + nation.fraud_flags, offences);
    assert!(close(
        nation.cyber_share.expect("share"),
        cyber as f64 / offences as f64
    ));
    assert_eq!(nation.harm, today.iter().map(|e| harm(e)).sum::<i64>());
    assert_eq!(nation.mahallas, mahallas.len() as i64);

    // Baselines: the days before with data (the data begins on May 1st,
    // eight days before), their offences per day (no weekday adjustment
    // with only eight days; the 1/2 is the prior of sql/report_scopes.sql).
    let before = |days: i64| {
        let from = date - TimeDelta::days(days);
        let n = fx
            .events
            .iter()
            .filter(|e| is_offence(e) && local_day(e) >= from && local_day(e) < date)
            .count() as f64;
        let covered = (days.min(8)) as f64;
        (n + 0.5) / covered
    };
    assert_eq!(nation.baseline7_days, Some(7));
    assert_eq!(nation.baseline28_days, Some(8));
    assert!(close(nation.baseline7.expect("baseline7"), before(7)));
    assert!(close(nation.baseline28.expect("baseline28"), before(28)));
    let phi = nation.dispersion.expect("dispersion");
    assert!(phi >= 1.0, "{phi}");
    assert!(close(
        nation.z7.expect("z7"),
        z(offences, before(7)) / (phi * (1.0 + 1.0 / 7.0)).sqrt()
    ));
    // 8 of 28 days: not enough history for a 28-day z.
    assert_eq!(nation.z28, None);
    assert!(before(7) > 0.0);

    // Every mahalla has a row; crime-free ones had no offence.
    let mut per_mahalla: BTreeMap<&str, i64> = BTreeMap::new();
    for e in today.iter().filter(|e| is_offence(e)) {
        if let Some(m) = e.mahalla_id.as_deref() {
            *per_mahalla.entry(m).or_default() += 1;
        }
    }
    let rows: BTreeMap<&str, _> = report
        .scopes
        .iter()
        .filter(|r| r.scope == ScopeKind::Mahalla)
        .map(|r| (r.scope_id.as_str(), r))
        .collect();
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), {
        let mut m = mahallas.clone();
        m.sort_unstable();
        m
    });
    let crime_free = mahallas
        .iter()
        .filter(|m| !per_mahalla.contains_key(*m))
        .count() as i64;
    assert!(crime_free > 0, "some mahallas are quiet");
    assert_eq!(nation.crime_free_mahallas, crime_free);
    for (id, row) in &rows {
        assert_eq!(
            row.offences,
            per_mahalla.get(id).copied().unwrap_or(0),
            "{id}"
        );
        assert_eq!(row.crime_free_mahallas, i64::from(row.offences == 0));
        assert!(row.district_id.is_some() && row.region_id.is_some());
    }

    // Parts add up to the whole; unassigned events count in the nation.
    let unassigned = report
        .row(&"unassigned".parse().expect("scope"))
        .expect("unassigned row");
    assert_eq!(
        unassigned.events,
        today.iter().filter(|e| e.mahalla_id.is_none()).count() as i64
    );
    assert!(unassigned.events > 0);
    let sum = |kind: ScopeKind| -> i64 {
        report
            .scopes
            .iter()
            .filter(|r| r.scope == kind)
            .map(|r| r.events)
            .sum()
    };
    assert_eq!(sum(ScopeKind::Region) + unassigned.events, nation.events);
    assert_eq!(sum(ScopeKind::District), sum(ScopeKind::Region));
    assert_eq!(sum(ScopeKind::Mahalla), sum(ScopeKind::District));

    // Escalations opened and closed on the day.
    assert_eq!(nation.escalations_opened, 2);
    assert_eq!(nation.escalations_closed, 2);
    assert_eq!(rows[first].escalations_opened, 2);
    assert_eq!(rows[first].escalations_closed, 1);
    assert_eq!(rows[mahallas[1]].escalations_closed, 1);

    // Categories of the nation.
    let mut want: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for e in &today {
        let category = match &e.event {
            Event::Incident(i) => i.category.as_str(),
            Event::CameraAlert(c) => c.detection.as_str(),
            Event::FraudFlag(f) => f.scheme.as_str(),
        };
        let entry = want
            .entry((e.event.kind().to_string(), category.to_owned()))
            .or_default();
        entry.0 += 1;
        entry.1 += harm(e);
    }
    let got: BTreeMap<(String, String), (i64, i64)> = report
        .categories
        .iter()
        .filter(|c| c.scope == ScopeKind::Nation)
        .map(|c| ((c.kind.clone(), c.category.clone()), (c.events, c.harm)))
        .collect();
    assert_eq!(got, want);

    // The hottest cell of the nation.
    let mut cells: BTreeMap<u64, (i64, i64)> = BTreeMap::new();
    for e in &today {
        let c = cells.entry(e.cell.get()).or_default();
        c.0 += harm(e);
        c.1 += 1;
    }
    let mut ranked: Vec<(u64, (i64, i64))> = cells.into_iter().collect();
    ranked.sort_by(|a, b| {
        b.1.0
            .cmp(&a.1.0)
            .then(b.1.1.cmp(&a.1.1))
            .then(a.0.cmp(&b.0))
    });
    let hot: Vec<u64> = report
        .hot_cells
        .iter()
        .filter(|c| c.scope == ScopeKind::Nation)
        .map(|c| c.cell.get())
        .collect();
    assert_eq!(hot, ranked.iter().take(10).map(|c| c.0).collect::<Vec<_>>());
    assert!(
        report
            .hot_cells
            .iter()
            .filter(|c| c.scope == ScopeKind::Mahalla)
            .all(|c| c.rank <= 3)
    );

    // The baselines' days were computed and stored, the report's tables too.
    let days = store
        .document_keys(StoredTable::MahallaDays.kind(), "", "")
        .await
        .expect("keys");
    assert_eq!(days.len(), 29);
    let out = reporter
        .engine()
        .query("SELECT count(*) AS n FROM daily_reports WHERE date = DATE '2026-05-09' AND scope = 'mahalla'")
        .await
        .expect("query");
    let json = posbon_sql::output::to_json(&out).expect("json");
    assert_eq!(json["rows"][0][0].as_u64(), Some(mahallas.len() as u64));
}

#[tokio::test]
async fn a_rerun_gives_the_same_report() {
    let fx = build(start(), 4);
    let store = store_of(&fx.events).await;
    let reporter =
        Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let date = NaiveDate::from_ymd_opt(2026, 5, 3).expect("date");
    let first = reporter.generate(date).await.expect("report");
    let bytes = |s: Store| async move {
        let mut all = Vec::new();
        for t in StoredTable::ALL {
            all.push(s.get_document(t.kind(), "2026-05-03").await.expect("get"));
        }
        all
    };
    let stored = bytes(store.clone()).await;
    let again = reporter.generate_with(date, true).await.expect("again");
    assert_eq!(first, again);
    assert_eq!(bytes(store.clone()).await, stored, "byte for byte");
    // A fresh engine over the same events gives the same report too.
    let other = Reporter::new(
        store_of(&fx.events).await,
        Arc::clone(&fx.registry),
        report_limits(),
    )
    .expect("reporter");
    assert_eq!(other.generate(date).await.expect("report"), first);
    assert_eq!(reporter.load(date).await.expect("load"), Some(first));
}

fn views_of(report: &DailyReport) {
    let nation = report.view(&Scope::nation()).expect("nation");
    assert!(
        nation
            .parts
            .iter()
            .all(|p| matches!(p.scope, ScopeKind::Region | ScopeKind::Unassigned))
    );
    assert_eq!(
        nation.crime_free.count as i64,
        nation.summary.crime_free_mahallas
    );
    let district = report
        .scopes
        .iter()
        .find(|r| r.scope == ScopeKind::District)
        .expect("district");
    let view = report
        .view(
            &format!("district:{}", district.scope_id)
                .parse()
                .expect("scope"),
        )
        .expect("district view");
    assert!(!view.parts.is_empty());
    assert!(view.parts.iter().all(|p| p.scope == ScopeKind::Mahalla
        && p.district_id.as_deref() == Some(district.scope_id.as_str())));
    assert_eq!(
        view.parts.iter().map(|p| p.events).sum::<i64>(),
        view.summary.events
    );
    assert_eq!(
        view.crime_free.count as i64,
        view.summary.crime_free_mahallas
    );
    let e = report
        .view(&"mahalla:no-such".parse().expect("scope"))
        .expect_err("unknown");
    assert!(matches!(e, ReportError::NotFound(_)), "{e}");

    let text = render::to_text(&nation);
    assert!(
        text.starts_with(&format!(
            "Daily situation report {} (Asia/Tashkent): All mahallas",
            report.date
        )),
        "{text}"
    );
    assert!(text.contains(&format!("offences {}", nation.summary.offences)));
    assert!(text.contains(&format!("Crime-free mahallas: {}", nation.crime_free.count)));
    let csv = render::to_csv(&view);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], render::csv_columns().join(","));
    assert_eq!(lines.len(), 2 + view.parts.len());
    let html = render::to_html(&view, Lang::En);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<h2>Hottest cells</h2>"));
    assert!(!html.contains("O'") || html.contains("&#39;"));
    // Every language: its own <html lang>, headings and numbers, no
    // message left out.
    for (lang, heading, hottest) in [
        (Lang::En, "Daily situation report: ", "Hottest cells"),
        (
            Lang::Uz,
            "Kunlik vaziyat hisoboti: ",
            "Eng qaynoq katakchalar",
        ),
        (Lang::Ru, "Ежедневная сводка: ", "Самые горячие ячейки"),
    ] {
        for v in [&nation, &view] {
            let html = render::to_html(v, lang);
            let code = lang.code();
            assert!(html.contains(&format!("<html lang=\"{code}\">")), "{code}");
            assert!(html.contains(&format!("<h1>{heading}")), "{code}: {html}");
            assert!(html.contains(&format!("<h2>{hottest}</h2>")), "{code}");
            assert!(!html.contains('⟦'), "{code}: a message is missing: {html}");
            let body = html.split("</head>").nth(1).expect("body");
            assert!(
                !body.contains('{') && !body.contains('}'),
                "{code}: a placeholder was left: {body}"
            );
        }
    }
    let ru = render::to_html(&nation, Lang::Ru);
    assert!(
        ru.contains(&Lang::Ru.number(nation.summary.events)),
        "numbers in Russian conventions"
    );
}

#[tokio::test]
async fn views_and_http() {
    let fx = build(start(), 3);
    let store = store_of(&fx.events).await;
    let reporter = Arc::new(
        Reporter::new(store, Arc::clone(&fx.registry), report_limits()).expect("reporter"),
    );
    let auth = posbon_auth::Auth::new(
        Arc::new(posbon_store::MemoryStore::new()),
        Arc::clone(&fx.registry),
        Default::default(),
    )
    .expect("auth");
    let (_, token) = auth
        .identities()
        .create_token("analyst", posbon_auth::Role::Analyst, vec![], None, "test")
        .await
        .expect("token");
    let app = posbon_testkit::http::as_bearer(
        posbon_reporter::http::router(Arc::clone(&reporter), None, auth.clone())
            .into_router(auth.clone()),
        &token,
    );
    let get = |uri: &str, accept: &str| {
        Request::builder()
            .uri(uri)
            .header("accept", accept)
            .body(Body::empty())
            .expect("request")
    };
    let body = |r: axum::response::Response| async move {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 24)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    };
    // Not generated yet.
    let r = app
        .clone()
        .oneshot(get("/v1/reports/daily?date=2026-05-02", "*/*"))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(body(r).await.contains("no daily report for 2026-05-02 yet"));
    for (uri, want) in [
        ("/v1/reports/daily", "date is required"),
        ("/v1/reports/daily?date=2026-13-01", "is not a date"),
        (
            "/v1/reports/daily?date=2026-05-02&scope=street:1",
            "expected nation",
        ),
        (
            "/v1/reports/daily?date=2026-05-02&format=pdf",
            "unknown format",
        ),
        (
            "/v1/reports/daily?date=2026-05-02&colour=red",
            "unknown field",
        ),
    ] {
        let r = app.clone().oneshot(get(uri, "*/*")).await.expect("call");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        let text = body(r).await;
        assert!(text.contains(want), "{uri}: {text}");
    }
    // POST generates.
    let post = Request::builder()
        .method("POST")
        .uri("/v1/reports/daily?date=2026-05-02")
        .body(Body::empty())
        .expect("request");
    let r = app.clone().oneshot(post).await.expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    let view: serde_json::Value = serde_json::from_str(&body(r).await).expect("json");
    assert_eq!(view["summary"]["scope"], "nation");
    assert_eq!(view["date"], "2026-05-02");

    let report = reporter
        .load(NaiveDate::from_ymd_opt(2026, 5, 2).expect("date"))
        .await
        .expect("load")
        .expect("stored");
    views_of(&report);
    let region = report
        .scopes
        .iter()
        .find(|r| r.scope == ScopeKind::Region)
        .expect("region");
    let uri = format!(
        "/v1/reports/daily?date=2026-05-02&scope=region:{}",
        region.scope_id
    );
    let r = app
        .clone()
        .oneshot(get(&uri, "application/json"))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    let view: serde_json::Value = serde_json::from_str(&body(r).await).expect("json");
    assert_eq!(view["summary"]["scope_id"], region.scope_id.as_str());
    assert_eq!(view["summary"]["offences"], region.offences);
    let hot = &view["hot_cells"][0]["cell"];
    assert!(
        hot.as_str().is_some_and(|c| c.len() == 15),
        "cells are hex: {hot}"
    );
    let r = app
        .clone()
        .oneshot(get(&uri, "text/csv"))
        .await
        .expect("call");
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert!(body(r).await.starts_with("date,scope,scope_id,"));
    let r = app
        .clone()
        .oneshot(get(&uri, "text/html"))
        .await
        .expect("call");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    assert!(body(r).await.contains("Daily situation report: Region"));
    // The language: ?lang= first, then Accept-Language; <html lang> follows.
    for (query, accept_language, code, heading) in [
        ("&lang=ru", "uz", "ru", "Ежедневная сводка: Область"),
        ("", "uz-Latn-UZ,ru;q=0.5", "uz", "Kunlik vaziyat hisoboti:"),
        ("", "de-DE", "en", "Daily situation report: Region"),
    ] {
        let request = Request::builder()
            .uri(format!("{uri}&format=html{query}"))
            .header("accept-language", accept_language)
            .body(Body::empty())
            .expect("request");
        let r = app.clone().oneshot(request).await.expect("call");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-language"], code);
        let page = body(r).await;
        assert!(page.contains(&format!("<html lang=\"{code}\">")), "{code}");
        assert!(page.contains(heading), "{code}: {page}");
    }
    let r = app
        .clone()
        .oneshot(get(&format!("{uri}&format=html&lang=de"), "*/*"))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("uz, ru or en"));
    let r = app
        .clone()
        .oneshot(get("/v1/reports/daily/dates", "*/*"))
        .await
        .expect("call");
    let dates: serde_json::Value = serde_json::from_str(&body(r).await).expect("json");
    assert_eq!(dates["dates"], serde_json::json!(["2026-05-02"]));

    // The region's mahallas, most harm first, with the SQL that asks the same.
    let mahallas_uri = format!(
        "/v1/reports/daily/mahallas?date=2026-05-02&scope=region:{}",
        region.scope_id
    );
    let r = app
        .clone()
        .oneshot(get(&mahallas_uri, "*/*"))
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    let listed: serde_json::Value = serde_json::from_str(&body(r).await).expect("json");
    let want: Vec<&posbon_reporter::ScopeRow> = report
        .scopes
        .iter()
        .filter(|r| r.scope == ScopeKind::Mahalla && r.region_id == Some(region.scope_id.clone()))
        .collect();
    let rows = listed["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), want.len());
    assert!(!rows.is_empty());
    assert_eq!(listed["truncated"], false);
    let harm: Vec<i64> = rows.iter().filter_map(|r| r["harm"].as_i64()).collect();
    assert!(harm.windows(2).all(|w| w[0] >= w[1]), "{harm:?}");
    let offences: i64 = rows.iter().filter_map(|r| r["offences"].as_i64()).sum();
    assert_eq!(offences, want.iter().map(|r| r.offences).sum::<i64>());
    let sql = listed["sql"].as_str().expect("sql");
    assert!(
        sql.contains("FROM daily_reports")
            && sql.contains(&format!("region_id = '{}'", region.scope_id))
            && sql.contains("DATE '2026-05-02'"),
        "{sql}"
    );
    let r = app
        .clone()
        .oneshot(get(&format!("{mahallas_uri}&limit=1"), "*/*"))
        .await
        .expect("call");
    let one: serde_json::Value = serde_json::from_str(&body(r).await).expect("json");
    assert_eq!(one["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["rows"][0], rows[0]);
    assert_eq!(one["truncated"], rows.len() > 1);
    for (uri, status, want) in [
        (
            "/v1/reports/daily/mahallas?date=2026-05-02&limit=0",
            StatusCode::BAD_REQUEST,
            "limit 0",
        ),
        (
            "/v1/reports/daily/mahallas?date=2026-05-03",
            StatusCode::NOT_FOUND,
            "no daily report",
        ),
        (
            "/v1/reports/daily/mahallas?date=2026-05-02&scope=region:nowhere",
            StatusCode::NOT_FOUND,
            "no scope region:nowhere",
        ),
        (
            "/v1/reports/daily/mahallas?date=2026-05-02&scope=unassigned",
            StatusCode::BAD_REQUEST,
            "has no mahallas",
        ),
    ] {
        let r = app.clone().oneshot(get(uri, "*/*")).await.expect("call");
        assert_eq!(r.status(), status, "{uri}");
        let text = body(r).await;
        assert!(text.contains(want), "{uri}: {text}");
    }
    // Every read of the mahallas is in the audit log, refusals too.
    let records = auth.audit().list(0, 1000).await.expect("audit");
    let reads: Vec<&str> = records
        .iter()
        .filter(|r| r.action == "report_mahallas")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(
        reads,
        ["ok", "ok", "refused", "refused", "refused", "refused"]
    );
}

#[test]
fn the_sql_files_name_their_parameters() {
    let mut all = BTreeSet::new();
    for (name, sql) in posbon_reporter::reporter::SQL_FILES {
        assert!(
            sql.starts_with("-- "),
            "{name} starts with a comment saying what it is"
        );
        for word in sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')) {
            if let Some(p) = word.strip_prefix('$') {
                all.insert(p.to_owned());
                assert!(sql.contains(&format!("--   ${p}")), "{name} documents ${p}");
            }
        }
    }
    let bound: BTreeSet<String> =
        posbon_reporter::reporter::params(NaiveDate::from_ymd_opt(2026, 5, 1).expect("date"))
            .expect("params")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    assert_eq!(all, bound);
}

#[tokio::test]
async fn the_day_in_memory_gives_what_the_store_gives() {
    let fx = build(start(), 3);
    let store = store_of(&fx.events).await;
    let reporter =
        Reporter::new(store, Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let date = NaiveDate::from_ymd_opt(2026, 5, 2).expect("date");
    let day = reporter.day_engine(date).await.expect("day engine");
    let p = posbon_reporter::reporter::params(date).expect("params");
    for (name, sql) in posbon_reporter::reporter::SQL_FILES {
        // Only these read the events; the others read stored figures or kept tables.
        if !matches!(
            name,
            "mahalla_day.sql" | "report_categories.sql" | "report_hot_cells.sql"
        ) {
            continue;
        }
        let table = |out: posbon_sql::QueryOutput| posbon_sql::output::to_csv(&out).expect("csv");
        let from_store = reporter
            .engine()
            .query_with_params(sql, p.clone())
            .await
            .expect(name);
        let in_memory = day.query_with_params(sql, p.clone()).await.expect(name);
        assert!(from_store.rows > 10, "{name}");
        assert_eq!(table(in_memory), table(from_store), "{name}");
    }
    // The derived engine leaves the original alone.
    let all = reporter
        .engine()
        .query("SELECT count(*) FROM events")
        .await
        .expect("count");
    let json = posbon_sql::output::to_json(&all).expect("json");
    assert_eq!(json["rows"][0][0].as_u64(), Some(fx.events.len() as u64));
}

/// The per-mahalla figures of past days are recomputed when events arrive
/// for them later: the next report's baseline counts a late event without
/// any manual refresh, and days without new events are left alone.
#[tokio::test]
async fn a_late_event_for_a_past_day_changes_the_next_report() {
    let fx = build(start(), 9);
    let store = store_of(&fx.events).await;
    let reporter =
        Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let date = NaiveDate::from_ymd_opt(2026, 5, 8).expect("date");
    let past = NaiveDate::from_ymd_opt(2026, 5, 3).expect("date");
    let before = reporter.generate(date).await.expect("report");
    let offences_on = |r: &Reporter| {
        let engine = r.engine().clone();
        async move {
            let out = engine
                .query("SELECT sum(offences) FROM mahalla_days WHERE date = DATE '2026-05-03'")
                .await
                .expect("query");
            posbon_sql::output::to_json(&out).expect("json")["rows"][0][0]
                .as_i64()
                .expect("a sum")
        }
    };
    let stored = offences_on(&reporter).await;
    assert!(
        !reporter.refresh_mahalla_day(past).await.expect("refresh"),
        "current figures are not computed again"
    );

    // Three incidents of May 3rd arrive late.
    let template = fx
        .events
        .iter()
        .find(|e| local_day(e) == past && matches!(e.event, Event::Incident(_)))
        .expect("an incident on May 3rd");
    let late: Vec<EnrichedEvent> = (0..3)
        .map(|i| {
            let mut e = template.clone();
            e.event.header_mut().id = format!("late-{i}");
            e
        })
        .collect();
    store.put_events(&late).await.expect("late events");

    let after = reporter.generate(date).await.expect("report");
    assert_eq!(offences_on(&reporter).await, stored + 3);
    let nation = |r: &DailyReport| r.row(&Scope::nation()).expect("nation").clone();
    let (b, a) = (nation(&before), nation(&after));
    let (b7, a7) = (
        b.baseline7.expect("baseline"),
        a.baseline7.expect("baseline"),
    );
    assert!(
        (a7 - b7 - 3.0 / 7.0).abs() < 1e-9,
        "baseline7 {b7} -> {a7}: three more offences over seven days"
    );
    assert!(a.z7.expect("z7") < b.z7.expect("z7"));
    // The other days were not computed again.
    for d in [4, 5, 6, 7] {
        let day = NaiveDate::from_ymd_opt(2026, 5, d).expect("date");
        assert!(!reporter.refresh_mahalla_day(day).await.expect("refresh"));
    }
}

/// A mahalla whose whole last week was a rise (every day of the 7 left out
/// of the baseline as an outbreak) still gets a 7-day z, against the level
/// of its quiet weeks, and stands out.
#[tokio::test]
async fn a_week_long_rise_is_scored_against_the_quiet_weeks() {
    let mut fx = build(start(), 30);
    let date = NaiveDate::from_ymd_opt(2026, 5, 30).expect("date");
    // The quietest mahalla with an incident to copy.
    let mut per_mahalla: BTreeMap<String, usize> = BTreeMap::new();
    for e in &fx.events {
        if let (Some(m), true) = (&e.mahalla_id, is_offence(e)) {
            *per_mahalla.entry(m.clone()).or_default() += 1;
        }
    }
    let template = fx
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::Incident(_)) && e.mahalla_id.is_some())
        .min_by_key(|e| per_mahalla[e.mahalla_id.as_deref().expect("mahalla")])
        .expect("an incident")
        .clone();
    let mahalla = template.mahalla_id.clone().expect("mahalla");
    // 15 more incidents a day there for the last 7 days and on the day.
    let first = date - TimeDelta::days(7);
    let (day_start, _) = day_window(first).expect("window");
    for d in 0..8 {
        for i in 0..15 {
            let mut e = template.clone();
            let h = e.event.header_mut();
            h.id = format!("rise-{d}-{i}");
            h.occurred_at = (day_start + TimeDelta::days(d) + TimeDelta::hours(i + 4))
                .with_timezone(&tashkent());
            fx.events.push(e);
        }
    }
    let store = store_of(&fx.events).await;
    let reporter =
        Reporter::new(store, Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let report = reporter.generate(date).await.expect("report");
    let row = report
        .scopes
        .iter()
        .find(|r| r.scope == ScopeKind::Mahalla && r.scope_id == mahalla)
        .expect("row");
    assert_eq!(row.baseline7_days, Some(7));
    let z7 = row.z7.expect("a 7-day z despite the week left out");
    let baseline7 = row.baseline7.expect("baseline7");
    assert!(
        baseline7 < 5.0,
        "the quiet weeks' level, not the rise: {baseline7}"
    );
    assert!(z7 >= 3.0, "z7 {z7}");
}
