//! [`Reporter`]: runs the report's SQL files for a day and stores the rows.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use posbon_geo::Registry;
use posbon_model::RiskLevel;
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::datafusion::catalog::MemTable;
use posbon_sql::datafusion::common::ScalarValue;
use posbon_sql::segments::{DayBuild, build_day, day_digest};
use posbon_sql::stored::{conform, get_table, put_table, stored_dates};
use posbon_sql::{SqlEngine, SqlLimits, StoredTable, TIME_ZONE};
use posbon_store::{DocumentStoreExt, Store, stable_hash};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::report::DailyReport;
use crate::rows::{
    category_rows, difficult_rows, focus_group_rows, hot_cell_rows, repeat_cell_rows, scope_rows,
};

/// Per mahalla, the figures of one day (stored in `mahalla_days`).
pub const MAHALLA_DAY_SQL: &str = include_str!("../sql/mahalla_day.sql");
/// The counts of the baseline's days and of the day per scope and measure
/// (the table `baseline_days` that `scores.sql` reads; not stored).
pub const BASELINE_DAYS_SQL: &str = include_str!("../sql/baseline_days.sql");
/// The change scores per scope and measure (the table `scores` that
/// `report_scopes.sql` and `report_focus_groups.sql` read; not stored).
pub const SCORES_SQL: &str = include_str!("../sql/scores.sql");
/// The difficult mahallas (stored in `daily_report_difficult`, and held as
/// the table `difficult` that `report_scopes.sql` counts).
pub const DIFFICULT_SQL: &str = include_str!("../sql/difficult.sql");
/// The place-based offences of the last 14 days (the table
/// `recent_offences`; not stored).
pub const RECENT_OFFENCES_SQL: &str = include_str!("../sql/recent_offences.sql");
/// Repeat locations and near repeats per scope (the table `recurrence`
/// that `report_scopes.sql` reads; not stored).
pub const RECURRENCE_SQL: &str = include_str!("../sql/recurrence.sql");
/// One row per scope (stored in `daily_reports`).
pub const REPORT_SCOPES_SQL: &str = include_str!("../sql/report_scopes.sql");
/// Offences per scope and focus group of prevention
/// (`daily_report_focus_groups`).
pub const REPORT_FOCUS_GROUPS_SQL: &str = include_str!("../sql/report_focus_groups.sql");
/// Events and harm per scope, kind and category (`daily_report_categories`).
pub const REPORT_CATEGORIES_SQL: &str = include_str!("../sql/report_categories.sql");
/// The hottest cells per scope (`daily_report_hot_cells`).
pub const REPORT_HOT_CELLS_SQL: &str = include_str!("../sql/report_hot_cells.sql");
/// The top repeat locations per scope (`daily_report_repeat_cells`).
pub const REPORT_REPEAT_CELLS_SQL: &str = include_str!("../sql/report_repeat_cells.sql");

/// Every SQL file of the report, by name, in the order they run.
pub const SQL_FILES: [(&str, &str); 11] = [
    ("mahalla_day.sql", MAHALLA_DAY_SQL),
    ("baseline_days.sql", BASELINE_DAYS_SQL),
    ("scores.sql", SCORES_SQL),
    ("difficult.sql", DIFFICULT_SQL),
    ("recent_offences.sql", RECENT_OFFENCES_SQL),
    ("recurrence.sql", RECURRENCE_SQL),
    ("report_scopes.sql", REPORT_SCOPES_SQL),
    ("report_focus_groups.sql", REPORT_FOCUS_GROUPS_SQL),
    ("report_categories.sql", REPORT_CATEGORIES_SQL),
    ("report_hot_cells.sql", REPORT_HOT_CELLS_SQL),
    ("report_repeat_cells.sql", REPORT_REPEAT_CELLS_SQL),
];

/// The SQL files whose rows the later files read as a table (held in
/// memory; `difficult.sql`'s rows are stored too): file, table.
pub const KEPT_TABLES: [(&str, &str); 5] = [
    ("baseline_days.sql", "baseline_days"),
    ("scores.sql", "scores"),
    ("difficult.sql", "difficult"),
    ("recent_offences.sql", "recent_offences"),
    ("recurrence.sql", "recurrence"),
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

/// Days of the recent window that the difficult-mahalla rule and
/// recurrence look at ($day and the 13 before).
pub const RECENT_DAYS: i64 = 14;

/// The rule that calls a mahalla difficult (`sql/difficult.sql` says it in
/// full): over the 14 days ending on the day, at least `escalation_days`
/// days with an escalation at `level` or above open, or at least `z_days`
/// days whose 7-day change score of offences was `z` or more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DifficultRule {
    /// The lowest escalation level that counts.
    pub level: RiskLevel,
    /// Days with such an escalation open that make a mahalla difficult.
    pub escalation_days: i64,
    /// The lowest 7-day change score that counts.
    pub z: f64,
    /// Days with such a score that make a mahalla difficult.
    pub z_days: i64,
}

