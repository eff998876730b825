//! The rows of the stored report tables, read back from Arrow batches.

use chrono::DateTime;
use chrono::NaiveDate;
use posbon_model::CellId;
use posbon_sql::datafusion::arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use posbon_sql::datafusion::arrow::compute::cast;
use posbon_sql::datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};

use crate::error::ReportError;
use crate::report::{CategoryRow, FocusGroupRow, HotCellRow, ScopeKind, ScopeRow};
use crate::situation::{DifficultRow, RepeatCellRow};

/// Reads the columns of stored report batches by name.
pub(crate) struct Columns<'a> {
    pub(crate) batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub(crate) fn column(&self, name: &str) -> Result<&'a dyn Array, ReportError> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| ReportError::Internal(format!("report rows have no column {name}")))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<StringArray, ReportError> {
        let c = self.column(name)?;
        let c = cast(c, &DataType::Utf8).map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_string::<i32>().clone())
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Int64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::Int64)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Float64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::Float64)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }

    /// A date column as days since 1970-01-01.
    pub(crate) fn day_numbers(&self, name: &str) -> Result<Int64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::Date32)
            .and_then(|c| cast(&c, &DataType::Int32))
            .and_then(|c| cast(&c, &DataType::Int64))
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }

    pub(crate) fn u64s(&self, name: &str) -> Result<UInt64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::UInt64)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }
}

pub(crate) fn days_to_date(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::TimeDelta::days(days))
}

pub(crate) fn opt(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_owned())
}

pub(crate) fn scope_kind(s: &str) -> Result<ScopeKind, ReportError> {
    ScopeKind::parse(s).ok_or_else(|| ReportError::Internal(format!("unknown scope {s:?}")))
}

