//! Posbon API: what command centres and analysts talk to.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/feed` | live escalation feed, Server-Sent Events, resumable (`feed`) |
//! | `GET /v1/feed/ws` | the same over a WebSocket |
//! | `GET /v1/escalations` | escalations, filtered, newest first, a page at a time (`limit`, `cursor` from `x-next-cursor`; `escalations`) |
//! | `GET /v1/escalations/{id}` | one escalation with its audit trail |
//! | `POST /v1/escalations/{id}/{action}` | `acknowledge`, `assign`, `resolve`, `false_alarm` |
//! | `GET /v1/mahallas` | GeoJSON of the mahallas with their current risk (`mahallas`) |
//! | `GET /v1/mahallas/{id}` | a mahalla's recent events, hot cells and escalations |
//! | `GET /v1/registry` | regions and districts |
//! | `GET /v1/sources/precision` | per-camera and per-detector precision from verdicts |
//! | `GET /v1/silences`, `POST /v1/silences`, `DELETE /v1/silences/{id}` | silences and maintenance windows (`silences`) |
//! | `/healthz`, `/readyz`, `/metrics` | [`posbon_service::Health`] |
//!
//! Every route has an access rule ([`routes`]); the guard of `posbon-auth`
//! authenticates the caller and checks the role. Handlers limit what they
//! read and touch to the caller's scope: lists and the feed leave out what is
//! outside it, a request for one thing outside it is 403.
//!
//! The API process is also the one writer of escalation records
//! ([`lifecycle`]), and pages receivers when escalations open or climb a
//! tier ([`notify`], `[notify]` in the configuration). SQL (`POST /v1/sql`) and reports (`GET /v1/reports/daily`)
//! come from `posbon-sql` and `posbon-reporter` and are merged in by whoever
//! runs the API (`ApiParts::extra`).

mod error;
mod escalations;
mod feed;
pub mod lifecycle;
mod live;
mod mahallas;
pub mod notify;
mod page;
pub mod serve;
mod silences;

use posbon_model::Span;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use axum::routing::{delete, get, post};
use posbon_auth::{Access, Auth, Guarded, Permission};
use posbon_bus::{Bus, default_streams};
use posbon_geo::Registry;
use posbon_service::{FnCheck, Health};
use posbon_store::Store;
use posbon_telemetry::Metrics;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use lifecycle::Lifecycle;

/// Defaults embedded in the binary.
pub const DEFAULTS: &str = include_str!("default.toml");

/// How the API runs (`[api]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// HTTP address.
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON). Required by the service binaries: every service of a deployment loads the same file (`posbon_service::registry`); the library entry points take a loaded registry.
    #[serde(default)]
    pub registry: Option<std::path::PathBuf>,
    /// How long after which an unacknowledged escalation is re-notified one tier up.
    pub renotify_after: Span,
    /// Time between re-notification checks.
    pub renotify_check: Span,
    /// Time between SSE keep-alive comments.
    pub feed_keepalive: Span,
    /// Most escalations one list returns.
    pub max_list: usize,
    /// Most live-feed clients (SSE and WebSocket) at once; one more gets 503
    /// `feed_full` with `Retry-After`.
    #[serde(default = "default_max_feed_clients")]
    pub max_feed_clients: usize,
    /// Most live-feed clients of one identity (user or token) at once; one
    /// more gets 429 `too_many_feeds`.
    #[serde(default = "default_max_feed_clients_per_caller")]
    pub max_feed_clients_per_caller: usize,
    /// Most ALERTS messages a feed replays on `since`/`Last-Event-ID`; a
    /// client further behind starts that many messages back and is told with
    /// a `gap` message (the list, `GET /v1/escalations`, has the state).
    #[serde(default = "default_max_feed_replay")]
    pub max_feed_replay: u64,
}

fn default_max_feed_clients() -> usize {
    2048
}

fn default_max_feed_clients_per_caller() -> usize {
    32
}

fn default_max_feed_replay() -> u64 {
    10_000
}

impl ApiConfig {
    /// The SSE keep-alive interval.
    pub fn feed_keepalive(&self) -> Duration {
        self.feed_keepalive.to_std()
    }

    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_list >= 1, "api.max_list: must be at least 1");
        anyhow::ensure!(
            self.max_feed_clients >= 1 && self.max_feed_clients_per_caller >= 1,
            "api.max_feed_clients and api.max_feed_clients_per_caller: must be at least 1"
        );
        Ok(())
    }
}