impl Default for DifficultRule {
    fn default() -> Self {
        Self {
            level: RiskLevel::Elevated,
            escalation_days: 3,
            z: 2.0,
            z_days: 3,
        }
    }
}

impl DifficultRule {
    /// Checks the rule: `level` above normal, day counts within 1..=14, `z`
    /// finite and positive. The error names what is wrong.
    pub fn check(&self) -> Result<(), ReportError> {
        let bad = |what: String| {
            Err(ReportError::InvalidRequest(format!(
                "difficult rule: {what}"
            )))
        };
        if self.level == RiskLevel::Normal {
            return bad("level must be elevated, high or critical, not normal".into());
        }
        for (name, days) in [
            ("escalation_days", self.escalation_days),
            ("z_days", self.z_days),
        ] {
            if !(1..=RECENT_DAYS).contains(&days) {
                return bad(format!(
                    "{name} must be within 1..={RECENT_DAYS}, got {days}"
                ));
            }
        }
        if !(self.z.is_finite() && self.z > 0.0) {
            return bad(format!("z must be a positive number, got {}", self.z));
        }
        Ok(())
    }
}

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

/// The parameters of the SQL files for `date`, with the default
/// [`DifficultRule`] ([`params_with`]).
pub fn params(date: NaiveDate) -> Result<Vec<(String, ScalarValue)>, ReportError> {
    params_with(date, &DifficultRule::default())
}

