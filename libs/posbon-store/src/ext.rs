//! [`EventStoreExt`]: paging streams, event records and their indexes, built
//! on the few methods of [`EventStore`] and so the same for every backend.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::mem::take;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use posbon_geo::{CellIndex, MahallaIdx, Registry, Resolution, children_range};
use posbon_model::{EnrichedEvent, is_valid_id};

use crate::codec::{decode_event, encode_event};
use crate::error::{Result, StoreError};
use crate::keys::{
    EVENT_ID, cell_time_prefix, checkpoint_key, decode_event_cell_key, event_cell_key,
    event_id_key, event_time_key, hour_of, micros, prefix_range, successor, time_range,
    write_mark_key, write_mark_range,
};
use crate::store::{EventStore, KvPair};

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

/// Events made ready for [`EventStoreExt::put_prepared`]: ids checked,
/// repeats within the batch set aside, keys and records built, and the keys
/// put in order. Making them is computation only, so a writer can have the
/// next batch prepared while it writes the last ([`PreparedEvents::new`]).
#[derive(Debug, Default)]
pub struct PreparedEvents {
    events: Vec<PreparedEvent>,
    /// Events that repeated the id of an earlier one in the batch.
    repeats: usize,
    /// Positions in `events` in the order of their cell keys, id keys and
    /// time keys. The batch is written in key order, so
    /// [`normalize_batch`](crate::normalize_batch) finds nothing to sort in
    /// the writer's turn.
    by_cell: Vec<usize>,
    by_id: Vec<usize>,
    by_time: Vec<usize>,
}

#[derive(Debug)]
struct PreparedEvent {
    id_key: Vec<u8>,
    time_key: Vec<u8>,
    cell_key: Vec<u8>,
    record: Vec<u8>,
    hour: i64,
}

impl PreparedEvents {
    /// Prepares `events`. Fails with
    /// [`StoreErrorKind::InvalidRequest`](crate::StoreErrorKind::InvalidRequest)
    /// when an event id is not a valid id.
    pub fn new(events: &[EnrichedEvent]) -> Result<Self> {
        let mut seen = HashSet::with_capacity(events.len());
        let mut prepared = Vec::with_capacity(events.len());
        let mut repeats = 0;
        for event in events {
            let id = event.event.id();
            if !is_valid_id(id) {
                return Err(StoreError::invalid(format!("invalid event id {id:?}")));
            }
            if !seen.insert(id) {
                repeats += 1;
                continue;
            }
            let at = micros(&event.event.occurred_at());
            prepared.push(PreparedEvent {
                id_key: event_id_key(id),
                time_key: event_time_key(at, id),
                cell_key: event_cell_key(event.cell.get(), at, id),
                record: encode_event(event),
                hour: hour_of(at),
            });
        }
        let order = |key: fn(&PreparedEvent) -> &[u8]| {
            let mut order: Vec<usize> = (0..prepared.len()).collect();
            order.sort_unstable_by(|&a, &b| key(&prepared[a]).cmp(key(&prepared[b])));
            order
        };
        Ok(Self {
            by_cell: order(|e| &e.cell_key),
            by_id: order(|e| &e.id_key),
            by_time: order(|e| &e.time_key),
            events: prepared,
            repeats,
        })
    }

    /// Events to write, repeats within the batch not counted.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Prepared events with their ids looked up in the store
/// ([`EventStoreExt::check_prepared`]), ready for
/// [`EventStoreExt::put_checked`].
#[derive(Debug)]
pub struct CheckedEvents {
    prepared: PreparedEvents,
    /// For each prepared event: its id was not stored at the check.
    fresh: Vec<bool>,
}

impl CheckedEvents {
    /// The ids of the events this batch will store.
    pub fn ids(&self) -> BatchIds {
        BatchIds(
            self.prepared
                .events
                .iter()
                .zip(&self.fresh)
                .filter(|(_, fresh)| **fresh)
                .map(|(event, _)| event.id_key.clone())
                .collect(),
        )
    }

    /// Counts as duplicates the events whose id is in `earlier`: the ids of a
    /// batch written after this one was checked, whose write the check could
    /// not see.
    pub fn exclude(&mut self, earlier: &BatchIds) {
        for (event, fresh) in self.prepared.events.iter().zip(&mut self.fresh) {
            if *fresh && earlier.0.contains(&event.id_key) {
                *fresh = false;
            }
        }
    }

