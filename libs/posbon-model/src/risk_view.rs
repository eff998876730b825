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

impl RiskSnapshot {
    /// The shard count of the shard that wrote it (`count` of
    /// `<index>-of-<count>`), if its name says.
    pub fn shard_count(&self) -> Option<u32> {
        self.shard.split_once("-of-")?.1.parse().ok()
    }

    /// Merges the snapshots of every shard into the current risk by mahalla
    /// id. Only snapshots of the shard count of the newest one count: after
    /// the mahallas were re-sharded, the snapshots of the earlier shards are
    /// stale (a mahalla that calmed down since would show its old level).
    pub fn merge(snapshots: Vec<RiskSnapshot>) -> std::collections::HashMap<String, MahallaRisk> {
        let current = snapshots
            .iter()
            .max_by_key(|s| s.written_at)
            .and_then(RiskSnapshot::shard_count);
        let mut out = std::collections::HashMap::new();
        for snapshot in snapshots {
            if snapshot.shard_count() != current {
                continue;
            }
            for m in snapshot.mahallas {
                out.insert(m.mahalla_id.clone(), m);
            }
        }
        out
    }
}

/// Checkpoint name prefix of risk snapshots: each escalator shard stores its
/// snapshot under this prefix followed by its shard name.
pub const RISK_SNAPSHOT_PREFIX: &str = "escalator/risk/";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn snapshot(shard: &str, minute: u32, raised: &[&str]) -> RiskSnapshot {
        RiskSnapshot {
            shard: shard.to_owned(),
            sequence: 1,
            watermark: None,
            written_at: Utc
                .with_ymd_and_hms(2026, 12, 5, 10, minute, 0)
                .single()
                .expect("time"),
            mahallas: raised
                .iter()
                .map(|id| MahallaRisk {
                    mahalla_id: (*id).to_owned(),
                    level: RiskLevel::High,
                    score: 5.0,
                    since: None,
                    hot_cells: Vec::new(),
                })
                .collect(),
        }
    }

    /// After a re-shard from two shards to three, the old shards' snapshots
    /// no longer count: a mahalla that calmed down under the new shards is
    /// not shown at its old level.
    #[test]
    fn snapshots_of_an_earlier_shard_count_are_stale() {
        let merged = RiskSnapshot::merge(vec![
            snapshot("0-of-2", 1, &["calmed", "still"]),
            snapshot("1-of-2", 2, &["other"]),
            snapshot("0-of-3", 5, &["still"]),
            snapshot("2-of-3", 6, &[]),
        ]);
        let mut ids: Vec<&str> = merged.keys().map(String::as_str).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["still"]);
        // One shard count: every shard's mahallas.
        let merged = RiskSnapshot::merge(vec![
            snapshot("0-of-2", 1, &["a"]),
            snapshot("1-of-2", 2, &["b"]),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(snapshot("1-of-2", 0, &[]).shard_count(), Some(2));
        assert_eq!(snapshot("odd", 0, &[]).shard_count(), None);
    }
}
