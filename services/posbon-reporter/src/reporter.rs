//! [`Reporter`]: runs the report's SQL files for a day and stores the rows.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use posbon_geo::Registry;
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::datafusion::catalog::MemTable;
use posbon_sql::datafusion::common::ScalarValue;
use posbon_sql::segments::{DayBuild, build_day};
use posbon_sql::stored::{conform, get_table, put_table, stored_dates};
use posbon_sql::{SqlEngine, SqlLimits, StoredTable, TIME_ZONE};
use posbon_store::Store;

use crate::error::ReportError;
use crate::report::{DailyReport, category_rows, hot_cell_rows, scope_rows};

/// Per mahalla, the figures of one day (stored in `mahalla_days`).
pub const MAHALLA_DAY_SQL: &str = include_str!("../sql/mahalla_day.sql");
/// One row per scope (stored in `daily_reports`).
pub const REPORT_SCOPES_SQL: &str = include_str!("../sql/report_scopes.sql");
/// Events and harm per scope, kind and category (`daily_report_categories`).
pub const REPORT_CATEGORIES_SQL: &str = include_str!("../sql/report_categories.sql");
/// The hottest cells per scope (`daily_report_hot_cells`).
pub const REPORT_HOT_CELLS_SQL: &str = include_str!("../sql/report_hot_cells.sql");

/// Every SQL file of the report, by name, in the order they run.
pub const SQL_FILES: [(&str, &str); 4] = [
    ("mahalla_day.sql", MAHALLA_DAY_SQL),
    ("report_scopes.sql", REPORT_SCOPES_SQL),
    ("report_categories.sql", REPORT_CATEGORIES_SQL),
    ("report_hot_cells.sql", REPORT_HOT_CELLS_SQL),
];

/// The columns of `events` the report's SQL reads: what
/// [`Reporter::day_engine`] holds in memory.
pub const DAY_COLUMNS: [&str; 10] = [
    "occurred_at",
    "kind",
    "category",
    "severity",
    "confidence",
    "amount_uzs",
    "cell",
    "mahalla_id",
    "district_id",
    "region_id",
];

/// Days of the long baseline.
pub const BASELINE_DAYS: i64 = 28;
/// Days of the short baseline.
pub const SHORT_BASELINE_DAYS: i64 = 7;

/// The limits the report's queries run with: national days are large.
pub fn report_limits() -> SqlLimits {
    SqlLimits {
        timeout_ms: 600_000,
        max_rows: 50_000_000,
        // The report's own queries: never cut a result silently.
        max_result_bytes: usize::MAX,
        ..SqlLimits::default()
    }
}

/// The first instant of a local day and of the next, in UTC.
pub fn day_window(date: NaiveDate) -> Result<(DateTime<Utc>, DateTime<Utc>), ReportError> {
    let start = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|m| TIME_ZONE.from_local_datetime(&m).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ReportError::InvalidRequest(format!("no local midnight on {d}")))
    };
    let next = date
        .succ_opt()
        .ok_or_else(|| ReportError::InvalidRequest(format!("no day after {date}")))?;
    Ok((start(date)?, start(next)?))
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX)
}

fn date_value(date: NaiveDate) -> ScalarValue {
    ScalarValue::Date32(Some(days_since_epoch(date)))
}

fn time_value(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some("UTC".into()))
}

/// The parameters of the SQL files for `date`: `$day`, `$day_start`,
/// `$day_end`, `$base7_start`, `$base28_start`.
pub fn params(date: NaiveDate) -> Result<Vec<(String, ScalarValue)>, ReportError> {
    let (start, end) = day_window(date)?;
    let back = |days: i64| {
        date.checked_sub_signed(TimeDelta::days(days))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))
    };
    Ok(vec![
        ("day".into(), date_value(date)),
        ("day_start".into(), time_value(start)),
        ("day_end".into(), time_value(end)),
        ("base7_start".into(), date_value(back(SHORT_BASELINE_DAYS)?)),
        ("base28_start".into(), date_value(back(BASELINE_DAYS)?)),
    ])
}

