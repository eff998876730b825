//! [`Reporter`]: runs the report's SQL files for a day and stores the rows.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use posbon_geo::Registry;
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::datafusion::catalog::MemTable;
use posbon_sql::datafusion::common::ScalarValue;
use posbon_sql::segments::{DayBuild, build_day, day_digest};
use posbon_sql::stored::{conform, get_table, put_table, stored_dates};
use posbon_sql::{SqlEngine, SqlLimits, StoredTable, TIME_ZONE};
use posbon_store::{ReportStoreExt, Store, stable_hash};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::report::{DailyReport, category_rows, focus_group_rows, hot_cell_rows, scope_rows};

/// Per mahalla, the figures of one day (stored in `mahalla_days`).
pub const MAHALLA_DAY_SQL: &str = include_str!("../sql/mahalla_day.sql");
/// The counts of the baseline's days and of the day per scope and measure
/// (the table `baseline_days` that `scores.sql` reads; not stored).
pub const BASELINE_DAYS_SQL: &str = include_str!("../sql/baseline_days.sql");
/// The change scores per scope and measure (the table `scores` that
/// `report_scopes.sql` and `report_focus_groups.sql` read; not stored).
pub const SCORES_SQL: &str = include_str!("../sql/scores.sql");
/// One row per scope (stored in `daily_reports`).
pub const REPORT_SCOPES_SQL: &str = include_str!("../sql/report_scopes.sql");
/// Offences per scope and focus group of prevention
/// (`daily_report_focus_groups`).
pub const REPORT_FOCUS_GROUPS_SQL: &str = include_str!("../sql/report_focus_groups.sql");
/// Events and harm per scope, kind and category (`daily_report_categories`).
pub const REPORT_CATEGORIES_SQL: &str = include_str!("../sql/report_categories.sql");
/// The hottest cells per scope (`daily_report_hot_cells`).
pub const REPORT_HOT_CELLS_SQL: &str = include_str!("../sql/report_hot_cells.sql");

/// Every SQL file of the report, by name, in the order they run.
pub const SQL_FILES: [(&str, &str); 7] = [
    ("mahalla_day.sql", MAHALLA_DAY_SQL),
    ("baseline_days.sql", BASELINE_DAYS_SQL),
    ("scores.sql", SCORES_SQL),
    ("report_scopes.sql", REPORT_SCOPES_SQL),
    ("report_focus_groups.sql", REPORT_FOCUS_GROUPS_SQL),
    ("report_categories.sql", REPORT_CATEGORIES_SQL),
    ("report_hot_cells.sql", REPORT_HOT_CELLS_SQL),
];

/// The SQL files whose rows the later files read as a table (held in
/// memory, not stored): file, table.
pub const KEPT_TABLES: [(&str, &str); 2] = [
    ("baseline_days.sql", "baseline_days"),
    ("scores.sql", "scores"),
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

/// The report documents that say what each stored day of `mahalla_days`
/// was computed from ([`FactsSource`]), key `YYYY-MM-DD`.
pub const FACTS_SOURCE_KIND: &str = "mahalla_days.source";

/// The report documents that say what each stored report rests on
/// ([`Reporter::report_source`]), key `YYYY-MM-DD`.
pub const REPORT_SOURCE_KIND: &str = "daily_reports.source";

/// What a stored day of `mahalla_days` was computed from: the day's
/// write-marks digest ([`day_digest`]) when its events were read, and the
/// SQL. A day whose digest or SQL differs now is computed again, so the
/// baselines never rest on figures that late events, replays or backfills
/// have overtaken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsSource {
    /// The day's write-marks digest, hex.
    pub digest: String,
    /// A stable hash of `mahalla_day.sql`, hex.
    pub sql: String,
}