/// What every handler shares.
pub struct ApiState {
    /// Configuration.
    pub config: ApiConfig,
    /// The bus (ALERTS for the feed).
    pub bus: Arc<dyn Bus>,
    /// The store (escalation records, events, risk snapshots).
    pub store: Store,
    /// The mahalla registry.
    pub registry: Arc<Registry>,
    /// The lifecycle writer.
    pub lifecycle: Arc<Lifecycle>,
    /// Identities and the audit log.
    pub auth: Arc<Auth>,
    /// Connected feed clients, counted against the limits.
    pub feed_clients: Arc<feed::FeedAdmission>,
    /// The one reader of ALERTS the feed clients share.
    pub(crate) live: Arc<live::LiveAlerts>,
    /// Routes and receivers of pages; `None`: nothing is paged.
    pub notifier: Option<Arc<posbon_notify::Notifier>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.config)
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// Builds the state, paging nobody.
    pub fn new(
        config: ApiConfig,
        bus: Arc<dyn Bus>,
        store: Store,
        registry: Arc<Registry>,
        auth: Arc<Auth>,
        metrics: &Metrics,
    ) -> anyhow::Result<Arc<Self>> {
        Self::with_notify(
            config,
            bus,
            store,
            registry,
            auth,
            metrics,
            &posbon_notify::NotifyConfig::default(),
        )
    }

    /// Builds the state, paging as `notify` says.
    pub fn with_notify(
        config: ApiConfig,
        bus: Arc<dyn Bus>,
        store: Store,
        registry: Arc<Registry>,
        auth: Arc<Auth>,
        metrics: &Metrics,
        notify: &posbon_notify::NotifyConfig,
    ) -> anyhow::Result<Arc<Self>> {
        config.validate()?;
        let notifier = posbon_notify::Notifier::new(notify, metrics)?;
        let notifier = (!notifier.is_empty()).then(|| Arc::new(notifier));
        let lifecycle = Arc::new(Lifecycle::new(
            store.clone(),
            bus.clone(),
            config.renotify_after.to_std(),
            metrics,
        )?);
        Ok(Arc::new(Self {
            feed_clients: Arc::new(feed::FeedAdmission::new(
                metrics.gauge(
                    "posbon_feed_clients",
                    "Clients connected to the live escalation feed",
                )?,
                config.max_feed_clients,
                config.max_feed_clients_per_caller,
            )),
            config,
            live: live::LiveAlerts::new(bus.clone()),
            bus,
            store,
            registry,
            lifecycle,
            auth,
            notifier,
        }))
    }
}

/// The API's own routes (see the crate docs), each with its access rule.
pub fn routes(state: Arc<ApiState>) -> Guarded {
    use Access::{Permission as P, Public};
    let router = Router::new()
        .route("/v1/feed", get(feed::sse))
        .route("/v1/feed/ws", get(feed::websocket))
        .route("/v1/escalations", get(escalations::list))
        .route("/v1/escalations/{id}", get(escalations::get))
        .route("/v1/escalations/{id}/{action}", post(escalations::act))
        .route("/v1/mahallas", get(mahallas::geojson))
        .route("/v1/mahallas/{id}", get(mahallas::detail))
        .route("/v1/registry", get(mahallas::registry))
        .route("/v1/sources/precision", get(mahallas::precision))
        .route("/v1/silences", get(silences::list).post(silences::create))
        .route("/v1/silences/{id}", delete(silences::expire))
        .route("/", get(page::index))
        .route("/static/{file}", get(page::static_file))
        .route("/i18n.json", get(page::messages))
        .route("/v1/risk", get(page::risk))
        .with_state(state);
    Guarded::new(
        router,
        [
            (Method::GET, "/v1/feed", P(Permission::ReadFeed)),
            (Method::GET, "/v1/feed/ws", P(Permission::ReadFeed)),
            (
                Method::GET,
                "/v1/escalations",
                P(Permission::ReadEscalations),
            ),
            (
                Method::GET,
                "/v1/escalations/{id}",
                P(Permission::ReadEscalations),
            ),
            (
                Method::POST,
                "/v1/escalations/{id}/{action}",
                P(Permission::ActEscalations),
            ),
            (Method::GET, "/v1/mahallas", P(Permission::ReadMap)),
            (Method::GET, "/v1/mahallas/{id}", P(Permission::ReadMap)),
            (Method::GET, "/v1/registry", P(Permission::ReadMap)),
            (Method::GET, "/v1/sources/precision", P(Permission::ReadMap)),
            (Method::GET, "/v1/silences", P(Permission::ReadEscalations)),
            (Method::POST, "/v1/silences", P(Permission::ManageSilences)),
            (
                Method::DELETE,
                "/v1/silences/{id}",
                P(Permission::ManageSilences),
            ),
            // The page itself holds no data: it asks who is logged in.
            (Method::GET, "/", Public),
            (Method::GET, "/static/{file}", Public),
            (Method::GET, "/i18n.json", Public),
            (Method::GET, "/v1/risk", P(Permission::ReadMap)),
        ],
    )
}

