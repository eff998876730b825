//! [`Engine`]: the deterministic state machine over enriched events and ticks.
//!
//! This file holds the [`Engine`] and its public API; the parts it is made of:
//!
//! - `ctx`: the compiled configuration and the scoring helpers;
//! - `mahalla`: the state of one mahalla (intensity, baseline, cells, level);
//! - `cellrules`: the state of cell-grouped rules and their disk checks;
//! - `episodes`: matching events fed to the rules, and rule episodes opening;
//! - `levels`: levels with hysteresis, and the escalations that report a rise;
//! - `slots`: mahalla slots, the active set and housekeeping;
//! - `views`: the public views of the state;
//! - `state`: export and import of state (mahallas and snapshots).

mod cellrules;
mod ctx;
mod episodes;
mod levels;
mod mahalla;
mod slots;
mod state;
mod views;

pub use state::{EngineSnapshot, ImportError, MahallaState};
pub use views::{CellView, Footprint, MahallaView, RuleView};

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use posbon_geo::Registry;
use posbon_model::{CellId, EnrichedEvent, Escalation, HotCell, RiskLevel};

use crate::baseline::{day_of, hour_of};
use crate::config::{ConfigError, RiskConfig, RuleGroup};
use crate::ids::IdWriter;
use crate::maps::IdMap;
use crate::rules::Hit;
use crate::weights::{HarmWeights, WEIGHT_SCALE, class_of};
use cellrules::{CellMap, NO_MAHALLA, check_disk, disk};
use ctx::{Ctx, to_utc, z_score};
use mahalla::{Mahalla, score_of};

#[derive(Debug, Clone)]
struct Meta {
    id: String,
    district_id: String,
    region_id: String,
}

/// The mutable state of an engine.
#[derive(Debug, Clone)]
struct State {
    slots: IdMap,
    meta: Vec<Meta>,
    mahallas: Vec<Option<Box<Mahalla>>>,
    /// Per rule (empty for mahalla rules): cell → hits and daily measure.
    cells: Vec<CellMap>,
    clock: Option<i64>,
    start: Option<i64>,
    active: BTreeSet<u32>,
    prune_hour: i64,
    housekeeping_day: i64,
    /// Where the ids of new hits are written.
    ids: IdWriter,
}

/// The risk engine: a deterministic state machine over enriched events
/// ([`Engine::apply`]) and ticks ([`Engine::tick`]) whose outputs are
/// [`Escalation`]s.
///
/// Time is event time: the engine's clock is the latest event or tick time it
/// has seen, never the wall clock. Every evaluation happens at the clock, so a
/// late event is added exactly (intensity and baselines) and judged together
/// with everything else at the current time. Same inputs in the same order give
/// the same outputs, bit for bit. A mahalla's outputs depend only on its own
/// events (and, for cell rules, on the events near its cells), never on
/// statistics pooled over other mahallas, so moving mahallas between engines
/// with [`Engine::export_mahalla`] / [`Engine::import_mahalla`] keeps them.
#[derive(Debug)]
pub struct Engine {
    ctx: Ctx,
    st: State,
}

impl Engine {
    /// An engine with `config` over the mahallas of `registry` (events of
    /// mahallas the registry does not know are scored too).
    pub fn new(config: RiskConfig, registry: Arc<Registry>) -> Result<Self, ConfigError> {
        let ctx = Ctx::new(config, registry)?;
        let mut slots = IdMap::default();
        let mut meta = Vec::with_capacity(ctx.registry.mahallas().len());
        for (i, m) in ctx.registry.mahallas().iter().enumerate() {
            slots.insert(&m.id, i as u32);
            meta.push(Meta {
                id: m.id.clone(),
                district_id: m.district_id.clone(),
                region_id: m.region_id.clone(),
            });
        }
        let st = State {
            slots,
            mahallas: vec![None; meta.len()],
            meta,
            cells: ctx.rules.iter().map(|_| CellMap::default()).collect(),
            clock: None,
            start: None,
            active: BTreeSet::new(),
            prune_hour: i64::MIN,
            housekeeping_day: i64::MIN,
            ids: IdWriter::default(),
        };
        Ok(Self { ctx, st })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RiskConfig {
        &self.ctx.config
    }

    /// The harm weights in use.
    pub fn weights(&self) -> &HarmWeights {
        &self.ctx.weights
    }

    /// The engine's clock: the latest event or tick time seen.
    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.st.clock.and_then(to_utc)
    }

