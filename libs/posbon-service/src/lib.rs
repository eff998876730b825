//! What every Posbon service shares: layered configuration, the `/healthz`,
//! `/readyz` and `/metrics` endpoints, and graceful shutdown.
//!
//! ```no_run
//! use posbon_service::{Health, ReadinessCheck, shutdown_signal};
//! # async fn demo(metrics: posbon_telemetry::Metrics) -> std::io::Result<()> {
//! let health = Health::new(metrics);
//! let app = health.router(); // merge the service's own routes into this
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = shutdown_signal();
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async move { shutdown.cancelled().await })
//!     .await
//! # }
//! ```

mod config;
mod health;

pub use config::{ConfigError, load_config};
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
