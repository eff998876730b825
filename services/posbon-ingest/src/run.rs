//! Running the ingest service: streams, consumer, HTTP server.

use std::sync::Arc;

use axum::http::Method;
use posbon_auth::{Access, Auth, Guarded, Permission};
use posbon_bus::{Bus, default_streams};
use posbon_geo::Registry;
use posbon_model::Limits;
use posbon_service::{FnCheck, Health};
use posbon_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use crate::config::IngestConfig;
use crate::consumer::{self, ConsumerSettings};
use crate::enrich::Enricher;
use crate::http;
use crate::service::Ingest;

/// Builds the ingest core from its configuration.
pub fn build(
    config: &IngestConfig,
    bus: Arc<dyn Bus>,
    registry: Arc<Registry>,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Ingest>> {
    let limits = Limits {
        max_payload_bytes: config.max_event_bytes,
        max_future: config.max_future.to_chrono(),
        max_batch_items: config.max_batch_items,
        ..Limits::default()
    };
    let enricher = Enricher::new(registry, limits, config.pseudonym_key()?);
    Ok(Arc::new(
        Ingest::new(enricher, bus, metrics)?.with_encoding(config.events_encoding),
    ))
}

/// The HTTP routes of ingest (`POST /v1/events`, for producers), for a
/// server of its own or merged into another (the standalone process).
pub fn routes(ingest: Arc<Ingest>, config: &IngestConfig) -> Guarded {
    Guarded::new(
        http::router(ingest, config.max_body_bytes),
        [(
            Method::POST,
            "/v1/events",
            Access::Permission(Permission::PublishEvents),
        )],
    )
}

/// Runs ingest until `shutdown`: ensures the streams, consumes INGEST, serves
/// HTTP with `/healthz`, `/readyz` and `/metrics` on `config.listen`, with
/// extra `/readyz` checks (the shared registry's, from [`crate::serve`], which
/// has the store).
pub(crate) async fn run_with(
    config: IngestConfig,
    bus: Arc<dyn Bus>,
    registry: Arc<Registry>,
    metrics: Metrics,
    auth: Arc<Auth>,
    checks: Vec<Arc<dyn posbon_service::ReadinessCheck>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    bus.ensure_streams(&default_streams()).await?;
    let ingest = build(&config, bus.clone(), registry, &metrics)?;
    let ready_bus = bus.clone();
    let mut health = Health::new(metrics.clone()).with_check(FnCheck::new("nats", move || {
        let bus = ready_bus.clone();
        async move { bus.health().await.map_err(|e| e.to_string()) }
    }));
    for check in checks {
        health = health.with_check(check);
    }
    let app = health
        .guarded()
        .merge(routes(ingest.clone(), &config))
        .into_router(auth);
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "ingest serving http");
    let server_shutdown = shutdown.clone();
    let http = config.http.clone();
    let server_metrics = metrics.clone();
    let server = tokio::spawn(async move {
        posbon_service::http::serve(listener, app, &http, &server_metrics, server_shutdown).await
    });
    let settings = ConsumerSettings::from(&config);
    let consumed = consumer::run(ingest, settings, &metrics, shutdown.clone()).await;
    shutdown.cancel();
    server.await??;
    consumed?;
    Ok(())
}
