//! Starting the escalator from its configuration file: what
//! `posbon-escalator` runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use posbon_bus::{Bus, NatsBus};
use posbon_risk::RiskConfig;
use posbon_store::open_store_with_metrics;
use posbon_telemetry::Metrics;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{DEFAULTS, EscalatorConfig};

/// The whole configuration file of `posbon-escalator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The escalator.
    pub escalator: EscalatorConfig,
    /// The risk model; built-in defaults for what is left out.
    #[serde(default)]
    pub risk: RiskConfig,
    /// The store.
    pub store: posbon_store::StoreConfig,
    /// Who may read `/metrics` (the metrics token, or an admin).
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// How to connect to NATS: credentials, TLS, inbox prefix, whether to
    /// manage the streams.
    #[serde(default)]
    pub nats: posbon_bus::NatsConfig,
    /// Logs, traces and metrics.
    #[serde(default)]
    pub telemetry: posbon_telemetry::TelemetryConfig,
}

/// Loads the configuration: embedded defaults, then `file`, then
/// `POSBON__`-prefixed environment variables.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<FileConfig> {
    Ok(posbon_service::load_config(DEFAULTS, file)?)
}

/// Connects to NATS, opens the store, loads the registry and runs until
/// `shutdown`.
pub async fn serve(config: FileConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let escalator = config.escalator;
    let registry = Arc::new(posbon_service::registry::require(
        escalator.registry.as_deref(),
        "escalator",
    )?);
    let metrics = Metrics::new();
    let store = open_store_with_metrics(&config.store, &metrics)
        .await
        .with_context(|| format!("cannot open the store ({})", config.store.describe()))?;
    tracing::info!(store = %config.store.describe(), "store open");
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(
            escalator.nats_urls.clone(),
            config
                .nats
                .options(&format!("posbon-escalator-{}", escalator.instance_name()))?,
        )
        .await
        .context("cannot connect to nats")?,
    );
    let mut auth_config = config.auth;
    escalator.http.apply_to(&mut auth_config);
    let auth = posbon_auth::Auth::new(store.clone(), registry.clone(), auth_config)?;
    crate::consume::run(
        escalator,
        config.risk,
        bus,
        store,
        registry,
        metrics,
        auth,
        shutdown,
    )
    .await
}
