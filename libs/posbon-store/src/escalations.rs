//! Escalation records and per-source precision statistics, under the `x`
//! prefix of the key layout.
//!
//! | key | value |
//! |---|---|
//! | `x` · `e` · escalation id | the [`EscalationRecord`]: version byte 1, then JSON |
//! | `x` · `s` · source kind · `/` · source id | [`SourcePrecision`]: version byte 1, then JSON |
//! | `x` · `t` · newest-first opening time · escalation id | empty: every record, newest opening first |
//! | `x` · `o` · newest-first opening time · escalation id | empty: the records not closed, newest opening first |
//! | `x` · `i` | the version of the indexes above, once they were built for older records |
//! | `x` · `n` · silence id | a [`Silence`]: version byte 1, then JSON |
//!
//! The newest-first time is `u64::MAX` minus the opening time in
//! milliseconds since 1970, big-endian, so that a forward scan gives the
//! newest escalation first. Lists read the indexes a page at a time
//! ([`EscalationStoreExt::escalations_page`]) instead of every record.
//! An `o` entry is deleted after its record was written closed; one left by
//! a crash in between is skipped by readers (they read the record) until
//! retention removes the record.
//!
//! Records change by compare-and-swap ([`EscalationStoreExt::swap_escalation`]
//! on a record read with [`EscalationStoreExt::escalation_for_update`]), so
//! that several API replicas acting on one escalation keep every step: a
//! writer whose record changed since it read it is told so with the record
//! as it is now, applies its step again to that, or refuses it. Precision
//! statistics are counted the same way ([`EscalationStoreExt::add_verdicts`]).
//! [`EscalationStoreExt::put_escalation_batch`] overwrites without looking,
//! for imports, fixtures and tests only. Retention deletes closed records
//! with plain deletes: a swap racing one on a closed record (a late paging
//! outcome) can bring it back until the next retention pass.

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use posbon_model::{EscalationRecord, Silence};
use serde::{Deserialize, Serialize};

use crate::codec::{decode_json, encode_json};
use crate::error::Result;
use crate::keys::{ESCALATION, prefix_range};
use crate::{DEFAULT_PAGE, EventStore, EventStoreExt, Swap};

/// Sub-prefix of escalation records.
const RECORD: u8 = b'e';
/// Sub-prefix of source precision statistics.
const PRECISION: u8 = b's';
/// Sub-prefix of the index of every record by opening time.
const BY_TIME: u8 = b't';
/// Sub-prefix of the index of the records not closed by opening time.
const OPEN: u8 = b'o';
/// Sub-prefix of silences.
const SILENCE: u8 = b'n';
/// The key that says the indexes were built for records written before them.
const INDEX_VERSION_KEY: &[u8] = &[ESCALATION, b'i'];
/// The version of the indexes.
const INDEX_VERSION: &[u8] = b"1";

/// Which index a page of escalations is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationIndex {
    /// Every record.
    All,
    /// Records not closed (open, acknowledged, assigned).
    Open,
}

/// One page of escalation records, newest opening first.
#[derive(Debug, Clone, Default)]
pub struct EscalationPage {
    /// The records read (closed ones included when reading
    /// [`EscalationIndex::All`]), each with the position just after it (to
    /// continue after that record).
    pub records: Vec<(Vec<u8>, EscalationRecord)>,
    /// Where the next page starts; `None` at the end of the index.
    pub next: Option<Vec<u8>>,
}

impl EscalationIndex {
    fn sub_prefix(self) -> u8 {
        match self {
            Self::All => BY_TIME,
            Self::Open => OPEN,
        }
    }

    /// The position of the first record opened before `time` in this index.
    pub fn position_before(self, time: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
        let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
        let mut key = Vec::with_capacity(10);
        key.extend_from_slice(&[ESCALATION, self.sub_prefix()]);
        // Opened before `time`: at most time - 1 ms, so at least this key.
        key.extend_from_slice(&(u64::MAX - millis.saturating_sub(1)).to_be_bytes());
        key
    }

    /// Whether `position` is a position in this index (a cursor a client
    /// sent back).
    pub fn holds(self, position: &[u8]) -> bool {
        position.starts_with(&[ESCALATION, self.sub_prefix()])
    }
}

/// `x` · index · newest-first opening time · id.
fn index_key(index: u8, record: &EscalationRecord) -> Vec<u8> {
    let millis = u64::try_from(record.escalation.opened_at.timestamp_millis()).unwrap_or(0);
    let id = record.escalation.id.as_bytes();
    let mut key = Vec::with_capacity(10 + id.len());
    key.extend_from_slice(&[ESCALATION, index]);
    key.extend_from_slice(&(u64::MAX - millis).to_be_bytes());
    key.extend_from_slice(id);
    key
}

