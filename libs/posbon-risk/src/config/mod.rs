//! [`RiskConfig`]: every tunable of the risk model, with the shipped defaults.
//!
//! Loaded from the `[risk]` table of a service's TOML file. Every struct
//! rejects unknown keys, and every key that is left out takes its default, so
//! a file only names what it changes. Tables keyed by category, detection or
//! scheme are merged with the defaults entry by entry: writing
//! `[risk.weights.incident] homicide = [...]` changes homicide only.
//! [`RiskConfig::validate`] checks ranges and orderings and names the bad key.
//!
//! This module holds the types. The defaults are one TOML document,
//! `config/defaults.toml`: a complete `[risk]` table that can be copied into
//! a service's file, embedded and read by `defaults.rs`. The checks are in
//! `validate.rs`.

use std::collections::BTreeMap;

use posbon_model::{Detection, EventKind, FraudScheme, IncidentCategory, RiskLevel};
use serde::{Deserialize, Deserializer, Serialize};

use posbon_model::Span;

mod defaults;
#[cfg(test)]
mod tests;
mod validate;

/// A configuration value that is out of range or inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending key under `[risk]`, e.g. `levels.high.exit`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Largest harm weight a table may hold (weights are stored in 1/256 steps).
pub const MAX_WEIGHT: f64 = 1000.0;

/// Name of the rule that [`crate::Engine`] gives to escalations raised by the
/// score (rather than by a pattern rule).
pub const SCORE_RULE: &str = "risk_score";

/// The risk model's configuration (`[risk]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Harm weight of each event.
    pub weights: WeightsConfig,
    /// Half-life of the decayed intensity: an event counts half as much this
    /// long after it happened.
    pub half_life: Span,
    /// Length of the trailing baseline, whole days (default 28).
    pub baseline_window: Span,
    /// Offset of local time from UTC in minutes, for the days and hours of
    /// the baselines (days start at local midnight; weekdays are local).
    /// Must be the local time zone's offset, 300 (Asia/Tashkent, UTC+05:00
    /// all year: [`posbon_model::local_offset_minutes`]), the one local day
    /// of SQL, the reports and the page; kept so that existing files read.
    pub utc_offset_minutes: i32,
    /// How much baseline a mahalla needs before its score can raise its level
    /// and before rules with `min_z` fire (the engine's history counts from its
    /// first input). Pattern rules without `min_z` act from the start.
    pub min_baseline: Span,
    /// What a mahalla with no history is assumed to look like.
    pub prior: PriorConfig,
    /// Pseudo-count that pulls each hour of the day's baseline towards the
    /// mahalla's all-day mean: an hour with this many events in the baseline is
    /// half its own rate and half the mean.
    pub profile_shrinkage: f64,
    /// Overdispersion `k` of the score: the variance of a count with mean `E`
    /// is taken as `E + E²/k` (day-to-day variation that a Poisson count does
    /// not have, such as the weekly cycle). Larger is more sensitive in busy
    /// mahallas.
    pub overdispersion: f64,
    /// Level thresholds and dwell.
    pub levels: LevelsConfig,
    /// Window of the counts, evidence and hot cells attached to a score
    /// escalation.
    pub evidence_window: Span,
    /// Most evidence event ids attached to an escalation.
    pub max_evidence: usize,
    /// Most recent events a mahalla keeps for evidence (a bound on memory
    /// when a mahalla is flooded).
    pub max_recent_events: usize,
    /// Hot cells (Getis-Ord Gi*) attached to escalations.
    pub hot_cells: HotCellsConfig,
    /// Pattern rules.
    pub rules: Vec<RuleConfig>,
}

/// What a mahalla with no history is assumed to look like: its baseline
/// starts as `days` days at `harm_per_day`, and new data outweighs it as it
/// accumulates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorConfig {
    /// Harm per day of a mahalla with no history.
    pub harm_per_day: f64,
    /// Weight of the prior, in days of data.
    pub days: f64,
    /// Dispersion (mean of w² over mean of w) of a mahalla with no history.
    pub dispersion: f64,
    /// Harm per day of an H3 cell with no history (for cell scores).
    pub cell_harm_per_day: f64,
}

