//! The stored per-mahalla figures of a day (`mahalla_days`) and what they
//! were computed from ([`FactsSource`]), so that figures that late events or
//! a changed `mahalla_day.sql` overtook are computed again.

use chrono::NaiveDate;
use posbon_sql::StoredTable;
use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::segments::day_digest;
use posbon_sql::stored::{put_table, stored_dates};
use posbon_store::{DocumentStoreExt, stable_hash};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;

use super::{MAHALLA_DAY_SQL, Reporter};

/// The report documents that say what each stored day of `mahalla_days`
/// was computed from ([`FactsSource`]), key `YYYY-MM-DD`.
pub(crate) const FACTS_SOURCE_KIND: &str = "mahalla_days.source";

/// What a stored day of `mahalla_days` was computed from: the day's
/// write-marks digest ([`day_digest`]) when its events were read, and the
/// SQL. A day whose digest or SQL differs now is computed again, so the
/// baselines never rest on figures that late events, replays or backfills
/// have overtaken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FactsSource {
    /// The day's write-marks digest, hex.
    pub(crate) digest: String,
    /// A stable hash of `mahalla_day.sql`, hex.
    pub(crate) sql: String,
}

impl Reporter {
    /// What the per-mahalla figures of `date` would be computed from now.
    /// Taken before the events are read: an event written meanwhile makes
    /// the recorded source differ at the next check.
    pub(crate) async fn facts_source(&self, date: NaiveDate) -> Result<FactsSource, ReportError> {
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

    pub(super) async fn put_facts(
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

    pub(super) async fn store_mahalla_day_locked(
        &self,
        date: NaiveDate,
    ) -> Result<(), ReportError> {
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

    pub(super) async fn refresh_mahalla_day_locked(
        &self,
        date: NaiveDate,
    ) -> Result<bool, ReportError> {
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
}