/// The default of `[reporter] small_count_min`: a mahalla's focus-group
/// count below it is withheld from callers without sensitive access.
pub const DEFAULT_SMALL_COUNT_MIN: i64 = 3;

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
    /// One writer of stored figures and reports at a time (in this
    /// process): rows and the source that says what they rest on are two
    /// writes, and two runs interleaving them could leave older rows under
    /// a newer source.
    writes: Arc<tokio::sync::Mutex<()>>,
    /// See [`Reporter::with_small_count_min`].
    small_count_min: i64,
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
        Ok(Self {
            engine,
            store,
            writes: Arc::default(),
            small_count_min: DEFAULT_SMALL_COUNT_MIN,
        })
    }

    /// A mahalla's focus-group count below `min` is withheld from callers
    /// without sensitive access ([`DailyReport::withhold_small_counts`]);
    /// [`DEFAULT_SMALL_COUNT_MIN`] unless set.
    pub fn with_small_count_min(mut self, min: i64) -> Self {
        self.small_count_min = min;
        self
    }

    /// See [`Reporter::with_small_count_min`].
    pub fn small_count_min(&self) -> i64 {
        self.small_count_min
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
        Ok(Self::run_output(engine, query, sql, date).await?.batches)
    }

    async fn run_output(
        engine: &SqlEngine,
        query: &'static str,
        sql: &str,
        date: NaiveDate,
    ) -> Result<posbon_sql::QueryOutput, ReportError> {
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
        Ok(out)
    }

    /// Runs `sql` and holds its rows as a table for the files after it.
    async fn keep(
        engine: &SqlEngine,
        query: &'static str,
        sql: &str,
        date: NaiveDate,
    ) -> Result<Arc<MemTable>, ReportError> {
        let out = Self::run_output(engine, query, sql, date).await?;
        MemTable::try_new(out.schema, vec![out.batches])
            .map(Arc::new)
            .map_err(|e| ReportError::Internal(format!("cannot hold the rows of {query}: {e}")))
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

    /// What the per-mahalla figures of `date` would be computed from now.
    /// Taken before the events are read: an event written meanwhile makes
    /// the recorded source differ at the next check.
    pub async fn facts_source(&self, date: NaiveDate) -> Result<FactsSource, ReportError> {
        Ok(FactsSource {
            digest: day_digest(&self.store, date).await?,
            sql: format!("{:016x}", stable_hash(MAHALLA_DAY_SQL.as_bytes())),
        })
    }

    /// The recorded source of the stored figures of `date`, if any.
    async fn stored_facts_source(
        &self,
        date: NaiveDate,
    ) -> Result<Option<FactsSource>, ReportError> {
        let Some(bytes) = self
            .store
            .get_report(FACTS_SOURCE_KIND, &date.to_string())
            .await?
        else {
            return Ok(None);
        };
        // An unreadable record is as good as none: the day is computed again.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    async fn put_facts(
        &self,
        date: NaiveDate,
        rows: &[RecordBatch],
        source: &FactsSource,
    ) -> Result<(), ReportError> {
        put_table(&self.store, StoredTable::MahallaDays, date, rows).await?;
        let bytes = serde_json::to_vec(source)
            .map_err(|e| ReportError::Internal(format!("facts source: {e}")))?;
        // After the rows: a crash between the two leaves the day to be
        // computed again, never marked current with older rows.
        self.store
            .put_report(FACTS_SOURCE_KIND, &date.to_string(), &bytes)
            .await?;
        Ok(())
    }

    /// Computes and stores the per-mahalla figures of `date`.
    pub async fn store_mahalla_day(&self, date: NaiveDate) -> Result<(), ReportError> {
        let _writing = self.writes.lock().await;
        self.store_mahalla_day_locked(date).await
    }

    async fn store_mahalla_day_locked(&self, date: NaiveDate) -> Result<(), ReportError> {
        let source = self.facts_source(date).await?;
        let rows = Self::run(&self.engine, "mahalla_day.sql", MAHALLA_DAY_SQL, date).await?;
        self.put_facts(date, &rows, &source).await
    }

    /// Makes the stored per-mahalla figures of `date` current: computes them
    /// when they are missing, when events of the day were written since
    /// they were computed, or when `mahalla_day.sql` changed. True when it
    /// computed them.
    pub async fn refresh_mahalla_day(&self, date: NaiveDate) -> Result<bool, ReportError> {
        let _writing = self.writes.lock().await;
        self.refresh_mahalla_day_locked(date).await
    }

    async fn refresh_mahalla_day_locked(&self, date: NaiveDate) -> Result<bool, ReportError> {
        let now = self.facts_source(date).await?;
        let stored_rows = !stored_dates(
            &self.store,
            StoredTable::MahallaDays,
            Some(date),
            date.succ_opt(),
        )
        .await?
        .is_empty();
        if stored_rows && self.stored_facts_source(date).await?.as_ref() == Some(&now) {
            return Ok(false);
        }
        let rows = Self::run(&self.engine, "mahalla_day.sql", MAHALLA_DAY_SQL, date).await?;
        self.put_facts(date, &rows, &now).await?;
        Ok(true)
    }

    /// Generates, stores and returns the report of `date`, computing the
    /// baseline days that are not stored yet. When the day is over, its
    /// columnar segments are made current first
    /// ([`Reporter::build_segments`]).
    pub async fn generate(&self, date: NaiveDate) -> Result<DailyReport, ReportError> {
        self.generate_with(date, false).await
    }

    /// [`Reporter::generate`]; with `refresh_baselines`, the figures of the
    /// 28 days before are computed again from the events even where they
    /// are current (without it, only the days whose events changed since
    /// their figures were computed are, see [`Reporter::refresh_mahalla_day`]).
    pub async fn generate_with(
        &self,
        date: NaiveDate,
        refresh_baselines: bool,
    ) -> Result<DailyReport, ReportError> {
        let first = date
            .checked_sub_signed(TimeDelta::days(BASELINE_DAYS))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))?;
        let _writing = self.writes.lock().await;
        // Before anything is read: an event written meanwhile makes the
        // stored report differ from its source at the next check.
        let report_source = self.report_source(date).await?;
        let mut day = first;
        let mut recomputed = 0u32;
        while day < date {
            if refresh_baselines {
                self.store_mahalla_day_locked(day).await?;
                recomputed += 1;
            } else if self.refresh_mahalla_day_locked(day).await? {
                recomputed += 1;
            }
            day = day
                .succ_opt()
                .ok_or_else(|| ReportError::InvalidRequest(format!("no day after {day}")))?;
        }
        tracing::debug!(%date, recomputed, "baseline days made current");
        // The day's columnar segments first (when it is over): the report
        // then reads them, and so do later queries over this day.
        self.build_segments(date).await?;
        let source = self.facts_source(date).await?;
        let day = self.day_engine(date).await?;
        let facts = Self::run(&day, "mahalla_day.sql", MAHALLA_DAY_SQL, date).await?;
        self.put_facts(date, &facts, &source).await?;
        // The baseline's days and the scores once, as tables: the files
        // after them read them many times over (DataFusion evaluates a CTE
        // at each use).
        let baseline = Self::keep(&day, "baseline_days.sql", BASELINE_DAYS_SQL, date).await?;
        let with_baseline = day.with_table("baseline_days", baseline).await?;
        let scores = Self::keep(&with_baseline, "scores.sql", SCORES_SQL, date).await?;
        let with_scores = day.with_table("scores", scores).await?;
        let scopes = Self::run(&with_scores, "report_scopes.sql", REPORT_SCOPES_SQL, date).await?;
        let focus = Self::run(
            &with_scores,
            "report_focus_groups.sql",
            REPORT_FOCUS_GROUPS_SQL,
            date,
        )
        .await?;
        let categories =
            Self::run(&day, "report_categories.sql", REPORT_CATEGORIES_SQL, date).await?;
        let hot = Self::run(&day, "report_hot_cells.sql", REPORT_HOT_CELLS_SQL, date).await?;
        let (scopes, categories, hot, focus) = (
            conform(StoredTable::DailyReports, &scopes)?,
            conform(StoredTable::DailyReportCategories, &categories)?,
            conform(StoredTable::DailyReportHotCells, &hot)?,
            conform(StoredTable::DailyReportFocusGroups, &focus)?,
        );
        put_table(
            &self.store,
            StoredTable::DailyReportCategories,
            date,
            &categories,
        )
        .await?;
        put_table(&self.store, StoredTable::DailyReportHotCells, date, &hot).await?;
        put_table(
            &self.store,
            StoredTable::DailyReportFocusGroups,
            date,
            &focus,
        )
        .await?;
        // The scope rows last: a report is there once they are.
        put_table(&self.store, StoredTable::DailyReports, date, &scopes).await?;
        self.store
            .put_report(
                REPORT_SOURCE_KIND,
                &date.to_string(),
                report_source.as_bytes(),
            )
            .await?;
        report_of(date, &scopes, &categories, &hot, &focus)
    }

    /// What the report of `date` rests on, as one hex digest: the
    /// write-marks digests of the day and of the 28 before, and the report's
    /// SQL. It changes when an event is written for any of those days.
    pub async fn report_source(&self, date: NaiveDate) -> Result<String, ReportError> {
        let first = date
            .checked_sub_signed(TimeDelta::days(BASELINE_DAYS))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))?;
        let mut all = String::new();
        for (_, sql) in SQL_FILES {
            all.push_str(&format!("{:016x}", stable_hash(sql.as_bytes())));
        }
        let mut day = first;
        while day <= date {
            all.push_str(&day_digest(&self.store, day).await?);
            day = day
                .succ_opt()
                .ok_or_else(|| ReportError::InvalidRequest(format!("no day after {day}")))?;
        }
        Ok(format!("{:016x}", stable_hash(all.as_bytes())))
    }

    /// Whether the stored report of `date` still matches its events: `None`
    /// when there is no stored report, `Some(false)` when events were
    /// written for its day or its baseline days after it was made (or it
    /// was made before reports recorded their source).
    pub async fn report_current(&self, date: NaiveDate) -> Result<Option<bool>, ReportError> {
        if stored_dates(
            &self.store,
            StoredTable::DailyReports,
            Some(date),
            date.succ_opt(),
        )
        .await?
        .is_empty()
        {
            return Ok(None);
        }
        let stored = self
            .store
            .get_report(REPORT_SOURCE_KIND, &date.to_string())
            .await?;
        let now = self.report_source(date).await?;
        Ok(Some(stored.as_deref() == Some(now.as_bytes())))
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
        let focus = get_table(&self.store, StoredTable::DailyReportFocusGroups, date)
            .await?
            .unwrap_or_default();
        report_of(date, &scopes, &categories, &hot, &focus).map(Some)
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
    focus: &[RecordBatch],
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
        focus_groups: focus_group_rows(focus)?,
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
