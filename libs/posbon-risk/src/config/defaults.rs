//! The shipped defaults: `defaults.toml`, embedded in the crate and read once,
//! and the `Default` impls of the configuration types, which are parts of it.
//!
//! The document is a `[risk]` table like a service's file, so an operator can
//! copy it. It is read with the same keys and formats as a service's file,
//! but strictly: a key left out of a service's file takes its default, and
//! these are the defaults, so here every key must be given (only a rule's
//! optional keys may be left out, as anywhere).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use posbon_model::{Detection, FraudScheme, IncidentCategory};
use serde::Deserialize;

use super::{
    AmountBand, CameraWeights, CategoryTable, ConfidenceBand, DetectionTable, FraudWeights,
    HotCellsConfig, LevelThresholds, LevelsConfig, PriorConfig, RiskConfig, RuleConfig,
    SchemeTable, WeightsConfig,
};
use posbon_model::Span;

/// The default configuration, as a `[risk]` table.
pub(super) const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// [`DEFAULTS_TOML`], read on first use. It is part of the crate and a test
/// reads and validates it, so it does not fail.
static DEFAULTS: LazyLock<RiskConfig> = LazyLock::new(|| {
    read_complete(DEFAULTS_TOML)
        .unwrap_or_else(|e| panic!("posbon-risk's built-in config/defaults.toml: {e}"))
});

/// Reads a `[risk]` table in which every key is given.
pub(super) fn read_complete(text: &str) -> Result<RiskConfig, toml::de::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(with = "Complete")]
        risk: RiskConfig,
    }
    toml::from_str::<File>(text).map(|file| file.risk)
}

impl Default for RiskConfig {
    fn default() -> Self {
        DEFAULTS.clone()
    }
}

impl Default for PriorConfig {
    fn default() -> Self {
        DEFAULTS.prior.clone()
    }
}

impl Default for HotCellsConfig {
    fn default() -> Self {
        DEFAULTS.hot_cells.clone()
    }
}

impl Default for LevelsConfig {
    fn default() -> Self {
        DEFAULTS.levels.clone()
    }
}

impl Default for WeightsConfig {
    fn default() -> Self {
        DEFAULTS.weights.clone()
    }
}

impl Default for CameraWeights {
    fn default() -> Self {
        DEFAULTS.weights.camera.clone()
    }
}

impl Default for FraudWeights {
    fn default() -> Self {
        DEFAULTS.weights.fraud.clone()
    }
}

impl Default for CategoryTable {
    fn default() -> Self {
        DEFAULTS.weights.incident.clone()
    }
}

impl Default for DetectionTable {
    fn default() -> Self {
        DEFAULTS.weights.camera.detection.clone()
    }
}

impl Default for SchemeTable {
    fn default() -> Self {
        DEFAULTS.weights.fraud.scheme.clone()
    }
}

impl RuleConfig {
    /// The shipped drug hand-off rule: three or more `drug_handoff` camera
    /// detections with confidence at least 0.8 in one res-10 cell and its
    /// neighbours within 24 h raise the mahalla to `high`, unless that spot
    /// sees that many most days (`min_z = 3` against the spot's trailing rate;
    /// on the count alone until the engine has `min_baseline` of history).
    pub fn drug_handoff_cluster() -> Self {
        shipped_rule("drug_handoff_cluster")
    }

    /// The shipped fraud-wave rule: at least 6 fraud flags in a mahalla within
    /// 3 h, standing 5 standard scores above what that mahalla sees at those
    /// hours, raise it to `high`.
    pub fn fraud_wave() -> Self {
        shipped_rule("fraud_wave")
    }
}

/// The rule of the defaults named `name`.
fn shipped_rule(name: &str) -> RuleConfig {
    DEFAULTS
        .rules
        .iter()
        .find(|rule| rule.name == name)
        .cloned()
        .unwrap_or_else(|| {
            panic!("posbon-risk's built-in config/defaults.toml has no rule {name:?}")
        })
}

// The configuration types read with every key required (serde's remote
// derive: the same fields, without `#[serde(default)]`). The types' own
// deserialisers start from `Default`, which is read from this document.

#[derive(Deserialize)]
#[serde(remote = "RiskConfig", deny_unknown_fields)]
struct Complete {
    #[serde(with = "Weights")]
    weights: WeightsConfig,
    half_life: Span,
    baseline_window: Span,
    utc_offset_minutes: i32,
    min_baseline: Span,
    #[serde(with = "Prior")]
    prior: PriorConfig,
    profile_shrinkage: f64,
    overdispersion: f64,
    #[serde(with = "Levels")]
    levels: LevelsConfig,
    evidence_window: Span,
    max_evidence: usize,
    max_recent_events: usize,
    #[serde(with = "HotCells")]
    hot_cells: HotCellsConfig,
    rules: Vec<RuleConfig>,
}

#[derive(Deserialize)]
#[serde(remote = "PriorConfig", deny_unknown_fields)]
struct Prior {
    harm_per_day: f64,
    days: f64,
    dispersion: f64,
    cell_harm_per_day: f64,
}

#[derive(Deserialize)]
#[serde(remote = "HotCellsConfig", deny_unknown_fields)]
struct HotCells {
    min_z: f64,
    max_cells: usize,
}

#[derive(Deserialize)]
#[serde(remote = "LevelsConfig", deny_unknown_fields)]
struct Levels {
    elevated: LevelThresholds,
    high: LevelThresholds,
    critical: LevelThresholds,
    min_dwell: Span,
}

#[derive(Deserialize)]
#[serde(remote = "WeightsConfig", deny_unknown_fields)]
struct Weights {
    #[serde(with = "Incident")]
    incident: CategoryTable,
    #[serde(with = "Camera")]
    camera: CameraWeights,
    #[serde(with = "Fraud")]
    fraud: FraudWeights,
}

#[derive(Deserialize)]
#[serde(remote = "CameraWeights", deny_unknown_fields)]
struct Camera {
    #[serde(with = "Detections")]
    detection: DetectionTable,
    confidence_bands: Vec<ConfidenceBand>,
}

#[derive(Deserialize)]
#[serde(remote = "FraudWeights", deny_unknown_fields)]
struct Fraud {
    #[serde(with = "Schemes")]
    scheme: SchemeTable,
    amount_bands: Vec<AmountBand>,
}

#[derive(Deserialize)]
#[serde(remote = "CategoryTable", transparent)]
struct Incident(BTreeMap<IncidentCategory, [f64; 5]>);

#[derive(Deserialize)]
#[serde(remote = "DetectionTable", transparent)]
struct Detections(BTreeMap<Detection, f64>);

#[derive(Deserialize)]
#[serde(remote = "SchemeTable", transparent)]
struct Schemes(BTreeMap<FraudScheme, f64>);
