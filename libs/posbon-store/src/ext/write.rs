//! Event writes: [`PreparedEvents`] made ahead of the write, their ids
//! checked ([`CheckedEvents`]), the batch of entries that stores them, and
//! the write-mark token.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::mem::take;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use posbon_model::{EnrichedEvent, is_valid_id};

use crate::codec::encode_event;
use crate::error::{Result, StoreError};
use crate::keys::{event_cell_key, event_id_key, event_time_key, hour_of, micros, write_mark_key};
use crate::store::KvPair;

/// Events made ready for
/// [`EventStoreExt::put_prepared`](super::EventStoreExt::put_prepared): ids
/// checked, repeats within the batch set aside, keys and records built, and
/// the keys put in order. Making them is computation only, so a writer can have the
/// next batch prepared while it writes the last ([`PreparedEvents::new`]).
#[derive(Debug, Default)]
pub struct PreparedEvents {
    pub(super) events: Vec<PreparedEvent>,
    /// Events that repeated the id of an earlier one in the batch.
    pub(super) repeats: usize,
    /// Positions in `events` in the order of their cell keys, id keys and
    /// time keys. The batch is written in key order, so
    /// [`normalize_batch`](crate::normalize_batch) finds nothing to sort in
    /// the writer's turn.
    by_cell: Vec<usize>,
    by_id: Vec<usize>,
    by_time: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct PreparedEvent {
    pub(super) id_key: Vec<u8>,
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
/// ([`EventStoreExt::check_prepared`](super::EventStoreExt::check_prepared)),
/// ready for [`EventStoreExt::put_checked`](super::EventStoreExt::put_checked).
#[derive(Debug)]
pub struct CheckedEvents {
    pub(super) prepared: PreparedEvents,
    /// For each prepared event: its id was not stored at the check.
    pub(super) fresh: Vec<bool>,
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
pub(super) fn batch_of(prepared: PreparedEvents, fresh: &[bool]) -> (Vec<KvPair>, usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::EventStoreExt;
    use chrono::{DateTime, Utc};
    use posbon_geo::{LatLng, Resolution};

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
}
