//! The [`EventStore`] trait: the few operations every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Result, StoreError};

/// Longest key a store accepts, in bytes (TiKV's default limit is 8 KiB).
pub const MAX_KEY_BYTES: usize = 4096;
/// Largest value a store accepts, in bytes. Event records are far smaller.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A shared handle to any backend.
pub type Store = Arc<dyn EventStore>;

/// What [`EventStore::compare_and_swap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The key held the expected value and now holds the new one.
    Done,
    /// The key held something else (`None`: nothing), which it still holds.
    Conflict(Option<Vec<u8>>),
}

/// An ordered key-value store of byte strings: the few operations a backend
/// implements. Everything else (paging streams, event records, indexes) is
/// built on top in [`EventStoreExt`](crate::EventStoreExt), the same for
/// every backend, and [`crate::conformance`] checks that a backend behaves
/// as documented here.
///
/// Keys are compared as unsigned bytes. A key is 1..=[`MAX_KEY_BYTES`]
/// bytes, a value 0..=[`MAX_VALUE_BYTES`]. Ranges are half-open,
/// `[start, end)`; a range with `start >= end` is empty (an empty `end` too:
/// no key sorts before it).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// A short name of the backend, e.g. `memory` or `embedded`, for logs and
    /// metrics.
    fn name(&self) -> &str;

    /// Writes every entry, overwriting existing keys, atomically (all or
    /// nothing) and durably: when it returns `Ok` the batch survives a crash
    /// or power loss. When a key appears twice in one batch, the last value
    /// wins. An empty batch is a no-op. Invalid keys or values fail the whole
    /// batch with [`StoreErrorKind::InvalidRequest`](crate::StoreErrorKind::InvalidRequest)
    /// before anything is written.
    async fn put_batch(&self, entries: Vec<KvPair>) -> Result<()>;

    /// The value of `key`, if any.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The values of many keys, in the order asked. The default asks one at
    /// a time; backends with a batch read override it.
    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in &keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// One page of the range `[start, end)` in key order: the first
    /// `min(limit, n)` of its `n` entries. A page shorter than `limit` means
    /// the range is exhausted, so a backend whose engine returns short pages
    /// must keep reading. `limit == 0` returns nothing.
    async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KvPair>>;

    /// Writes `new` at `key`, durably, only when the key holds `expected`
    /// (`None`: when it does not exist); otherwise writes nothing and answers
    /// what it holds. Atomic against every other `compare_and_swap` of the
    /// key, in every process using the store: the way several writers of one
    /// record (API replicas) keep each other's changes. Every writer of such
    /// a key must write it this way; a plain [`put_batch`](Self::put_batch)
    /// of it may be lost to a concurrent swap. A swap is not retried inside a
    /// backend: one whose answer was lost fails with an error although it may
    /// have written, and the caller reads again (a value it finds equal to
    /// its own `new`, when values are unique, is its own write).
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<Swap>;

    /// Up to `limit` entries of each of `ranges` (each `[start, end)`, in key
    /// order, not overlapping), one list per range in key order; a list of
    /// `limit` entries may leave more in its range. The default reads the
    /// ranges one after another.
    async fn scan_ranges(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        limit: usize,
    ) -> Result<Vec<Vec<KvPair>>> {
        let mut out = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            out.push(self.scan(start, end, limit).await?);
        }
        Ok(out)
    }

    /// Whether [`scan_ranges`](Self::scan_ranges) reads many ranges per
    /// request, so that readers of many small ranges (the storage cells of a
    /// coarse cell) should ask for them together rather than skip-scan one
    /// long range. `false` by default.
    fn batches_ranges(&self) -> bool {
        false
    }

    /// Removes every key in `[start, end)`, durably. Idempotent; not
    /// necessarily atomic (a large range may be removed in several steps, and
    /// a failure can leave part of it).
    async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()>;

    /// Removes each of `keys`, durably; not atomic as a whole. The default
    /// removes each as the one-key range it is; backends with a batch delete
    /// override it.
    async fn delete_keys(&self, keys: Vec<Vec<u8>>) -> Result<()> {
        for key in &keys {
            check_key(key)?;
            self.delete_range(key, &crate::keys::successor(key)).await?;
        }
        Ok(())
    }
}

/// Checks one key against the limits of every backend.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::invalid("empty key"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::invalid(format!(
            "key of {} bytes is longer than {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks one key and its value against the limits of every backend.
pub fn check_entry(key: &[u8], value: &[u8]) -> Result<()> {
    check_key(key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::invalid(format!(
            "value of {} bytes is larger than {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a batch and makes it canonical: every key and value within the
/// limits, one entry per key (the last one given), in key order. Backends
/// call it first in [`EventStore::put_batch`].
pub fn normalize_batch(mut entries: Vec<KvPair>) -> Result<Vec<KvPair>> {
    for (key, value) in &entries {
        check_entry(key, value)?;
    }
    // A batch already in strictly increasing key order is canonical (the
    // event writes of `EventStoreExt` come so): one pass instead of a sort.
    if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return Ok(entries);
    }
    // Reversed then stably sorted, equal keys keep the last given first.
    entries.reverse();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|later, first| later.0 == first.0);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(k: &[u8], v: &[u8]) -> KvPair {
        (k.to_vec(), v.to_vec())
    }

    #[test]
    fn an_ordered_batch_is_kept_as_it_is() {
        let batch = vec![kv(b"a", b"1"), kv(b"b", b"2"), kv(b"c", b"3")];
        assert_eq!(normalize_batch(batch.clone()).expect("valid"), batch);
    }

    #[test]
    fn repeated_keys_keep_the_last_value_even_in_order() {
        let batch = vec![kv(b"a", b"1"), kv(b"a", b"2"), kv(b"b", b"3")];
        assert_eq!(
            normalize_batch(batch).expect("valid"),
            vec![kv(b"a", b"2"), kv(b"b", b"3")]
        );
    }

    #[test]
    fn an_ordered_batch_is_still_checked() {
        let batch = vec![kv(b"a", b"1"), kv(b"", b"2")];
        assert!(normalize_batch(batch).is_err(), "empty key");
    }

    proptest! {
        /// Whatever the order and repeats, the result is the map of the
        /// batch (the last value of each key wins) in key order.
        #[test]
        fn normalizing_gives_the_last_value_of_each_key_in_order(
            batch in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 1..4), proptest::collection::vec(any::<u8>(), 0..3)),
                0..40,
            ),
            sorted in any::<bool>(),
        ) {
            let mut batch = batch;
            if sorted {
                batch.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let expected: Vec<KvPair> = batch
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            prop_assert_eq!(normalize_batch(batch).expect("valid"), expected);
        }
    }
}
