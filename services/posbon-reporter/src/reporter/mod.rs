//! [`Reporter`]: runs the report's SQL files for a day and stores the rows.

mod facts;
mod generate;
mod params;
mod sql;

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use posbon_geo::Registry;
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::datafusion::catalog::MemTable;
use posbon_sql::datafusion::common::ScalarValue;
use posbon_sql::segments::{DayBuild, build_day};
use posbon_sql::{SqlEngine, SqlLimits};
use posbon_store::Store;

use crate::error::ReportError;

pub use params::{
    DEFAULT_SMALL_COUNT_MIN, DifficultRule, day_window, local_date, params, report_limits,
};
pub use sql::{KEPT_TABLES, SQL_FILES};

use params::{BASELINE_DAYS, params_with};
use sql::{
    MAHALLA_DAY_SQL, REPORT_CATEGORIES_SQL, REPORT_FOCUS_GROUPS_SQL, REPORT_HOT_CELLS_SQL,
    REPORT_REPEAT_CELLS_SQL, REPORT_SCOPES_SQL,
};

/// The columns of `events` the report's SQL reads: what
/// [`Reporter::day_engine`] holds in memory.
pub(crate) const DAY_COLUMNS: [&str; 10] = [
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
    pub(crate) fn params(
        &self,
        date: NaiveDate,
    ) -> Result<Vec<(String, ScalarValue)>, ReportError> {
        params_with(date, &self.difficult)
    }

    /// A mahalla's focus-group count below `min` is withheld from callers
    /// without sensitive access
    /// ([`DailyReport::withhold_small_counts`](crate::DailyReport::withhold_small_counts));
    /// [`DEFAULT_SMALL_COUNT_MIN`] unless set.
    pub(crate) fn with_small_count_min(mut self, min: i64) -> Self {
        self.small_count_min = min;
        self
    }

    /// See [`Reporter::with_small_count_min`].
    pub(crate) fn small_count_min(&self) -> i64 {
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
    /// columns of `DAY_COLUMNS`): the report's three queries over events
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
    pub(crate) async fn build_segments(
        &self,
        date: NaiveDate,
    ) -> Result<Option<DayBuild>, ReportError> {
        if day_window(date)?.1 > Utc::now() {
            return Ok(None);
        }
        Ok(Some(build_day(&self.store, date).await?))
    }
}
