//! Starting the reporter from its configuration file: what `posbon-reporter`
//! runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use posbon_bus::{Bus, NatsBus};
use posbon_store::open_store_with_metrics;
use posbon_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use crate::{DEFAULTS, FileConfig};

/// Loads the configuration: embedded defaults, then `file`, then
/// `POSBON__`-prefixed environment variables.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<FileConfig> {
    Ok(posbon_service::load_config(DEFAULTS, file)?)
}

/// Opens the store, loads the registry, connects to NATS and reports until
/// `shutdown`. Telemetry must be initialised before.
///
/// The embedded store admits one process: run the reporter as its own
/// process against TiKV (`[store.tikv]`), which every service shares, or
/// inside `posbon standalone`, which shares one embedded store between every
/// service.
pub async fn serve(config: FileConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let reporter = config.reporter;
    let registry = Arc::new(posbon_service::registry::require(
        reporter.registry.as_deref(),
        "reporter",
    )?);
    let metrics = Metrics::new();
    let store = open_store_with_metrics(&config.store, &metrics)
        .await
        .with_context(|| format!("cannot open the store ({})", config.store.describe()))?;
    tracing::info!(store = %config.store.describe(), "store open");
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(
            reporter.nats_urls.clone(),
            config.nats.options("posbon-reporter")?,
        )
        .await
        .context("cannot connect to nats")?,
    );
    let mut auth_config = config.auth;
    reporter.http.apply_to(&mut auth_config);
    let auth = posbon_auth::Auth::new(store.clone(), registry.clone(), auth_config)?;
    let retention = tokio::spawn(posbon_store::retention::run_daily(
        store.clone(),
        config.retention,
        metrics.clone(),
        shutdown.clone(),
        vec![auth.clone() as Arc<dyn posbon_store::retention::Pruner>],
    ));
    let served = crate::run(
        reporter,
        bus,
        store,
        registry,
        metrics,
        auth,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    retention.await??;
    served
}
