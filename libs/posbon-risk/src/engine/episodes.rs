//! Pattern rules at work: a matching event enters a mahalla rule's window
//! or a cell rule's cells, the rule is re-checked, and an episode that opens
//! raises the mahalla's level and is reported as an escalation.

use std::collections::BTreeMap;

use posbon_model::{Escalation, MeasureName, RuleMeasure};

use super::cellrules::{
    CellHit, NO_MAHALLA, check_cells, check_disk, cluster_hits, disk, same_site,
};
use super::mahalla::counts;
use super::{Ctx, State};
use crate::baseline::day_of;
use crate::config::Measure;
use crate::rules::{EpisodeChange, Hit};
use crate::weights::CLASSES;

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

impl State {
    /// An event for a mahalla rule.
    pub(super) fn mahalla_rule_event(
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
    pub(super) fn recheck_mahalla_rule(
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
    pub(super) fn cell_rule_event(
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
    pub(super) fn recheck_cell_rule(&mut self, ctx: &Ctx, ri: usize, slot: u32, now: i64) {
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
}