/// The record's id in an index key.
fn id_of_index_key(key: &[u8]) -> Option<&str> {
    key.get(10..).and_then(|id| std::str::from_utf8(id).ok())
}

/// The index entries of `record` to write with it.
fn index_entries(record: &EscalationRecord, batch: &mut Vec<crate::KvPair>) {
    batch.push((index_key(BY_TIME, record), Vec::new()));
    if !record.is_closed() {
        batch.push((index_key(OPEN, record), Vec::new()));
    }
}

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

/// `x` · `n` · id.
fn silence_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + id.len());
    key.extend_from_slice(&[ESCALATION, SILENCE]);
    key.extend_from_slice(id.as_bytes());
    key
}

/// An escalation record as read for a change: what
/// [`EscalationStoreExt::swap_escalation`] compares against.
#[derive(Debug, Clone)]
pub struct StoredEscalation {
    /// The record.
    pub record: EscalationRecord,
    /// Its stored form.
    bytes: Vec<u8>,
}

impl StoredEscalation {
    fn decode(bytes: Vec<u8>) -> Result<Self> {
        Ok(Self {
            record: decode_json("escalation record", &bytes)?,
            bytes,
        })
    }
}

/// What [`EscalationStoreExt::swap_escalation`] did.
#[derive(Debug, Clone)]
pub enum EscalationSwap {
    /// The new record is stored.
    Done,
    /// The record changed since it was read (or was created, or deleted):
    /// here it is as it is now.
    Changed(Option<Box<StoredEscalation>>),
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
    /// Writes (or overwrites) a record, durably, without looking at what is
    /// stored: for imports, fixtures and tests. Live changes use
    /// [`swap_escalation`](Self::swap_escalation).
    async fn put_escalation(&self, record: &EscalationRecord) -> Result<()> {
        self.put_escalation_batch(std::slice::from_ref(record), &[])
            .await
    }

