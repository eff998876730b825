//! [`EventStoreExt`]: paging streams, event records and their indexes, built
//! on the few methods of [`EventStore`] and so the same for every backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use posbon_geo::{CellIndex, MahallaIdx, Registry, Resolution, children_range};
use posbon_model::{EnrichedEvent, is_valid_id};

use crate::codec::decode_event;
use crate::error::{Result, StoreError};
use crate::keys::{
    EVENT_ID, cell_time_prefix, checkpoint_key, event_id_key, micros, prefix_range, successor,
    time_range, write_mark_range,
};
use crate::store::{EventStore, KvPair};

mod scan;
mod write;

use scan::{CellScan, FIRST_CHUNK, MAX_CELLS_AS_RANGES, RangeScan};
use write::batch_of;
pub(crate) use write::write_token;
pub use write::{BatchIds, CheckedEvents, PreparedEvents};

/// Default page size of the streaming helpers: records read per
/// [`EventStore::scan`] call.
pub const DEFAULT_PAGE: usize = 512;

/// How many covering cells [`EventStoreExt::events_of_mahalla`] scans at once.
const MAHALLA_SCANS_IN_FLIGHT: usize = 4;

/// What [`EventStoreExt::put_events`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutSummary {
    /// Events stored by this call.
    pub written: usize,
    /// Events not stored because their id was already stored, or appeared
    /// earlier in the same call.
    pub duplicates: usize,
}

