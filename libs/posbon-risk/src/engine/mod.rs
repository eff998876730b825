//! [`Engine`]: the deterministic state machine over enriched events and ticks.

mod cellrules;
mod mahalla;
mod state;

pub use state::{EngineSnapshot, ImportError, MahallaState};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use posbon_geo::Registry;
use posbon_model::{
    CellId, EnrichedEvent, Escalation, EscalationStatus, HotCell, MeasureName, RiskLevel,
    RuleMeasure,
};
use serde::Serialize;

use crate::baseline::{HOUR_MS, Kernel, Prior, day_of, hour_of};
use crate::config::{ConfigError, Measure, RiskConfig, RuleGroup, SCORE_RULE};
use crate::fasthash::IdMap;
use crate::ids::IdWriter;
use crate::rules::{EpisodeChange, Hit, Rule};
use crate::weights::{CLASSES, HarmWeights, WEIGHT_SCALE, class_of};
use cellrules::{
    CellHit, CellMap, NO_MAHALLA, check_cells, check_disk, cluster_hits, disk, same_site,
};
use mahalla::{Mahalla, counts, score_of};

/// The compiled configuration.
#[derive(Debug)]
struct Ctx {
    config: RiskConfig,
    weights: HarmWeights,
    rules: Vec<Rule>,
    registry: Arc<Registry>,
    /// 1/τ in 1/ms.
    inv_tau: f64,
    kernel: Kernel,
    window_days: i64,
    prior: Prior,
    cell_prior_per_hour: f64,
    min_baseline_h: f64,
    evidence_ms: i64,
    dwell_ms: i64,
    offset_ms: i64,
    cap: usize,
}

impl Ctx {
    /// `hit` as the window of `rule` keeps it: its id stays in the shared
    /// chunks (see [`crate::ids`]) when the window is no longer than the
    /// evidence window, and gets an allocation of its own when it is
    /// longer, so that a sparse rule with a long window does not hold whole
    /// chunks of other events' ids for days.
    fn kept_for(&self, rule: &Rule, hit: &Hit) -> Hit {
        let mut kept = hit.clone();
        if rule.window > self.evidence_ms {
            kept.id = kept.id.detached();
        }
        kept
    }

    fn new(config: RiskConfig, registry: Arc<Registry>) -> Result<Self, ConfigError> {
        config.validate()?;
        let tau_ms = config.half_life.millis() as f64 / std::f64::consts::LN_2;
        let prior = Prior {
            harm_per_hour: config.prior.harm_per_day / 24.0,
            hours: config.prior.days * 24.0,
            dispersion: config.prior.dispersion,
            shrinkage: config.profile_shrinkage,
        };
        Ok(Self {
            weights: HarmWeights::new(&config.weights),
            rules: config.rules.iter().map(Rule::new).collect(),
            registry,
            inv_tau: 1.0 / tau_ms,
            kernel: Kernel::new(tau_ms / HOUR_MS as f64),
            window_days: config.baseline_window.millis() / crate::baseline::DAY_MS,
            prior,
            cell_prior_per_hour: config.prior.cell_harm_per_day / 24.0,
            min_baseline_h: config.min_baseline.hours_f64(),
            evidence_ms: config.evidence_window.millis(),
            dwell_ms: config.levels.min_dwell.millis(),
            offset_ms: i64::from(config.utc_offset_minutes) * 60_000,
            cap: config.max_recent_events,
            config,
        })
    }

    /// Local time (ms) of a UTC time, for days and hours of the day.
    #[inline]
    fn local(&self, t: i64) -> i64 {
        t + self.offset_ms
    }

    fn tau_h(&self) -> f64 {
        1.0 / (self.inv_tau * HOUR_MS as f64)
    }

    fn rule_prior(&self, rule: &Rule) -> Prior {
        Prior {
            harm_per_hour: rule.prior_per_hour,
            hours: self.prior.hours,
            dispersion: match rule.measure {
                Measure::Count => 1.0,
                Measure::Harm => self.prior.dispersion,
            },
            shrinkage: self.prior.shrinkage,
        }
    }
}

