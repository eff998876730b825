//! [`RiskSnapshot`]: the current risk of every mahalla as the escalator last
//! checkpointed it, for the command-centre map.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::escalation::{HotCell, RiskLevel};

/// The risk of one mahalla.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MahallaRisk {
    /// The mahalla.
    pub mahalla_id: String,
    /// Its current level.
    pub level: RiskLevel,
    /// Its current score against its baseline.
    pub score: f64,
    /// Event time since which it has been at `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Its hot cells (Getis-Ord Gi*), hottest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hot_cells: Vec<HotCell>,
}

/// The risk of the mahallas one escalator shard owns. Mahallas that are
/// `normal` with no hot cells may be left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskSnapshot {
    /// The shard that wrote it (`<index>-of-<count>`).
    pub shard: String,
    /// The last EVENTS sequence it covers.
    pub sequence: u64,
    /// The escalator's event-time watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
    /// Wall-clock time it was written.
    pub written_at: DateTime<Utc>,
    /// The mahallas, by id.
    pub mahallas: Vec<MahallaRisk>,
}

/// Checkpoint name prefix of risk snapshots: each escalator shard stores its
/// snapshot under this prefix followed by its shard name.
pub const RISK_SNAPSHOT_PREFIX: &str = "escalator/risk/";
