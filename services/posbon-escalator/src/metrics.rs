//! The escalator's metrics.

use posbon_telemetry::{Counter, Gauge, Histogram, Metrics, TelemetryError};

pub(crate) struct EscalatorMetrics {
    pub(crate) applied: Counter,
    pub(crate) skipped: Counter,
    pub(crate) late: Counter,
    pub(crate) invalid: Counter,
    pub(crate) escalations: Counter,
    pub(crate) checkpoint_seconds: Histogram,
    pub(crate) watermark_lag: Gauge,
    pub(crate) lag: Gauge,
    pub(crate) shards_held: Gauge,
    pub(crate) shard_count: Gauge,
    pub(crate) handovers: Counter,
}

impl EscalatorMetrics {
    pub(crate) fn new(metrics: &Metrics) -> Result<Self, TelemetryError> {
        Ok(Self {
            applied: metrics.counter(
                "posbon_escalator_events_applied_total",
                "EVENTS messages applied to the risk state",
            )?,
            skipped: metrics.counter(
                "posbon_escalator_events_skipped_total",
                "EVENTS messages of other shards or already covered by the state",
            )?,
            late: metrics.counter(
                "posbon_escalator_late_events_total",
                "Events older than the watermark (applied exactly all the same)",
            )?,
            invalid: metrics.counter(
                "posbon_escalator_invalid_messages_total",
                "EVENTS messages that are not enriched events (terminated)",
            )?,
            escalations: metrics.counter(
                "posbon_escalations_published_total",
                "Escalations published to ALERTS",
            )?,
            checkpoint_seconds: metrics.histogram(
                "posbon_escalator_checkpoint_seconds",
                "Time to write a checkpoint",
                posbon_telemetry::DEFAULT_LATENCY_BUCKETS,
            )?,
            watermark_lag: metrics.gauge(
                "posbon_escalator_watermark_lag_seconds",
                "Wall clock minus the newest event time seen",
            )?,
            shards_held: metrics.gauge(
                "posbon_escalator_shards_held",
                "Shards this instance runs (under their leases)",
            )?,
            shard_count: metrics.gauge(
                "posbon_escalator_shard_count",
                "Shards of the deployment (shard_count): all of them must be held",
            )?,
            handovers: metrics.counter(
                "posbon_escalator_shard_leases_lost_total",
                "Shards stopped because their lease went to another instance",
            )?,
            lag: metrics.gauge(
                "posbon_escalator_consumer_lag",
                "EVENTS messages not yet applied by this shard",
            )?,
        })
    }
}