/// Runs the report's SQL over the store and keeps its rows there.
///
/// For a day *D* it makes sure the per-mahalla figures of the 28 days before
/// are stored (computing the missing ones from the events, a day at a time),
/// computes and stores those of *D* itself, then runs the scope, category
/// and hot-cell queries and stores their rows under *D*. The same events
/// give the same report: every figure is an exact count or sum of whole
/// harm points, and rows are sorted.
#[derive(Clone)]
pub struct Reporter {
    engine: SqlEngine,
    store: Store,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter over `store`, with `registry` for the mahallas.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        limits: SqlLimits,
    ) -> Result<Self, ReportError> {
        let engine = SqlEngine::new(store.clone(), registry, limits)?;
        Ok(Self { engine, store })
    }

    /// The SQL engine the report runs on.
    pub fn engine(&self) -> &SqlEngine {
        &self.engine
    }

    async fn run(
        engine: &SqlEngine,
        query: &'static str,
        sql: &str,
        date: NaiveDate,
    ) -> Result<Vec<RecordBatch>, ReportError> {
        let out = engine
            .query_with_params(sql, params(date)?)
            .await
            .map_err(|source| ReportError::Query { query, source })?;
        if out.truncated {
            return Err(ReportError::Internal(format!(
                "report query {query} gave more than {} rows",
                engine.limits().max_rows
            )));
        }
        Ok(out.batches)
    }

    /// An engine whose `events` are the events of `date` in memory (the
    /// columns of [`DAY_COLUMNS`]): the report's three queries over events
    /// then read the store once instead of three times.
    pub async fn day_engine(&self, date: NaiveDate) -> Result<SqlEngine, ReportError> {
        let sql = format!(
            "SELECT {} FROM events WHERE occurred_at >= $day_start AND occurred_at < $day_end",
            DAY_COLUMNS.join(", ")
        );
        let out = self
            .engine
            .query_with_params(&sql, params(date)?)
            .await
            .map_err(|source| ReportError::Query {
                query: "the events of the day",
                source,
            })?;
        if out.truncated {
            return Err(ReportError::Internal(format!(
                "the day {date} has more than {} events",
                self.engine.limits().max_rows
            )));
        }
        let partitions = self
            .engine
            .context()
            .copied_config()
            .target_partitions()
            .max(1);
        let mut parts = vec![Vec::new(); partitions];
        for (i, batch) in out.batches.into_iter().enumerate() {
            parts[i % partitions].push(batch);
        }
        let day = MemTable::try_new(out.schema, parts)
            .map_err(|e| ReportError::Internal(format!("cannot hold the day's events: {e}")))?;
        Ok(self.engine.with_table("events", Arc::new(day)).await?)
    }

    /// Makes the columnar segments of `date` current ([`build_day`]), when
    /// the day is over (a running day would be stale at its next event);
    /// `None` for a day that is not over yet.
    pub async fn build_segments(&self, date: NaiveDate) -> Result<Option<DayBuild>, ReportError> {
        if day_window(date)?.1 > Utc::now() {
            return Ok(None);
        }
        Ok(Some(build_day(&self.store, date).await?))
    }

    /// Computes and stores the per-mahalla figures of `date`.
    pub async fn store_mahalla_day(&self, date: NaiveDate) -> Result<(), ReportError> {
        let rows = Self::run(&self.engine, "mahalla_day.sql", MAHALLA_DAY_SQL, date).await?;
        put_table(&self.store, StoredTable::MahallaDays, date, &rows).await?;
        Ok(())
    }

    /// Generates, stores and returns the report of `date`, computing the
    /// baseline days that are not stored yet. When the day is over, its
    /// columnar segments are made current first
    /// ([`Reporter::build_segments`]).
    pub async fn generate(&self, date: NaiveDate) -> Result<DailyReport, ReportError> {
        self.generate_with(date, false).await
    }

    /// [`Reporter::generate`]; with `refresh_baselines`, the figures of the
    /// 28 days before are computed again from the events (to take in events
    /// that arrived late for those days).
    pub async fn generate_with(
        &self,
        date: NaiveDate,
        refresh_baselines: bool,
    ) -> Result<DailyReport, ReportError> {
        let first = date
            .checked_sub_signed(TimeDelta::days(BASELINE_DAYS))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))?;
        let stored = if refresh_baselines {
            Vec::new()
        } else {
            stored_dates(
                &self.store,
                StoredTable::MahallaDays,
                Some(first),
                Some(date),
            )
            .await?
        };
        let mut day = first;
        while day < date {
            if !stored.contains(&day) {
                self.store_mahalla_day(day).await?;
            }
            day = day
                .succ_opt()
                .ok_or_else(|| ReportError::InvalidRequest(format!("no day after {day}")))?;
        }
        // The day's columnar segments first (when it is over): the report
        // then reads them, and so do later queries over this day.
        self.build_segments(date).await?;
        let day = self.day_engine(date).await?;
        let facts = Self::run(&day, "mahalla_day.sql", MAHALLA_DAY_SQL, date).await?;
        put_table(&self.store, StoredTable::MahallaDays, date, &facts).await?;
        let scopes = Self::run(&day, "report_scopes.sql", REPORT_SCOPES_SQL, date).await?;
        let categories =
            Self::run(&day, "report_categories.sql", REPORT_CATEGORIES_SQL, date).await?;
        let hot = Self::run(&day, "report_hot_cells.sql", REPORT_HOT_CELLS_SQL, date).await?;
        let (scopes, categories, hot) = (
            conform(StoredTable::DailyReports, &scopes)?,
            conform(StoredTable::DailyReportCategories, &categories)?,
            conform(StoredTable::DailyReportHotCells, &hot)?,
        );
        put_table(
            &self.store,
            StoredTable::DailyReportCategories,
            date,
            &categories,
        )
        .await?;
        put_table(&self.store, StoredTable::DailyReportHotCells, date, &hot).await?;
        // The scope rows last: a report is there once they are.
        put_table(&self.store, StoredTable::DailyReports, date, &scopes).await?;
        report_of(date, &scopes, &categories, &hot)
    }

    /// The stored report of `date`, if it was generated.
    pub async fn load(&self, date: NaiveDate) -> Result<Option<DailyReport>, ReportError> {
        let Some(scopes) = get_table(&self.store, StoredTable::DailyReports, date).await? else {
            return Ok(None);
        };
        let categories = get_table(&self.store, StoredTable::DailyReportCategories, date)
            .await?
            .unwrap_or_default();
        let hot = get_table(&self.store, StoredTable::DailyReportHotCells, date)
            .await?
            .unwrap_or_default();
        report_of(date, &scopes, &categories, &hot).map(Some)
    }

    /// The dates with a stored report, oldest first.
    pub async fn report_dates(&self) -> Result<Vec<NaiveDate>, ReportError> {
        Ok(stored_dates(&self.store, StoredTable::DailyReports, None, None).await?)
    }
}