/// `daily_reports` rows from batches.
pub(crate) fn scope_rows(batches: &[RecordBatch]) -> Result<Vec<ScopeRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id, name) = (
            c.strings("scope")?,
            c.strings("scope_id")?,
            c.strings("name")?,
        );
        let (region, district) = (c.strings("region_id")?, c.strings("district_id")?);
        let ints: Vec<Int64Array> = [
            "mahallas",
            "crime_free_mahallas",
            "events",
            "incidents",
            "camera_alerts",
            "fraud_flags",
            "offences",
            "cyber",
            "harm",
            "escalations_opened",
            "escalations_closed",
        ]
        .iter()
        .map(|n| c.ints(n))
        .collect::<Result<_, _>>()?;
        let floats: Vec<Float64Array> = [
            "cyber_share",
            "baseline7",
            "z7",
            "baseline28",
            "z28",
            "dispersion",
            "camera_alerts_baseline7",
            "camera_alerts_z7",
        ]
        .iter()
        .map(|n| c.floats(n))
        .collect::<Result<_, _>>()?;
        let days: Vec<Int64Array> = [
            "baseline7_days",
            "baseline28_days",
            "crime_free_days",
            "crime_free_days_before",
            "crime_free_30d",
            "crime_free_90d",
            "crime_free_180d",
            "difficult_mahallas",
            "newly_difficult",
            "recovered_mahallas",
            "place_offences",
            "repeat_cells",
            "repeat_offences",
            "near_repeat_offences",
            "near_repeat_pairs",
        ]
        .iter()
        .map(|n| c.ints(n))
        .collect::<Result<_, _>>()?;
        let shares: Vec<Float64Array> = [
            "near_repeat_share",
            "near_repeat_expected",
            "near_repeat_ratio",
            "near_repeat_excess",
        ]
        .iter()
        .map(|n| c.floats(n))
        .collect::<Result<_, _>>()?;
        let share = |k: usize, i: usize| shares[k].is_valid(i).then(|| shares[k].value(i));
        let dates: Vec<Int64Array> = ["last_offence", "records_since"]
            .iter()
            .map(|n| c.day_numbers(n))
            .collect::<Result<_, _>>()?;
        let date = |k: usize, i: usize| {
            dates[k]
                .is_valid(i)
                .then(|| days_to_date(dates[k].value(i)))
                .flatten()
        };
        let float = |k: usize, i: usize| floats[k].is_valid(i).then(|| floats[k].value(i));
        let day = |k: usize, i: usize| days[k].is_valid(i).then(|| days[k].value(i));
        for i in 0..batch.num_rows() {
            out.push(ScopeRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                name: name.value(i).to_owned(),
                region_id: opt(&region, i),
                district_id: opt(&district, i),
                mahallas: ints[0].value(i),
                crime_free_mahallas: ints[1].value(i),
                events: ints[2].value(i),
                incidents: ints[3].value(i),
                camera_alerts: ints[4].value(i),
                fraud_flags: ints[5].value(i),
                offences: ints[6].value(i),
                cyber: ints[7].value(i),
                cyber_share: float(0, i),
                harm: ints[8].value(i),
                baseline7: float(1, i),
                baseline7_days: day(0, i),
                z7: float(2, i),
                baseline28: float(3, i),
                baseline28_days: day(1, i),
                z28: float(4, i),
                dispersion: float(5, i),
                camera_alerts_baseline7: float(6, i),
                camera_alerts_z7: float(7, i),
                escalations_opened: ints[9].value(i),
                escalations_closed: ints[10].value(i),
                crime_free_days: day(2, i),
                crime_free_days_before: day(3, i),
                last_offence: date(0, i),
                records_since: date(1, i),
                crime_free_30d: day(4, i),
                crime_free_90d: day(5, i),
                crime_free_180d: day(6, i),
                difficult_mahallas: day(7, i),
                newly_difficult: day(8, i),
                recovered_mahallas: day(9, i),
                place_offences: day(10, i),
                repeat_cells: day(11, i),
                repeat_offences: day(12, i),
                near_repeat_offences: day(13, i),
                near_repeat_share: share(0, i),
                near_repeat_pairs: day(14, i),
                near_repeat_expected: share(1, i),
                near_repeat_ratio: share(2, i),
                near_repeat_excess: share(3, i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_categories` rows from batches.
pub(crate) fn category_rows(batches: &[RecordBatch]) -> Result<Vec<CategoryRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id) = (c.strings("scope")?, c.strings("scope_id")?);
        let (kind, category) = (c.strings("kind")?, c.strings("category")?);
        let (events, harm) = (c.ints("events")?, c.ints("harm")?);
        for i in 0..batch.num_rows() {
            out.push(CategoryRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                kind: kind.value(i).to_owned(),
                category: category.value(i).to_owned(),
                events: events.value(i),
                harm: harm.value(i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_hot_cells` rows from batches.
pub(crate) fn hot_cell_rows(batches: &[RecordBatch]) -> Result<Vec<HotCellRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id) = (c.strings("scope")?, c.strings("scope_id")?);
        let (rank, cell) = (c.ints("rank")?, c.u64s("cell")?);
        let (events, harm) = (c.ints("events")?, c.ints("harm")?);
        for i in 0..batch.num_rows() {
            out.push(HotCellRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                rank: rank.value(i),
                cell: CellId::new(cell.value(i))
                    .ok_or_else(|| ReportError::Internal("a hot cell is not an h3 index".into()))?,
                events: events.value(i),
                harm: harm.value(i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_focus_groups` rows from batches.
pub(crate) fn focus_group_rows(batches: &[RecordBatch]) -> Result<Vec<FocusGroupRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id, group) = (
            c.strings("scope")?,
            c.strings("scope_id")?,
            c.strings("focus_group")?,
        );
        let (offences, days7, days28) = (
            c.ints("offences")?,
            c.ints("baseline7_days")?,
            c.ints("baseline28_days")?,
        );
        let floats: Vec<Float64Array> = ["baseline7", "z7", "baseline28", "z28"]
            .iter()
            .map(|n| c.floats(n))
            .collect::<Result<_, _>>()?;
        let float = |k: usize, i: usize| floats[k].is_valid(i).then(|| floats[k].value(i));
        for i in 0..batch.num_rows() {
            out.push(FocusGroupRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                focus_group: group.value(i).to_owned(),
                offences: Some(offences.value(i)),
                fewer_than: None,
                withheld: false,
                baseline7: float(0, i),
                baseline7_days: days7.value(i),
                z7: float(1, i),
                baseline28: float(2, i),
                baseline28_days: days28.value(i),
                z28: float(3, i),
            });
        }
    }
    Ok(out)
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
            .map(|a| a.as_primitive::<Int64Type>().clone())
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
