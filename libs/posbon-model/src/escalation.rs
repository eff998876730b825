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

string_enum! {
    /// What an escalation's [`RuleMeasure`] measured.
    MeasureName, "measure" {
        /// Matching events in the rule's window.
        Count = "count",
        /// The harm weights of the matching events in the window, added up.
        Harm = "harm",
        /// The mahalla's risk score (the `score` rule): the standard score of
        /// its decayed harm against what its baseline expects at that hour.
        Score = "score",
    }
}

/// What made an escalation's rule fire: its own measure against its own
/// threshold, and for a rule that also asks the window to stand out from the
/// baseline, that standard score against its floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleMeasure {
    /// What was measured.
    pub name: MeasureName,
    /// Its value when the rule fired.
    pub value: f64,
    /// The value the rule needs (for `score`, the level's entry score).
    pub threshold: f64,
    /// Standard score of the window against the baseline (rules with
    /// `min_z`; absent before the baseline was ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    /// The standard score the rule needs once its baseline is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_z: Option<f64>,
}

impl RuleMeasure {
    /// One line in English for people, e.g. `3 events (needs 3), before its
    /// baseline` or `score 4.12 (enters at 3)`.
    pub fn describe(&self) -> String {
        let n = |v: f64| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v:.2}")
            }
        };
        let mut text = match self.name {
            MeasureName::Count => format!("{} events (needs {})", n(self.value), n(self.threshold)),
            MeasureName::Harm => format!("harm {} (needs {})", n(self.value), n(self.threshold)),
            MeasureName::Score => {
                format!("score {} (enters at {})", n(self.value), n(self.threshold))
            }
        };
        match (self.z, self.min_z) {
            (Some(z), Some(min)) => text.push_str(&format!(", z {} (needs {})", n(z), n(min))),
            (None, Some(_)) => text.push_str(", before its baseline"),
            _ => {}
        }
        text
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
    /// The rule's headline figure. For the `score` rule, the mahalla's risk
    /// score; for a pattern rule, its standard score against the baseline
    /// when it has one, else its measure. [`Escalation::measure`] says what
    /// fired the rule against which threshold.
    pub score: f64,
    /// Name of the rule that fired.
    #[schemars(length(min = 1))]
    pub rule: String,
    /// The rule's own measure against its threshold (absent in records made
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<RuleMeasure>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measure_reads_as_what_fired_against_what_it_needs() {
        let m = |name, value, threshold, z, min_z| RuleMeasure {
            name,
            value,
            threshold,
            z,
            min_z,
        };
        assert_eq!(
            m(MeasureName::Count, 3.0, 3.0, None, Some(3.0)).describe(),
            "3 events (needs 3), before its baseline"
        );
        assert_eq!(
            m(MeasureName::Count, 9.0, 5.0, Some(4.123), Some(3.0)).describe(),
            "9 events (needs 5), z 4.12 (needs 3)"
        );
        assert_eq!(
            m(MeasureName::Harm, 12.5, 10.0, None, None).describe(),
            "harm 12.50 (needs 10)"
        );
        assert_eq!(
            m(MeasureName::Score, 3.456, 2.5, None, None).describe(),
            "score 3.46 (enters at 2.50)"
        );
    }

    #[test]
    fn records_without_a_measure_still_read() {
        let mut v = serde_json::to_value(crate::lifecycle::tests::escalation()).expect("json");
        v.as_object_mut().expect("object").remove("measure");
        let e: Escalation = serde_json::from_value(v).expect("an older record");
        assert_eq!(e.measure, None);
    }
}
