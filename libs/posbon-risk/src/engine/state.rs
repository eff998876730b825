//! Export and import of engine state: one mahalla at a time (for moving
//! mahallas between escalator instances) or the whole engine (checkpoints).

use std::sync::Arc;

use posbon_geo::Registry;
use posbon_model::RiskLevel;
use serde::{Deserialize, Serialize};

use super::cellrules::{CellHit, CellMap, NO_MAHALLA};
use super::mahalla::{CellState, Mahalla, RuleState};
use super::{Engine, Meta, State};
use crate::baseline::{Baseline, day_of};
use crate::config::{ConfigError, RiskConfig, RuleGroup};
use crate::intensity::Decayed;
use crate::maps::FastMap;
use crate::rules::{Episode, Hit};
use posbon_model::Span;

/// Version of the state format.
const FORMAT: u32 = 1;

/// Why a state could not be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    /// Written by a different version of the state format.
    #[error("state format {found} is not supported (expected {expected})")]
    Format {
        /// Format of the state.
        found: u32,
        /// Format this engine reads.
        expected: u32,
    },
    /// Built under a setting that changes what the state means.
    #[error("state was built with {key} = {found}, this engine has {expected}")]
    Mismatch {
        /// The setting.
        key: &'static str,
        /// Its value in the state.
        found: String,
        /// Its value here.
        expected: String,
    },
    /// The configuration of the engine to restore is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellEntry {
    cell: u64,
    state: CellState,
}

/// One day of a cell rule's measure in a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellDayEntry {
    cell: u64,
    day: i64,
    amount: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    episode: Episode,
    hits: Vec<Hit>,
    baseline: Option<Baseline>,
    /// Cell rules: this mahalla's events in the rule's cell windows.
    cell_hits: Vec<Hit>,
    /// Cell rules: this mahalla's share of the cells' daily measure.
    cell_days: Vec<CellDayEntry>,
}

/// The state of one mahalla: everything the engine needs to carry on with it
/// elsewhere, episode counters included (so escalation ids never repeat).
/// Serialise it with any serde format; floats round-trip exactly with
/// `serde_json`'s `float_roundtrip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MahallaState {
    format: u32,
    half_life: Span,
    baseline_window: Span,
    district_id: String,
    region_id: String,
    observed_since: i64,
    intensity: Decayed,
    baseline: Baseline,
    cells: Vec<CellEntry>,
    recent: Vec<Hit>,
    level: RiskLevel,
    level_since: i64,
    score: f64,
    expected: f64,
    effective: f64,
    evaluated_at: i64,
    score_episodes: u64,
    rules: Vec<RuleEntry>,
}

