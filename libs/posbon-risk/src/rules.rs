//! Pattern rules compiled from [`RuleConfig`]: event filters, the events held
//! in a rule's window, and the episode state of a rule in a mahalla.

use std::collections::{BTreeMap, VecDeque};

use posbon_model::{Event, RiskLevel};
use serde::{Deserialize, Serialize};

use crate::config::{BeforeBaseline, Measure, RuleConfig, RuleGroup};
use crate::ids::EventId;

/// An event as a rule window or a mahalla's recent list keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hit {
    /// Event time, ms.
    pub(crate) t: i64,
    /// Harm weight, 1/256 steps.
    pub(crate) w: u32,
    /// Class (category / detection / scheme).
    pub(crate) class: u8,
    /// H3 cell.
    pub(crate) cell: u64,
    /// Event id (shared by the lists that hold the event).
    pub(crate) id: EventId,
}

/// Inserts a hit in time order (late events go in their place).
pub(crate) fn insert_hit(hits: &mut VecDeque<Hit>, hit: Hit) {
    if hits.back().is_none_or(|h| h.t <= hit.t) {
        hits.push_back(hit);
    } else {
        let i = hits.partition_point(|h| h.t <= hit.t);
        hits.insert(i, hit);
    }
}

/// Drops hits at or before `cutoff` (ms).
pub(crate) fn prune_hits(hits: &mut VecDeque<Hit>, cutoff: i64) {
    while hits.front().is_some_and(|h| h.t <= cutoff) {
        hits.pop_front();
    }
}

/// A rule ready to match events.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    kinds: u8,
    categories: u32,
    min_severity: u8,
    detections: u32,
    min_confidence: f64,
    schemes: u32,
    min_amount: f64,
    pub(crate) window: i64,
    pub(crate) group: RuleGroup,
    pub(crate) disk: u32,
    pub(crate) measure: Measure,
    pub(crate) threshold: f64,
    pub(crate) min_z: Option<f64>,
    /// Prior measure per hour (for `min_z`).
    pub(crate) prior_per_hour: f64,
    pub(crate) before_baseline: BeforeBaseline,
    pub(crate) cooldown: i64,
    pub(crate) max_idle: Option<i64>,
    pub(crate) level: RiskLevel,
}

fn mask<T: Copy>(items: &[T], index: impl Fn(T) -> usize) -> u32 {
    if items.is_empty() {
        u32::MAX
    } else {
        items.iter().fold(0, |m, &i| m | (1 << index(i)))
    }
}

impl Rule {
    pub(crate) fn new(config: &RuleConfig) -> Self {
        Self {
            name: config.name.clone(),
            kinds: config.kinds.iter().fold(0, |m, &k| m | (1 << k as u8)),
            categories: mask(&config.categories, |c| c as usize),
            min_severity: config.min_severity.unwrap_or(0),
            detections: mask(&config.detections, |d| d as usize),
            min_confidence: config.min_confidence.unwrap_or(f64::NEG_INFINITY),
            schemes: mask(&config.schemes, |s| s as usize),
            min_amount: config.min_amount_uzs.unwrap_or(f64::NEG_INFINITY),
            window: config.window.millis(),
            group: config.group,
            disk: config.disk,
            measure: config.measure,
            threshold: config.threshold,
            min_z: config.min_z,
            prior_per_hour: config.prior_per_day / 24.0,
            before_baseline: config.before_baseline,
            cooldown: config.cooldown.millis(),
            max_idle: config.max_idle.map(|s| s.millis()),
            level: config.level,
        }
    }

    /// Whether the rule looks at this event.
    #[inline]
    pub(crate) fn matches(&self, event: &Event) -> bool {
        if self.kinds & (1 << event.kind() as u8) == 0 {
            return false;
        }
        match event {
            Event::Incident(i) => {
                self.categories & (1 << i.category as u32) != 0 && i.severity >= self.min_severity
            }
            Event::CameraAlert(c) => {
                self.detections & (1 << c.detection as u32) != 0
                    && c.confidence >= self.min_confidence
            }
            Event::FraudFlag(f) => {
                self.schemes & (1 << f.scheme as u32) != 0 && f.amount_uzs >= self.min_amount
            }
        }
    }

