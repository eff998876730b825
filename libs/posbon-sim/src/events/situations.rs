//! Prevention situations planted in a stream on request, with their ground
//! truth: difficult mahallas (offences rise and stay high), quiet mahallas
//! (no offence at all: long crime-free streaks) and districts where
//! offences repeat near each other more often.

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset};
use posbon_model::IncidentCategory;
use rand::RngExt;
use serde::Serialize;

use crate::error::SimError;

/// Mean number of follow-ups each place-based offence triggers in a
/// repeat district (elsewhere [`super::mix::BRANCHING`]).
pub const REPEAT_BRANCHING: f64 = 0.8;

/// Follow-ups in a repeat district happen within this distance of their
/// parent, metres: the same or the next cell at resolution 10.
pub const REPEAT_RADIUS_M: f64 = 40.0;

/// A difficult mahalla's place-based offences rise to this many times its
/// usual rate...
pub const DIFFICULT_FACTOR: f64 = 4.0;

/// ...and by at least this many offences a day more.
pub const DIFFICULT_MIN_EXTRA_PER_DAY: f64 = 6.0;

/// The categories of a difficult mahalla's extra offences, in turn.
pub(crate) const DIFFICULT_CATEGORIES: [IncidentCategory; 5] = [
    IncidentCategory::Theft,
    IncidentCategory::Hooliganism,
    IncidentCategory::Assault,
    IncidentCategory::DrugUse,
    IncidentCategory::Robbery,
];

/// What to plant (nothing by default: the stream is then exactly what it
/// is without situations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Situations {
    /// Mahallas whose place-based offences rise [`DIFFICULT_FACTOR`]-fold
    /// (by at least [`DIFFICULT_MIN_EXTRA_PER_DAY`]) for the last
    /// `difficult_days` of the stream.
    pub difficult: usize,
    /// Days at the end of the stream the difficult mahallas are difficult
    /// (at least 1 when `difficult` is set).
    pub difficult_days: i64,
    /// Mahallas without any offence (incident or fraud flag) over the
    /// whole stream.
    pub quiet: usize,
    /// Districts whose place-based offences bring more near repeats: each
    /// triggers [`REPEAT_BRANCHING`] follow-ups on average, within
    /// [`REPEAT_RADIUS_M`].
    pub repeat_districts: usize,
}

impl Situations {
    /// Whether anything is planted.
    pub fn is_empty(&self) -> bool {
        self.difficult == 0 && self.quiet == 0 && self.repeat_districts == 0
    }

    pub(crate) fn check(&self, mahallas: usize, days: i64) -> Result<(), SimError> {
        if self.difficult + self.quiet > mahallas / 2 {
            return Err(SimError::InvalidOption(format!(
                "difficult ({}) and quiet ({}) mahallas together may be at most half of the \
                 registry's {mahallas}",
                self.difficult, self.quiet
            )));
        }
        if self.difficult > 0 && !(1..=days.max(1)).contains(&self.difficult_days) {
            return Err(SimError::InvalidOption(format!(
                "difficult days must be within 1..={} (the stream's days), got {}",
                days.max(1),
                self.difficult_days
            )));
        }
        Ok(())
    }
}

/// A planted difficult mahalla.
#[derive(Debug, Clone, Serialize)]
pub struct DifficultTruth {
    /// The mahalla.
    pub mahalla_id: String,
    /// When its offences rise (event time); they stay high to the end.
    pub from: DateTime<FixedOffset>,
    /// Extra place-based offences a day on average.
    pub extra_per_day: f64,
}

/// What was planted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SituationTruth {
    /// The difficult mahallas.
    pub difficult: Vec<DifficultTruth>,
    /// The quiet mahallas: no offence in them.
    pub quiet: Vec<String>,
    /// The repeat districts.
    pub repeat_districts: Vec<String>,
}

impl SituationTruth {
    /// Whether nothing was planted.
    pub fn is_empty(&self) -> bool {
        self.difficult.is_empty() && self.quiet.is_empty() && self.repeat_districts.is_empty()
    }
}

/// `count` distinct indices below `n`, drawn at random, sorted.
pub(crate) fn pick<R: RngExt + ?Sized>(
    rng: &mut R,
    n: usize,
    count: usize,
    not: &BTreeSet<usize>,
) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let free = n.saturating_sub(not.len());
    while out.len() < count.min(free) {
        let i = rng.random_range(0..n);
        if !not.contains(&i) {
            out.insert(i);
        }
    }
    out
}
