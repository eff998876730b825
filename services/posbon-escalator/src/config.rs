//! The `[escalator]` settings.

use serde::Deserialize;

use crate::shard::Shard;

/// How the escalator runs (`[escalator]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalatorConfig {
    /// HTTP address (`/healthz`, `/readyz`, `/metrics`).
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON). Required by the service binaries: every service of a deployment loads the same file (`posbon_service::registry`); the library entry points take a loaded registry.
    #[serde(default)]
    pub registry: Option<std::path::PathBuf>,
    /// This instance's shard.
    pub shard_index: u32,
    /// Number of shards.
    pub shard_count: u32,
    /// Seconds an event may arrive after the newest event time before it counts as late.
    pub allowed_lateness_secs: u64,
    /// Seconds of event time between level evaluations; also the idle wall time
    /// after which the engine is ticked anyway.
    pub tick_secs: u64,
    /// Longest time between checkpoints, seconds.
    pub checkpoint_secs: u64,
    /// Messages fetched per batch.
    pub fetch_batch: usize,
    /// Longest wait for a batch, milliseconds.
    pub fetch_wait_ms: u64,
    /// Seconds JetStream waits for an ack before redelivering (must exceed
    /// `checkpoint_secs`: messages are acknowledged at checkpoints).
    pub ack_wait_secs: u64,
}

impl EscalatorConfig {
    /// The shard of this instance.
    pub fn shard(&self) -> anyhow::Result<Shard> {
        Shard::new(self.shard_index, self.shard_count)
    }

    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.shard()?;
        anyhow::ensure!(
            self.tick_secs >= 1,
            "escalator.tick_secs: must be at least 1"
        );
        anyhow::ensure!(
            self.checkpoint_secs >= 1 && self.checkpoint_secs < self.ack_wait_secs,
            "escalator.checkpoint_secs: must be at least 1 and below ack_wait_secs ({})",
            self.ack_wait_secs
        );
        anyhow::ensure!(
            (1..=20_000).contains(&self.fetch_batch),
            "escalator.fetch_batch: must be in 1..=20000"
        );
        Ok(())
    }
}
