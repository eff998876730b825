//! Levels with hysteresis: scoring a mahalla and moving its level, and the
//! [`Escalation`] that reports a rise (of the score or of a rule).

use std::collections::BTreeMap;

use posbon_model::{Escalation, EscalationStatus, HotCell, MeasureName, RiskLevel, RuleMeasure};

use super::{Ctx, State, to_utc};
use crate::config::SCORE_RULE;

const LEVELS: [RiskLevel; 4] = [
    RiskLevel::Normal,
    RiskLevel::Elevated,
    RiskLevel::High,
    RiskLevel::Critical,
];

impl State {
    /// Scores a mahalla and moves its level (up at once, down after the dwell).
    pub(super) fn evaluate_level(
        &mut self,
        ctx: &Ctx,
        slot: u32,
        now: i64,
        out: &mut Vec<Escalation>,
    ) {
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

    /// The escalation of mahalla `slot` for `rule`'s episode `episode`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn escalation(
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
}
