//! What every Posbon service shares: layered configuration, the `/healthz`,
//! `/readyz` and `/metrics` endpoints, the HTTP server ([`http`]: HTTPS,
//! limits, timeouts), the HTTP client of the CLI and tests ([`client`]), and
//! graceful shutdown.
//!
//! ```no_run
//! use posbon_service::{Health, ReadinessCheck, shutdown_signal};
//! # async fn demo(metrics: posbon_telemetry::Metrics) -> anyhow::Result<()> {
//! let health = Health::new(metrics.clone());
//! let app = health.router(); // merge the service's own routes into this
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = shutdown_signal();
//! let config = posbon_service::http::HttpConfig::default();
//! posbon_service::http::serve(listener, app, &config, &metrics, shutdown).await
//! # }
//! ```

mod config;
mod health;

pub mod client;
pub mod http;
pub mod registry;
pub use config::{ConfigError, load_config, take_config_warnings};
pub use health::{FnCheck, Health, Readiness, ReadinessCheck};

use tokio_util::sync::CancellationToken;

/// A token cancelled on Ctrl-C or SIGTERM. Services stop taking new work when it
/// fires, finish what they acknowledged, and return.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for sigterm");
                        let _ = ctrl_c.await;
                        fire.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        fire.cancel();
    });
    token
}

/// Runs a service to the end, as its binary and `posbon <service>` do: sets up
/// telemetry from its configuration, starts a multi-threaded runtime, and
/// serves until Ctrl-C or SIGTERM.
pub fn run_service<C, F, Fut>(
    name: &'static str,
    config: C,
    telemetry: fn(&C) -> &posbon_telemetry::TelemetryConfig,
    serve: F,
) -> anyhow::Result<()>
where
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let _telemetry = posbon_telemetry::init(name, telemetry(&config))
            .map_err(|e| anyhow::anyhow!("cannot set up telemetry: {e}"))?;
        for warning in take_config_warnings() {
            tracing::warn!(service = name, "{warning}");
        }
        let outcome = serve(config, shutdown_signal()).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %format!("{e:#}"), service = name, "service stopped");
        }
        outcome
    })
}

/// The `main` of a service binary: [`run_service`] with exit codes 0 (clean
/// shutdown), 1 (runtime error) and 2 (configuration error), errors on one line.
pub fn service_main<C, F, Fut>(
    name: &'static str,
    config: anyhow::Result<C>,
    telemetry: fn(&C) -> &posbon_telemetry::TelemetryConfig,
    serve: F,
) -> std::process::ExitCode
where
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run_service(name, config, telemetry, serve) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