/// What a pattern rule measured when its episode opened.
#[derive(Debug, Clone, Copy)]
struct Fired {
    /// The window's measure.
    value: f64,
    /// Its standard score against the baseline (rules with `min_z`).
    z: Option<f64>,
    /// Whether the baseline was ready, so that `z` counted.
    z_counts: bool,
}

impl Fired {
    /// The escalation's headline score: the standard score when there is one.
    fn score(self) -> f64 {
        self.z.unwrap_or(self.value)
    }
}

/// The count-aware score: observed and expected in units that behave like a
/// Poisson count, through the variance-stabilising square root
/// 2(√observed − √expected), scaled down for the uncertainty of the baseline
/// (`effective` events behind it) and for overdispersion `k` (the variance of
/// a count of mean E is taken as E + E²/k).
#[inline]
pub(crate) fn z_score(observed: f64, expected: f64, effective: f64, k: f64) -> f64 {
    let raw = 2.0 * (observed.max(0.0).sqrt() - expected.max(0.0).sqrt());
    raw / (1.0 + expected * (1.0 / effective + 1.0 / k)).sqrt()
}

fn to_utc(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

const LEVELS: [RiskLevel; 4] = [
    RiskLevel::Normal,
    RiskLevel::Elevated,
    RiskLevel::High,
    RiskLevel::Critical,
];

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

    fn view(&self, slot: u32) -> MahallaView {
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

impl State {
    fn slot(&mut self, id: &str, event: &EnrichedEvent) -> u32 {
        if let Some(&s) = self.slots.get(id) {
            return s;
        }
        let known = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_owned());
        self.new_slot(Meta {
            id: id.to_owned(),
            district_id: known(&event.district_id),
            region_id: known(&event.region_id),
        })
    }

    fn new_slot(&mut self, meta: Meta) -> u32 {
        let s = self.meta.len() as u32;
        self.slots.insert(&meta.id, s);
        self.meta.push(meta);
        self.mahallas.push(None);
        s
    }

    fn mahalla(&mut self, ctx: &Ctx, slot: u32, now: i64) -> &mut Mahalla {
        let since = self.start.unwrap_or(now);
        self.mahallas[slot as usize].get_or_insert_with(|| Box::new(Mahalla::new(ctx, since, now)))
    }

    #[allow(clippy::too_many_arguments)]
    fn escalation(
        &self,
        slot: u32,
        rule: &str,
        episode: u64,
        level: RiskLevel,
        previous: RiskLevel,
        score: f64,
        measure: RuleMeasure,
        counts: BTreeMap<String, u64>,
        evidence: Vec<String>,
        hot_cells: Vec<HotCell>,
        window_start: i64,
        now: i64,
    ) -> Escalation {
        let meta = &self.meta[slot as usize];
        let time = |ms| to_utc(ms).unwrap_or_default();
        Escalation {
            id: Escalation::deterministic_id(&meta.id, rule, episode),
            mahalla_id: meta.id.clone(),
            district_id: meta.district_id.clone(),
            region_id: meta.region_id.clone(),
            level,
            previous_level: previous,
            score,
            rule: rule.to_owned(),
            measure: Some(measure),
            counts,
            hot_cells,
            evidence,
            window_start: time(window_start),
            window_end: time(now),
            opened_at: time(now),
            status: EscalationStatus::Open,
        }
    }

    /// An event for a mahalla rule.
    fn mahalla_rule_event(
        &mut self,
        ctx: &Ctx,
        ri: usize,
        slot: u32,
        hit: &Hit,
        now: i64,
        out: &mut Vec<Escalation>,
    ) {
        let rule = &ctx.rules[ri];
        let m = self.mahalla(ctx, slot, now);
        let state = &mut m.rules[ri];
        state.prune(rule, now - rule.window);
        if hit.t > now - rule.window {
            state.push(rule, ctx.kept_for(rule, hit), ctx.cap);
        }
        let learns = state.learns(hit.t);
        if let Some(b) = &mut state.baseline
            && learns
        {
            b.advance(day_of(ctx.local(now)), ctx.window_days);
            b.add(ctx.local(hit.t), rule.amount_q(hit.w), ctx.window_days);
        }
        self.recheck_mahalla_rule(ctx, ri, slot, now, true, out);
    }

    /// Evaluates a mahalla rule and acts on its episode (`event`: on a
    /// matching event rather than a tick).
    fn recheck_mahalla_rule(
        &mut self,
        ctx: &Ctx,
        ri: usize,
        slot: u32,
        now: i64,
        event: bool,
        out: &mut Vec<Escalation>,
    ) {
        let rule = &ctx.rules[ri];
        let Some(m) = self.mahallas[slot as usize].as_deref_mut() else {
            return;
        };
        let check = m.evaluate_rule(ctx, ri, now);
        let episode = &mut m.rules[ri].episode;
        if check.satisfied && event {
            // A burst after a pause longer than `max_idle` is a new episode.
            if episode.open && episode.idle(now, rule.max_idle) {
                episode.open = false;
            }
            episode.last_event = now;
        }
        let satisfied = check.satisfied && !(episode.open && episode.idle(now, rule.max_idle));
        let change = episode.evaluate(satisfied, now, rule.cooldown);
        if change == EpisodeChange::Opened {
            let mut by_class = [0u64; CLASSES];
            let hits = &m.rules[ri].hits;
            for h in hits {
                by_class[usize::from(h.class).min(CLASSES - 1)] += 1;
            }
            let evidence: Vec<String> = hits
                .iter()
                .skip(hits.len().saturating_sub(ctx.config.max_evidence))
                .map(|h| h.id.to_string())
                .collect();
            let fired = Fired {
                value: check.measure,
                z: check.z,
                z_counts: check.z_counts,
            };
            self.open_rule(ctx, ri, slot, fired, counts(&by_class), evidence, now, out);
        }
        self.update_active(slot);
    }

    /// Raises the level for a newly opened episode and reports it.
    #[allow(clippy::too_many_arguments)]
    fn open_rule(
        &mut self,
        ctx: &Ctx,
        ri: usize,
        slot: u32,
        fired: Fired,
        counts: BTreeMap<String, u64>,
        evidence: Vec<String>,
        now: i64,
        out: &mut Vec<Escalation>,
    ) {
        let rule = &ctx.rules[ri];
        let Some(m) = self.mahallas[slot as usize].as_deref_mut() else {
            return;
        };
        let previous = m.level;
        if rule.level > previous {
            m.set_level(rule.level, now);
        }
        let level = m.level;
        let episode = m.rules[ri].episode.count;
        let window_start = now - rule.window;
        let hot = m.hot_cells(ctx, window_start, now);
        let measure = RuleMeasure {
            name: match rule.measure {
                Measure::Count => MeasureName::Count,
                Measure::Harm => MeasureName::Harm,
            },
            value: fired.value,
            threshold: rule.threshold,
            z: fired.z.filter(|_| fired.z_counts),
            min_z: rule.min_z,
        };
        let e = self.escalation(
            slot,
            &rule.name,
            episode,
            level,
            previous,
            fired.score(),
            measure,
            counts,
            evidence,
            hot,
            window_start,
            now,
        );
        out.push(e);
    }

    /// An event for a cell rule.
    fn cell_rule_event(
        &mut self,
        ctx: &Ctx,
        ri: usize,
        slot: Option<u32>,
        hit: &Hit,
        now: i64,
        out: &mut Vec<Escalation>,
    ) {
        let rule = &ctx.rules[ri];
        let cutoff = now - rule.window;
        let since = self.start.unwrap_or(now);
        let owner_slot = slot.unwrap_or(NO_MAHALLA);
        // Learned unless the event's mahalla is in the first part of an episode.
        let learns = slot
            .and_then(|s| self.mahallas[s as usize].as_deref())
            .is_none_or(|m| m.rules[ri].learns(hit.t));
        let cell = self.cells[ri].entry(hit.cell).or_default();
        let today = day_of(ctx.local(now));
        let hit_day = day_of(ctx.local(hit.t));
        cell.prune(cutoff, today - ctx.window_days);
        if hit.t > cutoff {
            cell.insert_hit(
                CellHit {
                    hit: ctx.kept_for(rule, hit),
                    mahalla: owner_slot,
                },
                ctx.cap,
            );
        }
        if rule.min_z.is_some() && learns && hit_day >= today - ctx.window_days {
            cell.add_day(hit_day, owner_slot, rule.amount_q(hit.w));
        }
        if hit.t <= cutoff {
            return;
        }
        let map = &self.cells[ri];
        // The disks around each cell of the event's disk that satisfy the
        // rule, with their measure and score.
        let mut satisfied: Vec<(u64, Fired)> = Vec::new();
        let mut disks: Vec<Vec<u64>> = Vec::new();
        for centre in disk(hit.cell, rule.disk) {
            let cells = disk(centre, rule.disk);
            let c = check_cells(ctx, rule, map, &cells, now, since);
            if c.satisfied {
                satisfied.push((
                    centre,
                    Fired {
                        value: c.measure,
                        z: c.z,
                        z_counts: c.z_counts,
                    },
                ));
                disks.push(cells);
            }
        }
        if satisfied.is_empty() {
            return;
        }
        let owner = match slot {
            Some(s) => s,
            None => {
                // The mahalla with most events in the cluster (lowest slot on ties).
                let mut tally: BTreeMap<u32, usize> = BTreeMap::new();
                for h in cluster_hits(map, &disks, cutoff, now)
                    .iter()
                    .filter(|h| h.mahalla != NO_MAHALLA)
                {
                    *tally.entry(h.mahalla).or_default() += 1;
                }
                match tally
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                {
                    Some((s, _)) => s,
                    None => return,
                }
            }
        };
        // The escalation reports the disk with the highest score.
        let fired = satisfied
            .iter()
            .map(|&(_, f)| f)
            .max_by(|a, b| a.score().total_cmp(&b.score()))
            .expect("a satisfied disk");
        let m = self.mahalla(ctx, owner, now);
        let episode = &mut m.rules[ri].episode;
        // The site of the cluster is its strongest disk. A cluster at a new
        // site (farther than the disks' reach from every site of the episode)
        // is news even while an episode is open; a site without a satisfying
        // event for `max_idle` is over, so a new burst there is news too.
        if let Some(idle) = rule.max_idle {
            episode.centres.retain(|_, t| now - *t < idle);
        }
        let anchor = satisfied
            .iter()
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value).then(b.0.cmp(&a.0)))
            .map_or(hit.cell, |s| s.0);
        let mut known = false;
        for (site, t) in episode.centres.iter_mut() {
            if same_site(anchor, *site, rule.disk) {
                *t = now;
                known = true;
            }
        }
        if !known {
            episode.open = false;
            episode.centres.insert(anchor, now);
        }
        episode.last_event = now;
        let change = episode.evaluate(true, now, rule.cooldown);
        if change == EpisodeChange::Opened {
            // The cluster's hits are gathered and sorted only for the
            // escalation: most events of an open episode change nothing.
            let hits = cluster_hits(&self.cells[ri], &disks, cutoff, now);
            let mut by_class = [0u64; CLASSES];
            for h in &hits {
                by_class[usize::from(h.hit.class).min(CLASSES - 1)] += 1;
            }
            let evidence: Vec<String> = hits
                .iter()
                .skip(hits.len().saturating_sub(ctx.config.max_evidence))
                .map(|h| h.hit.id.to_string())
                .collect();
            self.open_rule(ctx, ri, owner, fired, counts(&by_class), evidence, now, out);
        }
        self.update_active(owner);
    }

    /// Re-evaluates the disks of an open cell-rule episode.
    fn recheck_cell_rule(&mut self, ctx: &Ctx, ri: usize, slot: u32, now: i64) {
        let rule = &ctx.rules[ri];
        let since = self.start.unwrap_or(now);
        let map = &self.cells[ri];
        let Some(m) = self.mahallas[slot as usize].as_deref_mut() else {
            return;
        };
        let episode = &mut m.rules[ri].episode;
        episode.centres.retain(|&c, t| {
            rule.max_idle.is_none_or(|idle| now - *t < idle)
                && check_disk(ctx, rule, map, c, now, since).satisfied
        });
        let satisfied = !episode.centres.is_empty();
        episode.evaluate(satisfied, now, rule.cooldown);
        self.update_active(slot);
    }

    /// Scores a mahalla and moves its level (up at once, down after the dwell).
    fn evaluate_level(&mut self, ctx: &Ctx, slot: u32, now: i64, out: &mut Vec<Escalation>) {
        let Some(m) = self.mahallas[slot as usize].as_deref_mut() else {
            return;
        };
        let s = m.score(ctx, now);
        m.score = s.z;
        m.expected = s.expected;
        m.effective = s.effective;
        m.evaluated_at = now;
        let levels = &ctx.config.levels;
        let mut up = RiskLevel::Normal;
        let mut entry = f64::NAN;
        if s.ready {
            for level in &LEVELS[1..] {
                if let Some(t) = levels.thresholds(*level)
                    && s.z >= t.entry
                    && s.effective >= t.min_events
                {
                    up = *level;
                    entry = t.entry;
                }
            }
        }
        if up > m.level {
            let previous = m.level;
            m.set_level(up, now);
            m.score_episodes += 1;
            let episode = m.score_episodes;
            let from = now - ctx.evidence_ms;
            let (counts, evidence) = m.evidence(ctx, from, now);
            let hot = m.hot_cells(ctx, from, now);
            let measure = RuleMeasure {
                name: MeasureName::Score,
                value: s.z,
                threshold: entry,
                z: None,
                min_z: None,
            };
            let e = self.escalation(
                slot, SCORE_RULE, episode, up, previous, s.z, measure, counts, evidence, hot, from,
                now,
            );
            out.push(e);
        } else if m.level != RiskLevel::Normal && now - m.level_since >= ctx.dwell_ms {
            let mut hold = RiskLevel::Normal;
            if s.ready {
                for level in LEVELS[1..].iter().filter(|l| **l <= m.level) {
                    if levels.thresholds(*level).is_some_and(|t| s.z >= t.exit) {
                        hold = *level;
                    }
                }
            }
            let target = hold.max(m.rule_floor(ctx));
            if target < m.level {
                m.set_level(target, now);
            }
        }
        self.update_active(slot);
    }

    fn update_active(&mut self, slot: u32) {
        let Some(m) = self.mahallas[slot as usize].as_deref_mut() else {
            self.active.remove(&slot);
            return;
        };
        let active = m.is_active();
        if active != m.listed {
            m.listed = active;
            if active {
                self.active.insert(slot);
            } else {
                self.active.remove(&slot);
            }
        }
    }

    /// Hourly: drops expired cell-rule data. Daily: prunes every mahalla.
    fn housekeeping(&mut self, ctx: &Ctx, now: i64) {
        let hour = hour_of(now);
        if hour > self.prune_hour {
            self.prune_hour = hour;
            let oldest = day_of(ctx.local(now)) - ctx.window_days;
            for (map, rule) in self.cells.iter_mut().zip(&ctx.rules) {
                let cutoff = now - rule.window;
                map.retain(|_, c| {
                    c.prune(cutoff, oldest);
                    !c.is_empty()
                });
            }
        }
        let day = day_of(ctx.local(now));
        if day > self.housekeeping_day {
            self.housekeeping_day = day;
            for m in self.mahallas.iter_mut().flatten() {
                m.housekeeping(ctx, now);
            }
        }
    }
}