/// Hot cells attached to escalations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotCellsConfig {
    /// Smallest Gi* z-score of a reported cell (1.96: 5% two-sided).
    pub min_z: f64,
    /// Most cells reported, hottest first.
    pub max_cells: usize,
}

/// Thresholds of one level on the score (see [`crate::Engine`]: the score is
/// the smaller of the harm's and the event count's standard scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelThresholds {
    /// The score must reach this to enter the level.
    pub entry: f64,
    /// The level is left only when the score falls below this (and the dwell
    /// has passed).
    pub exit: f64,
    /// Effective number of events needed to enter the level: the Kish
    /// number λ²/Σwᵢ²e^(−2·ageᵢ/τ) of the decayed sum, which is the number of
    /// events when they weigh the same and near 1 when one heavy incident
    /// dominates. One heavy incident alone is not a situation.
    pub min_events: f64,
}

/// Levels with hysteresis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelsConfig {
    /// `elevated`.
    pub elevated: LevelThresholds,
    /// `high`.
    pub high: LevelThresholds,
    /// `critical`.
    pub critical: LevelThresholds,
    /// A level is held at least this long before it may go down (going up is
    /// immediate).
    pub min_dwell: Span,
}

impl LevelsConfig {
    /// Thresholds of a level above `normal`.
    pub fn thresholds(&self, level: RiskLevel) -> Option<&LevelThresholds> {
        match level {
            RiskLevel::Normal => None,
            RiskLevel::Elevated => Some(&self.elevated),
            RiskLevel::High => Some(&self.high),
            RiskLevel::Critical => Some(&self.critical),
        }
    }
}

/// How a pattern rule groups events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleGroup {
    /// All matching events of one mahalla.
    Mahalla,
    /// Matching events in an H3 cell and its grid-disk neighbours (`disk`
    /// steps), whatever mahalla they belong to; unassigned events count too.
    Cell,
}

/// What a pattern rule adds up over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Number of matching events.
    Count,
    /// Sum of their harm weights.
    Harm,
}

/// What a rule with `min_z` does before its group has `min_baseline` of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BeforeBaseline {
    /// Stay silent until the baseline is there.
    #[default]
    Hold,
    /// Fire on the threshold alone until then (a fresh engine is not blind,
    /// at the cost of alerts where such events are common).
    Threshold,
}

/// A pattern rule: when enough matching events fall in a window of one group,
/// the group's mahalla is raised to at least `level`.
///
/// Kind-specific filters (`categories`, `min_severity`, `detections`,
/// `min_confidence`, `schemes`, `min_amount_uzs`) apply to events of their
/// kind, which must then be listed in `kinds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name, `[A-Za-z0-9._-]+`, unique; it names the rule in escalations.
    pub name: String,
    /// Event kinds the rule looks at (at least one).
    pub kinds: Vec<EventKind>,
    /// Incident categories (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<IncidentCategory>,
    /// Smallest incident severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<u8>,
    /// Camera detections (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detections: Vec<Detection>,
    /// Smallest camera confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
    /// Fraud schemes (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemes: Vec<FraudScheme>,
    /// Smallest fraud amount, soum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount_uzs: Option<f64>,
    /// Length of the window.
    pub window: Span,
    /// Grouping.
    pub group: RuleGroup,
    /// Grid-disk radius for `group = "cell"` (1: the cell and its 6 neighbours).
    #[serde(default = "default_disk")]
    pub disk: u32,
    /// What is added up.
    #[serde(default = "default_measure")]
    pub measure: Measure,
    /// The window's measure must reach this.
    pub threshold: f64,
    /// When set, the window's measure must also stand this many standard
    /// scores above what the group usually sees: for a mahalla, the same
    /// measure's trailing baseline at the same hours of the day; for a cell
    /// disk, the trailing daily rate of its cells. Keeps a fixed count from
    /// firing every day where such events are common. Such a rule acts once
    /// `min_baseline` of history is there. Its baseline does not learn the
    /// events that arrive while its episode is open in their mahalla (they are
    /// the anomaly, not the normal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_z: Option<f64>,
    /// Measure per day assumed for a group with no history (for `min_z`).
    #[serde(default = "default_rule_prior")]
    pub prior_per_day: f64,
    /// What the rule does before `min_baseline` of history (with `min_z`).
    #[serde(default)]
    pub before_baseline: BeforeBaseline,
    /// The episode closes once the condition has been false this long
    /// (evaluated on events and ticks); a new episode is a new escalation.
    #[serde(default = "default_cooldown")]
    pub cooldown: Span,
    /// When set, an open episode also counts as over once no matching event
    /// has come for this long, even if the window still holds enough of them:
    /// a new burst at the same place after a pause is then a new escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle: Option<Span>,
    /// Level the mahalla is raised to, at least, while the episode is open.
    pub level: RiskLevel,
}

