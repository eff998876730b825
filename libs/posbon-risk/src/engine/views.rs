//! The public views of the engine's state ([`MahallaView`], [`CellView`],
//! [`RuleView`], [`Footprint`]) and how a mahalla's view is read off a slot.

use chrono::{DateTime, Utc};
use posbon_model::{CellId, RiskLevel};
use serde::Serialize;

use super::{Engine, to_utc};

/// The current state of a mahalla, for the command-centre map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MahallaView {
    /// The mahalla.
    pub mahalla_id: String,
    /// Its level.
    pub level: RiskLevel,
    /// Since when it has been at this level (event or tick time).
    pub since: Option<DateTime<Utc>>,
    /// Score at the last evaluation: standard score of the decayed harm
    /// against the baseline at that hour of the day.
    pub score: f64,
    /// Decayed harm intensity λ at the engine's clock.
    pub intensity: f64,
    /// Decayed number of events at the engine's clock.
    pub events: f64,
    /// Intensity the baseline expected at the last evaluation.
    pub expected: f64,
    /// Effective number of events behind the intensity at the last evaluation.
    pub effective_events: f64,
    /// When it was last evaluated.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// Rules with an open episode.
    pub open_rules: Vec<String>,
}

/// The state of one H3 cell of a mahalla.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellView {
    /// The cell.
    pub cell: CellId,
    /// Decayed harm intensity at the engine's clock.
    pub intensity: f64,
    /// Decayed number of events.
    pub events: f64,
    /// Intensity the cell's trailing baseline expects (a flat daily rate).
    pub expected: f64,
    /// Standard score of the intensity against it.
    pub score: f64,
}

/// A mahalla rule's condition at the engine's clock (see [`Engine::rule`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    /// The rule.
    pub rule: String,
    /// Whether an episode is open.
    pub open: bool,
    /// Episodes opened so far.
    pub episodes: u64,
    /// The window's measure (count or harm).
    pub measure: f64,
    /// What the baseline expects over the window (rules with `min_z`).
    pub expected: Option<f64>,
    /// Standard score against it (rules with `min_z`).
    pub z: Option<f64>,
    /// Whether the condition holds.
    pub satisfied: bool,
}

/// How much state an engine holds (see [`Engine::footprint`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Mahallas with state.
    pub mahallas: usize,
    /// Cells with state, over all mahallas.
    pub cells: usize,
    /// Recent events kept for evidence.
    pub recent_events: usize,
    /// Days of baseline data (mahalla and rule baselines).
    pub baseline_days: usize,
    /// Events held in rule windows.
    pub rule_hits: usize,
    /// Cells held by cell rules.
    pub rule_cells: usize,
}

impl Engine {
    /// The view of the mahalla in `slot` at the clock.
    pub(super) fn view(&self, slot: u32) -> MahallaView {
        let meta = &self.st.meta[slot as usize];
        let now = self.st.clock;
        match &self.st.mahallas[slot as usize] {
            None => MahallaView {
                mahalla_id: meta.id.clone(),
                level: RiskLevel::Normal,
                since: None,
                score: 0.0,
                intensity: 0.0,
                events: 0.0,
                expected: 0.0,
                effective_events: 0.0,
                evaluated_at: None,
                open_rules: Vec::new(),
            },
            Some(m) => MahallaView {
                mahalla_id: meta.id.clone(),
                level: m.level,
                since: to_utc(m.level_since),
                score: m.score,
                intensity: now.map_or(0.0, |t| m.intensity.at(t, self.ctx.inv_tau).0),
                events: now.map_or(0.0, |t| m.intensity.at(t, self.ctx.inv_tau).1),
                expected: m.expected,
                effective_events: m.effective,
                evaluated_at: to_utc(m.evaluated_at),
                open_rules: m
                    .rules
                    .iter()
                    .zip(&self.ctx.rules)
                    .filter(|(s, _)| s.episode.open)
                    .map(|(_, r)| r.name.clone())
                    .collect(),
            },
        }
    }
}
