//! Posbon escalator: keeps the risk state of every mahalla it owns from the
//! EVENTS stream and publishes escalations to ALERTS.
//!
//! * **Event time.** The [`posbon_risk::Engine`] works in event time. The
//!   escalator keeps a watermark (the newest event time seen minus the allowed
//!   lateness) and ticks the engine every `tick` of watermark, so levels
//!   are re-evaluated as event time passes. An event older than the watermark
//!   is *late*: it is still applied exactly (the decayed intensity allows any
//!   order), counted in `posbon_escalator_late_events_total` and logged at
//!   DEBUG (a replay is thousands of them). When
//!   no event arrives for `tick` of wall time, the engine is ticked at the
//!   newest event time plus the idle wall time, so mahallas calm down when
//!   nothing happens.
//! * **Exactly once from at-least-once parts.** Each EVENTS message is applied
//!   once: the state carries the last stream sequence it covers, and a
//!   redelivered message at or below it is acknowledged without being applied.
//!   Escalations are published with their deterministic id as `Nats-Msg-Id`.
//!   The loop is: apply a batch → publish the escalations it produced →
//!   checkpoint state, sequence and any unpublished escalations → acknowledge.
//!   A checkpoint is a copy of the state taken in the loop, encoded and
//!   written on another task while the loop goes on applying events (one
//!   checkpoint in flight at a time); the messages it covers are acknowledged
//!   only once it is written, and kept for the next one if it fails.
//!   After a kill -9 the escalator restores the checkpoint and resumes after
//!   its sequence; what it applies again reproduces the same escalations with
//!   the same ids, which JetStream (and the API's lifecycle) drop as
//!   duplicates.
//! * **Shards.** Instance `i` of `n` owns the mahallas whose id hashes
//!   (FNV-1a 64) to `i` modulo `n` ([`Shard::owns`]); events outside every
//!   mahalla belong to shard 0. Every instance reads all of EVENTS through its
//!   own durable consumer (`escalator-<i>-of-<n>`) and skips what it does not
//!   own. When the shard count changes, a new instance has no checkpoint of
//!   its own: it takes each mahalla it owns from the newest checkpoint of any
//!   earlier shard that held it, starts reading after the oldest sequence among
//!   those, and skips events a mahalla's state already covers. Episode
//!   counters travel with the state, so escalation ids continue and nothing is
//!   escalated twice.
//! * The risk of every raised mahalla (level, score, since, hot cells) is
//!   stored with each checkpoint as a [`RiskSnapshot`] for the map.

mod checkpoint;
mod config;
mod consume;
mod engine;
pub mod leased;
mod metrics;
pub mod serve;
mod shard;

pub use checkpoint::{Checkpoint, read_checkpoint};
pub use config::EscalatorConfig;
pub use consume::consume;
pub use engine::{Applied, Escalator, MAX_AHEAD_OF_INGEST};
pub use shard::Shard;

/// Defaults embedded in the binary.
pub const DEFAULTS: &str = include_str!("default.toml");
