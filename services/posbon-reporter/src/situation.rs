//! The report's prevention sections beyond the counts: difficult mahallas
//! (`sql/difficult.sql`) and repeat locations (`sql/report_repeat_cells.sql`),
//! their rows and how a scope's view picks them.

use chrono::{DateTime, NaiveDate, Utc};
use posbon_model::CellId;
use posbon_sql::datafusion::arrow::array::{Array, AsArray, RecordBatch};
use posbon_sql::datafusion::arrow::compute::cast;
use posbon_sql::datafusion::arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::report::{Columns, ScopeKind, days_to_date, opt, scope_kind};

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

/// `daily_report_difficult` rows from batches.
pub(crate) fn difficult_rows(batches: &[RecordBatch]) -> Result<Vec<DifficultRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let strings = [
            "scope_id",
            "name",
            "region_id",
            "district_id",
            "inspector",
            "status",
            "trend",
            "open_level",
        ]
        .iter()
        .map(|n| c.strings(n))
        .collect::<Result<Vec<_>, _>>()?;
        let ints = [
            "difficult_days",
            "escalation_days",
            "score_days",
            "days_scored",
            "offences_7d",
            "offences_prev_7d",
            "open_escalations",
        ]
        .iter()
        .map(|n| c.ints(n))
        .collect::<Result<Vec<_>, _>>()?;
        let since = c.day_numbers("difficult_since")?;
        let newly = cast(c.column("newly")?, &DataType::Boolean)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        let newly = newly.as_boolean();
        for i in 0..batch.num_rows() {
            let text = |k: usize| strings[k].value(i).to_owned();
            out.push(DifficultRow {
                mahalla_id: text(0),
                name: text(1),
                region_id: text(2),
                district_id: text(3),
                inspector: opt(&strings[4], i),
                status: text(5),
                newly: newly.is_valid(i) && newly.value(i),
                difficult_since: since
                    .is_valid(i)
                    .then(|| days_to_date(since.value(i)))
                    .flatten(),
                difficult_days: ints[0].value(i),
                escalation_days: ints[1].value(i),
                score_days: ints[2].value(i),
                days_scored: ints[3].value(i),
                offences_7d: ints[4].value(i),
                offences_prev_7d: ints[5].value(i),
                trend: text(6),
                open_escalations: ints[6].value(i),
                open_level: opt(&strings[7], i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_repeat_cells` rows from batches.
pub(crate) fn repeat_cell_rows(batches: &[RecordBatch]) -> Result<Vec<RepeatCellRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id) = (c.strings("scope")?, c.strings("scope_id")?);
        let (category, mahalla) = (c.strings("category")?, c.strings("mahalla_id")?);
        let (rank, cell, offences) = (c.ints("rank")?, c.u64s("cell")?, c.ints("offences")?);
        let micros = |name: &str| {
            cast(
                c.column(name)?,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )
            .and_then(|a| cast(&a, &DataType::Int64))
            .map(|a| {
                a.as_primitive::<posbon_sql::datafusion::arrow::datatypes::Int64Type>()
                    .clone()
            })
            .map_err(|e| ReportError::Internal(e.to_string()))
        };
        let (first, last) = (micros("first_offence")?, micros("last_offence")?);
        let time = |v: i64| {
            DateTime::from_timestamp_micros(v).ok_or_else(|| {
                ReportError::Internal(format!("a repeat cell's time {v} is out of range"))
            })
        };
        for i in 0..batch.num_rows() {
            out.push(RepeatCellRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                rank: rank.value(i),
                cell: CellId::new(cell.value(i)).ok_or_else(|| {
                    ReportError::Internal("a repeat cell is not an h3 index".into())
                })?,
                category: category.value(i).to_owned(),
                mahalla_id: mahalla.value(i).to_owned(),
                offences: offences.value(i),
                first_offence: time(first.value(i))?,
                last_offence: time(last.value(i))?,
            });
        }
    }
    Ok(out)
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
    pub fn newly(&self) -> impl Iterator<Item = &DifficultRow> {
        self.mahallas.iter().filter(|r| r.newly)
    }
}
