//! Starting ingest from its configuration file: what `posbon-ingest` and
//! `posbon ingest` run.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use posbon_bus::{Bus, NatsBus};
use posbon_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use crate::config::{DEFAULTS, FileConfig};

/// Loads the configuration: embedded defaults, then `file`, then
/// `POSBON__`-prefixed environment variables.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<FileConfig> {
    Ok(posbon_service::load_config(DEFAULTS, file)?)
}

/// Connects to NATS, loads the registry and runs ingest until `shutdown`.
/// Telemetry must be initialised before (metrics are created here).
pub async fn serve(config: FileConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let ingest = config.ingest;
    let registry = Arc::new(posbon_service::registry::require(
        ingest.registry.as_deref(),
        "ingest",
    )?);
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(
            ingest.nats_urls.clone(),
            config.nats.options("posbon-ingest")?,
        )
        .await
        .context("cannot connect to nats")?,
    );
    let metrics = Metrics::new();
    let store = posbon_store::open_store_with_metrics(&config.store, &metrics)
        .await
        .with_context(|| {
            format!(
                "cannot open the store of identities ({})",
                config.store.describe()
            )
        })?;
    let mut auth_config = config.auth;
    ingest.http.apply_to(&mut auth_config);
    posbon_service::registry::join(&*store, &registry, "posbon-ingest").await?;
    let registry_check = posbon_service::registry::readiness(store.clone(), &registry);
    let auth = posbon_auth::Auth::new(store, registry.clone(), auth_config)?;
    crate::run::run_with(
        ingest,
        bus,
        registry,
        metrics,
        auth,
        vec![registry_check],
        shutdown,
    )
    .await
}