    /// Events the write will store (repeats and stored ids left out).
    pub fn new_events(&self) -> usize {
        self.fresh.iter().filter(|f| **f).count()
    }
}

/// The ids a checked batch stores ([`CheckedEvents::ids`]).
#[derive(Debug, Default)]
pub struct BatchIds(HashSet<Vec<u8>>);

/// The entries that store the events of `prepared` whose id is `fresh`, and
/// how many events that is: for each event its `e` key (the record), its `i`
/// key (the `e` key) and its `t` key (the record again), then the write mark
/// of every hour it touches. The entries come out in key order (all `e`
/// keys, ordered, then `i`, then `t`, then `w`), so the backend's
/// [`normalize_batch`](crate::normalize_batch) has nothing to sort.
fn batch_of(prepared: PreparedEvents, fresh: &[bool]) -> (Vec<KvPair>, usize) {
    let written = fresh.iter().filter(|f| **f).count();
    if written == 0 {
        return (Vec::new(), 0);
    }
    let mut events = prepared.events;
    let mut batch = Vec::with_capacity(3 * written + 2);
    let mut hours = BTreeSet::new();
    for &i in prepared.by_cell.iter().filter(|&&i| fresh[i]) {
        let event = &events[i];
        batch.push((event.cell_key.clone(), event.record.clone()));
        hours.insert(event.hour);
    }
    for &i in prepared.by_id.iter().filter(|&&i| fresh[i]) {
        let event = &mut events[i];
        batch.push((take(&mut event.id_key), take(&mut event.cell_key)));
    }
    for &i in prepared.by_time.iter().filter(|&&i| fresh[i]) {
        let event = &mut events[i];
        batch.push((take(&mut event.time_key), take(&mut event.record)));
    }
    let token = write_token();
    batch.extend(
        hours
            .into_iter()
            .map(|h| (write_mark_key(h), token.clone())),
    );
    (batch, written)
}

/// A write-mark token no other batch has: the time in nanoseconds, then a
/// per-process counter mixed with a per-process random seed.
pub(crate) fn write_token() -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: LazyLock<u64> = LazyLock::new(|| {
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = *SEED ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    [nanos.to_be_bytes(), mixed.to_be_bytes()].concat()
}

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

/// The smallest H3 index at `resolution` after `cell` (a cell at that
/// resolution): the next value of its last digit, carrying past digit 6 into
/// the coarser digits and then the base cell. Indexes in between have a
/// digit 7 and are not cells, so no event key lies between the two. Falls
/// back to `cell + 1` (always safe) when the carry runs out.
fn next_cell(cell: u64, resolution: u8) -> Option<u64> {
    const BASE_SHIFT: u32 = 45;
    let mut next = cell;
    for r in (1..=u32::from(resolution.min(15))).rev() {
        let shift = 3 * (15 - r);
        if (next >> shift) & 0b111 < 6 {
            return Some(next + (1 << shift));
        }
        next &= !(0b111 << shift);
    }
    let base = (next >> BASE_SHIFT) & 0x7F;
    if base < 121 {
        Some(next + (1 << BASE_SHIFT))
    } else {
        cell.checked_add(1)
    }
}

/// The most storage cells a coarse cell's scan reads as ranges of their own
/// (a res-5 cell has 16,807 res-10 cells); above, it skip-scans.
const MAX_CELLS_AS_RANGES: u64 = 20_000;
/// Ranges asked for by one [`EventStore::scan_ranges`] of a [`RangeScan`].
const RANGES_PER_READ: usize = 1024;

/// The storage cells of a coarse cell, each its own range over the window,
/// read many at a time ([`EventStore::scan_ranges`]), in key order.
struct RangeScan<'a, S: ?Sized> {
    store: &'a S,
    /// Sorted, one per storage cell.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first range not asked for yet.
    pos: usize,
    page: usize,
    /// Answers not yet yielded, with the end of their range.
    ready: std::collections::VecDeque<(Vec<KvPair>, Vec<u8>)>,
    /// The rest of a range whose answer was full, read before `ready`.
    carry: Option<(Vec<u8>, Vec<u8>)>,
}

impl<S: EventStore + ?Sized> RangeScan<'_, S> {
    async fn next_page(mut self) -> Result<Option<(Vec<KvPair>, Self)>> {
        loop {
            if let Some((start, end)) = self.carry.take() {
                let items = self.store.scan(&start, &end, self.page).await?;
                if items.len() == self.page
                    && let Some((last, _)) = items.last()
                {
                    self.carry = Some((successor(last), end));
                }
                if !items.is_empty() {
                    return Ok(Some((items, self)));
                }
                continue;
            }
            let mut out = Vec::new();
            while let Some((list, end)) = self.ready.pop_front() {
                let full = list.len() >= self.page;
                if full && let Some((last, _)) = list.last() {
                    self.carry = Some((successor(last), end));
                }
                out.extend(list);
                if full || out.len() >= self.page {
                    break;
                }
            }
            if !out.is_empty() {
                return Ok(Some((out, self)));
            }
            if self.carry.is_some() {
                continue;
            }
            if self.pos >= self.ranges.len() {
                return Ok(None);
            }
            let group_end = (self.pos + RANGES_PER_READ).min(self.ranges.len());
            let group = &self.ranges[self.pos..group_end];
            let lists = self.store.scan_ranges(group, self.page).await?;
            let ends = group.iter().map(|(_, end)| end.clone());
            self.ready.extend(lists.into_iter().zip(ends));
            self.pos = group_end;
        }
    }
}

