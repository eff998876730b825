//! The state of one mahalla: decayed intensity, baseline, cells, recent
//! events, level, and its mahalla-rule windows and episodes.

use std::collections::{BTreeMap, VecDeque};

use posbon_model::{HotCell, RiskLevel};
use serde::{Deserialize, Serialize};

use super::{Ctx, z_score};
use crate::baseline::{Baseline, HOUR_MS, Rates, day_of, expected_in_window, hour_of};
use crate::hotcells::{Occupied, getis_ord};
use crate::intensity::Decayed;
use crate::maps::FastMap;
use crate::rules::{Episode, Hit, Rule, insert_hit, prune_hits};
use crate::weights::{CLASSES, WEIGHT_SCALE, class_name};

/// Expected intensity of a mahalla, valid for one hour and one baseline version.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cache {
    valid: bool,
    hour: i64,
    version: u64,
    current: f64,
    past: f64,
    pub(super) phi: f64,
    pub(super) mean_weight: f64,
    effective: f64,
    exposure: f64,
}

/// Rates of a rule baseline, valid for one day and one baseline version.
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleCache {
    day: i64,
    version: u64,
    rates: Rates,
}

/// One day of a cell's harm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CellDay {
    pub(super) day: i64,
    pub(super) harm: u32,
    pub(super) count: u32,
}

impl CellDay {
    /// Counts one more event of harm `harm` on this day.
    fn count_event(&mut self, harm: u32) {
        self.harm = self.harm.saturating_add(harm);
        self.count = self.count.saturating_add(1);
    }
}

/// A cell of a mahalla: its decayed intensity and daily harm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct CellState {
    pub(super) intensity: Decayed,
    pub(super) days: CellDays,
}

/// The days of a cell with harm, in day order. The latest day is kept in
/// the cell itself and only earlier days on the heap: nearly every event
/// falls on its cell's latest day, and then recording it touches the cell
/// and nothing else (a separate buffer would cost a cache miss per event
/// once a national registry's 200,000 cells no longer fit in the cache).
/// Serialised as the list of days, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct CellDays {
    /// The latest day; `None` when there is none.
    last: Option<CellDay>,
    /// The days before `last`, oldest first.
    earlier: Vec<CellDay>,
}

impl CellDays {
    /// Adds an event of harm `harm` on `day`.
    pub(super) fn add(&mut self, day: i64, harm: u32) {
        let new = CellDay {
            day,
            harm,
            count: 1,
        };
        match &mut self.last {
            Some(last) if last.day == day => last.count_event(harm),
            Some(last) if last.day < day => {
                let previous = std::mem::replace(last, new);
                self.earlier.push(previous);
            }
            None => self.last = Some(new),
            Some(_) => {
                let i = self.earlier.partition_point(|d| d.day < day);
                match self.earlier.get_mut(i) {
                    Some(d) if d.day == day => d.count_event(harm),
                    _ => self.earlier.insert(i, new),
                }
            }
        }
    }

    /// Drops the days before `oldest`.
    pub(super) fn prune(&mut self, oldest: i64) {
        if self.last.as_ref().is_some_and(|d| d.day < oldest) {
            self.last = None;
            self.earlier.clear();
        } else {
            let n = self.earlier.partition_point(|d| d.day < oldest);
            self.earlier.drain(..n);
        }
    }

    /// Whether there is no day.
    pub(super) fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The days, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &CellDay> {
        self.earlier.iter().chain(&self.last)
    }
}

impl Serialize for CellDays {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for CellDays {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut earlier = Vec::<CellDay>::deserialize(deserializer)?;
        if earlier.windows(2).any(|w| w[0].day >= w[1].day) {
            return Err(serde::de::Error::custom(
                "the days of a cell are not in increasing order",
            ));
        }
        let last = earlier.pop();
        Ok(CellDays { last, earlier })
    }
}

