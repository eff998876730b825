//! Posbon in one process: `posbon standalone` and `posbon demo`.
//!
//! Ingest, indexer, escalator, reporter, the API's lifecycle worker and SQL
//! run as tasks of one tokio runtime over one bus (in-memory by default, or
//! NATS) and one store (embedded by default, or TiKV); every HTTP endpoint is
//! served on one address. The services are the same libraries the separate
//! binaries run; this crate only wires them.
//!
//! Shutdown (Ctrl-C or SIGTERM) is ordered so that nothing acknowledged is
//! lost: first the HTTP server and ingest stop taking input, then the indexer
//! and the escalator drain what is already on the EVENTS stream (up to
//! `drain_timeout`), and only then do they stop. On the in-memory bus,
//! whatever is not yet indexed at exit would be gone; the drain makes sure
//! there is nothing.
//!
//! [`demo`] adds a simulated event stream: `history_days` of history loaded at
//! full speed (so baselines exist), then one day in `day_minutes` of wall time
//! ending at the present, then real time. Events are published to
//! `posbon.ingest.<kind>` like any producer's.

pub mod demo;

use posbon_model::Span;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use posbon_bus::subjects::EVENTS_STREAM;
use posbon_bus::{Bus, MemoryBus, NatsBus, default_streams};
use posbon_geo::Registry;
use posbon_i18n::Lang;
use posbon_risk::RiskConfig;
use posbon_store::{Store, StoreConfig};
use posbon_telemetry::Metrics;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The registry `posbon mahallas load` installs in a data directory; used
/// when no registry is configured.
pub const REGISTRY_FILE: &str = "mahallas.geojson";

/// Where the first start writes the bootstrap admin token, in the data
/// directory (unless `auth.admin_token_file` says otherwise).
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Where the first start writes the fraud pseudonym key, in the data
/// directory (unless `ingest.pseudonym_key_file` or
/// `POSBON__INGEST__PSEUDONYM_KEY` gives one).
pub(crate) const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// Defaults of the standalone process itself.
pub(crate) const DEFAULTS: &str = include_str!("default.toml");

/// `[standalone]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The one HTTP address.
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// Data directory: the embedded store lives in `<data>/store`.
    pub data: PathBuf,
    /// NATS URLs; empty for the in-memory bus.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON); empty for the simulated Tashkent registry.
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// Longest wait for in-flight events to be indexed at shutdown.
    pub drain_timeout: Span,
}

/// `[demo]`: the simulated stream of `posbon demo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Seed of the simulator.
    pub seed: u64,
    /// Events per hour of simulated time.
    pub rate_per_hour: f64,
    /// Days of history loaded at full speed first.
    pub history_days: u32,
    /// Wall-clock minutes one simulated day takes.
    pub day_minutes: f64,
}

/// The whole configuration of `posbon standalone` / `posbon demo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandaloneConfig {
    /// The process.
    pub standalone: Settings,
    /// The demo stream.
    pub demo: DemoConfig,
    /// Ingest.
    pub ingest: posbon_ingest::IngestConfig,
    /// Indexer.
    pub indexer: posbon_indexer::IndexerConfig,
    /// Escalator.
    pub escalator: posbon_escalator::EscalatorConfig,
    /// Risk model.
    #[serde(default)]
    pub risk: RiskConfig,
    /// API.
    pub api: posbon_api::ApiConfig,
    /// Reporter.
    pub reporter: posbon_reporter::ReporterConfig,
    /// Store.
    pub store: StoreConfig,
    /// Identities and the HTTP guard.
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// How to connect to NATS (with `nats_urls`): credentials, TLS, inbox prefix, whether to
    /// manage the streams.
    #[serde(default)]
    pub nats: posbon_bus::NatsConfig,
    /// How long each table is kept (a daily deletion).
    #[serde(default)]
    pub retention: posbon_store::retention::RetentionConfig,
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
}

