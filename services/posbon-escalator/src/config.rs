//! The `[escalator]` settings.

use posbon_model::Span;
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
    /// Number of shards the mahallas are split into (fixed for a deployment:
    /// each has its own checkpoint and durable consumer).
    pub shard_count: u32,
    /// Run this shard only. Unset (the default): take shards through leases,
    /// an even share of them among the instances alive ([`crate::leased`]).
    #[serde(default)]
    pub shard_index: Option<u32>,
    /// The name this instance holds leases under; unique among the
    /// instances, and the same after a restart (so that it takes its shards
    /// back at once). Default: the host name and `listen`.
    #[serde(default)]
    pub instance: Option<String>,
    /// How long a shard's lease lasts unless renewed (renewed every third of
    /// it; `3s` to `10m`): an instance that dies holds its shards this long
    /// at most.
    pub lease_ttl: Span,
    /// How long after the newest event time an event may arrive before it
    /// counts as late (`0s`: never).
    #[serde(with = "posbon_model::span::zero_allowed")]
    pub allowed_lateness: Span,
    /// Event time between level evaluations; also the idle wall time after
    /// which the engine is ticked anyway.
    pub tick: Span,
    /// Longest time between checkpoints (below `ack_wait`).
    pub checkpoint: Span,
    /// Messages fetched per batch.
    pub fetch_batch: usize,
    /// Longest wait for a batch.
    pub fetch_wait: Span,
    /// How long JetStream waits for an ack before redelivering (must exceed
    /// `checkpoint`: messages are acknowledged at checkpoints).
    pub ack_wait: Span,
}

impl EscalatorConfig {
    /// The shards this instance may hold: the one `shard_index` names, or
    /// every shard.
    pub(crate) fn shards(&self) -> anyhow::Result<Vec<Shard>> {
        match self.shard_index {
            Some(index) => Ok(vec![Shard::new(index, self.shard_count)?]),
            None => (0..self.shard_count)
                .map(|index| Shard::new(index, self.shard_count))
                .collect(),
        }
    }

    /// The durable consumers of every shard of the deployment.
    pub fn durables(&self) -> anyhow::Result<Vec<String>> {
        (0..self.shard_count)
            .map(|index| Shard::new(index, self.shard_count).map(|s| s.durable()))
            .collect()
    }

    /// The name this instance holds leases under: `instance`, else the host
    /// name and `listen`.
    pub(crate) fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|h| h.trim().to_owned())
                })
                .unwrap_or_else(|| "localhost".to_owned());
            format!("{host}/{}", self.listen)
        })
    }

    /// Checks the values.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=256).contains(&self.shard_count),
            "escalator.shard_count: must be 1 to 256"
        );
        self.shards()?;
        anyhow::ensure!(
            self.instance
                .as_ref()
                .is_none_or(|i| !i.trim().is_empty() && i.len() <= 200),
            "escalator.instance: must be 1 to 200 characters"
        );
        anyhow::ensure!(
            (Span::from_secs(3)..=Span::from_minutes(10)).contains(&self.lease_ttl),
            "escalator.lease_ttl: {} is not within 3s..=10m",
            self.lease_ttl
        );
        anyhow::ensure!(
            self.checkpoint < self.ack_wait,
            "escalator.checkpoint: {} must be below ack_wait ({})",
            self.checkpoint,
            self.ack_wait
        );
        anyhow::ensure!(
            (1..=20_000).contains(&self.fetch_batch),
            "escalator.fetch_batch: must be in 1..=20000"
        );
        Ok(())
    }
}