/// Helpers over any [`EventStore`], implemented for every backend (and for
/// `dyn EventStore`, so they work on a [`Store`](crate::Store) handle).
///
/// Time windows are half-open, `[from, to)` on `occurred_at`, compared at
/// microsecond precision (the key's; a sub-microsecond part is truncated
/// toward the past); a window with `from >= to` is empty.
#[async_trait]
pub trait EventStoreExt: EventStore {
    /// The range `[start, end)` in key order, one page of at most `page`
    /// entries (one [`EventStore::scan`] call) at a time, for work done a
    /// page at a time. A `page` of 0 is taken as 1.
    fn scan_pages(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        page: usize,
    ) -> BoxStream<'_, Result<Vec<KvPair>>> {
        pages(self, start, end, page).boxed()
    }

    /// The range `[start, end)` entry by entry, read `page` entries per
    /// [`EventStore::scan`] call, so memory stays bounded by one page however
    /// large the range. A `page` of 0 is taken as 1.
    fn scan_stream(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        page: usize,
    ) -> BoxStream<'_, Result<KvPair>> {
        pages(self, start, end, page)
            .map_ok(|page| stream::iter(page.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    /// Stores events with their time copy and id index, in one atomic,
    /// durable [`EventStore::put_batch`]. The same batch rewrites the write
    /// mark of every hour it adds events to, with a token no other batch
    /// has ([`EventStoreExt::write_marks_digest`]).
    ///
    /// An event whose id is already stored, or appeared earlier in `events`,
    /// is counted as a duplicate and not written: the first version of an
    /// event wins, even when a producer resends the id with other content.
    /// Rewriting the same events is therefore harmless. Two callers writing
    /// the same new id at the same moment can both store it (the check and
    /// the write are not one transaction); the indexer avoids this by having
    /// one writer per event stream partition.
    ///
    /// Fails with [`StoreErrorKind::InvalidRequest`](crate::StoreErrorKind::InvalidRequest)
    /// (and writes nothing) when an event id is not a valid id.
    async fn put_events(&self, events: &[EnrichedEvent]) -> Result<PutSummary> {
        self.put_prepared(PreparedEvents::new(events)?).await
    }

    /// [`EventStoreExt::put_events`] of events prepared beforehand, with the
    /// same rules: an id already stored is a duplicate, the rest is one
    /// atomic, durable write.
    async fn put_prepared(&self, prepared: PreparedEvents) -> Result<PutSummary> {
        self.put_checked(self.check_prepared(prepared).await?).await
    }

    /// The first half of [`EventStoreExt::put_prepared`]: looks up which
    /// prepared events have an id not stored yet. A writer can check its next
    /// batch while the last is being written, provided it then sets aside
    /// the ids the last one stores ([`CheckedEvents::exclude`]).
    async fn check_prepared(&self, prepared: PreparedEvents) -> Result<CheckedEvents> {
        let id_keys: Vec<Vec<u8>> = prepared.events.iter().map(|e| e.id_key.clone()).collect();
        let fresh = self
            .get_many(id_keys)
            .await?
            .iter()
            .map(Option::is_none)
            .collect();
        Ok(CheckedEvents { prepared, fresh })
    }

    /// The second half of [`EventStoreExt::put_prepared`]: writes the events
    /// found new, in one atomic, durable write.
    async fn put_checked(&self, checked: CheckedEvents) -> Result<PutSummary> {
        let (checked_count, repeats) = (checked.fresh.len(), checked.prepared.repeats);
        let (batch, written) = batch_of(checked.prepared, &checked.fresh);
        if !batch.is_empty() {
            self.put_batch(batch).await?;
        }
        Ok(PutSummary {
            written,
            duplicates: repeats + checked_count - written,
        })
    }

    /// The stored event with this id.
    async fn get_event(&self, id: &str) -> Result<Option<EnrichedEvent>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let Some(primary) = self.get(&event_id_key(id)).await? else {
            return Ok(None);
        };
        match self.get(&primary).await? {
            Some(record) => decode_event(&record).map(Some),
            None => Ok(None),
        }
    }

    /// The events of `cell` (at `storage` or any coarser resolution) with
    /// `occurred_at` in `[from, to)`, in key order (storage cell, then time,
    /// then id), `page` records per read.
    ///
    /// `storage` is the resolution events were stored at (the registry's,
    /// [`Registry::resolution`]). A cell finer than `storage` fails with
    /// [`StoreErrorKind::InvalidRequest`](crate::StoreErrorKind::InvalidRequest).
    ///
    /// The children of `cell` are one key range, but each storage cell in it
    /// holds its whole history in time order, so the window of each is a
    /// separate stretch. The scan reads a chunk, keeps the keys in the
    /// window, and jumps from the last key read to where the next window can
    /// start (past a cell's history before `from`, or to the window of the
    /// next possible cell once past `to`). The chunk adapts to the records the last one yielded
    /// (twice as many, within 8..=`page`), so a dense recent window is read
    /// in few calls and a long history costs about one call per storage cell
    /// with data, with at most a chunk of records read in vain.
    fn events_in_cell_stream(
        &self,
        cell: CellIndex,
        storage: Resolution,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: usize,
    ) -> BoxStream<'_, Result<EnrichedEvent>> {
        self.cell_record_pages(cell, storage, micros(&from), micros(&to), page)
            .map_ok(decode_page)
            .try_flatten()
            .boxed()
    }

    /// The raw `e` entries (key and record) behind
    /// [`EventStoreExt::events_in_cell_stream`], a page at a time, for
    /// readers that decode records themselves (the SQL engine reads only the
    /// fields a query needs). `from` and `to` are microseconds since the
    /// epoch, `[from, to)`; pages are never empty.
    fn cell_record_pages(
        &self,
        cell: CellIndex,
        storage: Resolution,
        from: i64,
        to: i64,
        page: usize,
    ) -> BoxStream<'_, Result<Vec<KvPair>>> {
        let Some(span) = children_range(cell, storage) else {
            let error = StoreError::invalid(format!(
                "cell {cell} is finer than the storage resolution {storage}"
            ));
            return stream::once(async move { Err(error) }).boxed();
        };
        let (lo, hi) = (*span.start(), *span.end());
        if lo != hi
            && self.batches_ranges()
            && cell.children_count(storage) <= MAX_CELLS_AS_RANGES
            && from < to
        {
            // One range per storage cell, each exactly the window: read
            // together, many per request.
            let ranges = cell
                .children(storage)
                .map(|c| {
                    let c = u64::from(c);
                    (cell_time_prefix(c, from), cell_time_prefix(c, to))
                })
                .collect();
            let scan = RangeScan {
                store: self,
                ranges,
                pos: 0,
                page: page.max(1),
                ready: std::collections::VecDeque::new(),
                carry: None,
            };
            return stream::try_unfold(scan, RangeScan::next_page).boxed();
        }
        let scan = CellScan {
            store: self,
            next: (from < to).then(|| cell_time_prefix(lo, from)),
            end: cell_time_prefix(hi, to),
            from,
            to,
            page: page.max(1),
            resolution: u8::from(storage),
            // One storage cell: every key in the range is in the window.
            chunk: if lo == hi {
                page.max(1)
            } else {
                FIRST_CHUNK.min(page.max(1))
            },
        };
        stream::try_unfold(scan, CellScan::next_page).boxed()
    }

    /// [`EventStoreExt::events_in_cell_stream`], collected.
    async fn events_in_cell(
        &self,
        cell: CellIndex,
        storage: Resolution,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<EnrichedEvent>> {
        self.events_in_cell_stream(cell, storage, from, to, DEFAULT_PAGE)
            .try_collect()
            .await
    }

    /// Every event with `occurred_at` in `[from, to)`, in time order (then
    /// id), `page` records per read.
    fn events_in_time_stream(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: usize,
    ) -> BoxStream<'_, Result<EnrichedEvent>> {
        self.time_record_pages(micros(&from), micros(&to), page)
            .map_ok(decode_page)
            .try_flatten()
            .boxed()
    }

    /// The raw `t` entries (key and record) behind
    /// [`EventStoreExt::events_in_time_stream`], `page` entries per read;
    /// `from` and `to` are microseconds since the epoch, `[from, to)`.
    fn time_record_pages(
        &self,
        from: i64,
        to: i64,
        page: usize,
    ) -> BoxStream<'_, Result<Vec<KvPair>>> {
        let (start, end) = time_range(from, to);
        pages(self, start, end, page).boxed()
    }

    /// [`EventStoreExt::events_in_time_stream`], collected.
    async fn events_in_time(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<EnrichedEvent>> {
        self.events_in_time_stream(from, to, DEFAULT_PAGE)
            .try_collect()
            .await
    }

    /// The events assigned to mahalla `idx` of `registry` with `occurred_at`
    /// in `[from, to)`: the storage cells that cover the mahalla are scanned
    /// (a few at a time) and events whose `mahalla_id` is the mahalla's are
    /// kept. Ordered by cell, then time, then id.
    async fn events_of_mahalla(
        &self,
        registry: &Registry,
        idx: MahallaIdx,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<EnrichedEvent>> {
        let storage = registry.resolution();
        let id = registry.mahalla(idx).id.as_str();
        let cells = registry.mahalla_cells(idx, storage);
        let per_cell: Vec<Vec<EnrichedEvent>> = stream::iter(cells)
            .map(|cell| self.events_in_cell(cell, storage, from, to))
            .buffered(MAHALLA_SCANS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(per_cell
            .into_iter()
            .flatten()
            .filter(|e| e.mahalla_id.as_deref() == Some(id))
            .collect())
    }

    /// Number of distinct events stored (entries of the id index), counted by
    /// paging through the index: for tests and small stores.
    async fn count_events(&self) -> Result<usize> {
        let (start, end) = prefix_range(&[EVENT_ID]);
        let mut pages = std::pin::pin!(pages(self, start, end, 4096));
        let mut count = 0;
        while let Some(page) = pages.try_next().await? {
            count += page.len();
        }
        Ok(count)
    }

    /// A digest of the write marks of every hour that overlaps `[from, to)`
    /// (microseconds): it changes whenever [`EventStoreExt::put_events`]
    /// stores an event with `occurred_at` in one of those hours, and stays
    /// the same while nothing is written there. Derived data about a time
    /// window (the SQL engine's columnar day segments) records the digest
    /// it was built at and is current while the digest is unchanged. The
    /// digest is stable across processes and versions (FNV-1a over the
    /// marks' keys and tokens); with no marks it is the FNV offset basis.
    async fn write_marks_digest(&self, from: i64, to: i64) -> Result<u64> {
        let (start, end) = write_mark_range(from, to);
        let mut digest = Fnv::default();
        let mut pages = std::pin::pin!(pages(self, start, end, 1024));
        while let Some(page) = pages.try_next().await? {
            for (key, value) in page {
                digest.write(&(key.len() as u32).to_be_bytes());
                digest.write(&key);
                digest.write(&(value.len() as u32).to_be_bytes());
                digest.write(&value);
            }
        }
        Ok(digest.0)
    }

    /// Stores a checkpoint under [`checkpoint_key`]`(name)`, durably.
    async fn put_checkpoint(&self, name: &str, value: Vec<u8>) -> Result<()> {
        self.put_batch(vec![(checkpoint_key(name), value)]).await
    }

    /// The checkpoint stored under [`checkpoint_key`]`(name)`.
    async fn checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.get(&checkpoint_key(name)).await
    }
}

impl<S: EventStore + ?Sized> EventStoreExt for S {}

/// 64-bit FNV-1a of `bytes`: a stable digest (the standard library's
/// hashers may change between releases), for what is stored and compared
/// later.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.0
}

/// 64-bit FNV-1a, incrementally.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The pages of `[start, end)`, `page` entries each (the last may be shorter).
fn pages<S: EventStore + ?Sized>(
    store: &S,
    start: Vec<u8>,
    end: Vec<u8>,
    page: usize,
) -> impl futures::Stream<Item = Result<Vec<KvPair>>> + Send + '_ {
    let page = page.max(1);
    stream::try_unfold(Some(start), move |next| {
        let end = end.clone();
        async move {
            let Some(start) = next else {
                return Ok(None);
            };
            let items = store.scan(&start, &end, page).await?;
            if items.is_empty() {
                return Ok(None);
            }
            let next = match items.last() {
                Some((last, _)) if items.len() == page => Some(successor(last)),
                _ => None,
            };
            Ok(Some((items, next)))
        }
    })
}

/// The event records of a page.
fn decode_page(page: Vec<KvPair>) -> impl futures::Stream<Item = Result<EnrichedEvent>> {
    stream::iter(page.into_iter().map(|(_, value)| decode_event(&value)))
}