/// The parameters of the SQL files for `date`: `$day`, `$day_start`,
/// `$day_end`, `$base7_start`, `$base28_start`, `$recent_start` (the first
/// instant of the day 13 before) and the difficult rule's
/// `$difficult_level`, `$difficult_escalation_days`, `$difficult_z`,
/// `$difficult_z_days`.
pub fn params_with(
    date: NaiveDate,
    rule: &DifficultRule,
) -> Result<Vec<(String, ScalarValue)>, ReportError> {
    let (start, end) = day_window(date)?;
    let back = |days: i64| {
        date.checked_sub_signed(TimeDelta::days(days))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))
    };
    let (recent_start, _) = day_window(back(RECENT_DAYS - 1)?)?;
    Ok(vec![
        ("day".into(), date_value(date)),
        ("day_start".into(), time_value(start)),
        ("day_end".into(), time_value(end)),
        ("base7_start".into(), date_value(back(SHORT_BASELINE_DAYS)?)),
        ("base28_start".into(), date_value(back(BASELINE_DAYS)?)),
        ("recent_start".into(), time_value(recent_start)),
        (
            "difficult_level".into(),
            ScalarValue::Utf8(Some(rule.level.as_str().to_owned())),
        ),
        (
            "difficult_escalation_days".into(),
            ScalarValue::Int64(Some(rule.escalation_days)),
        ),
        ("difficult_z".into(), ScalarValue::Float64(Some(rule.z))),
        (
            "difficult_z_days".into(),
            ScalarValue::Int64(Some(rule.z_days)),
        ),
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
    /// See [`Reporter::with_difficult_rule`].
    difficult: DifficultRule,
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
            difficult: DifficultRule::default(),
        })
    }

    /// The rule that calls a mahalla difficult ([`DifficultRule::default`]
    /// unless set); an invalid rule is an error naming what is wrong.
    pub fn with_difficult_rule(mut self, rule: DifficultRule) -> Result<Self, ReportError> {
        rule.check()?;
        self.difficult = rule;
        Ok(self)
    }

    /// See [`Reporter::with_difficult_rule`].
    pub fn difficult_rule(&self) -> &DifficultRule {
        &self.difficult
    }

    /// The parameters of the report's SQL for `date`, with this reporter's
    /// difficult rule.
    pub fn params(&self, date: NaiveDate) -> Result<Vec<(String, ScalarValue)>, ReportError> {
        params_with(date, &self.difficult)
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
        &self,
        engine: &SqlEngine,
        query: &'static str,
        sql: &str,
        date: NaiveDate,
    ) -> Result<Vec<RecordBatch>, ReportError> {
        Ok(self.run_output(engine, query, sql, date).await?.batches)
    }

    async fn run_output(
        &self,
        engine: &SqlEngine,
        query: &'static str,
        sql: &str,
        date: NaiveDate,
    ) -> Result<posbon_sql::QueryOutput, ReportError> {
        let out = engine
            .query_with_params(sql, self.params(date)?)
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

    /// Runs `sql` and holds its rows as the table `table` of the engine the
    /// files after it run on; its rows too.
    async fn keep(
        &self,
        engine: &SqlEngine,
        query: &'static str,
        sql: &str,
        table: &str,
        date: NaiveDate,
    ) -> Result<(SqlEngine, Vec<RecordBatch>), ReportError> {
        let out = self.run_output(engine, query, sql, date).await?;
        let held = MemTable::try_new(out.schema, vec![out.batches.clone()])
            .map_err(|e| ReportError::Internal(format!("cannot hold the rows of {query}: {e}")))?;
        let engine = engine.with_table(table, Arc::new(held)).await?;
        Ok((engine, out.batches))
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
            .query_with_params(&sql, self.params(date)?)
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
            .get_document(FACTS_SOURCE_KIND, &date.to_string())
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
            .put_document(FACTS_SOURCE_KIND, &date.to_string(), &bytes)
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
        let rows = self
            .run(&self.engine, "mahalla_day.sql", MAHALLA_DAY_SQL, date)
            .await?;
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
        let rows = self
            .run(&self.engine, "mahalla_day.sql", MAHALLA_DAY_SQL, date)
            .await?;
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
        let facts = self
            .run(&day, "mahalla_day.sql", MAHALLA_DAY_SQL, date)
            .await?;
        self.put_facts(date, &facts, &source).await?;
        // The files whose rows later files read, each held as a table
        // (DataFusion evaluates a CTE at each use).
        let mut held = day.clone();
        let mut difficult = Vec::new();
        for (file, table) in KEPT_TABLES {
            let (query, sql) = SQL_FILES
                .iter()
                .find(|(f, _)| *f == file)
                .copied()
                .ok_or_else(|| ReportError::Internal(format!("no SQL file {file}")))?;
            let (engine, rows) = self.keep(&held, query, sql, table, date).await?;
            if table == "difficult" {
                difficult = rows;
            }
            held = engine;
        }
        let scopes = self
            .run(&held, "report_scopes.sql", REPORT_SCOPES_SQL, date)
            .await?;
        let focus = self
            .run(
                &held,
                "report_focus_groups.sql",
                REPORT_FOCUS_GROUPS_SQL,
                date,
            )
            .await?;
        let categories = self
            .run(&day, "report_categories.sql", REPORT_CATEGORIES_SQL, date)
            .await?;
        let hot = self
            .run(&day, "report_hot_cells.sql", REPORT_HOT_CELLS_SQL, date)
            .await?;
        let repeats = self
            .run(
                &held,
                "report_repeat_cells.sql",
                REPORT_REPEAT_CELLS_SQL,
                date,
            )
            .await?;
        let rows = ReportRows {
            scopes: conform(StoredTable::DailyReports, &scopes)?,
            categories: conform(StoredTable::DailyReportCategories, &categories)?,
            hot_cells: conform(StoredTable::DailyReportHotCells, &hot)?,
            focus_groups: conform(StoredTable::DailyReportFocusGroups, &focus)?,
            difficult: conform(StoredTable::DailyReportDifficult, &difficult)?,
            repeat_cells: conform(StoredTable::DailyReportRepeatCells, &repeats)?,
        };
        for (table, batches) in rows.parts() {
            put_table(&self.store, table, date, batches).await?;
        }
        // The scope rows last: a report is there once they are.
        put_table(&self.store, StoredTable::DailyReports, date, &rows.scopes).await?;
        self.store
            .put_document(
                REPORT_SOURCE_KIND,
                &date.to_string(),
                report_source.as_bytes(),
            )
            .await?;
        rows.report(date)
    }

    /// What the report of `date` rests on, as one hex digest: the
    /// write-marks digests of the day and of the 28 before, and the report's
    /// SQL. It changes when an event is written for any of those days.
    pub async fn report_source(&self, date: NaiveDate) -> Result<String, ReportError> {
        let first = date
            .checked_sub_signed(TimeDelta::days(BASELINE_DAYS))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))?;
        // The rule's parameters too: the same events judged by another
        // rule give another report.
        let mut all = format!("{:?}", self.difficult);
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
            .get_document(REPORT_SOURCE_KIND, &date.to_string())
            .await?;
        let now = self.report_source(date).await?;
        Ok(Some(stored.as_deref() == Some(now.as_bytes())))
    }

    /// The stored report of `date`, if it was generated.
    pub async fn load(&self, date: NaiveDate) -> Result<Option<DailyReport>, ReportError> {
        let Some(scopes) = get_table(&self.store, StoredTable::DailyReports, date).await? else {
            return Ok(None);
        };
        let mut rows = ReportRows {
            scopes,
            ..ReportRows::default()
        };
        for table in ReportRows::PARTS {
            let batches = get_table(&self.store, table, date)
                .await?
                .unwrap_or_default();
            *rows.part_mut(table) = batches;
        }
        rows.report(date).map(Some)
    }

    /// The dates with a stored report, oldest first.
    pub async fn report_dates(&self) -> Result<Vec<NaiveDate>, ReportError> {
        Ok(stored_dates(&self.store, StoredTable::DailyReports, None, None).await?)
    }
}