/// A rule in a mahalla.
#[derive(Debug, Clone, Default)]
pub(super) struct RuleState {
    pub(super) episode: Episode,
    /// Mahalla rules: the window's events.
    pub(super) hits: VecDeque<Hit>,
    /// The measure of `hits` (exact: amounts are multiples of 1/256).
    pub(super) sum: f64,
    /// Mahalla rules with `min_z`: the measure's baseline.
    pub(super) baseline: Option<Baseline>,
    /// Boxed, as the other cold parts of the state: the window's header and
    /// sum are what every event touches, and they share a cache line.
    pub(super) cache: Option<Box<RuleCache>>,
}

impl RuleState {
    /// Adds a hit to the window (in time order, at most `cap`).
    pub(super) fn push(&mut self, rule: &Rule, hit: Hit, cap: usize) {
        self.sum += rule.amount(hit.w);
        insert_hit(&mut self.hits, hit);
        while self.hits.len() > cap {
            if let Some(h) = self.hits.pop_front() {
                self.sum -= rule.amount(h.w);
            }
        }
    }

    /// Drops the hits at or before `cutoff`.
    pub(super) fn prune(&mut self, rule: &Rule, cutoff: i64) {
        while self.hits.front().is_some_and(|h| h.t <= cutoff) {
            if let Some(h) = self.hits.pop_front() {
                self.sum -= rule.amount(h.w);
            }
        }
        if self.hits.is_empty() {
            self.sum = 0.0;
        }
    }

    /// Whether an event at `t` may be learned by the rule's baseline: not
    /// while an episode that opened before it is open.
    pub(super) fn learns(&self, t: i64) -> bool {
        !(self.episode.open && t >= self.episode.opened_at)
    }
}

/// Score of a mahalla at one time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Score {
    /// The smaller of the harm's and the event count's standard scores.
    pub(super) z: f64,
    pub(super) expected: f64,
    pub(super) effective: f64,
    pub(super) ready: bool,
}

/// Everything the engine knows about one mahalla.
#[derive(Debug, Clone)]
pub(super) struct Mahalla {
    pub(super) observed_since: i64,
    pub(super) intensity: Decayed,
    pub(super) baseline: Baseline,
    pub(super) cache: Cache,
    /// The baseline's rates for one baseline version and current day: they
    /// change at most once a day or on a late event, while the hourly
    /// [`Cache`] is refreshed every hour.
    /// Boxed: it is read about once an hour, and inline it would spread the
    /// fields every event touches over more cache lines.
    pub(super) rates: Option<Box<(u64, i64, Rates)>>,
    pub(super) cells: FastMap<u64, CellState>,
    pub(super) recent: VecDeque<Hit>,
    pub(super) level: RiskLevel,
    pub(super) level_since: i64,
    pub(super) score: f64,
    pub(super) expected: f64,
    pub(super) effective: f64,
    pub(super) evaluated_at: i64,
    pub(super) score_episodes: u64,
    pub(super) rules: Vec<RuleState>,
    /// Whether the engine lists it among the active mahallas.
    pub(super) listed: bool,
}

impl Mahalla {
    pub(super) fn new(ctx: &Ctx, observed_since: i64, now: i64) -> Self {
        let day = day_of(ctx.local(now));
        Self {
            observed_since,
            intensity: Decayed::default(),
            baseline: Baseline::new(day),
            cache: Cache::default(),
            rates: None,
            cells: FastMap::default(),
            recent: VecDeque::new(),
            level: RiskLevel::Normal,
            level_since: observed_since,
            score: 0.0,
            expected: 0.0,
            effective: 0.0,
            evaluated_at: observed_since,
            score_episodes: 0,
            listed: false,
            rules: ctx
                .rules
                .iter()
                .map(|r| RuleState {
                    baseline: (r.min_z.is_some() && r.group == crate::config::RuleGroup::Mahalla)
                        .then(|| Baseline::new(day)),
                    ..RuleState::default()
                })
                .collect(),
        }
    }

    /// Sets the level at `now`.
    pub(super) fn set_level(&mut self, level: RiskLevel, now: i64) {
        self.level = level;
        self.level_since = now;
    }