impl MahallaState {
    /// The mahalla's level in this state.
    pub fn level(&self) -> RiskLevel {
        self.level
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MahallaEntry {
    id: String,
    district_id: String,
    region_id: String,
    state: Option<MahallaState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnassignedEntry {
    rule: String,
    hits: Vec<Hit>,
    days: Vec<CellDayEntry>,
}

/// The hits and daily measure that events of `slot` left in a cell rule's cells.
fn cell_share(map: &CellMap, slot: u32) -> (Vec<Hit>, Vec<CellDayEntry>) {
    let mut hits: Vec<Hit> = map
        .values()
        .flat_map(|c| c.hits.iter())
        .filter(|h| h.mahalla == slot)
        .map(|h| h.hit.clone())
        .collect();
    hits.sort_by(|a, b| a.t.cmp(&b.t).then(a.id.cmp(&b.id)));
    let mut days: Vec<CellDayEntry> = map
        .iter()
        .flat_map(|(&cell, c)| {
            c.days
                .iter()
                .filter(|d| d.mahalla == slot)
                .map(move |d| CellDayEntry {
                    cell,
                    day: d.day,
                    amount: d.amount,
                })
        })
        .collect();
    days.sort_by_key(|d| (d.cell, d.day));
    (hits, days)
}

/// Puts a share back into a cell rule's cells.
fn add_share(map: &mut CellMap, slot: u32, hits: &[Hit], days: &[CellDayEntry], cap: usize) {
    for hit in hits {
        map.entry(hit.cell).or_default().insert_hit(
            CellHit {
                hit: hit.clone(),
                mahalla: slot,
            },
            cap,
        );
    }
    for d in days {
        map.entry(d.cell)
            .or_default()
            .add_day(d.day, slot, d.amount);
    }
}

/// The whole state of an engine (see [`Engine::snapshot`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSnapshot {
    format: u32,
    half_life: Span,
    baseline_window: Span,
    clock: Option<i64>,
    start: Option<i64>,
    prune_hour: i64,
    housekeeping_day: i64,
    mahallas: Vec<MahallaEntry>,
    unassigned: Vec<UnassignedEntry>,
}

impl EngineSnapshot {
    /// The engine clock when the snapshot was taken (ms since the epoch).
    pub fn clock_millis(&self) -> Option<i64> {
        self.clock
    }
}

fn check(
    format: u32,
    half_life: Span,
    window: Span,
    config: &RiskConfig,
) -> Result<(), ImportError> {
    if format != FORMAT {
        return Err(ImportError::Format {
            found: format,
            expected: FORMAT,
        });
    }
    if half_life != config.half_life {
        return Err(ImportError::Mismatch {
            key: "half_life",
            found: half_life.to_string(),
            expected: config.half_life.to_string(),
        });
    }
    if window != config.baseline_window {
        return Err(ImportError::Mismatch {
            key: "baseline_window",
            found: window.to_string(),
            expected: config.baseline_window.to_string(),
        });
    }
    Ok(())
}

impl Engine {
    /// The state of one mahalla, `None` for an id the engine does not know
    /// or before its first event or tick. A known mahalla without events of
    /// its own gets the state of a quiet mahalla observed since the engine
    /// started: the engine that takes it over then counts that quiet time as
    /// observed, as this one would have.
    pub fn export_mahalla(&self, mahalla_id: &str) -> Option<MahallaState> {
        let slot = *self.st.slots.get(mahalla_id)?;
        self.export_slot(slot).or_else(|| {
            let (start, now) = (self.st.start?, self.st.clock?);
            Some(self.state_of(slot, &Mahalla::new(&self.ctx, start, now)))
        })
    }

    /// The state of a slot that holds one.
    fn export_slot(&self, slot: u32) -> Option<MahallaState> {
        let m = self.st.mahallas[slot as usize].as_deref()?;
        Some(self.state_of(slot, m))
    }

    /// The state of slot `slot` holding `m`, its baselines moved to the
    /// clock's day (so that the same events give the same state whatever
    /// order they came in).
    fn state_of(&self, slot: u32, m: &Mahalla) -> MahallaState {
        let day = self.st.clock.map(|c| day_of(self.ctx.local(c)));
        let window = self.ctx.window_days;
        let advanced = |b: &Baseline| {
            let mut b = b.clone();
            if let Some(day) = day {
                b.advance(day, window);
            }
            b
        };
        let meta = &self.st.meta[slot as usize];
        let config = &self.ctx.config;
        let mut cells: Vec<CellEntry> = m
            .cells
            .iter()
            .map(|(&cell, state)| CellEntry {
                cell,
                state: state.clone(),
            })
            .collect();
        cells.sort_by_key(|c| c.cell);
        let rules = self
            .ctx
            .rules
            .iter()
            .enumerate()
            .map(|(ri, rule)| {
                let s = &m.rules[ri];
                let (cell_hits, cell_days) = cell_share(&self.st.cells[ri], slot);
                RuleEntry {
                    name: rule.name.clone(),
                    episode: s.episode.clone(),
                    hits: s.hits.iter().cloned().collect(),
                    baseline: s.baseline.as_ref().map(advanced),
                    cell_hits,
                    cell_days,
                }
            })
            .collect();
        MahallaState {
            format: FORMAT,
            half_life: config.half_life,
            baseline_window: config.baseline_window,
            district_id: meta.district_id.clone(),
            region_id: meta.region_id.clone(),
            observed_since: m.observed_since,
            intensity: m.intensity,
            baseline: advanced(&m.baseline),
            cells,
            recent: m.recent.iter().cloned().collect(),
            level: m.level,
            level_since: m.level_since,
            score: m.score,
            expected: m.expected,
            effective: m.effective,
            evaluated_at: m.evaluated_at,
            score_episodes: m.score_episodes,
            rules,
        }
    }

    /// Exports a mahalla's state (as [`Engine::export_mahalla`]) and drops
    /// it from this engine (for handing the mahalla to another instance).
    pub fn remove_mahalla(&mut self, mahalla_id: &str) -> Option<MahallaState> {
        let slot = *self.st.slots.get(mahalla_id)?;
        let state = self.export_mahalla(mahalla_id)?;
        self.st.drop_slot(slot);
        Some(state)
    }

    /// Takes over a mahalla's state (replacing any this engine holds for it).
    /// State of rules this engine does not have is dropped; rules it has that
    /// the state lacks start empty.
    pub fn import_mahalla(
        &mut self,
        mahalla_id: &str,
        state: MahallaState,
    ) -> Result<(), ImportError> {
        check(
            state.format,
            state.half_life,
            state.baseline_window,
            &self.ctx.config,
        )?;
        let slot = match self.st.slots.get(mahalla_id) {
            Some(&s) => s,
            None => self.st.new_slot(Meta {
                id: mahalla_id.to_owned(),
                district_id: state.district_id.clone(),
                region_id: state.region_id.clone(),
            }),
        };
        self.st.drop_slot(slot);
        self.st.start.get_or_insert(state.observed_since);
        let clock = self
            .st
            .clock
            .map_or(state.evaluated_at, |c| c.max(state.evaluated_at));
        self.st.clock = Some(clock);
        let day = day_of(self.ctx.local(clock));
        let mut rules = Vec::with_capacity(self.ctx.rules.len());
        for (ri, rule) in self.ctx.rules.iter().enumerate() {
            let entry = state.rules.iter().find(|e| e.name == rule.name);
            let baseline = (rule.min_z.is_some() && rule.group == RuleGroup::Mahalla).then(|| {
                entry
                    .and_then(|e| e.baseline.clone())
                    .unwrap_or_else(|| Baseline::new(day))
            });
            if let Some(e) = entry {
                add_share(
                    &mut self.st.cells[ri],
                    slot,
                    &e.cell_hits,
                    &e.cell_days,
                    self.ctx.cap,
                );
            }
            let mut state = RuleState {
                episode: entry.map(|e| e.episode.clone()).unwrap_or_default(),
                baseline,
                ..RuleState::default()
            };
            for hit in entry.map(|e| e.hits.as_slice()).unwrap_or_default() {
                state.push(rule, hit.clone(), self.ctx.cap);
            }
            rules.push(state);
        }
        let mut cells = FastMap::default();
        for c in state.cells {
            cells.insert(c.cell, c.state);
        }
        self.st.mahallas[slot as usize] = Some(Box::new(Mahalla {
            observed_since: state.observed_since,
            intensity: state.intensity,
            baseline: state.baseline,
            cache: Default::default(),
            rates: None,
            cells,
            recent: state.recent.into_iter().collect(),
            level: state.level,
            level_since: state.level_since,
            score: state.score,
            expected: state.expected,
            effective: state.effective,
            evaluated_at: state.evaluated_at,
            score_episodes: state.score_episodes,
            rules,
            listed: false,
        }));
        self.st.update_active(slot);
        Ok(())
    }

    /// The whole state, for a checkpoint.
    pub fn snapshot(&self) -> EngineSnapshot {
        let registry_len = self.ctx.registry.mahallas().len();
        let mahallas = self
            .st
            .meta
            .iter()
            .enumerate()
            .filter_map(|(slot, meta)| {
                let state = self.export_slot(slot as u32);
                (state.is_some() || slot >= registry_len).then(|| MahallaEntry {
                    id: meta.id.clone(),
                    district_id: meta.district_id.clone(),
                    region_id: meta.region_id.clone(),
                    state,
                })
            })
            .collect();
        let unassigned = self
            .ctx
            .rules
            .iter()
            .enumerate()
            .filter_map(|(ri, rule)| {
                let (hits, days) = cell_share(&self.st.cells[ri], NO_MAHALLA);
                (!hits.is_empty() || !days.is_empty()).then(|| UnassignedEntry {
                    rule: rule.name.clone(),
                    hits,
                    days,
                })
            })
            .collect();
        EngineSnapshot {
            format: FORMAT,
            half_life: self.ctx.config.half_life,
            baseline_window: self.ctx.config.baseline_window,
            clock: self.st.clock,
            start: self.st.start,
            prune_hour: self.st.prune_hour,
            housekeeping_day: self.st.housekeeping_day,
            mahallas,
            unassigned,
        }
    }

    /// An engine restored from a snapshot: it carries on exactly where the
    /// snapshotted one was.
    pub fn restore(
        config: RiskConfig,
        registry: Arc<Registry>,
        snapshot: EngineSnapshot,
    ) -> Result<Self, ImportError> {
        check(
            snapshot.format,
            snapshot.half_life,
            snapshot.baseline_window,
            &config,
        )?;
        let mut engine = Engine::new(config, registry)?;
        engine.st.clock = snapshot.clock;
        engine.st.start = snapshot.start;
        for entry in snapshot.mahallas {
            if !engine.st.slots.contains_key(&entry.id) {
                engine.st.new_slot(Meta {
                    id: entry.id.clone(),
                    district_id: entry.district_id,
                    region_id: entry.region_id,
                });
            }
            if let Some(state) = entry.state {
                engine.import_mahalla(&entry.id, state)?;
            }
        }
        for entry in snapshot.unassigned {
            let Some(ri) = engine.ctx.rules.iter().position(|r| r.name == entry.rule) else {
                continue;
            };
            let cap = engine.ctx.cap;
            add_share(
                &mut engine.st.cells[ri],
                NO_MAHALLA,
                &entry.hits,
                &entry.days,
                cap,
            );
        }
        // Importing may have moved the clock and start; the snapshot's win.
        engine.st.clock = snapshot.clock;
        engine.st.start = snapshot.start;
        engine.st.prune_hour = snapshot.prune_hour;
        engine.st.housekeeping_day = snapshot.housekeeping_day;
        Ok(engine)
    }
}

impl State {
    /// Forgets a mahalla's state and its events in cell-rule windows.
    fn drop_slot(&mut self, slot: u32) {
        self.mahallas[slot as usize] = None;
        for map in &mut self.cells {
            map.retain(|_, c| {
                c.hits.retain(|h| h.mahalla != slot);
                c.days.retain(|d| d.mahalla != slot);
                !c.is_empty()
            });
        }
        self.active.remove(&slot);
    }
}