/// The stored rows of one report, table by table.
#[derive(Debug, Default)]
struct ReportRows {
    scopes: Vec<RecordBatch>,
    categories: Vec<RecordBatch>,
    hot_cells: Vec<RecordBatch>,
    focus_groups: Vec<RecordBatch>,
    difficult: Vec<RecordBatch>,
    repeat_cells: Vec<RecordBatch>,
}

impl ReportRows {
    /// The tables of a report besides `daily_reports`.
    const PARTS: [StoredTable; 5] = [
        StoredTable::DailyReportCategories,
        StoredTable::DailyReportHotCells,
        StoredTable::DailyReportFocusGroups,
        StoredTable::DailyReportDifficult,
        StoredTable::DailyReportRepeatCells,
    ];

    fn part_mut(&mut self, table: StoredTable) -> &mut Vec<RecordBatch> {
        match table {
            StoredTable::DailyReportCategories => &mut self.categories,
            StoredTable::DailyReportHotCells => &mut self.hot_cells,
            StoredTable::DailyReportFocusGroups => &mut self.focus_groups,
            StoredTable::DailyReportDifficult => &mut self.difficult,
            StoredTable::DailyReportRepeatCells => &mut self.repeat_cells,
            StoredTable::DailyReports | StoredTable::MahallaDays => &mut self.scopes,
        }
    }

    fn parts(&self) -> [(StoredTable, &[RecordBatch]); 5] {
        [
            (StoredTable::DailyReportCategories, &self.categories),
            (StoredTable::DailyReportHotCells, &self.hot_cells),
            (StoredTable::DailyReportFocusGroups, &self.focus_groups),
            (StoredTable::DailyReportDifficult, &self.difficult),
            (StoredTable::DailyReportRepeatCells, &self.repeat_cells),
        ]
    }

    /// The report of `date` from its rows.
    fn report(&self, date: NaiveDate) -> Result<DailyReport, ReportError> {
        let (window_start, window_end) = day_window(date)?;
        Ok(DailyReport {
            date,
            time_zone: TIME_ZONE.name().to_owned(),
            window_start,
            window_end,
            scopes: scope_rows(&self.scopes)?,
            categories: category_rows(&self.categories)?,
            hot_cells: hot_cell_rows(&self.hot_cells)?,
            focus_groups: focus_group_rows(&self.focus_groups)?,
            difficult: difficult_rows(&self.difficult)?,
            repeat_cells: repeat_cell_rows(&self.repeat_cells)?,
        })
    }
}

/// The local date an instant falls on ([`posbon_model::local_date`]).
pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
    posbon_model::local_date(t)
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
            [
                "day",
                "day_start",
                "day_end",
                "base7_start",
                "base28_start",
                "recent_start",
                "difficult_level",
                "difficult_escalation_days",
                "difficult_z",
                "difficult_z_days"
            ]
        );
        assert_eq!(
            p[5].1,
            time_value(day_window(date - TimeDelta::days(13)).expect("window").0)
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