    /// Adds an event to the intensity, the baselines and the recent list.
    pub(super) fn record(&mut self, ctx: &Ctx, hit: &Hit, now: i64) {
        let day = day_of(ctx.local(now));
        if hit.w > 0 {
            let w = f64::from(hit.w) / WEIGHT_SCALE;
            self.intensity.add(hit.t, w, ctx.inv_tau);
            self.baseline.advance(day, ctx.window_days);
            self.baseline.add(ctx.local(hit.t), hit.w, ctx.window_days);
            let cell = self.cells.entry(hit.cell).or_default();
            cell.intensity.add(hit.t, w, ctx.inv_tau);
            let hit_day = day_of(ctx.local(hit.t));
            if hit_day >= day - ctx.window_days {
                cell.days.add(hit_day, hit.w);
            }
        }
        let cutoff = now - ctx.evidence_ms;
        prune_hits(&mut self.recent, cutoff);
        if hit.t > cutoff {
            insert_hit(&mut self.recent, hit.clone());
            while self.recent.len() > ctx.cap {
                self.recent.pop_front();
            }
        }
    }

    /// The score at `now` (the baseline is advanced to `now`'s day).
    pub(super) fn score(&mut self, ctx: &Ctx, now: i64) -> Score {
        let local = ctx.local(now);
        self.baseline.advance(day_of(local), ctx.window_days);
        let hour = hour_of(local);
        if !self.cache.valid
            || self.cache.hour != hour
            || self.cache.version != self.baseline.version
        {
            let key = (self.baseline.version, self.baseline.cur_day);
            let (_, _, rates) = refreshed(
                &mut self.rates,
                |&(version, day, _)| (version, day) == key,
                || {
                    let rates = self.baseline.rates(
                        ctx.local(self.observed_since),
                        ctx.window_days,
                        &ctx.prior,
                    );
                    (key.0, key.1, rates)
                },
            );
            self.cache = Cache {
                valid: true,
                hour,
                version: self.baseline.version,
                current: rates.at_hour(hour),
                past: ctx.kernel.past(rates, hour),
                phi: rates.phi,
                mean_weight: rates.mean_weight,
                effective: rates.effective,
                exposure: rates.exposure_hours,
            };
        }
        let c = self.cache;
        let elapsed = (local - hour * HOUR_MS) as f64 / HOUR_MS as f64;
        let expected = ctx.kernel.expected(c.current, c.past, elapsed);
        let at = self.intensity.read(now, ctx.inv_tau);
        let z = score_of(
            at.harm,
            at.count,
            expected,
            c.phi,
            c.mean_weight,
            c.effective,
            ctx.config.overdispersion,
        )
        .min();
        Score {
            z,
            expected,
            effective: at.effective,
            ready: c.exposure >= ctx.min_baseline_h,
        }
    }

    pub(super) fn rule_floor(&self, ctx: &Ctx) -> RiskLevel {
        self.rules
            .iter()
            .zip(&ctx.rules)
            .filter(|(s, _)| s.episode.open)
            .map(|(_, r)| r.level)
            .max()
            .unwrap_or(RiskLevel::Normal)
    }

    pub(super) fn is_active(&self) -> bool {
        self.level != RiskLevel::Normal || self.rules.iter().any(|r| r.episode.open)
    }

    /// Drops what no longer matters at `now`.
    pub(super) fn housekeeping(&mut self, ctx: &Ctx, now: i64) {
        let day = day_of(ctx.local(now));
        self.baseline.advance(day, ctx.window_days);
        let oldest = day - ctx.window_days;
        let inv_tau = ctx.inv_tau;
        self.cells.retain(|_, c| {
            c.days.prune(oldest);
            !c.days.is_empty() || !c.intensity.is_negligible(now, inv_tau)
        });
        prune_hits(&mut self.recent, now - ctx.evidence_ms);
        for (state, rule) in self.rules.iter_mut().zip(&ctx.rules) {
            state.prune(rule, now - rule.window);
            if let Some(b) = &mut state.baseline {
                b.advance(day, ctx.window_days);
            }
        }
    }

