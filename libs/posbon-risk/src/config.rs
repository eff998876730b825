//! [`RiskConfig`]: every tunable of the risk model, with the shipped defaults.
//!
//! Loaded from the `[risk]` table of a service's TOML file. Every struct
//! rejects unknown keys, and every key that is left out takes its default, so
//! a file only names what it changes. Tables keyed by category, detection or
//! scheme are merged with the defaults entry by entry: writing
//! `[risk.weights.incident] homicide = [...]` changes homicide only.
//! [`RiskConfig::validate`] checks ranges and orderings and names the bad key.

use std::collections::BTreeMap;

use posbon_model::{Detection, EventKind, FraudScheme, IncidentCategory, RiskLevel};
use serde::{Deserialize, Deserializer, Serialize};

use crate::span::Span;

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
    /// Default 300: Asia/Tashkent, UTC+05:00 all year.
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

impl Default for PriorConfig {
    fn default() -> Self {
        Self {
            harm_per_day: 1.0,
            days: 2.0,
            dispersion: 2.0,
            cell_harm_per_day: 0.05,
        }
    }
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

impl Default for HotCellsConfig {
    fn default() -> Self {
        Self {
            min_z: 1.96,
            max_cells: 5,
        }
    }
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

impl Default for LevelsConfig {
    fn default() -> Self {
        Self {
            elevated: LevelThresholds {
                entry: 5.0,
                exit: 3.0,
                min_events: 3.0,
            },
            high: LevelThresholds {
                entry: 7.0,
                exit: 5.0,
                min_events: 5.0,
            },
            critical: LevelThresholds {
                entry: 10.0,
                exit: 7.0,
                min_events: 8.0,
            },
            min_dwell: Span::from_hours(2),
        }
    }
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

impl RuleConfig {
    /// The shipped drug hand-off rule: three or more `drug_handoff` camera
    /// detections with confidence at least 0.8 in one res-10 cell and its
    /// neighbours within 24 h raise the mahalla to `high`, unless that spot
    /// sees that many most days (`min_z = 3` against the spot's trailing rate;
    /// on the count alone until the engine has `min_baseline` of history).
    pub fn drug_handoff_cluster() -> Self {
        Self {
            name: "drug_handoff_cluster".into(),
            kinds: vec![EventKind::CameraAlert],
            categories: Vec::new(),
            min_severity: None,
            detections: vec![Detection::DrugHandoff],
            min_confidence: Some(0.8),
            schemes: Vec::new(),
            min_amount_uzs: None,
            window: Span::from_hours(24),
            group: RuleGroup::Cell,
            disk: 1,
            measure: Measure::Count,
            threshold: 3.0,
            min_z: Some(3.0),
            prior_per_day: 0.1,
            before_baseline: BeforeBaseline::Threshold,
            cooldown: default_cooldown(),
            max_idle: Some(Span::from_hours(4)),
            level: RiskLevel::High,
        }
    }