    /// Applies one event (event time = `event.occurred_at`); escalations it
    /// causes are pushed to `out`. Events without a mahalla feed cell rules
    /// only.
    pub fn apply(&mut self, event: &EnrichedEvent, out: &mut Vec<Escalation>) {
        let t = event.event.occurred_at().timestamp_millis();
        let now = self.advance_clock(t);
        let ctx = &self.ctx;
        let hit = Hit {
            t,
            w: ctx.weights.quantized(&event.event),
            class: class_of(&event.event),
            cell: event.cell.get(),
            id: self.st.ids.write(event.event.id()),
        };
        let slot = event
            .mahalla_id
            .as_deref()
            .map(|id| self.st.slot(id, event));
        if let Some(slot) = slot {
            self.st.mahalla(ctx, slot, now).record(ctx, &hit, now);
        }
        for (ri, rule) in ctx.rules.iter().enumerate() {
            if !rule.matches(&event.event) {
                continue;
            }
            match rule.group {
                RuleGroup::Mahalla => {
                    if let Some(slot) = slot {
                        self.st.mahalla_rule_event(ctx, ri, slot, &hit, now, out);
                    }
                }
                RuleGroup::Cell => self.st.cell_rule_event(ctx, ri, slot, &hit, now, out),
            }
        }
        if let Some(slot) = slot {
            self.st.evaluate_level(ctx, slot, now, out);
        }
    }

