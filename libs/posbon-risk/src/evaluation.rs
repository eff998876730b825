//! Scoring escalations against a ground truth of injected episodes, as plain
//! data: recall of the episodes and false escalations per 1,000 quiet
//! mahalla-days.
//!
//! Definitions (all times are event times):
//!
//! - An episode is **scored** when it starts in `[from, to − detection_window]`
//!   (one that starts later has no time to be seen).
//! - It is **detected** when an escalation of its mahalla opens within
//!   `[start, start + detection_window]` (2 h by default). Any rule counts.
//! - Injections can pile up at one place: an episode that starts while an
//!   earlier episode of the same kind, in the same mahalla and sharing a cell
//!   with it (the same camera's disk, the same mahalla's cells), is under way
//!   or in its aftermath *continues that situation*: their events mix in the
//!   same rule windows at the same place, and no detector can tell which
//!   burst a detection belongs to. Such an episode counts as detected when
//!   the situation's first episode was. The report gives this recall and the
//!   strict one, where every episode needs its own escalation in its window.
//! - An escalation is **explained** when an episode of its mahalla is under
//!   way at its `opened_at`: within `[start, end + aftermath)`, the aftermath
//!   (24 h by default) covering rule windows that still hold the episode's
//!   events. Every other escalation opened in the scored days is **false**.
//! - A **quiet mahalla-day** is a calendar day (at `day_offset`, Tashkent
//!   +05:00) of the scored period in which no episode of the mahalla is under
//!   way at any moment. Every mahalla of the registry counts, events or not.
//! - The false-escalation rate is false escalations per 1,000 quiet
//!   mahalla-days. (An unexplained escalation on a day that is not quiet still
//!   counts as false, which can only make the rate look worse.)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Days, FixedOffset, TimeDelta, Utc};
use posbon_model::Escalation;
use serde::{Deserialize, Serialize};

/// One injected episode (a hotspot, a fraud wave...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthEpisode {
    /// What it is, e.g. `drug_handoff_hotspot`, `fraud_wave`.
    pub kind: String,
    /// The mahalla it happens in.
    pub mahalla_id: String,
    /// Start (event time).
    pub start: DateTime<Utc>,
    /// End (event time, exclusive).
    pub end: DateTime<Utc>,
    /// Its H3 cells (any resolution, as strings); empty when unknown.
    #[serde(default)]
    pub cells: Vec<String>,
}

/// How to score (see the module docs).
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Start of the scored period (a local midnight makes whole days).
    pub from: DateTime<Utc>,
    /// End of the scored period (exclusive).
    pub to: DateTime<Utc>,
    /// An escalation this soon after an episode's start detects it.
    pub detection_window: TimeDelta,
    /// An episode explains escalations this long after its end, and a later
    /// episode at the same place within it continues its situation.
    pub aftermath: TimeDelta,
    /// Offset of the calendar days of the quiet mahalla-days.
    pub day_offset: FixedOffset,
    /// Mahallas in the registry.
    pub mahallas: usize,
}

impl EvalOptions {
    /// Options with the defaults: a 2 h detection window, a 24 h aftermath and
    /// Tashkent days (+05:00).
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, mahallas: usize) -> Self {
        Self {
            from,
            to,
            detection_window: TimeDelta::hours(2),
            aftermath: TimeDelta::hours(24),
            day_offset: FixedOffset::east_opt(5 * 3600).expect("+05:00 is a valid offset"),
            mahallas,
        }
    }
}

/// Recall and false escalations of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Episodes scored.
    pub episodes: usize,
    /// Of which detected (on their own or as part of a situation).
    pub detected: usize,
    /// Of which detected by an escalation within their own window.
    pub detected_strictly: usize,
    /// Scored episodes that continued an earlier one's situation.
    pub continued: usize,
    /// Scored and detected episodes by kind.
    pub by_kind: BTreeMap<String, (usize, usize)>,
    /// Minutes from start to the first detecting escalation, sorted.
    pub delays_min: Vec<f64>,
    /// Episodes that were not detected.
    pub missed: Vec<TruthEpisode>,
    /// Escalations opened in the scored period.
    pub escalations: usize,
    /// Of which explained by an episode.
    pub explained: usize,
    /// Of which false.
    pub false_escalations: usize,
    /// False escalations by rule.
    pub false_by_rule: BTreeMap<String, usize>,
    /// A few false escalations: (mahalla, rule, opened at).
    pub false_examples: Vec<(String, String, DateTime<Utc>)>,
    /// Whole calendar days scored.
    pub days: usize,
    /// Quiet mahalla-days.
    pub quiet_mahalla_days: usize,
}

