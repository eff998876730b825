//! With OTLP enabled but no collector listening, shutdown stays bounded and nothing panics.
//!
//! Separate binary because `init` installs process-global state.

use posbon_model::Span;
use std::time::{Duration, Instant};

use posbon_telemetry::{Metrics, TelemetryConfig, TelemetryError};

#[tokio::test(flavor = "current_thread")]
async fn shutdown_is_bounded_without_a_collector() {
    // A port that was just free: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{addr}")),
        shutdown_timeout: Span::from_millis(1_500),
        ..TelemetryConfig::default()
    };
    // A bad endpoint is an error, not a panic (even inside a runtime), and leaves
    // `init` callable.
    let bad = TelemetryConfig {
        otlp_endpoint: Some("not a valid uri".to_owned()),
        ..TelemetryConfig::default()
    };
    assert!(matches!(
        posbon_telemetry::init("posbon-unreachable-test", &bad),
        Err(TelemetryError::Exporter { .. })
    ));

    // Inside a current-thread runtime on purpose: export must not depend on it.
    let guard = posbon_telemetry::init("posbon-unreachable-test", &config).unwrap();
    let metrics = Metrics::new();
    metrics
        .counter("posbon_things_total", "Things")
        .unwrap()
        .inc();
    for i in 0..100 {
        let span = tracing::info_span!("work", i);
        let _entered = span.enter();
    }

    let started = Instant::now();
    drop(guard);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1_500 + 1_000),
        "shutdown took {elapsed:?}"
    );

    // Telemetry keeps working (as no-ops) after the guard is gone.
    tracing::info!("still logging");
    metrics
        .counter("posbon_things_total", "Things")
        .unwrap()
        .inc();
}
