//! The state of cell-grouped rules: per H3 cell, the matching events in the
//! window (with the mahalla each belongs to) and, for rules with `min_z`, the
//! trailing daily measure of the cell.

use std::collections::{BTreeSet, VecDeque};

use h3o::CellIndex;
use serde::{Deserialize, Serialize};

use super::{Ctx, z_score};
use crate::baseline::{HOUR_MS, day_of, hour_of};
use crate::config::Measure;
use crate::maps::FastMap;
use crate::rules::{Hit, Rule};
use crate::weights::WEIGHT_SCALE;

/// Slot of an unassigned event in a cell rule's window.
pub(super) const NO_MAHALLA: u32 = u32::MAX;

/// A matching event in a cell's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CellHit {
    pub(super) hit: Hit,
    pub(super) mahalla: u32,
}

/// One day of a cell's measure, per mahalla of the events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CellRuleDay {
    pub(super) day: i64,
    pub(super) mahalla: u32,
    /// Measure, 1/256 steps.
    pub(super) amount: u32,
}

/// A cell of a cell rule.
#[derive(Debug, Clone, Default)]
pub(super) struct CellRuleCell {
    /// Matching events in the window, in time order.
    pub(super) hits: VecDeque<CellHit>,
    /// Daily measure over the baseline window (rules with `min_z`), by day.
    pub(super) days: VecDeque<CellRuleDay>,
}

impl CellRuleCell {
    pub(super) fn is_empty(&self) -> bool {
        self.hits.is_empty() && self.days.is_empty()
    }

    pub(super) fn prune(&mut self, hit_cutoff: i64, oldest_day: i64) {
        while self.hits.front().is_some_and(|h| h.hit.t <= hit_cutoff) {
            self.hits.pop_front();
        }
        while self.days.front().is_some_and(|d| d.day < oldest_day) {
            self.days.pop_front();
        }
    }

    pub(super) fn insert_hit(&mut self, hit: CellHit, cap: usize) {
        let q = &mut self.hits;
        if q.back().is_none_or(|h| h.hit.t <= hit.hit.t) {
            q.push_back(hit);
        } else {
            let i = q.partition_point(|h| h.hit.t <= hit.hit.t);
            q.insert(i, hit);
        }
        while q.len() > cap {
            q.pop_front();
        }
    }

    pub(super) fn add_day(&mut self, day: i64, mahalla: u32, amount: u32) {
        let i = self
            .days
            .partition_point(|d| (d.day, d.mahalla) < (day, mahalla));
        match self.days.get_mut(i) {
            Some(d) if d.day == day && d.mahalla == mahalla => {
                d.amount = d.amount.saturating_add(amount);
            }
            _ => self.days.insert(
                i,
                CellRuleDay {
                    day,
                    mahalla,
                    amount,
                },
            ),
        }
    }
}

/// The cells of a cell rule.
pub(super) type CellMap = FastMap<u64, CellRuleCell>;

/// The cell and every cell within `k` steps, sorted.
pub(super) fn disk(cell: u64, k: u32) -> Vec<u64> {
    match CellIndex::try_from(cell) {
        Ok(c) => {
            let mut d: Vec<u64> = c
                .grid_disk::<Vec<CellIndex>>(k)
                .into_iter()
                .map(u64::from)
                .collect();
            d.sort_unstable();
            d
        }
        Err(_) => vec![cell],
    }
}

/// The hits in `(cutoff, now]` of the cells of `disks`, each hit once, in
/// time order (then id).
pub(super) fn cluster_hits<'a>(
    map: &'a CellMap,
    disks: &[Vec<u64>],
    cutoff: i64,
    now: i64,
) -> Vec<&'a CellHit> {
    let cells: BTreeSet<u64> = disks.iter().flatten().copied().collect();
    let mut hits: Vec<&CellHit> = cells
        .iter()
        .filter_map(|c| map.get(c))
        .flat_map(|c| c.hits.iter())
        .filter(|h| h.hit.t > cutoff && h.hit.t <= now)
        .collect();
    hits.sort_by(|a, b| a.hit.t.cmp(&b.hit.t).then(a.hit.id.cmp(&b.hit.id)));
    hits
}

/// Whether two centres belong to the same site (their disks overlap).
pub(super) fn same_site(a: u64, b: u64, k: u32) -> bool {
    if a == b {
        return true;
    }
    match (CellIndex::try_from(a), CellIndex::try_from(b)) {
        (Ok(a), Ok(b)) => a
            .grid_distance(b)
            .is_ok_and(|d| d >= 0 && d as u32 <= 2 * k),
        _ => false,
    }
}

/// What a cell rule's condition says about one disk.
#[derive(Debug, Clone, Copy)]
pub(super) struct DiskCheck {
    pub(super) satisfied: bool,
    pub(super) measure: f64,
    pub(super) expected: Option<f64>,
    pub(super) z: Option<f64>,
    /// Whether the baseline was ready, so that `z` took part in `satisfied`.
    pub(super) z_counts: bool,
}

/// Evaluates a cell rule on the disk around `centre` at `now`; `since` is when
/// the engine started observing (for the baseline's exposure).
pub(super) fn check_disk(
    ctx: &Ctx,
    rule: &Rule,
    map: &CellMap,
    centre: u64,
    now: i64,
    since: i64,
) -> DiskCheck {
    check_cells(ctx, rule, map, &disk(centre, rule.disk), now, since)
}

/// [`check_disk`] on the disk `cells` (from [`disk`]).
pub(super) fn check_cells(
    ctx: &Ctx,
    rule: &Rule,
    map: &CellMap,
    cells: &[u64],
    now: i64,
    since: i64,
) -> DiskCheck {
    let cutoff = now - rule.window;
    let measure: f64 = cells
        .iter()
        .filter_map(|c| map.get(c))
        .flat_map(|c| c.hits.iter())
        .filter(|h| h.hit.t > cutoff && h.hit.t <= now)
        .map(|h| rule.amount(h.hit.w))
        .sum();
    if rule.min_z.is_none() {
        return DiskCheck {
            satisfied: measure >= rule.threshold,
            measure,
            expected: None,
            z: None,
            z_counts: false,
        };
    };
    let day = day_of(ctx.local(now));
    let (lo, hi) = (day - ctx.window_days, day - 1);
    let amount: f64 = cells
        .iter()
        .filter_map(|c| map.get(c))
        .flat_map(|c| c.days.iter())
        .filter(|d| (lo..=hi).contains(&d.day))
        .map(|d| f64::from(d.amount) / WEIGHT_SCALE)
        .sum();
    let from_hour = (lo * 24).max(hour_of(ctx.local(since)));
    let exposure_h = (day * 24 - from_hour).max(0) as f64;
    let prior_h = ctx.prior.hours;
    let prior = rule.prior_per_hour * prior_h;
    let rate = (amount + prior) / (exposure_h + prior_h);
    let expected = rate * rule.window as f64 / HOUR_MS as f64;
    let phi = match rule.measure {
        Measure::Count => 1.0,
        Measure::Harm => ctx.prior.dispersion,
    };
    let z = z_score(
        measure / phi,
        expected / phi,
        (amount + prior) / phi,
        ctx.config.overdispersion,
    );
    let ready = exposure_h >= ctx.min_baseline_h;
    DiskCheck {
        satisfied: rule.holds(measure, z, ready),
        measure,
        expected: Some(expected),
        z: Some(z),
        z_counts: ready,
    }
}