/// Readiness checks of the API: NATS, the store, and the registry it shares
/// with the deployment.
pub fn health(metrics: &Metrics, bus: Arc<dyn Bus>, store: Store, registry: &Registry) -> Health {
    Health::new(metrics.clone())
        .with_check(posbon_service::registry::readiness(store.clone(), registry))
        .with_check(FnCheck::new("nats", move || {
            let bus = bus.clone();
            async move { bus.health().await.map_err(|e| e.to_string()) }
        }))
        .with_check(FnCheck::new("store", move || {
            let store = store.clone();
            async move { store.get(b"c").await.map(drop).map_err(|e| e.to_string()) }
        }))
}

/// Runs the lifecycle worker until `shutdown` (also part of `posbon standalone`).
pub async fn run_lifecycle(
    state: Arc<ApiState>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Records written before the list indexes existed get them once.
    let indexed =
        posbon_store::EscalationStoreExt::ensure_escalation_indexes(&*state.store).await?;
    if indexed > 0 {
        tracing::info!(records = indexed, "escalation records indexed for lists");
    }
    let settings = lifecycle::LifecycleSettings {
        renotify_check: state.config.renotify_check.to_std(),
    };
    let paging = async {
        match &state.notifier {
            Some(notifier) => {
                notify::run(
                    state.lifecycle.clone(),
                    notifier.clone(),
                    state.registry.clone(),
                    shutdown.clone(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    // A worker that fails (NATS refusing its consumer) stops the process
    // rather than leaving escalations unrecorded or unpaged unnoticed.
    tokio::try_join!(
        lifecycle::run(state.lifecycle.clone(), settings, shutdown.clone()),
        paging
    )?;
    Ok(())
}

/// Who may call `run`'s routes, and what it serves besides the API's own.
#[derive(Debug)]
pub(crate) struct ApiParts {
    /// Identities and the audit log.
    pub(crate) auth: Arc<Auth>,
    /// More routes on the same address (SQL, reports), with their rules.
    pub(crate) extra: Guarded,
    /// Receivers and routes of pages.
    pub(crate) notify: posbon_notify::NotifyConfig,
}

/// Runs the API until `shutdown`: streams, lifecycle worker, HTTP server.
pub(crate) async fn run(
    config: ApiConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    registry: Arc<Registry>,
    metrics: Metrics,
    parts: ApiParts,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    bus.ensure_streams(&default_streams()).await?;
    posbon_service::registry::join(&*store, &registry, "posbon-api").await?;
    let auth = parts.auth.clone();
    let listen = config.listen.clone();
    let http = config.http.clone();
    let state = ApiState::with_notify(
        config,
        bus.clone(),
        store.clone(),
        registry,
        auth.clone(),
        &metrics,
        &parts.notify,
    )?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    auth.bootstrap(listener.local_addr()?).await?;
    let app = health(&metrics, bus, store, &state.registry)
        .guarded()
        .merge(posbon_auth::http::identity_routes(auth.clone()))
        .merge(routes(state.clone()))
        .merge(parts.extra)
        .into_router(auth);
    tracing::info!(listen = %listener.local_addr()?, "api serving http");
    let server_shutdown = shutdown.clone();
    let server_metrics = metrics.clone();
    let server = tokio::spawn(async move {
        posbon_service::http::serve(listener, app, &http, &server_metrics, server_shutdown).await
    });
    let worked = run_lifecycle(state, shutdown.clone()).await;
    shutdown.cancel();
    server.await??;
    worked
}