/// The report of `date` from its rows.
fn report_of(
    date: NaiveDate,
    scopes: &[RecordBatch],
    categories: &[RecordBatch],
    hot: &[RecordBatch],
) -> Result<DailyReport, ReportError> {
    let (window_start, window_end) = day_window(date)?;
    Ok(DailyReport {
        date,
        time_zone: TIME_ZONE.name().to_owned(),
        window_start,
        window_end,
        scopes: scope_rows(scopes)?,
        categories: category_rows(categories)?,
        hot_cells: hot_cell_rows(hot)?,
    })
}

/// The local date an instant falls on.
pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&TIME_ZONE).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_between_two_local_midnights() {
        let date = NaiveDate::from_ymd_opt(2026, 5, 1).expect("date");
        let (start, end) = day_window(date).expect("window");
        assert_eq!(start.to_rfc3339(), "2026-04-30T19:00:00+00:00");
        assert_eq!(end - start, TimeDelta::hours(24));
        assert_eq!(local_date(start), date);
        assert_eq!(local_date(end - TimeDelta::microseconds(1)), date);
        let p = params(date).expect("params");
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["day", "day_start", "day_end", "base7_start", "base28_start"]
        );
        assert_eq!(
            p[3].1,
            date_value(NaiveDate::from_ymd_opt(2026, 4, 24).expect("date"))
        );
    }

    #[test]
    fn the_harm_expression_is_the_same_in_every_file() {
        let harm = |sql: &str| {
            let start = sql.find("-- harm: begin").expect("begin marker");
            let end = sql.find("-- harm: end").expect("end marker");
            sql[start..end]
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let reference = harm(MAHALLA_DAY_SQL);
        assert!(reference.contains("WHEN 'homicide' THEN 10"));
        assert_eq!(harm(REPORT_CATEGORIES_SQL), reference);
        assert_eq!(harm(REPORT_HOT_CELLS_SQL), reference);
    }
}