    /// Advances the clock to `now` (an earlier time does not move it) and
    /// re-evaluates every mahalla that is above `normal` or has an open rule
    /// episode, so that levels come down and episodes close when nothing
    /// happens. Call it periodically, e.g. every minute of event time.
    pub fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<Escalation>) {
        let now = self.advance_clock(now.timestamp_millis());
        let ctx = &self.ctx;
        let active: Vec<u32> = self.st.active.iter().copied().collect();
        for slot in active {
            for (ri, rule) in ctx.rules.iter().enumerate() {
                let open = self.st.mahallas[slot as usize]
                    .as_ref()
                    .is_some_and(|m| m.rules[ri].episode.open);
                if open {
                    match rule.group {
                        RuleGroup::Mahalla => {
                            self.st.recheck_mahalla_rule(ctx, ri, slot, now, false, out)
                        }
                        RuleGroup::Cell => self.st.recheck_cell_rule(ctx, ri, slot, now),
                    }
                }
            }
            self.st.evaluate_level(ctx, slot, now, out);
        }
        self.st.housekeeping(ctx, now);
    }

    fn advance_clock(&mut self, t: i64) -> i64 {
        let now = self.st.clock.map_or(t, |c| c.max(t));
        self.st.clock = Some(now);
        if self.st.start.is_none() {
            self.st.start = Some(t);
        }
        now
    }

    /// The state of one mahalla (`None` for an id the engine has never heard
    /// of; a known mahalla without events is `normal`).
    pub fn level(&self, mahalla_id: &str) -> Option<MahallaView> {
        let slot = *self.st.slots.get(mahalla_id)?;
        Some(self.view(slot))
    }

    /// Every known mahalla (the registry's, then others seen in events) with
    /// its level, in that order: what the command-centre map colours.
    pub fn levels(&self) -> impl Iterator<Item = (&str, RiskLevel)> + '_ {
        self.st.meta.iter().zip(&self.st.mahallas).map(|(meta, m)| {
            (
                meta.id.as_str(),
                m.as_ref().map_or(RiskLevel::Normal, |m| m.level),
            )
        })
    }

    /// The full view of every mahalla above `normal`, in slot order.
    pub fn raised(&self) -> Vec<MahallaView> {
        self.st
            .active
            .iter()
            .map(|&slot| self.view(slot))
            .filter(|v| v.level != RiskLevel::Normal)
            .collect()
    }

    /// A rule's condition in a mahalla at the engine's clock: the window's
    /// measure, what the baseline expects, the score. For a cell rule, the
    /// best disk among those that satisfied the open episode (measure 0 when
    /// none is open).
    pub fn rule(&self, mahalla_id: &str, rule: &str) -> Option<RuleView> {
        let slot = *self.st.slots.get(mahalla_id)?;
        let ri = self.ctx.rules.iter().position(|r| r.name == rule)?;
        let now = self.st.clock?;
        let m = self.st.mahallas[slot as usize].as_deref()?;
        let episode = &m.rules[ri].episode;
        let (satisfied, measure, expected, z) = match self.ctx.rules[ri].group {
            RuleGroup::Mahalla => {
                let mut m = m.clone();
                let c = m.evaluate_rule(&self.ctx, ri, now);
                (c.satisfied, c.measure, c.expected, c.z)
            }
            RuleGroup::Cell => {
                let since = self.st.start.unwrap_or(now);
                episode
                    .centres
                    .keys()
                    .map(|&c| {
                        check_disk(
                            &self.ctx,
                            &self.ctx.rules[ri],
                            &self.st.cells[ri],
                            c,
                            now,
                            since,
                        )
                    })
                    .max_by(|a, b| a.measure.total_cmp(&b.measure))
                    .map_or((false, 0.0, None, None), |c| {
                        (c.satisfied, c.measure, c.expected, c.z)
                    })
            }
        };
        Some(RuleView {
            rule: rule.to_owned(),
            open: episode.open,
            episodes: episode.count,
            measure,
            expected,
            z,
            satisfied,
        })
    }

    /// A cell rule's condition on the grid disk around `centre` at the
    /// engine's clock (`open` and `episodes` are those of the mahalla the
    /// disk's latest event belongs to, when there is one).
    pub fn cell_rule(&self, rule: &str, centre: CellId) -> Option<RuleView> {
        let ri = self.ctx.rules.iter().position(|r| r.name == rule)?;
        let r = &self.ctx.rules[ri];
        if r.group != RuleGroup::Cell {
            return None;
        }
        let now = self.st.clock?;
        let since = self.st.start.unwrap_or(now);
        let map = &self.st.cells[ri];
        let c = check_disk(&self.ctx, r, map, centre.get(), now, since);
        let owner = disk(centre.get(), r.disk)
            .iter()
            .filter_map(|cell| map.get(cell))
            .flat_map(|cell| cell.hits.iter())
            .filter(|h| h.mahalla != NO_MAHALLA)
            .max_by_key(|h| h.hit.t)
            .and_then(|h| self.st.mahallas[h.mahalla as usize].as_deref());
        let episode = owner.map(|m| &m.rules[ri].episode);
        Some(RuleView {
            rule: rule.to_owned(),
            open: episode.is_some_and(|e| e.open),
            episodes: episode.map_or(0, |e| e.count),
            measure: c.measure,
            expected: c.expected,
            z: c.z,
            satisfied: c.satisfied,
        })
    }

    /// Hot cells (Getis-Ord Gi*) of a mahalla's events in the evidence window
    /// ending at the clock.
    pub fn hot_cells(&self, mahalla_id: &str) -> Vec<HotCell> {
        let (Some(&slot), Some(now)) = (self.st.slots.get(mahalla_id), self.st.clock) else {
            return Vec::new();
        };
        match &self.st.mahallas[slot as usize] {
            Some(m) => m.hot_cells(&self.ctx, now - self.ctx.evidence_ms, now),
            None => Vec::new(),
        }
    }

    /// The intensity, baseline and score of one cell of a mahalla at the clock.
    pub fn cell(&self, mahalla_id: &str, cell: CellId) -> Option<CellView> {
        let slot = *self.st.slots.get(mahalla_id)?;
        let now = self.st.clock?;
        let m = self.st.mahallas[slot as usize].as_ref()?;
        let c = m.cells.get(&cell.get())?;
        let ctx = &self.ctx;
        let (intensity, events) = c.intensity.at(now, ctx.inv_tau);
        let day = day_of(ctx.local(now));
        let (lo, hi) = (day - ctx.window_days, day - 1);
        let harm: f64 = c
            .days
            .iter()
            .filter(|d| (lo..=hi).contains(&d.day))
            .map(|d| f64::from(d.harm) / WEIGHT_SCALE)
            .sum();
        let from_hour = (lo * 24).max(hour_of(ctx.local(m.observed_since)));
        let exposure_h = (day * 24 - from_hour).max(0) as f64;
        let prior_h = ctx.prior.hours;
        let prior = ctx.cell_prior_per_hour * prior_h;
        let rate = (harm + prior) / (exposure_h + prior_h);
        let expected = rate * ctx.tau_h();
        let (phi, mean_weight) = if m.cache.phi > 0.0 {
            (m.cache.phi, m.cache.mean_weight)
        } else {
            (ctx.prior.dispersion, 1.0)
        };
        Some(CellView {
            cell,
            intensity,
            events,
            expected,
            score: score_of(
                intensity,
                events,
                expected,
                phi,
                mean_weight,
                (harm + prior) / phi,
                ctx.config.overdispersion,
            )
            .min(),
        })
    }

    /// How much state the engine holds, for memory monitoring.
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint::default();
        for m in self.st.mahallas.iter().flatten() {
            f.mahallas += 1;
            f.cells += m.cells.len();
            f.recent_events += m.recent.len();
            f.baseline_days += m.baseline.days.len();
            for r in &m.rules {
                f.rule_hits += r.hits.len();
                f.baseline_days += r.baseline.as_ref().map_or(0, |b| b.days.len());
            }
        }
        for map in &self.st.cells {
            f.rule_cells += map.len();
            f.rule_hits += map.values().map(|c| c.hits.len()).sum::<usize>();
        }
        f
    }
}
