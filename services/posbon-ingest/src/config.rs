//! Configuration of the ingest service (`[ingest]` in the TOML file,
//! `POSBON__INGEST__*` in the environment).

use std::path::PathBuf;

use serde::Deserialize;

/// Defaults embedded in the binary; a file and the environment override them.
pub const DEFAULTS: &str = include_str!("default.toml");

/// The whole configuration file of `posbon-ingest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The ingest service.
    pub ingest: IngestConfig,
    /// The store that holds identities (producers' tokens): the cluster's
    /// TiKV, which every service shares.
    pub store: posbon_store::StoreConfig,
    /// Identities and the HTTP guard.
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// Logs, traces and metrics.
    #[serde(default)]
    pub telemetry: posbon_telemetry::TelemetryConfig,
}

/// How ingest runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the HTTP server (`POST /v1/events`, `/healthz`, `/readyz`, `/metrics`).
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs; several for a cluster.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON). Empty: the simulated Tashkent registry.
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// Largest single event in bytes.
    pub max_event_bytes: usize,
    /// Largest HTTP body (one event or a batch) in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// How far in the future `occurred_at` may be, in seconds (clock skew).
    pub max_future_secs: u64,
    /// Key of the keyed hash that pseudonymises fraud account references. Keep it
    /// secret and stable: the same account must hash the same way every day.
    pub pseudonym_key: String,
    /// Messages fetched from INGEST per batch.
    pub fetch_batch: usize,
    /// Bytes (subjects, headers, payloads) fetched from INGEST per batch, at
    /// most: with [`IngestConfig::fetch_batch`], this bounds what a batch
    /// holds in memory whatever the messages' sizes (a message larger than
    /// the bound still comes, alone).
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: usize,
    /// Seconds JetStream waits for an ack before redelivering an INGEST message.
    pub ack_wait_secs: u64,
    /// How events are encoded on EVENTS: `compact` (binary, a third of the
    /// bytes, cheap to encode and decode) or `json` (for consumers of your own
    /// that read JSON). Posbon's consumers read both.
    #[serde(default)]
    pub events_encoding: posbon_model::EventEncoding,
}

/// 16 MiB: about 40,000 typical events, or 16 of the largest messages
/// nats-server accepts by default.
fn default_fetch_max_bytes() -> usize {
    16 << 20
}