    /// Counts by class and the strongest evidence among the recent events in
    /// `(from, now]`.
    pub(super) fn evidence(
        &self,
        ctx: &Ctx,
        from: i64,
        now: i64,
    ) -> (BTreeMap<String, u64>, Vec<String>) {
        let mut by_class = [0u64; CLASSES];
        let mut ranked: Vec<(f64, &Hit)> = Vec::new();
        for h in self.recent.iter().filter(|h| h.t > from && h.t <= now) {
            by_class[usize::from(h.class).min(CLASSES - 1)] += 1;
            let decayed = f64::from(h.w) * (-((now - h.t) as f64) * ctx.inv_tau).exp();
            ranked.push((decayed, h));
        }
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(b.1.t.cmp(&a.1.t))
                .then(a.1.id.cmp(&b.1.id))
        });
        ranked.truncate(ctx.config.max_evidence);
        ranked.sort_by(|a, b| a.1.t.cmp(&b.1.t).then(a.1.id.cmp(&b.1.id)));
        (
            counts(&by_class),
            ranked.into_iter().map(|(_, h)| h.id.to_string()).collect(),
        )
    }

    /// Gi* hot cells of the mahalla's events in `(from, now]`.
    pub(super) fn hot_cells(&self, ctx: &Ctx, from: i64, now: i64) -> Vec<HotCell> {
        let mut occupied: BTreeMap<u64, Occupied> = BTreeMap::new();
        for h in self.recent.iter().filter(|h| h.t > from && h.t <= now) {
            let o = occupied.entry(h.cell).or_insert(Occupied {
                value: 0.0,
                events: 0,
            });
            o.events += 1;
        }
        for (cell, o) in occupied.iter_mut() {
            o.value = self
                .cells
                .get(cell)
                .map_or(0.0, |c| c.intensity.at(now, ctx.inv_tau).0);
        }
        getis_ord(
            &occupied,
            ctx.config.hot_cells.min_z,
            ctx.config.hot_cells.max_cells,
        )
    }

    /// Measure of a mahalla rule over its window at `now`, whether the
    /// condition holds, and the standard score when the rule has `min_z`.
    pub(super) fn evaluate_rule(&mut self, ctx: &Ctx, ri: usize, now: i64) -> RuleCheck {
        let rule = &ctx.rules[ri];
        let observed_since = self.observed_since;
        let state = &mut self.rules[ri];
        state.prune(rule, now - rule.window);
        let measure = state.sum;
        if rule.min_z.is_none() {
            return RuleCheck {
                satisfied: measure >= rule.threshold,
                measure,
                expected: None,
                z: None,
                z_counts: false,
            };
        };
        let Some(baseline) = &mut state.baseline else {
            return RuleCheck {
                satisfied: false,
                measure,
                expected: None,
                z: None,
                z_counts: false,
            };
        };
        let day = day_of(ctx.local(now));
        baseline.advance(day, ctx.window_days);
        let RuleCache { rates, .. } = refreshed(
            &mut state.cache,
            |c| c.day == day && c.version == baseline.version,
            || RuleCache {
                day,
                version: baseline.version,
                rates: baseline.rates(
                    ctx.local(observed_since),
                    ctx.window_days,
                    &ctx.rule_prior(rule),
                ),
            },
        );
        let expected = expected_in_window(rates, ctx.local(now), rule.window);
        let z = z_score(
            measure / rates.phi,
            expected / rates.phi,
            rates.effective,
            ctx.config.overdispersion,
        );
        let ready = rates.exposure_hours >= ctx.min_baseline_h;
        RuleCheck {
            satisfied: rule.holds(measure, z, ready),
            measure,
            expected: Some(expected),
            z: Some(z),
            z_counts: ready,
        }
    }
}

