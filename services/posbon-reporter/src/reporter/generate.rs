//! Generating the report of a day and storing its rows, reading a stored
//! report back, and what a stored report rests on.

use chrono::{NaiveDate, TimeDelta};
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::segments::day_digest;
use posbon_sql::stored::{conform, get_table, put_table, stored_dates};
use posbon_sql::{StoredTable, TIME_ZONE};
use posbon_store::{DocumentStoreExt, stable_hash};

use crate::error::ReportError;
use crate::report::DailyReport;
use crate::rows::{
    category_rows, difficult_rows, focus_group_rows, hot_cell_rows, repeat_cell_rows, scope_rows,
};

use super::{
    BASELINE_DAYS, KEPT_TABLES, MAHALLA_DAY_SQL, REPORT_CATEGORIES_SQL, REPORT_FOCUS_GROUPS_SQL,
    REPORT_HOT_CELLS_SQL, REPORT_REPEAT_CELLS_SQL, REPORT_SCOPES_SQL, Reporter, SQL_FILES,
    day_window,
};

/// The report documents that say what each stored report rests on
/// ([`Reporter::report_source`]), key `YYYY-MM-DD`.
pub(crate) const REPORT_SOURCE_KIND: &str = "daily_reports.source";

impl Reporter {
    /// Generates, stores and returns the report of `date`, computing the
    /// baseline days that are not stored yet. When the day is over, its
    /// columnar segments are made current first
    /// (`Reporter::build_segments`).
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
    pub(crate) async fn report_source(&self, date: NaiveDate) -> Result<String, ReportError> {
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
    pub(crate) async fn report_current(
        &self,
        date: NaiveDate,
    ) -> Result<Option<bool>, ReportError> {
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
    pub(crate) async fn report_dates(&self) -> Result<Vec<NaiveDate>, ReportError> {
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
