//! The report's prevention sections beyond the counts: difficult mahallas
//! (`sql/difficult.sql`) and repeat locations (`sql/report_repeat_cells.sql`),
//! their rows and how a scope's view picks them (read from batches in
//! [`crate::rows`]).

use chrono::{DateTime, NaiveDate, Utc};
use posbon_model::CellId;
use serde::{Deserialize, Serialize};

use crate::report::ScopeKind;

/// One row of `daily_report_difficult`: a mahalla the rule calls difficult
/// on the day, or did the day before (`status` says which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifficultRow {
    /// The mahalla.
    pub mahalla_id: String,
    /// Its name.
    pub name: String,
    /// Its region.
    pub region_id: String,
    /// Its district.
    pub district_id: String,
    /// The inspector the registry names as responsible for it.
    pub inspector: Option<String>,
    /// `difficult` on the day, or `recovered` (difficult the day before,
    /// no longer).
    pub status: String,
    /// Difficult on the day and not the day before.
    pub newly: bool,
    /// The first day of its unbroken run of difficult days (for a
    /// recovered mahalla, of the run that ended).
    pub difficult_since: Option<NaiveDate>,
    /// Days of the 14 ending on the day with an escalation or a high score.
    pub difficult_days: i64,
    /// Days of the 14 with an escalation at the rule's level or above open.
    pub escalation_days: i64,
    /// Days of the 14 whose 7-day change score reached the rule's.
    pub score_days: i64,
    /// Days of the 14 that had a 7-day change score at all (a stored report
    /// with enough history).
    pub days_scored: i64,
    /// Offences of the 7 days ending on the day.
    pub offences_7d: i64,
    /// Offences of the 7 days before those.
    pub offences_prev_7d: i64,
    /// `rising`, `falling` or `steady` (see `sql/difficult.sql`).
    pub trend: String,
    /// Escalations of the mahalla open at the end of the day.
    pub open_escalations: i64,
    /// The highest level among them.
    pub open_level: Option<String>,
}

impl DifficultRow {
    /// Whether the rule calls the mahalla difficult on the day.
    pub fn is_difficult(&self) -> bool {
        self.status == "difficult"
    }
}

/// One row of `daily_report_repeat_cells`: a repeat location among the top
/// of a scope over the 14 days ending on the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatCellRow {
    /// The kind of area.
    pub scope: ScopeKind,
    /// Its id.
    pub scope_id: String,
    /// 1 for the cell with the most offences.
    pub rank: i64,
    /// The H3 cell (storage resolution), as hex on the wire.
    pub cell: CellId,
    /// The category its offences share.
    pub category: String,
    /// The mahalla they were in.
    pub mahalla_id: String,
    /// Offences of the category in the cell.
    pub offences: i64,
    /// The first of them.
    pub first_offence: DateTime<Utc>,
    /// The latest of them.
    pub last_offence: DateTime<Utc>,
}

/// The difficult mahallas of a scope's view: those of the day, the newly
/// difficult among them, and those that recovered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Difficult {
    /// Difficult on the day, the most difficult days first.
    pub mahallas: Vec<DifficultRow>,
    /// Difficult the day before and no longer.
    pub recovered: Vec<DifficultRow>,
}

impl Difficult {
    /// The rows of `rows` that `inside` keeps, split by status.
    pub(crate) fn of<'a>(
        rows: impl IntoIterator<Item = &'a DifficultRow>,
        inside: impl Fn(&DifficultRow) -> bool,
    ) -> Self {
        let (mahallas, recovered) = rows
            .into_iter()
            .filter(|r| inside(r))
            .cloned()
            .partition(DifficultRow::is_difficult);
        Self {
            mahallas,
            recovered,
        }
    }

    /// Of the mahallas difficult on the day, those that were not the day
    /// before.
    pub(crate) fn newly(&self) -> impl Iterator<Item = &DifficultRow> {
        self.mahallas.iter().filter(|r| r.newly)
    }
}