fn default_disk() -> u32 {
    1
}

fn default_measure() -> Measure {
    Measure::Count
}

fn default_rule_prior() -> f64 {
    1.0
}

fn default_cooldown() -> Span {
    Span::from_hours(1)
}

// ---------------------------------------------------------------- weights

/// Harm weights (see the crate docs for where the defaults come from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightsConfig {
    /// Incidents: category → weights at severity 1, 2, 3, 4, 5.
    pub incident: CategoryTable,
    /// Camera alerts: detection × confidence band.
    pub camera: CameraWeights,
    /// Fraud flags: scheme × amount band.
    pub fraud: FraudWeights,
}

/// Camera weights: detection weight at full confidence times the factor of
/// the confidence band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraWeights {
    /// Detection → weight at full confidence.
    pub detection: DetectionTable,
    /// Confidence bands, ascending `min`; a detection takes the factor of the
    /// highest band whose `min` it reaches, and weight 0 below the first.
    pub confidence_bands: Vec<ConfidenceBand>,
}

/// One confidence band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceBand {
    /// Lowest confidence of the band, 0..=1.
    pub min: f64,
    /// Factor applied to the detection weight.
    pub factor: f64,
}

/// Fraud weights: scheme weight times the factor of the amount band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudWeights {
    /// Scheme → weight of a fraud of 1..10 million soum.
    pub scheme: SchemeTable,
    /// Amount bands, ascending `min_uzs`, the first at 0.
    pub amount_bands: Vec<AmountBand>,
}

/// One amount band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountBand {
    /// Lowest amount of the band, soum.
    pub min_uzs: f64,
    /// Factor applied to the scheme weight.
    pub factor: f64,
}

/// Declares a table keyed by a model enum whose deserialisation starts from
/// the defaults and overrides the entries given (its `Default` is in
/// `defaults.rs`).
macro_rules! enum_table {
    ($(#[$meta:meta])* $name:ident, $key:ty, $value:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub BTreeMap<$key, $value>);

        impl $name {
            /// The value for `key` (every key has one).
            pub fn get(&self, key: $key) -> $value {
                self.0
                    .get(&key)
                    .cloned()
                    .or_else(|| Self::default().0.get(&key).cloned())
                    .unwrap_or_default()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let given = BTreeMap::<$key, $value>::deserialize(deserializer)?;
                let mut table = Self::default();
                table.0.extend(given);
                Ok(table)
            }
        }
    };
}

enum_table!(
    /// Incident category → weight at severity 1..=5.
    CategoryTable,
    IncidentCategory,
    [f64; 5]
);

enum_table!(
    /// Camera detection → weight at full confidence.
    DetectionTable,
    Detection,
    f64
);

enum_table!(
    /// Fraud scheme → weight of a fraud of 1..10 million soum.
    SchemeTable,
    FraudScheme,
    f64
);
