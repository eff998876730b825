//! Starting the API from its configuration file: what `posbon-api` runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use posbon_bus::{Bus, NatsBus};
use posbon_store::open_store_with_metrics;
use posbon_telemetry::Metrics;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{ApiConfig, ApiParts, DEFAULTS};

/// The whole configuration file of `posbon-api`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The API.
    pub api: ApiConfig,
    /// The store.
    pub store: posbon_store::StoreConfig,
    /// Identities and the HTTP guard.
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// How to connect to NATS: credentials, TLS, inbox prefix, whether to
    /// manage the streams.
    #[serde(default)]
    pub nats: posbon_bus::NatsConfig,
    /// Logs, traces and metrics.
    #[serde(default)]
    pub telemetry: posbon_telemetry::TelemetryConfig,
    /// Limits of analysts' queries (`POST /v1/sql` and PostgreSQL).
    #[serde(default)]
    pub sql: posbon_sql::SqlLimits,
    /// The PostgreSQL protocol (off unless `listen` is set).
    #[serde(default)]
    pub pg: posbon_pg::PgConfig,
    /// Pages to receivers (none unless routes are set).
    #[serde(default)]
    pub notify: posbon_notify::NotifyConfig,
    /// How the daily reports the API serves are read and made on request
    /// (`GET`/`POST /v1/reports/daily`): the reporter's own section, whose
    /// `small_count_min`, `difficult` and `sql` must match the reporter
    /// service's (its schedule and listener are not used here).
    pub reporter: posbon_reporter::ReporterConfig,
}

/// The API's defaults and the reporter's (for `[reporter]`), in one TOML
/// document.
fn defaults() -> anyhow::Result<String> {
    let mut all: toml::Table = toml::from_str(DEFAULTS).context("api defaults")?;
    let reporter: toml::Table =
        toml::from_str(posbon_reporter::DEFAULTS).context("reporter defaults")?;
    for (section, value) in reporter {
        if section == "reporter" {
            all.entry(section).or_insert(value);
        }
    }
    Ok(toml::to_string(&all)?)
}

/// Loads the configuration: embedded defaults, then `file`, then
/// `POSBON__`-prefixed environment variables.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<FileConfig> {
    Ok(posbon_service::load_config(&defaults()?, file)?)
}

/// What the API serves for analysts besides its own routes: `POST /v1/sql`
/// and the daily reports (read, and made on request), so that every part
/// of the page works against the API alone.
pub fn analyst_routes(
    sql: Arc<posbon_sql::SqlEngine>,
    reporter: Arc<posbon_reporter::Reporter>,
    bus: Arc<dyn Bus>,
    auth: Arc<posbon_auth::Auth>,
) -> posbon_auth::Guarded {
    posbon_sql::http::router(sql, auth.clone()).merge(posbon_reporter::http::router(
        reporter,
        Some(bus),
        auth,
    ))
}

/// Connects to NATS, opens the store, loads the registry and serves until
/// `shutdown`.
pub async fn serve(config: FileConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let api = config.api;
    let registry = Arc::new(posbon_service::registry::require(
        api.registry.as_deref(),
        "api",
    )?);
    let metrics = Metrics::new();
    let store = open_store_with_metrics(&config.store, &metrics)
        .await
        .with_context(|| format!("cannot open the store ({})", config.store.describe()))?;
    tracing::info!(store = %config.store.describe(), "store open");
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(api.nats_urls.clone(), config.nats.options("posbon-api")?)
            .await
            .context("cannot connect to nats")?,
    );
    let mut auth_config = config.auth;
    api.http.apply_to(&mut auth_config);
    let auth = posbon_auth::Auth::new(store.clone(), registry.clone(), auth_config)?;
    // Analysts' SQL: over HTTP on the API's address, and over the
    // PostgreSQL protocol when [pg] listen is set.
    let sql = Arc::new(posbon_sql::SqlEngine::new(
        store.clone(),
        registry.clone(),
        config.sql.clone(),
    )?);
    let certificates = api.http.certificates()?;
    let pg = match posbon_pg::bind(&config.pg, certificates.is_some()).await? {
        Some(listener) => {
            let server =
                posbon_pg::PgServer::new(sql.clone(), auth.clone(), certificates, &config.pg);
            Some(tokio::spawn(server.serve(listener, shutdown.clone())))
        }
        None => None,
    };
    let reporter = Arc::new(config.reporter.reporter(store.clone(), registry.clone())?);
    let extra = analyst_routes(sql, reporter, bus.clone(), auth.clone());
    let served = crate::run(
        api,
        bus,
        store,
        registry,
        metrics,
        ApiParts {
            auth,
            extra,
            notify: config.notify,
        },
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    if let Some(pg) = pg {
        pg.await?;
    }
    served
}