/// Command-line overrides (they win over the file and the environment).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--nats` (comma-separated URLs).
    pub nats: Option<String>,
    /// `--tikv` (comma-separated PD endpoints).
    pub tikv: Option<String>,
    /// `--registry`.
    pub registry: Option<PathBuf>,
    /// `--nats-creds`: a `.creds` or nkey seed file.
    pub nats_creds: Option<PathBuf>,
    /// `--nats-replicas`: replicas of each stream.
    pub nats_replicas: Option<usize>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--pg-listen`.
    pub pg_listen: Option<String>,
}

/// Every section's defaults in one TOML document: this crate's, then each
/// service's embedded defaults for the sections not given yet.
pub(crate) fn merged_defaults() -> anyhow::Result<String> {
    let mut all: toml::Table = toml::from_str(DEFAULTS).context("standalone defaults")?;
    for (name, text) in [
        ("ingest", posbon_ingest::config::DEFAULTS),
        ("indexer", posbon_indexer::DEFAULTS),
        ("escalator", posbon_escalator::DEFAULTS),
        ("api", posbon_api::DEFAULTS),
        ("reporter", posbon_reporter::DEFAULTS),
    ] {
        let table: toml::Table =
            toml::from_str(text).with_context(|| format!("{name} defaults"))?;
        for (section, value) in table {
            all.entry(section).or_insert(value);
        }
    }
    Ok(toml::to_string(&all)?)
}

/// Loads the configuration: merged defaults, then `file`, then
/// `POSBON__<SECTION>__<KEY>` environment variables, then `overrides`.
pub fn load_config(
    file: Option<&std::path::Path>,
    overrides: &Overrides,
) -> anyhow::Result<StandaloneConfig> {
    let defaults = merged_defaults()?;
    let mut config: StandaloneConfig = posbon_service::load_config(&defaults, file)?;
    let s = &mut config.standalone;
    if let Some(listen) = &overrides.listen {
        s.listen.clone_from(listen);
    }
    if let Some(data) = &overrides.data {
        s.data.clone_from(data);
    }
    if let Some(nats) = &overrides.nats {
        s.nats_urls = split_list(nats);
    }
    if let Some(registry) = &overrides.registry {
        s.registry = Some(registry.clone());
    }
    if let Some(creds) = &overrides.nats_creds {
        config.nats.credentials_file = Some(creds.clone());
    }
    if let Some(replicas) = overrides.nats_replicas {
        config.nats.replicas = Some(replicas);
    }
    if let Some(cert) = &overrides.tls_cert {
        s.http.tls_cert = Some(cert.clone());
    }
    if let Some(key) = &overrides.tls_key {
        s.http.tls_key = Some(key.clone());
    }
    if let Some(pg) = &overrides.pg_listen {
        config.pg.listen = Some(pg.clone());
    }
    // The store lives in the data directory unless the file says otherwise.
    if file.is_none() || overrides.data.is_some() {
        config.store.path = config.standalone.data.join("store");
    }
    if let Some(tikv) = &overrides.tikv {
        config.store = StoreConfig::tikv(split_list(tikv));
    }
    // The bootstrap admin token is written beside the data.
    config.standalone.http.apply_to(&mut config.auth);
    // The pseudonym key is generated beside the data on the first start.
    if config.ingest.pseudonym_key.is_none() && config.ingest.pseudonym_key_file.is_none() {
        config.ingest.pseudonym_key_file = Some(config.standalone.data.join(PSEUDONYM_KEY_FILE));
    }
    if config.auth.admin_token_file.is_none() {
        config.auth.admin_token_file = Some(config.standalone.data.join(ADMIN_TOKEN_FILE));
    }
    Ok(config)
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Everything `posbon standalone` serves on its one address.
pub struct Served {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub health: posbon_service::Health,
    /// Identities (`/v1/login`, `/v1/tokens`, ...).
    pub auth: Arc<posbon_auth::Auth>,
    /// `POST /v1/events`.
    pub ingest: Arc<posbon_ingest::Ingest>,
    /// Ingest's limits.
    pub ingest_config: posbon_ingest::IngestConfig,
    /// The API's routes and the page.
    pub api: Arc<posbon_api::ApiState>,
    /// `POST /v1/sql`.
    pub sql: Arc<posbon_sql::SqlEngine>,
    /// `/v1/reports/daily`.
    pub reporter: Arc<posbon_reporter::Reporter>,
    /// Where generated reports are published.
    pub bus: Arc<dyn Bus>,
}

impl Served {
    /// Every route with its access rule (the guard goes in front with
    /// [`posbon_auth::Guarded::into_router`]).
    pub fn routes(self) -> posbon_auth::Guarded {
        self.health
            .guarded()
            .merge(posbon_auth::http::identity_routes(self.auth.clone()))
            .merge(posbon_ingest::routes(self.ingest, &self.ingest_config))
            .merge(posbon_api::routes(self.api))
            .merge(posbon_sql::http::router(self.sql, self.auth.clone()))
            .merge(posbon_reporter::http::router(
                self.reporter,
                Some(self.bus),
                self.auth,
            ))
    }
}

/// Runs everything until `shutdown`; with `demo`, also the simulated stream.
pub async fn run(
    config: StandaloneConfig,
    demo: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let metrics = Metrics::new();
    let installed = config.standalone.data.join(REGISTRY_FILE);
    let registry_path = config
        .standalone
        .registry
        .clone()
        .or_else(|| installed.exists().then_some(installed));
    let registry: Arc<Registry> = Arc::new(posbon_sim::load_registry(registry_path.as_deref())?);
    tracing::info!(
        mahallas = registry.mahallas().len(),
        districts = registry.districts().len(),
        "mahalla registry loaded"
    );
    if config.store.tikv.is_none() {
        std::fs::create_dir_all(&config.standalone.data).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.standalone.data.display()
            )
        })?;
    }
    let generated = config.standalone.data.join(PSEUDONYM_KEY_FILE);
    if config.ingest.pseudonym_key_file.as_ref() == Some(&generated)
        && posbon_ingest::config::generate_pseudonym_key_file(&generated)?
    {
        eprintln!(
            "{}",
            Lang::user().f("cli.first_start_key", &[("file", &generated.display())])
        );
    }
    let store: Store = posbon_store::open_store_with_metrics(&config.store, &metrics)
        .await
        .with_context(|| format!("cannot open the store ({})", config.store.describe()))?;
    // One process is the whole deployment: its registry is the deployment's
    // (`posbon mahallas load` installs a new one for the next start).
    posbon_service::registry::adopt(&*store, &registry, "posbon standalone").await?;
    let bus: Arc<dyn Bus> = if config.standalone.nats_urls.is_empty() {
        Arc::new(MemoryBus::new())
    } else {
        Arc::new(
            NatsBus::connect(
                config.standalone.nats_urls.clone(),
                config.nats.options("posbon-standalone")?,
            )
            .await
            .context("cannot connect to nats")?,
        )
    };
    bus.ensure_streams(&default_streams()).await?;
    let auth = posbon_auth::Auth::new(store.clone(), registry.clone(), config.auth.clone())?;

    // Input stops first; processing is drained, then stops.
    let input = CancellationToken::new();
    let processing = CancellationToken::new();

    let ingest = posbon_ingest::build(&config.ingest, bus.clone(), registry.clone(), &metrics)?;
    let api = posbon_api::ApiState::with_notify(
        config.api.clone(),
        bus.clone(),
        store.clone(),
        registry.clone(),
        auth.clone(),
        &metrics,
        &config.notify,
    )?;
    let sql = Arc::new(posbon_sql::SqlEngine::new(
        store.clone(),
        registry.clone(),
        config.sql.clone(),
    )?);
    let reporter = Arc::new(config.reporter.reporter(store.clone(), registry.clone())?);
    let app = Served {
        health: posbon_api::health(&metrics, bus.clone(), store.clone(), &registry),
        auth: auth.clone(),
        ingest: ingest.clone(),
        ingest_config: config.ingest.clone(),
        api: api.clone(),
        sql: sql.clone(),
        reporter: reporter.clone(),
        bus: bus.clone(),
    }
    .routes()
    .into_router(auth.clone());

    let listener = tokio::net::TcpListener::bind(&config.standalone.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.standalone.listen))?;
    let address = listener.local_addr()?;
    if let Some(path) = auth.bootstrap(address).await? {
        eprintln!(
            "{}",
            Lang::user().f("cli.first_start_admin", &[("file", &path.display())])
        );
    }
    let login = if demo {
        Some(demo::demo_login(&auth, &config.standalone.data).await?)
    } else {
        None
    };
    let server = tokio::spawn({
        let input = input.clone();
        let http = config.standalone.http.clone();
        let metrics = metrics.clone();
        async move { posbon_service::http::serve(listener, app, &http, &metrics, input).await }
    });
    let mut tasks = tokio::task::JoinSet::new();
    let certificates = config.standalone.http.certificates()?;
    let pg_address = match posbon_pg::bind(&config.pg, certificates.is_some()).await? {
        Some(listener) => {
            let address = listener.local_addr()?;
            let server = posbon_pg::PgServer::new(sql, auth.clone(), certificates, &config.pg);
            let token = input.clone();
            tasks.spawn(async move {
                server.serve(listener, token).await;
                Ok(())
            });
            Some(address)
        }
        None => None,
    };
    tasks.spawn(posbon_store::retention::run_daily(
        store.clone(),
        config.retention.clone(),
        metrics.clone(),
        processing.clone(),
        vec![auth.clone() as Arc<dyn posbon_store::retention::Pruner>],
    ));
    tasks.spawn({
        let settings = posbon_ingest::consumer::ConsumerSettings::from(&config.ingest);
        let (metrics, token) = (metrics.clone(), input.clone());
        let ingest = ingest.clone();
        async move {
            posbon_ingest::consumer::run(ingest, settings, &metrics, token)
                .await
                .context("ingest")
        }
    });
    tasks.spawn({
        let (config, bus, store, metrics, token) = (
            config.indexer.clone(),
            bus.clone(),
            store.clone(),
            metrics.clone(),
            processing.clone(),
        );
        async move {
            posbon_indexer::consume(&config, bus, store, &metrics, token)
                .await
                .context("indexer")
        }
    });
    tasks.spawn({
        let (config, risk, bus, store, registry, metrics, token) = (
            config.escalator.clone(),
            config.risk.clone(),
            bus.clone(),
            store.clone(),
            registry.clone(),
            metrics.clone(),
            processing.clone(),
        );
        async move {
            posbon_escalator::consume(config, risk, bus, store, registry, &metrics, token)
                .await
                .context("escalator")
        }
    });
    tasks.spawn({
        let (api, token) = (api.clone(), processing.clone());
        async move {
            posbon_api::run_lifecycle(api, token)
                .await
                .context("api lifecycle")
        }
    });
    // The demo's history must be indexed before the reporter catches up on
    // the days before today, or their reports would be empty.
    let (history_tx, history_rx) = tokio::sync::oneshot::channel::<()>();
    let mut durables = vec![posbon_indexer::DURABLE.to_owned()];
    durables.extend(config.escalator.durables()?);
    let mut reporter_config = config.reporter.clone();
    if demo {
        // The demo replays a day in minutes, so the reports of the days it
        // replays go stale within minutes too: check them every minute.
        reporter_config.segment_refresh =
            reporter_config.segment_refresh.min(Span::from_minutes(1));
    }
    tasks.spawn({
        let (reporter_config, bus, metrics, token) = (
            reporter_config,
            bus.clone(),
            metrics.clone(),
            processing.clone(),
        );
        let durables = durables.clone();
        async move {
            if demo {
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    _ = history_rx => {}
                }
                drain(&*bus, &durables, Duration::from_secs(600)).await;
            }
            posbon_reporter::schedule_reports(reporter, reporter_config, bus, metrics, token)
                .await
                .context("reporter")
        }
    });
    if demo {
        tasks.spawn({
            let (config, bus, token) = (config.demo.clone(), bus.clone(), input.clone());
            async move {
                demo::run(&config, bus, history_tx, token)
                    .await
                    .context("demo stream")
            }
        });
    } else {
        drop(history_tx);
    }
    let scheme = posbon_service::http::scheme(&config.standalone.http);
    tracing::info!(
        listen = %address,
        bus = if config.standalone.nats_urls.is_empty() { "memory" } else { "nats" },
        store = %config.store.describe(),
        startup_ms = started.elapsed().as_millis() as u64,
        "posbon is running: open {scheme}://{address}/"
    );
    let lang = Lang::user();
    let url = format!("{scheme}://{address}/");
    eprintln!("{}", lang.f("cli.running", &[("url", &url)]));
    if let Some(pg) = pg_address {
        eprintln!("{}", lang.f("cli.pg_listening", &[("address", &pg)]));
    }
    if let Some(login) = &login {
        let link = format!("{url}login?code={}", login.code);
        eprintln!(
            "{}",
            lang.f(
                "cli.demo_login",
                &[
                    ("url", &link),
                    ("user", &login.user),
                    ("file", &login.password_file.display()),
                ]
            )
        );
    }

    // Wait for a stop or for a task to fail.
    let failed = tokio::select! {
        () = shutdown.cancelled() => None,
        Some(done) = tasks.join_next() => Some(done),
    };
    if let Some(done) = &failed {
        tracing::error!(result = ?done.as_ref().map(|r| r.as_ref().map_err(ToString::to_string)), "a part stopped; shutting down");
    }
    input.cancel();
    let _ = server.await;
    drain(&*bus, &durables, config.standalone.drain_timeout.to_std()).await;
    processing.cancel();
    let mut first_error = match failed {
        Some(Ok(Err(e))) => Some(e),
        Some(Err(join)) => Some(anyhow::anyhow!("a task panicked: {join}")),
        _ => None,
    };
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "stopped with an error");
                first_error.get_or_insert(e);
            }
            Err(join) => {
                first_error.get_or_insert(anyhow::anyhow!("a task panicked: {join}"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            tracing::info!("posbon stopped cleanly");
            Ok(())
        }
    }
}

/// Waits until the indexer and the escalator have nothing pending on EVENTS,
/// or `timeout`.
async fn drain(bus: &dyn Bus, durables: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let pending = pending_events(bus, durables).await;
        if pending == Some(0) {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(pending = ?pending, "shutting down with events not yet processed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pending_events(bus: &dyn Bus, durables: &[String]) -> Option<u64> {
    let mut total = 0;
    for durable in durables {
        total += bus.consumer_lag(EVENTS_STREAM, durable).await.ok()?.total();
    }
    Some(total)
}
