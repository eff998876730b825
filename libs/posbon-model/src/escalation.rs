//! [`Escalation`]: a record that a mahalla's risk level went up.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::cell::CellId;
use crate::event::{ID_PATTERN, MAX_ID_BYTES};

string_enum! {
    /// Risk level of a mahalla, ordered `normal < elevated < high < critical`.
    RiskLevel, "level" {
        /// Nothing unusual.
        Normal = "normal",
        /// More than usual; watch.
        Elevated = "elevated",
        /// Clearly above normal; act.
        High = "high",
        /// Severe; act now.
        Critical = "critical",
    }
}

string_enum! {
    /// Handling status of an escalation.
    EscalationStatus, "status" {
        /// Opened, nobody has looked yet.
        Open = "open",
        /// Seen by an operator.
        Acknowledged = "acknowledged",
        /// Assigned to an officer / inspector.
        Assigned = "assigned",
        /// Handled.
        Resolved = "resolved",
        /// Judged a false alarm.
        FalseAlarm = "false_alarm",
    }
}

/// A hot spot cell that contributed to an escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HotCell {
    /// The H3 cell.
    pub cell: CellId,
    /// Getis-Ord Gi* z-score of the cell.
    pub gi_z: f64,
    /// Number of events in the cell during the window.
    pub events: u64,
}

/// A change of a mahalla's risk level, with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Stable id, see [`Escalation::deterministic_id`] (visible ASCII, <= 128 bytes).
    #[schemars(length(min = 1, max = 128), regex(pattern = ID_PATTERN))]
    pub id: String,
    /// The mahalla concerned.
    #[schemars(length(min = 1))]
    pub mahalla_id: String,
    /// Its district.
    #[schemars(length(min = 1))]
    pub district_id: String,
    /// Its region.
    #[schemars(length(min = 1))]
    pub region_id: String,
    /// New level.
    pub level: RiskLevel,
    /// Level before this escalation.
    pub previous_level: RiskLevel,
    /// Risk score that triggered the rule.
    pub score: f64,
    /// Name of the rule that fired.
    #[schemars(length(min = 1))]
    pub rule: String,
    /// Event counts in the window, by category / detection / scheme name.
    pub counts: BTreeMap<String, u64>,
    /// Cells with significant clustering.
    pub hot_cells: Vec<HotCell>,
    /// Ids of the events that are evidence for the escalation.
    #[schemars(inner(length(min = 1, max = 128), regex(pattern = ID_PATTERN)))]
    pub evidence: Vec<String>,
    /// Start of the evaluation window.
    pub window_start: DateTime<Utc>,
    /// End of the evaluation window.
    pub window_end: DateTime<Utc>,
    /// When the escalation was opened.
    pub opened_at: DateTime<Utc>,
    /// Handling status.
    pub status: EscalationStatus,
}

impl Escalation {
    /// Stable id for the `episode`-th escalation of `rule` in `mahalla_id`:
    /// the same inputs always give the same id, so re-processing a window
    /// does not open a duplicate.
    ///
    /// Readable `esc:<mahalla>:<rule>:<episode>` when both names consist of
    /// `[A-Za-z0-9._-]` and the result fits in 128 bytes; otherwise
    /// `esc:sha256:<32 hex digits>` of the three inputs. Either form is
    /// visible ASCII of at most 128 bytes, usable as a `Nats-Msg-Id`.
    pub fn deterministic_id(mahalla_id: &str, rule: &str, episode: u64) -> String {
        let safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if safe(mahalla_id) && safe(rule) {
            let id = format!("esc:{mahalla_id}:{rule}:{episode}");
            if id.len() <= MAX_ID_BYTES {
                return id;
            }
        }
        let mut h = Sha256::new();
        h.update((mahalla_id.len() as u64).to_be_bytes());
        h.update(mahalla_id.as_bytes());
        h.update((rule.len() as u64).to_be_bytes());
        h.update(rule.as_bytes());
        h.update(episode.to_be_bytes());
        let digest = h.finalize();
        format!("esc:sha256:{}", hex::encode(&digest[..16]))
    }
}