impl Evaluation {
    /// Detected over scored episodes (1 when none was scored), an episode
    /// that continues a situation counting as detected when the situation was.
    pub fn recall(&self) -> f64 {
        if self.episodes == 0 {
            1.0
        } else {
            self.detected as f64 / self.episodes as f64
        }
    }

    /// Detected by their own escalation over scored episodes.
    pub fn strict_recall(&self) -> f64 {
        if self.episodes == 0 {
            1.0
        } else {
            self.detected_strictly as f64 / self.episodes as f64
        }
    }

    /// False escalations per 1,000 quiet mahalla-days (0 when there was none).
    pub fn false_per_1000_quiet_days(&self) -> f64 {
        if self.quiet_mahalla_days == 0 {
            0.0
        } else {
            self.false_escalations as f64 * 1000.0 / self.quiet_mahalla_days as f64
        }
    }

    /// Median delay to detection, minutes.
    pub fn median_delay_min(&self) -> Option<f64> {
        percentile(&self.delays_min, 0.5)
    }

    /// 90th percentile of the delay to detection, minutes.
    pub fn p90_delay_min(&self) -> Option<f64> {
        percentile(&self.delays_min, 0.9)
    }
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied()
}

/// Scores `escalations` against `truth` (see the module docs).
pub fn evaluate(
    escalations: &[Escalation],
    truth: &[TruthEpisode],
    options: &EvalOptions,
) -> Evaluation {
    let mut by_mahalla: BTreeMap<&str, Vec<&Escalation>> = BTreeMap::new();
    for e in escalations {
        by_mahalla.entry(e.mahalla_id.as_str()).or_default().push(e);
    }
    let mut eval = Evaluation {
        episodes: 0,
        detected: 0,
        detected_strictly: 0,
        continued: 0,
        by_kind: BTreeMap::new(),
        delays_min: Vec::new(),
        missed: Vec::new(),
        escalations: 0,
        explained: 0,
        false_escalations: 0,
        false_by_rule: BTreeMap::new(),
        false_examples: Vec::new(),
        days: 0,
        quiet_mahalla_days: 0,
    };
    // First escalation of each episode's mahalla within its window.
    let detection = |ep: &TruthEpisode| -> Option<DateTime<Utc>> {
        let deadline = ep.start + options.detection_window;
        by_mahalla
            .get(ep.mahalla_id.as_str())
            .into_iter()
            .flatten()
            .filter(|e| e.opened_at >= ep.start && e.opened_at <= deadline)
            .map(|e| e.opened_at)
            .min()
    };
    // Situations: each episode's root is the earliest episode whose situation
    // it continues (same kind and mahalla, under way or in its aftermath at its
    // start, a shared cell).
    let mut order: Vec<usize> = (0..truth.len()).collect();
    order.sort_by(|&a, &b| truth[a].start.cmp(&truth[b].start).then(a.cmp(&b)));
    let mut root: Vec<usize> = (0..truth.len()).collect();
    for (i, &e) in order.iter().enumerate() {
        let ep = &truth[e];
        let cells: BTreeSet<&str> = ep.cells.iter().map(String::as_str).collect();
        let earlier = order[..i].iter().copied().find(|&p| {
            let prev = &truth[p];
            prev.kind == ep.kind
                && prev.mahalla_id == ep.mahalla_id
                && prev.start <= ep.start
                && ep.start < prev.end + options.aftermath
                && (cells.is_empty()
                    || prev.cells.is_empty()
                    || prev.cells.iter().any(|c| cells.contains(c.as_str())))
        });
        if let Some(p) = earlier {
            root[e] = root[p];
        }
    }
    let last_start = options.to - options.detection_window;
    for (i, ep) in truth.iter().enumerate() {
        if ep.start < options.from || ep.start > last_start {
            continue;
        }
        eval.episodes += 1;
        let kind = eval.by_kind.entry(ep.kind.clone()).or_insert((0, 0));
        kind.0 += 1;
        let own = detection(ep);
        let continued = root[i] != i;
        if continued {
            eval.continued += 1;
        }
        if let Some(at) = own {
            eval.detected_strictly += 1;
            eval.delays_min
                .push((at - ep.start).num_milliseconds() as f64 / 60_000.0);
        }
        if own.is_some() || (continued && detection(&truth[root[i]]).is_some()) {
            eval.detected += 1;
            kind.1 += 1;
        } else {
            eval.missed.push(ep.clone());
        }
    }
    eval.delays_min.sort_by(f64::total_cmp);

    // Whole local days of the scored period.
    let offset = options.day_offset;
    let mut day = options.from.with_timezone(&offset).date_naive();
    let midnight = |d: chrono::NaiveDate| -> Option<DateTime<Utc>> {
        d.and_hms_opt(0, 0, 0)
            .and_then(|n| n.and_local_timezone(offset).single())
            .map(|t| t.with_timezone(&Utc))
    };
    if midnight(day).is_some_and(|m| m < options.from) {
        day = day + Days::new(1);
    }
    let mut days: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    while let (Some(a), Some(b)) = (midnight(day), midnight(day + Days::new(1))) {
        if b > options.to {
            break;
        }
        days.push((a, b));
        day = day + Days::new(1);
    }
    eval.days = days.len();
    let (Some(scored_from), Some(scored_to)) =
        (days.first().map(|d| d.0), days.last().map(|d| d.1))
    else {
        return eval;
    };
    for (a, b) in &days {
        let busy: BTreeSet<&str> = truth
            .iter()
            .filter(|ep| ep.start < *b && ep.end + options.aftermath > *a)
            .map(|ep| ep.mahalla_id.as_str())
            .collect();
        eval.quiet_mahalla_days += options.mahallas.saturating_sub(busy.len());
    }
    for e in escalations {
        if e.opened_at < scored_from || e.opened_at >= scored_to {
            continue;
        }
        eval.escalations += 1;
        let explained = truth.iter().any(|ep| {
            ep.mahalla_id == e.mahalla_id
                && e.opened_at >= ep.start
                && e.opened_at < ep.end + options.aftermath
        });
        if explained {
            eval.explained += 1;
        } else {
            eval.false_escalations += 1;
            *eval.false_by_rule.entry(e.rule.clone()).or_default() += 1;
            if eval.false_examples.len() < 10 {
                eval.false_examples
                    .push((e.mahalla_id.clone(), e.rule.clone(), e.opened_at));
            }
        }
    }
    eval
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "recall: {}/{} episodes detected within the window = {:.1}% ({} continued an earlier episode at the same place; each on its own: {}/{} = {:.1}%)",
            self.detected,
            self.episodes,
            100.0 * self.recall(),
            self.continued,
            self.detected_strictly,
            self.episodes,
            100.0 * self.strict_recall()
        )?;
        for (kind, (n, d)) in &self.by_kind {
            writeln!(f, "  {kind}: {d}/{n}")?;
        }
        if let (Some(m), Some(p)) = (self.median_delay_min(), self.p90_delay_min()) {
            writeln!(f, "  delay to detection: median {m:.0} min, p90 {p:.0} min")?;
        }
        for ep in self.missed.iter().take(10) {
            writeln!(
                f,
                "  missed: {} in {} from {}",
                ep.kind,
                ep.mahalla_id,
                ep.start.to_rfc3339()
            )?;
        }
        writeln!(
            f,
            "false escalations: {} over {} quiet mahalla-days ({} days) = {:.2} per 1,000",
            self.false_escalations,
            self.quiet_mahalla_days,
            self.days,
            self.false_per_1000_quiet_days()
        )?;
        for (rule, n) in &self.false_by_rule {
            writeln!(f, "  {rule}: {n}")?;
        }
        for (m, rule, at) in &self.false_examples {
            writeln!(f, "  false: {rule} in {m} at {}", at.to_rfc3339())?;
        }
        write!(
            f,
            "escalations in the scored days: {} ({} explained by an episode)",
            self.escalations, self.explained
        )
    }
}