/// First chunk of a [`CellScan`] over several storage cells.
const FIRST_CHUNK: usize = 32;
/// Smallest chunk of a [`CellScan`].
const MIN_CHUNK: usize = 8;

/// An adaptive skip scan over the storage cells of `[next, end)` that yields
/// only the keys with a time in `[from, to)`.
struct CellScan<'a, S: ?Sized> {
    store: &'a S,
    /// Where the next read starts; `None` when finished.
    next: Option<Vec<u8>>,
    end: Vec<u8>,
    from: i64,
    to: i64,
    /// Largest chunk.
    page: usize,
    /// The storage resolution.
    resolution: u8,
    /// Records asked for by the next read.
    chunk: usize,
}

impl<S: EventStore + ?Sized> CellScan<'_, S> {
    /// The next non-empty page of keys in the window, and the scan to
    /// continue with.
    async fn next_page(mut self) -> Result<Option<(Vec<KvPair>, Self)>> {
        while let Some(start) = self.next.take() {
            let items = self.store.scan(&start, &self.end, self.chunk).await?;
            let full = items.len() == self.chunk;
            let mut last = None;
            let mut kept = Vec::with_capacity(items.len());
            for (key, value) in items {
                let found = decode_event_cell_key(&key)
                    .ok_or_else(|| StoreError::corrupt("malformed event key"))?;
                last = Some((found.cell, found.micros));
                if (self.from..self.to).contains(&found.micros) {
                    kept.push((key, value));
                }
            }
            if full && let Some((cell, at)) = last {
                // Resume after the last key read, skipping what cannot be in
                // the window.
                self.next = if at < self.from {
                    Some(cell_time_prefix(cell, self.from))
                } else if at >= self.to {
                    next_cell(cell, self.resolution).map(|next| cell_time_prefix(next, self.from))
                } else {
                    kept.last().map(|(key, _)| successor(key))
                };
                self.chunk = (2 * kept.len()).clamp(MIN_CHUNK.min(self.page), self.page);
            }
            if !kept.is_empty() {
                return Ok(Some((kept, self)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbon_geo::LatLng;

    #[test]
    fn a_prepared_batch_is_written_in_key_order() {
        let events = crate::conformance::scattered_events("order", 500, 0.05, 3);
        // Ids in reverse, so that no key family comes out ordered by chance.
        let events: Vec<EnrichedEvent> = events.into_iter().rev().collect();
        let prepared = PreparedEvents::new(&events).expect("valid ids");
        let fresh: Vec<bool> = (0..events.len()).map(|i| i % 7 != 3).collect();
        let (batch, written) = batch_of(prepared, &fresh);
        assert_eq!(written, fresh.iter().filter(|f| **f).count());
        assert!(
            batch.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "keys strictly increasing"
        );
        // Three entries for each event written, then one write mark per hour.
        let marks = batch
            .iter()
            .filter(|(k, _)| k[0] == crate::keys::WRITE_MARK)
            .count();
        assert_eq!(batch.len(), 3 * written + marks);
        assert!(marks > 0);
        // The same entries as writing each fresh event on its own would give.
        let mut expected = Vec::new();
        for (event, fresh) in events.iter().zip(&fresh) {
            if *fresh {
                let id = event.event.id();
                let at = micros(&event.event.occurred_at());
                let cell_key = event_cell_key(event.cell.get(), at, id);
                expected.push((cell_key.clone(), encode_event(event)));
                expected.push((event_id_key(id), cell_key));
                expected.push((event_time_key(at, id), encode_event(event)));
            }
        }
        expected.sort();
        let mut got: Vec<KvPair> = batch
            .into_iter()
            .filter(|(k, _)| k[0] != crate::keys::WRITE_MARK)
            .collect();
        got.sort();
        assert_eq!(got, expected);
    }

    /// A batch checked while an earlier one was not written yet keeps the
    /// earlier one's versions once told its ids: nothing is stored twice
    /// and the first version wins.
    #[tokio::test]
    async fn a_batch_checked_before_the_last_is_written_sets_its_ids_aside() {
        let store = crate::MemoryStore::new();
        let cell = LatLng::new(41.31, 69.25)
            .expect("valid")
            .to_cell(Resolution::Ten);
        let at = |minute: i64| {
            DateTime::<Utc>::from_timestamp(1_780_000_000 + 60 * minute, 0).expect("valid")
        };
        let event = |i: usize, minute: i64| {
            crate::conformance::enriched_in_cell(&format!("ev-{i:02}"), at(minute), cell, None)
        };
        let first: Vec<EnrichedEvent> = (0..10).map(|i| event(i, 0)).collect();
        // Ids 5..10 again with another time, then 10..15.
        let second: Vec<EnrichedEvent> = (5..15).map(|i| event(i, 30)).collect();
        let first = store
            .check_prepared(PreparedEvents::new(&first).expect("ids"))
            .await
            .expect("check");
        let mut second = store
            .check_prepared(PreparedEvents::new(&second).expect("ids"))
            .await
            .expect("check");
        assert_eq!(
            second.new_events(),
            10,
            "the first batch is not written yet"
        );
        second.exclude(&first.ids());
        assert_eq!(second.new_events(), 5);
        let summary = store.put_checked(first).await.expect("write");
        assert_eq!((summary.written, summary.duplicates), (10, 0));
        let summary = store.put_checked(second).await.expect("write");
        assert_eq!((summary.written, summary.duplicates), (5, 5));
        let stored = store.events_in_time(at(-1), at(60)).await.expect("scan");
        assert_eq!(stored.len(), 15);
        for event in &stored {
            let n: usize = event.event.id()[3..].parse().expect("number");
            let minute = if n < 10 { 0 } else { 30 };
            assert_eq!(
                event.event.occurred_at().timestamp(),
                at(minute).timestamp(),
                "{n}"
            );
        }
    }

    #[test]
    fn a_batch_of_repeats_only_writes_nothing() {
        let events = crate::conformance::scattered_events("none", 20, 0.05, 1);
        let prepared = PreparedEvents::new(&events).expect("valid ids");
        assert_eq!(batch_of(prepared, &[false; 20]), (Vec::new(), 0));
    }

    #[test]
    fn next_cell_is_the_next_valid_index() {
        let parent = LatLng::new(41.31, 69.25)
            .expect("valid")
            .to_cell(Resolution::Seven);
        for res in [Resolution::Eight, Resolution::Ten] {
            let mut children: Vec<u64> = parent.children(res).map(u64::from).collect();
            children.sort_unstable();
            for pair in children.windows(2) {
                assert_eq!(next_cell(pair[0], u8::from(res)), Some(pair[1]), "{res}");
            }
        }
        // Across a base cell.
        let a = CellIndex::base_cells().nth(5).expect("base cell");
        let b = CellIndex::base_cells().nth(6).expect("base cell");
        let last_child = |c: CellIndex| c.children(Resolution::Two).map(u64::from).max();
        let first_child = |c: CellIndex| c.children(Resolution::Two).map(u64::from).min();
        let last = last_child(a).expect("children");
        assert_eq!(next_cell(last, 2), first_child(b));
    }
}
