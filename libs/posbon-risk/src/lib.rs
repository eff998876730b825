//! Posbon risk model: harm weights, decayed intensity, baselines, levels with
//! hysteresis, pattern rules and hot cells. Pure and deterministic: no I/O,
//! no wall clock, no randomness.
//!
//! TODO: crate docs
mod baseline;
mod config;
mod engine;
pub mod evaluation;
mod fasthash;
mod hotcells;
mod intensity;
mod rules;
#[cfg(feature = "sim")]
pub mod sim;
mod span;
mod weights;

pub use config::{
    AmountBand, BeforeBaseline, CameraWeights, CategoryTable, ConfidenceBand, ConfigError,
    DetectionTable, FraudWeights, HotCellsConfig, LevelThresholds, LevelsConfig, MAX_WEIGHT,
    Measure, PriorConfig, RiskConfig, RuleConfig, RuleGroup, SCORE_RULE, SchemeTable,
    WeightsConfig,
};
pub use engine::{
    CellView, Engine, EngineSnapshot, Footprint, ImportError, MahallaState, MahallaView,
};
pub use span::{InvalidSpan, Span};
pub use weights::HarmWeights;
