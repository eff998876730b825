//! Escalation records and per-source precision statistics, under the `x`
//! prefix of the key layout.
//!
//! | key | value |
//! |---|---|
//! | `x` · `e` · escalation id | the [`EscalationRecord`]: version byte 1, then JSON |
//! | `x` · `s` · source kind · `/` · source id | [`SourcePrecision`]: version byte 1, then JSON |
//!
//! One writer owns these keys (the API's lifecycle worker, see ARCHITECTURE.md):
//! the functions here read and write whole records and do not lock.

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use posbon_model::EscalationRecord;
use serde::{Deserialize, Serialize};

use crate::codec::{decode_json, encode_json};
use crate::error::Result;
use crate::keys::{ESCALATION, prefix_range};
use crate::{DEFAULT_PAGE, EventStore, EventStoreExt};

/// Sub-prefix of escalation records.
const RECORD: u8 = b'e';
/// Sub-prefix of source precision statistics.
const PRECISION: u8 = b's';

/// `x` · `e` · id.
pub fn escalation_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + id.len());
    key.extend_from_slice(&[ESCALATION, RECORD]);
    key.extend_from_slice(id.as_bytes());
    key
}

/// `x` · `s` · kind · `/` · id.
pub fn precision_key(kind: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + kind.len() + id.len());
    key.extend_from_slice(&[ESCALATION, PRECISION]);
    key.extend_from_slice(kind.as_bytes());
    key.push(b'/');
    key.extend_from_slice(id.as_bytes());
    key
}

/// How often escalations that a source (a camera, a fraud detector) gave
/// evidence for turned out real or false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePrecision {
    /// `camera` or `detector`.
    pub kind: String,
    /// The camera id or detector source.
    pub id: String,
    /// Escalations resolved as real with evidence from this source.
    pub confirmed: u64,
    /// Escalations marked false alarms with evidence from this source.
    pub false_alarms: u64,
}

impl SourcePrecision {
    /// `confirmed / (confirmed + false_alarms)`, `None` before any verdict.
    pub fn precision(&self) -> Option<f64> {
        let total = self.confirmed + self.false_alarms;
        (total > 0).then(|| self.confirmed as f64 / total as f64)
    }
}

/// Escalation records and precision statistics on any [`EventStore`].
#[async_trait]
pub trait EscalationStoreExt: EventStore {
    /// Writes (or overwrites) a record, durably.
    async fn put_escalation(&self, record: &EscalationRecord) -> Result<()> {
        let key = escalation_key(&record.escalation.id);
        self.put_batch(vec![(key, encode_json("escalation record", record)?)])
            .await
    }

    /// Writes several records (and precision statistics) in one atomic batch.
    async fn put_escalation_batch(
        &self,
        records: &[EscalationRecord],
        precision: &[SourcePrecision],
    ) -> Result<()> {
        let mut batch = Vec::with_capacity(records.len() + precision.len());
        for record in records {
            batch.push((
                escalation_key(&record.escalation.id),
                encode_json("escalation record", record)?,
            ));
        }
        for p in precision {
            batch.push((
                precision_key(&p.kind, &p.id),
                encode_json("precision statistics", p)?,
            ));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.put_batch(batch).await
    }

    /// The record of an escalation.
    async fn get_escalation(&self, id: &str) -> Result<Option<EscalationRecord>> {
        match self.get(&escalation_key(id)).await? {
            Some(bytes) => decode_json("escalation record", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every escalation record, in id order, with bounded memory.
    fn escalations_stream(&self) -> BoxStream<'_, Result<EscalationRecord>> {
        let (start, end) = prefix_range(&[ESCALATION, RECORD]);
        self.scan_stream(start, end, DEFAULT_PAGE)
            .and_then(|(_, value)| async move { decode_json("escalation record", &value) })
            .boxed()
    }

    /// Every escalation record, in id order.
    async fn escalations(&self) -> Result<Vec<EscalationRecord>> {
        self.escalations_stream().try_collect().await
    }

    /// The precision statistics of one source.
    async fn source_precision(&self, kind: &str, id: &str) -> Result<Option<SourcePrecision>> {
        match self.get(&precision_key(kind, id)).await? {
            Some(bytes) => decode_json("precision statistics", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every source's precision statistics, by kind then id.
    async fn source_precisions(&self) -> Result<Vec<SourcePrecision>> {
        let (start, end) = prefix_range(&[ESCALATION, PRECISION]);
        self.scan_stream(start, end, DEFAULT_PAGE)
            .and_then(|(_, value)| async move { decode_json("precision statistics", &value) })
            .try_collect()
            .await
    }
}

impl<S: EventStore + ?Sized> EscalationStoreExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use chrono::{TimeZone as _, Utc};
    use posbon_model::{Escalation, EscalationStatus, RiskLevel};

    fn record(id_n: u64) -> EscalationRecord {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 28, 10, 0, 0)
            .single()
            .expect("time");
        EscalationRecord::opened(
            Escalation {
                id: Escalation::deterministic_id("m1", "intensity", id_n),
                mahalla_id: "m1".into(),
                district_id: "d1".into(),
                region_id: "r1".into(),
                level: RiskLevel::High,
                previous_level: RiskLevel::Elevated,
                score: 3.5,
                rule: "intensity".into(),
                counts: Default::default(),
                hot_cells: vec![],
                evidence: vec![],
                window_start: t,
                window_end: t,
                opened_at: t,
                status: EscalationStatus::Open,
            },
            id_n,
            t,
        )
    }

    #[tokio::test]
    async fn records_and_precision_round_trip() {
        let store = MemoryStore::new();
        assert_eq!(store.get_escalation("nope").await.expect("get"), None);
        let (a, b) = (record(1), record(2));
        store.put_escalation(&b).await.expect("put");
        let p = SourcePrecision {
            kind: "camera".into(),
            id: "cam-1".into(),
            confirmed: 3,
            false_alarms: 1,
        };
        store
            .put_escalation_batch(std::slice::from_ref(&a), std::slice::from_ref(&p))
            .await
            .expect("batch");
        assert_eq!(
            store.get_escalation(&a.escalation.id).await.expect("get"),
            Some(a.clone())
        );
        assert_eq!(store.escalations().await.expect("all"), vec![a, b]);
        assert_eq!(
            store
                .source_precision("camera", "cam-1")
                .await
                .expect("get"),
            Some(p.clone())
        );
        assert_eq!(p.precision(), Some(0.75));
        assert_eq!(store.source_precisions().await.expect("all"), vec![p]);
        // Events live elsewhere: an event scan sees none of this.
        assert_eq!(store.count_events().await.expect("count"), 0);
    }
}