    /// The shipped fraud-wave rule: at least 6 fraud flags in a mahalla within
    /// 6 h, standing 5 standard scores above what that mahalla sees at those
    /// hours, raise it to `high`.
    pub fn fraud_wave() -> Self {
        Self {
            name: "fraud_wave".into(),
            kinds: vec![EventKind::FraudFlag],
            categories: Vec::new(),
            min_severity: None,
            detections: Vec::new(),
            min_confidence: None,
            schemes: Vec::new(),
            min_amount_uzs: None,
            window: Span::from_hours(3),
            group: RuleGroup::Mahalla,
            disk: 1,
            measure: Measure::Count,
            threshold: 6.0,
            min_z: Some(5.0),
            prior_per_day: default_rule_prior(),
            before_baseline: BeforeBaseline::Hold,
            cooldown: default_cooldown(),
            max_idle: None,
            level: RiskLevel::High,
        }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            weights: WeightsConfig::default(),
            half_life: Span::from_hours(3),
            baseline_window: Span::from_days(28),
            utc_offset_minutes: 300,
            min_baseline: Span::from_days(3),
            prior: PriorConfig::default(),
            profile_shrinkage: 10.0,
            overdispersion: 150.0,
            levels: LevelsConfig::default(),
            evidence_window: Span::from_hours(24),
            max_evidence: 25,
            max_recent_events: 20_000,
            hot_cells: HotCellsConfig::default(),
            rules: vec![RuleConfig::drug_handoff_cluster(), RuleConfig::fraud_wave()],
        }
    }
}

// ---------------------------------------------------------------- weights

/// Harm weights (see the crate docs for where the defaults come from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
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

impl Default for CameraWeights {
    fn default() -> Self {
        let band = |min, factor| ConfidenceBand { min, factor };
        Self {
            detection: DetectionTable::default(),
            confidence_bands: vec![
                band(0.5, 0.25),
                band(0.7, 0.5),
                band(0.8, 0.75),
                band(0.9, 1.0),
            ],
        }
    }
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

impl Default for FraudWeights {
    fn default() -> Self {
        let band = |min_uzs, factor| AmountBand { min_uzs, factor };
        Self {
            scheme: SchemeTable::default(),
            amount_bands: vec![
                band(0.0, 0.6),
                band(1e6, 1.0),
                band(1e7, 1.5),
                band(1e8, 2.5),
            ],
        }
    }
}

/// Declares a table keyed by a model enum whose deserialisation starts from
/// the defaults and overrides the entries given.
macro_rules! enum_table {
    ($(#[$meta:meta])* $name:ident, $key:ty, $value:ty, $defaults:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub BTreeMap<$key, $value>);

        impl Default for $name {
            fn default() -> Self {
                let defaults: &[($key, $value)] = &$defaults;
                Self(defaults.iter().cloned().collect())
            }
        }

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
    [f64; 5],
    {
        use IncidentCategory as C;
        // Weight at severity 3 times 0.5, 0.75, 1, 1.5, 2 for severity 1..=5.
        const S: [f64; 5] = [0.5, 0.75, 1.0, 1.5, 2.0];
        const fn row(base: f64) -> [f64; 5] {
            [base * S[0], base * S[1], base * S[2], base * S[3], base * S[4]]
        }
        [
            (C::Homicide, row(8.0)),
            (C::Weapons, row(4.0)),
            (C::Robbery, row(4.0)),
            (C::DrugTrafficking, row(4.0)),
            (C::Assault, row(3.0)),
            (C::DomesticViolence, row(3.0)),
            (C::DrugUse, row(1.5)),
            (C::Theft, row(1.5)),
            (C::Fraud, row(1.5)),
            (C::Cybercrime, row(1.5)),
            (C::Hooliganism, row(1.5)),
            (C::Vandalism, row(1.0)),
            (C::PublicOrder, row(0.8)),
            (C::Other, row(0.8)),
        ]
    }
);

enum_table!(
    /// Camera detection → weight at full confidence.
    DetectionTable,
    Detection,
    f64,
    [
        (Detection::Weapon, 3.0),
        (Detection::DrugHandoff, 2.0),
        (Detection::Fight, 1.5),
        (Detection::Intrusion, 0.8),
        (Detection::PlateMatch, 0.5),
        (Detection::Crowd, 0.3),
        (Detection::Loitering, 0.2),
        (Detection::Other, 0.2),
    ]
);

enum_table!(
    /// Fraud scheme → weight of a fraud of 1..10 million soum.
    SchemeTable,
    FraudScheme,
    f64,
    [
        (FraudScheme::InvestmentScam, 1.5),
        (FraudScheme::AccountTakeover, 1.5),
        (FraudScheme::CardFraud, 1.0),
        (FraudScheme::Phishing, 1.0),
        (FraudScheme::ScamCall, 1.0),
        (FraudScheme::FakeMarketplace, 0.8),
        (FraudScheme::Other, 0.8),
    ]
);

// ------------------------------------------------------------- validation

fn check_weight(key: String, w: f64) -> Result<(), ConfigError> {
    if !(w.is_finite() && (0.0..=MAX_WEIGHT).contains(&w)) {
        return Err(ConfigError::new(
            key,
            format!("{w} is not a weight in 0..={MAX_WEIGHT}"),
        ));
    }
    Ok(())
}

fn check_positive(key: &str, v: f64) -> Result<(), ConfigError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(ConfigError::new(
            key,
            format!("{v} must be a positive number"),
        ));
    }
    Ok(())
}

fn check_span(key: &str, span: Span, min: Span, max: Span) -> Result<(), ConfigError> {
    if span < min || span > max {
        return Err(ConfigError::new(
            key,
            format!("{span} must be within {min}..={max}"),
        ));
    }
    Ok(())
}

/// True for a name made of `[A-Za-z0-9._-]`, 1..=64 bytes.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl RiskConfig {
    /// Checks every value; the error names the first bad key (dotted path
    /// under `[risk]`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_weights()?;
        check_span(
            "half_life",
            self.half_life,
            Span::from_minutes(1),
            Span::from_days(30),
        )?;
        check_span(
            "baseline_window",
            self.baseline_window,
            Span::from_days(1),
            Span::from_days(366),
        )?;
        if self.baseline_window.millis() % Span::from_days(1).millis() != 0 {
            return Err(ConfigError::new(
                "baseline_window",
                format!("{} must be a whole number of days", self.baseline_window),
            ));
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(ConfigError::new(
                "utc_offset_minutes",
                format!("{} is not within -840..=840", self.utc_offset_minutes),
            ));
        }
        check_span(
            "min_baseline",
            self.min_baseline,
            Span::from_millis(1),
            self.baseline_window,
        )?;
        check_positive("prior.harm_per_day", self.prior.harm_per_day)?;
        check_positive("prior.days", self.prior.days)?;
        check_positive("prior.dispersion", self.prior.dispersion)?;
        check_positive("prior.cell_harm_per_day", self.prior.cell_harm_per_day)?;
        check_positive("profile_shrinkage", self.profile_shrinkage)?;
        check_positive("overdispersion", self.overdispersion)?;
        self.validate_levels()?;
        check_span(
            "evidence_window",
            self.evidence_window,
            Span::from_minutes(1),
            self.baseline_window,
        )?;
        if self.max_evidence == 0 || self.max_evidence > 1000 {
            return Err(ConfigError::new(
                "max_evidence",
                format!("{} must be within 1..=1000", self.max_evidence),
            ));
        }
        if self.max_recent_events < self.max_evidence {
            return Err(ConfigError::new(
                "max_recent_events",
                format!(
                    "{} must be at least max_evidence ({})",
                    self.max_recent_events, self.max_evidence
                ),
            ));
        }
        if !self.hot_cells.min_z.is_finite() {
            return Err(ConfigError::new("hot_cells.min_z", "must be a number"));
        }
        if self.hot_cells.max_cells > 100 {
            return Err(ConfigError::new(
                "hot_cells.max_cells",
                format!("{} must be at most 100", self.hot_cells.max_cells),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate(&format!("rules[{i}]"), self.baseline_window)?;
            if rule.name == SCORE_RULE {
                return Err(ConfigError::new(
                    format!("rules[{i}].name"),
                    format!("{SCORE_RULE:?} is reserved for escalations raised by the score"),
                ));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError::new(
                    format!("rules[{i}].name"),
                    format!("{:?} is used by an earlier rule", rule.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_weights(&self) -> Result<(), ConfigError> {
        for (category, row) in &self.weights.incident.0 {
            for (s, w) in row.iter().enumerate() {
                check_weight(format!("weights.incident.{category}[{s}]"), *w)?;
            }
        }
        for (detection, w) in &self.weights.camera.detection.0 {
            check_weight(format!("weights.camera.detection.{detection}"), *w)?;
        }
        let bands = &self.weights.camera.confidence_bands;
        for (i, b) in bands.iter().enumerate() {
            let key = format!("weights.camera.confidence_bands[{i}]");
            if !(b.min.is_finite() && (0.0..=1.0).contains(&b.min)) {
                return Err(ConfigError::new(
                    format!("{key}.min"),
                    format!("{} is not a confidence in 0..=1", b.min),
                ));
            }
            if i > 0 && b.min <= bands[i - 1].min {
                return Err(ConfigError::new(
                    format!("{key}.min"),
                    format!(
                        "{} must be above the previous band's {}",
                        b.min,
                        bands[i - 1].min
                    ),
                ));
            }
            check_weight(format!("{key}.factor"), b.factor)?;
        }
        for (scheme, w) in &self.weights.fraud.scheme.0 {
            check_weight(format!("weights.fraud.scheme.{scheme}"), *w)?;
        }
        let bands = &self.weights.fraud.amount_bands;
        if bands.first().map(|b| b.min_uzs) != Some(0.0) {
            return Err(ConfigError::new(
                "weights.fraud.amount_bands",
                "the first band must start at min_uzs = 0 so that every amount has one",
            ));
        }
        for (i, b) in bands.iter().enumerate() {
            let key = format!("weights.fraud.amount_bands[{i}]");
            if !(b.min_uzs.is_finite() && b.min_uzs >= 0.0) {
                return Err(ConfigError::new(
                    format!("{key}.min_uzs"),
                    format!("{} is not an amount >= 0", b.min_uzs),
                ));
            }
            if i > 0 && b.min_uzs <= bands[i - 1].min_uzs {
                return Err(ConfigError::new(
                    format!("{key}.min_uzs"),
                    format!(
                        "{} must be above the previous band's {}",
                        b.min_uzs,
                        bands[i - 1].min_uzs
                    ),
                ));
            }
            check_weight(format!("{key}.factor"), b.factor)?;
        }
        // Products must stay within range too.
        let max_band = self
            .weights
            .camera
            .confidence_bands
            .iter()
            .map(|b| b.factor)
            .fold(0.0, f64::max);
        for (detection, w) in &self.weights.camera.detection.0 {
            if w * max_band > MAX_WEIGHT {
                return Err(ConfigError::new(
                    format!("weights.camera.detection.{detection}"),
                    format!("{w} times the largest band factor {max_band} exceeds {MAX_WEIGHT}"),
                ));
            }
        }
        let max_band = bands.iter().map(|b| b.factor).fold(0.0, f64::max);
        for (scheme, w) in &self.weights.fraud.scheme.0 {
            if w * max_band > MAX_WEIGHT {
                return Err(ConfigError::new(
                    format!("weights.fraud.scheme.{scheme}"),
                    format!("{w} times the largest band factor {max_band} exceeds {MAX_WEIGHT}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_levels(&self) -> Result<(), ConfigError> {
        let levels = &self.levels;
        let named = [
            ("elevated", &levels.elevated),
            ("high", &levels.high),
            ("critical", &levels.critical),
        ];
        for (i, (name, t)) in named.iter().enumerate() {
            for (field, v) in [
                ("entry", t.entry),
                ("exit", t.exit),
                ("min_events", t.min_events),
            ] {
                if !v.is_finite() {
                    return Err(ConfigError::new(
                        format!("levels.{name}.{field}"),
                        format!("{v} is not a number"),
                    ));
                }
            }
            if t.min_events < 0.0 {
                return Err(ConfigError::new(
                    format!("levels.{name}.min_events"),
                    format!("{} must be >= 0", t.min_events),
                ));
            }
            if t.entry <= 0.0 {
                return Err(ConfigError::new(
                    format!("levels.{name}.entry"),
                    format!("{} must be positive", t.entry),
                ));
            }
            if t.exit >= t.entry {
                return Err(ConfigError::new(
                    format!("levels.{name}.exit"),
                    format!("{} must be below levels.{name}.entry ({})", t.exit, t.entry),
                ));
            }
            if i > 0 {
                let (prev_name, prev) = named[i - 1];
                if t.entry <= prev.entry {
                    return Err(ConfigError::new(
                        format!("levels.{name}.entry"),
                        format!(
                            "{} must be above levels.{prev_name}.entry ({})",
                            t.entry, prev.entry
                        ),
                    ));
                }
                if t.exit < prev.exit {
                    return Err(ConfigError::new(
                        format!("levels.{name}.exit"),
                        format!(
                            "{} must not be below levels.{prev_name}.exit ({})",
                            t.exit, prev.exit
                        ),
                    ));
                }
            }
        }
        check_span(
            "levels.min_dwell",
            levels.min_dwell,
            Span::from_millis(0),
            Span::from_days(30),
        )
    }
}

impl RuleConfig {
    fn validate(&self, key: &str, baseline_window: Span) -> Result<(), ConfigError> {
        let at = |field: &str| format!("{key}.{field}");
        if !is_token(&self.name) {
            return Err(ConfigError::new(
                at("name"),
                format!(
                    "{:?} must be 1..=64 characters of [A-Za-z0-9._-]",
                    self.name
                ),
            ));
        }
        if self.kinds.is_empty() {
            return Err(ConfigError::new(
                at("kinds"),
                "must name at least one event kind",
            ));
        }
        let needs = |field: &str, kind: EventKind, used: bool| {
            if used && !self.kinds.contains(&kind) {
                Err(ConfigError::new(
                    at(field),
                    format!("filters {kind} events, which are not in kinds"),
                ))
            } else {
                Ok(())
            }
        };
        needs(
            "categories",
            EventKind::Incident,
            !self.categories.is_empty(),
        )?;
        needs(
            "min_severity",
            EventKind::Incident,
            self.min_severity.is_some(),
        )?;
        needs(
            "detections",
            EventKind::CameraAlert,
            !self.detections.is_empty(),
        )?;
        needs(
            "min_confidence",
            EventKind::CameraAlert,
            self.min_confidence.is_some(),
        )?;
        needs("schemes", EventKind::FraudFlag, !self.schemes.is_empty())?;
        needs(
            "min_amount_uzs",
            EventKind::FraudFlag,
            self.min_amount_uzs.is_some(),
        )?;
        if let Some(s) = self.min_severity
            && !(1..=5).contains(&s)
        {
            return Err(ConfigError::new(
                at("min_severity"),
                format!("{s} is not within 1..=5"),
            ));
        }
        if let Some(c) = self.min_confidence
            && !(c.is_finite() && (0.0..=1.0).contains(&c))
        {
            return Err(ConfigError::new(
                at("min_confidence"),
                format!("{c} is not within 0..=1"),
            ));
        }
        if let Some(a) = self.min_amount_uzs
            && !(a.is_finite() && a >= 0.0)
        {
            return Err(ConfigError::new(
                at("min_amount_uzs"),
                format!("{a} must be >= 0"),
            ));
        }
        check_span(
            &at("window"),
            self.window,
            Span::from_minutes(1),
            Span::from_days(7),
        )?;
        if self.window > baseline_window {
            return Err(ConfigError::new(
                at("window"),
                format!(
                    "{} must not exceed baseline_window ({baseline_window})",
                    self.window
                ),
            ));
        }
        if self.group == RuleGroup::Cell && !(0..=5).contains(&self.disk) {
            return Err(ConfigError::new(
                at("disk"),
                format!("{} must be within 0..=5", self.disk),
            ));
        }
        check_positive(&at("threshold"), self.threshold)?;
        if let Some(z) = self.min_z
            && !(z.is_finite() && z > 0.0)
        {
            return Err(ConfigError::new(
                at("min_z"),
                format!("{z} must be a positive number"),
            ));
        }
        check_positive(&at("prior_per_day"), self.prior_per_day)?;
        check_span(
            &at("cooldown"),
            self.cooldown,
            Span::from_millis(0),
            Span::from_days(7),
        )?;
        if let Some(idle) = self.max_idle {
            check_span(&at("max_idle"), idle, Span::from_minutes(1), self.window)?;
        }
        if self.level == RiskLevel::Normal {
            return Err(ConfigError::new(
                at("level"),
                "must be elevated, high or critical (a rule raises the level)",
            ));
        }
        Ok(())
    }
}
