//! Starting the indexer from its configuration file: what `posbon-indexer`
//! and `posbon indexer` run.

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

/// Opens the store (embedded or TiKV, as `[store]` says), connects to NATS
/// and indexes until `shutdown`. Telemetry must be initialised before
/// (metrics are created here).
pub async fn serve(config: FileConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let store = open_store_with_metrics(&config.store, &metrics)
        .await
        .with_context(|| format!("cannot open the store ({})", config.store.describe()))?;
    tracing::info!(store = %config.store.describe(), "store open");
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(
            config.indexer.nats_urls.clone(),
            config.nats.options("posbon-indexer")?,
        )
        .await
        .context("cannot connect to nats")?,
    );
    let mut auth_config = config.auth;
    config.indexer.http.apply_to(&mut auth_config);
    let auth = posbon_auth::Auth::without_registry(store.clone(), auth_config)?;
    crate::run(config.indexer, bus, store, metrics, auth, shutdown).await
}
