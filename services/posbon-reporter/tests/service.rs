//! The reporter service against a real nats-server: at start it makes the
//! missing report of yesterday, stores it and publishes it on
//! `posbon.reports.daily`; `publish` sends what a report says.

mod common;

use posbon_model::Span;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use posbon_bus::subjects::REPORTS_DAILY;
use posbon_bus::{Bus, NatsBus, NatsOptions};
use posbon_reporter::reporter::{local_date, report_limits};
use posbon_reporter::{ReportNotice, Reporter, ReporterConfig, Scope};
use posbon_sql::TIME_ZONE;
use posbon_telemetry::Metrics;
use posbon_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn yesterdays_missing_report_is_made_and_published_at_start() {
    let server = NatsServer::start();
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(vec![server.url()], NatsOptions::default())
            .await
            .expect("connect"),
    );
    let mut sub = bus.subscribe(REPORTS_DAILY).await.expect("subscribe");

    // Three days of events up to today's local midnight.
    let today = local_date(Utc::now());
    let first = today - TimeDelta::days(3);
    let start = TIME_ZONE
        .from_local_datetime(&first.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .expect("start")
        .fixed_offset();
    let fx = common::build(start, 3);
    let store = common::store_of(&fx.events).await;
    let yesterday = today - TimeDelta::days(1);
    let events_yesterday = fx
        .events
        .iter()
        .filter(|e| e.event.occurred_at().with_timezone(&TIME_ZONE).date_naive() == yesterday)
        .count() as i64;
    assert!(events_yesterday > 100);

    let config = ReporterConfig {
        listen: "127.0.0.1:0".into(),
        http: Default::default(),
        nats_urls: vec![server.url()],
        registry: None,
        delay: Span::from_secs(60),
        catch_up_days: 1,
        segment_days: 3,
        segment_refresh: Span::from_secs(3600),
        retry: Span::from_secs(1),
        attempts: 2,
        sql: report_limits(),
        small_count_min: posbon_reporter::reporter::DEFAULT_SMALL_COUNT_MIN,
        difficult: Default::default(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(posbon_reporter::run(
        config,
        Arc::clone(&bus),
        store.clone(),
        Arc::clone(&fx.registry),
        Metrics::new(),
        posbon_auth::Auth::new(store.clone(), Arc::clone(&fx.registry), Default::default())
            .expect("auth"),
        shutdown.clone(),
    ));
    let message = tokio::time::timeout(Duration::from_secs(120), sub.next())
        .await
        .expect("a report within two minutes")
        .expect("a message");
    assert_eq!(
        message.headers.get("Posbon-Report-Date").map(str::to_owned),
        Some(yesterday.to_string())
    );
    let notice: ReportNotice = serde_json::from_slice(&message.payload).expect("notice");
    assert_eq!(notice.date, yesterday);
    assert_eq!(notice.nation.events, events_yesterday);
    assert_eq!(notice.regions.len(), 1);
    assert_eq!(notice.districts.len(), fx.registry.districts().len());
    assert!(
        notice
            .report
            .ends_with(&format!("date={yesterday}&scope=nation"))
    );

    // It was stored before it was published.
    let reporter =
        Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let stored = reporter
        .load(yesterday)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(
        stored.row(&Scope::nation()).expect("nation").events,
        events_yesterday
    );

    // The columnar segments of the three days are made after the catch-up
    // (yesterday's by the report itself): a query over them reads them.
    let engine = reporter.engine();
    let sql = format!(
        "EXPLAIN SELECT count(*) FROM events WHERE local_date BETWEEN DATE '{first}' AND DATE '{yesterday}'"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = engine.query(&sql).await.expect("explain");
        let text = posbon_sql::output::to_text_table(&out).expect("text");
        if text.contains("path=segments,") {
            for day in 0..3 {
                assert!(
                    text.contains(&format!("s[{} ", first + TimeDelta::days(day))),
                    "{text}"
                );
            }
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no segments: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops")
        .expect("joins")
        .expect("runs cleanly");
}