    /// Writes several records (and precision statistics) in one atomic batch,
    /// without looking at what is stored (see [`put_escalation`](Self::put_escalation)).
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
            index_entries(record, &mut batch);
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
        self.put_batch(batch).await?;
        // After the records: a crash in between leaves an open-index entry
        // of a closed record, which readers skip.
        let closed: Vec<Vec<u8>> = records
            .iter()
            .filter(|r| r.is_closed())
            .map(|r| index_key(OPEN, r))
            .collect();
        if !closed.is_empty() {
            self.delete_keys(closed).await?;
        }
        Ok(())
    }

    /// The record of an escalation as read for a change.
    async fn escalation_for_update(&self, id: &str) -> Result<Option<StoredEscalation>> {
        self.get(&escalation_key(id))
            .await?
            .map(StoredEscalation::decode)
            .transpose()
    }

    /// Stores `record` in place of `read` (`None`: creates it), when the
    /// stored record is still the one read; otherwise stores nothing and
    /// answers the record as it is now. The index entries are written first
    /// (readers skip an entry whose record is missing) and the open-index
    /// entry of a closed record is dropped after (readers skip it meanwhile),
    /// so a crash at any point leaves the indexes usable.
    async fn swap_escalation(
        &self,
        read: Option<&StoredEscalation>,
        record: &EscalationRecord,
    ) -> Result<EscalationSwap> {
        let mut indexes = Vec::with_capacity(2);
        index_entries(record, &mut indexes);
        self.put_batch(indexes).await?;
        let new = encode_json("escalation record", record)?;
        let swapped = self
            .compare_and_swap(
                &escalation_key(&record.escalation.id),
                read.map(|r| r.bytes.as_slice()),
                new.clone(),
            )
            .await?;
        match swapped {
            Swap::Done => {}
            // Finding exactly the new record is a retried swap that had
            // written it: a record holds the time (in nanoseconds) of its
            // last change, so no other writer makes the same bytes.
            Swap::Conflict(Some(now)) if now == new => {}
            Swap::Conflict(now) => {
                let now = now.map(StoredEscalation::decode).transpose()?;
                // The open-index entry written above must not outlive a
                // record another writer closed (or retention removed).
                if !record.is_closed() && now.as_ref().is_none_or(|n| n.record.is_closed()) {
                    self.delete_keys(vec![index_key(OPEN, record)]).await?;
                }
                return Ok(EscalationSwap::Changed(now.map(Box::new)));
            }
        }
        if record.is_closed() {
            self.delete_keys(vec![index_key(OPEN, record)]).await?;
        }
        Ok(EscalationSwap::Done)
    }

    /// Counts one verdict (`confirmed`: resolved as real, else a false
    /// alarm) for each source `(kind, id)`, each by compare-and-swap so that
    /// concurrent verdicts are all counted; returns the new statistics.
    async fn add_verdicts(
        &self,
        sources: &[(&str, &str)],
        confirmed: bool,
    ) -> Result<Vec<SourcePrecision>> {
        let mut out = Vec::with_capacity(sources.len());
        for (kind, id) in sources {
            let key = precision_key(kind, id);
            let mut current = self.get(&key).await?;
            loop {
                let mut p: SourcePrecision = match &current {
                    Some(bytes) => decode_json("precision statistics", bytes)?,
                    None => SourcePrecision {
                        kind: (*kind).to_owned(),
                        id: (*id).to_owned(),
                        ..SourcePrecision::default()
                    },
                };
                if confirmed {
                    p.confirmed += 1;
                } else {
                    p.false_alarms += 1;
                }
                let new = encode_json("precision statistics", &p)?;
                match self.compare_and_swap(&key, current.as_deref(), new).await? {
                    Swap::Done => {
                        out.push(p);
                        break;
                    }
                    Swap::Conflict(now) => current = now,
                }
            }
        }
        Ok(out)
    }

    /// Up to `count` records of `index`, newest opening first, starting at
    /// `from` (a page's [`EscalationPage::next`]; `None`: the newest). Open
    /// index entries whose record is closed (left by a crash) are skipped.
    async fn escalations_page(
        &self,
        index: EscalationIndex,
        from: Option<&[u8]>,
        count: usize,
    ) -> Result<EscalationPage> {
        let (start, end) = prefix_range(&[ESCALATION, index.sub_prefix()]);
        let start = match from {
            Some(from) if from > start.as_slice() && from < end.as_slice() => from.to_vec(),
            _ => start,
        };
        let entries = self.scan(&start, &end, count.max(1)).await?;
        let next = (entries.len() == count.max(1))
            .then(|| entries.last().map(|(key, _)| crate::keys::successor(key)))
            .flatten();
        let entries: Vec<(&[u8], &str)> = entries
            .iter()
            .filter_map(|(key, _)| Some((key.as_slice(), id_of_index_key(key)?)))
            .collect();
        let keys: Vec<Vec<u8>> = entries.iter().map(|(_, id)| escalation_key(id)).collect();
        let mut records = Vec::with_capacity(keys.len());
        for ((key, _), value) in entries.iter().zip(self.get_many(keys).await?) {
            // No record: deleted after the index was read.
            let Some(value) = value else { continue };
            let record: EscalationRecord = decode_json("escalation record", &value)?;
            if index == EscalationIndex::Open && record.is_closed() {
                continue;
            }
            records.push((crate::keys::successor(key), record));
        }
        Ok(EscalationPage { records, next })
    }

    /// Every record not closed, newest opening first, read through the open
    /// index (bounded by how many are open, not by how many were ever kept).
    async fn open_escalations(&self) -> Result<Vec<EscalationRecord>> {
        let mut out = Vec::new();
        let mut from: Option<Vec<u8>> = None;
        loop {
            let page = self
                .escalations_page(EscalationIndex::Open, from.as_deref(), DEFAULT_PAGE)
                .await?;
            out.extend(page.records.into_iter().map(|(_, r)| r));
            match page.next {
                Some(next) => from = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Builds the indexes for records written before them, once (a marker
    /// key says it was done), and drops open-index entries of closed
    /// records. Returns how many records were indexed.
    async fn ensure_escalation_indexes(&self) -> Result<u64> {
        if self.get(INDEX_VERSION_KEY).await?.as_deref() == Some(INDEX_VERSION) {
            return Ok(0);
        }
        let mut indexed = 0u64;
        let mut records = self.escalations_stream().try_chunks(DEFAULT_PAGE);
        while let Some(chunk) = records.next().await {
            let chunk = chunk.map_err(|e| e.1)?;
            let mut batch = Vec::with_capacity(chunk.len() * 2);
            let mut closed = Vec::new();
            for record in &chunk {
                index_entries(record, &mut batch);
                if record.is_closed() {
                    closed.push(index_key(OPEN, record));
                }
            }
            indexed += chunk.len() as u64;
            if !batch.is_empty() {
                self.put_batch(batch).await?;
            }
            if !closed.is_empty() {
                self.delete_keys(closed).await?;
            }
        }
        self.put_batch(vec![(INDEX_VERSION_KEY.to_vec(), INDEX_VERSION.to_vec())])
            .await?;
        Ok(indexed)
    }

    /// Deletes records and their index entries.
    async fn delete_escalations(&self, records: &[EscalationRecord]) -> Result<()> {
        let mut keys = Vec::with_capacity(records.len() * 3);
        for r in records {
            keys.push(escalation_key(&r.escalation.id));
            keys.push(index_key(BY_TIME, r));
            keys.push(index_key(OPEN, r));
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.delete_keys(keys).await
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

    /// Writes (or overwrites) a silence, durably.
    async fn put_silence(&self, silence: &Silence) -> Result<()> {
        self.put_batch(vec![(
            silence_key(&silence.id),
            encode_json("silence", silence)?,
        )])
        .await
    }

    /// One silence.
    async fn get_silence(&self, id: &str) -> Result<Option<Silence>> {
        match self.get(&silence_key(id)).await? {
            Some(bytes) => decode_json("silence", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every silence kept, in id order.
    async fn silences(&self) -> Result<Vec<Silence>> {
        let (start, end) = prefix_range(&[ESCALATION, SILENCE]);
        self.scan_stream(start, end, DEFAULT_PAGE)
            .and_then(|(_, value)| async move { decode_json("silence", &value) })
            .try_collect()
            .await
    }

    /// Deletes silences.
    async fn delete_silences(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.delete_keys(ids.iter().map(|id| silence_key(id)).collect())
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
                measure: None,
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

    #[tokio::test]
    async fn a_record_changes_only_from_what_was_read() {
        let store = MemoryStore::new();
        let a = record(7);
        let id = a.escalation.id.clone();
        assert!(matches!(
            store.swap_escalation(None, &a).await.expect("create"),
            EscalationSwap::Done
        ));
        // A second opening (a replay, recorded at another time) finds the
        // record; the very same bytes again are a retried swap that wrote.
        let mut again = a.clone();
        again.updated_at += chrono::TimeDelta::seconds(1);
        match store
            .swap_escalation(None, &again)
            .await
            .expect("create again")
        {
            EscalationSwap::Changed(Some(now)) => assert_eq!(now.record, a),
            other => panic!("a second creation must conflict: {other:?}"),
        }
        assert!(matches!(
            store.swap_escalation(None, &a).await.expect("retried"),
            EscalationSwap::Done
        ));
        let read = store
            .escalation_for_update(&id)
            .await
            .expect("read")
            .expect("record");
        let mut closed = read.record.clone();
        closed.updated_at += chrono::TimeDelta::seconds(1);
        closed.escalation.status = EscalationStatus::Resolved;
        closed.closed_at = Some(closed.updated_at);
        assert!(matches!(
            store
                .swap_escalation(Some(&read), &closed)
                .await
                .expect("swap"),
            EscalationSwap::Done
        ));
        // A writer holding the old read is told what is there now.
        let mut stale = read.record.clone();
        stale.tier = stale.tier.up().expect("a tier above");
        match store
            .swap_escalation(Some(&read), &stale)
            .await
            .expect("stale")
        {
            EscalationSwap::Changed(Some(now)) => assert_eq!(now.record, closed),
            other => panic!("a stale swap must conflict: {other:?}"),
        }
        assert_eq!(store.get_escalation(&id).await.expect("get"), Some(closed));
        // Closed: out of the open index, still in the index of all.
        assert!(store.open_escalations().await.expect("open").is_empty());
        let all = store
            .escalations_page(EscalationIndex::All, None, 10)
            .await
            .expect("page");
        assert_eq!(all.records.len(), 1);
    }

    #[tokio::test]
    async fn concurrent_verdicts_are_all_counted() {
        let store = MemoryStore::new();
        let verdict = |confirmed| {
            let store = &store;
            async move {
                store
                    .add_verdicts(&[("camera", "cam-1"), ("detector", "bank")], confirmed)
                    .await
                    .expect("verdict")
            }
        };
        futures::future::join_all((0..6).map(|i| verdict(i % 3 != 0))).await;
        let cam = store
            .source_precision("camera", "cam-1")
            .await
            .expect("get")
            .expect("stats");
        assert_eq!((cam.confirmed, cam.false_alarms), (4, 2));
        assert_eq!(store.source_precisions().await.expect("all").len(), 2);
    }

    #[tokio::test]
    async fn silences_round_trip_and_delete() {
        let store = crate::MemoryStore::new();
        let now = chrono::Utc::now();
        let silence = posbon_model::SilenceRequest {
            matchers: posbon_model::EscalationMatchers {
                district: vec!["d1".into()],
                ..Default::default()
            },
            starts_at: None,
            ends_at: now + chrono::TimeDelta::hours(1),
            reason: "drill".into(),
        }
        .into_silence("sil-1".into(), "ops", now)
        .expect("valid");
        store.put_silence(&silence).await.expect("put");
        assert_eq!(
            store.get_silence("sil-1").await.expect("get"),
            Some(silence.clone())
        );
        assert_eq!(store.silences().await.expect("list"), vec![silence]);
        store
            .delete_silences(&["sil-1".into()])
            .await
            .expect("delete");
        assert!(store.silences().await.expect("list").is_empty());
        // Silences live beside escalation records, not among them.
        assert!(store.escalations().await.expect("records").is_empty());
    }
}