    /// What one hit adds to the measure.
    #[inline]
    pub(crate) fn amount(&self, w_q: u32) -> f64 {
        match self.measure {
            Measure::Count => 1.0,
            Measure::Harm => f64::from(w_q) / crate::weights::WEIGHT_SCALE,
        }
    }

    /// Whether the condition holds, given the measure, the score and whether
    /// the baseline is ready.
    #[inline]
    pub(crate) fn holds(&self, measure: f64, z: f64, ready: bool) -> bool {
        if measure < self.threshold {
            return false;
        }
        match self.min_z {
            None => true,
            Some(_) if !ready => self.before_baseline == BeforeBaseline::Threshold,
            Some(min_z) => z >= min_z,
        }
    }

    /// The amount in 1/256 steps, for the rule's baseline.
    #[inline]
    pub(crate) fn amount_q(&self, w_q: u32) -> u32 {
        match self.measure {
            Measure::Count => crate::weights::WEIGHT_SCALE as u32,
            Measure::Harm => w_q,
        }
    }
}

/// The episode state of one rule in one mahalla.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Episode {
    /// Episodes opened so far (the last one's number when open).
    pub(crate) count: u64,
    /// Whether an episode is open.
    pub(crate) open: bool,
    /// When the open episode opened, ms.
    pub(crate) opened_at: i64,
    /// Since when the condition has been false while the episode is open.
    pub(crate) false_since: Option<i64>,
    /// Cell rules: the sites of the episode (the centre cell of each
    /// cluster's strongest disk), each with the time of its latest satisfying
    /// event.
    pub(crate) centres: BTreeMap<u64, i64>,
    /// Time of the latest matching event that satisfied the condition.
    pub(crate) last_event: i64,
}

/// What an episode did after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpisodeChange {
    /// Nothing.
    None,
    /// A new episode opened (its number is `count`).
    Opened,
    /// The open episode closed.
    Closed,
}

impl Episode {
    /// Whether an open episode has gone without a satisfying event for longer
    /// than `max_idle`.
    pub(crate) fn idle(&self, now: i64, max_idle: Option<i64>) -> bool {
        max_idle.is_some_and(|m| now - self.last_event >= m)
    }

    /// Applies one evaluation of the condition at `now`.
    pub(crate) fn evaluate(&mut self, satisfied: bool, now: i64, cooldown: i64) -> EpisodeChange {
        if satisfied {
            self.false_since = None;
            if !self.open {
                self.open = true;
                self.count += 1;
                self.opened_at = now;
                return EpisodeChange::Opened;
            }
            return EpisodeChange::None;
        }
        if !self.open {
            return EpisodeChange::None;
        }
        let since = *self.false_since.get_or_insert(now);
        if now - since >= cooldown {
            self.open = false;
            self.false_since = None;
            self.centres.clear();
            return EpisodeChange::Closed;
        }
        EpisodeChange::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_stay_in_time_order_and_bounded() {
        let hit = |t: i64| Hit {
            t,
            w: 256,
            class: 0,
            cell: 1,
            id: format!("e{t}").as_str().into(),
        };
        let mut hits = VecDeque::new();
        for t in [5, 1, 9, 3, 7, 7] {
            insert_hit(&mut hits, hit(t));
        }
        hits.pop_front();
        let times: Vec<i64> = hits.iter().map(|h| h.t).collect();
        assert_eq!(times, vec![3, 5, 7, 7, 9]);
        prune_hits(&mut hits, 5);
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn episodes_open_once_and_close_after_the_cooldown() {
        let mut e = Episode::default();
        assert_eq!(e.evaluate(true, 0, 10), EpisodeChange::Opened);
        assert_eq!(e.evaluate(true, 1, 10), EpisodeChange::None);
        assert_eq!(e.evaluate(false, 2, 10), EpisodeChange::None);
        assert_eq!(e.evaluate(true, 5, 10), EpisodeChange::None);
        assert_eq!(e.evaluate(false, 6, 10), EpisodeChange::None);
        assert_eq!(e.evaluate(false, 15, 10), EpisodeChange::None);
        assert_eq!(e.evaluate(false, 16, 10), EpisodeChange::Closed);
        assert_eq!(e.evaluate(true, 17, 10), EpisodeChange::Opened);
        assert_eq!(e.count, 2);
    }
}