/// The score of a decayed sum: the smaller of the standard scores of the
/// harm and of the number of events (against expected harm / mean weight),
/// so that the harm must be unusual *and* come from an unusual number of
/// events: a single heavy incident moves the first, not the second.
///
/// A decayed sum of a Poisson stream with weights w has Var/E = E[w²]/(2E[w])
/// = φ/2, so harm/(φ/2) behaves like a Poisson count; the decayed number of
/// events likewise in units of 1/2.
pub(super) fn score_of(
    harm: f64,
    count: f64,
    expected_harm: f64,
    phi: f64,
    mean_weight: f64,
    effective: f64,
    k: f64,
) -> Scores {
    let unit = phi / 2.0;
    let by_harm = z_score(harm / unit, expected_harm / unit, effective, k);
    let expected_count = expected_harm / mean_weight;
    let by_count = z_score(2.0 * count, 2.0 * expected_count, effective, k);
    Scores {
        harm: by_harm,
        count: by_count,
    }
}

/// The two standard scores of a decayed sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scores {
    /// Of the harm.
    pub(super) harm: f64,
    /// Of the number of events.
    pub(super) count: f64,
}

impl Scores {
    /// The score that levels use: the smaller one.
    pub(super) fn min(self) -> f64 {
        self.harm.min(self.count)
    }
}

/// Outcome of evaluating a mahalla rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleCheck {
    pub(super) satisfied: bool,
    pub(super) measure: f64,
    pub(super) expected: Option<f64>,
    pub(super) z: Option<f64>,
    /// Whether the baseline was ready, so that `z` took part in `satisfied`.
    pub(super) z_counts: bool,
}

/// Counts by class name, without the zeros.
pub(super) fn counts(by_class: &[u64; CLASSES]) -> BTreeMap<String, u64> {
    by_class
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (class_name(c as u8).to_owned(), *n))
        .collect()
}

/// The value in `slot` if `fresh` accepts it, else `make()`, stored in
/// `slot` (in its box when it has one).
fn refreshed<T>(
    slot: &mut Option<Box<T>>,
    fresh: impl FnOnce(&T) -> bool,
    make: impl FnOnce() -> T,
) -> &T {
    match slot {
        Some(b) if fresh(b) => {}
        Some(b) => **b = make(),
        None => *slot = Some(Box::new(make())),
    }
    slot.as_deref().expect("the value was just stored")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The days a brute-force tally of `(day, harm)` events gives.
    fn tally(events: &[(i64, u32)], oldest: i64) -> Vec<CellDay> {
        let mut by_day: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
        for &(day, harm) in events.iter().filter(|e| e.0 >= oldest) {
            let d = by_day.entry(day).or_default();
            d.0 += harm;
            d.1 += 1;
        }
        by_day
            .into_iter()
            .map(|(day, (harm, count))| CellDay { day, harm, count })
            .collect()
    }

    #[test]
    fn cell_days_match_a_tally_in_any_order_and_survive_serde() {
        let events = [
            (10, 3),
            (10, 1),
            (12, 5),
            (11, 2),
            (12, 1),
            (9, 7),
            (14, 2),
            (11, 1),
            (13, 4),
            (9, 1),
        ];
        let mut days = CellDays::default();
        assert!(days.is_empty());
        for &(day, harm) in &events {
            days.add(day, harm);
        }
        assert_eq!(days.iter().cloned().collect::<Vec<_>>(), tally(&events, 0));
        let json = serde_json::to_string(&days).expect("serialises");
        assert_eq!(
            json,
            serde_json::to_string(&tally(&events, 0)).expect("list")
        );
        let back: CellDays = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, days);
        assert!(
            serde_json::from_str::<CellDays>(
                r#"[{"day":2,"harm":1,"count":1},{"day":2,"harm":1,"count":1}]"#
            )
            .is_err()
        );

        days.prune(11);
        assert_eq!(days.iter().cloned().collect::<Vec<_>>(), tally(&events, 11));
        days.prune(15);
        assert!(days.is_empty());
        assert_eq!(days.iter().count(), 0);
        days.add(3, 1);
        assert_eq!(
            days.iter().cloned().collect::<Vec<_>>(),
            tally(&[(3, 1)], 0)
        );
    }
}
