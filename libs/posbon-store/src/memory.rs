//! [`MemoryStore`]: a `BTreeMap` behind a lock, for tests and the
//! single-process mode.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use crate::error::Result;
use crate::store::{EventStore, KvPair, Swap, check_entry, check_key, normalize_batch};

/// An in-memory [`EventStore`]: a `BTreeMap` behind a read-write lock.
///
/// Nothing survives the process ("durable" means visible to every later
/// call). Operations run on the calling task: they are in-memory and short,
/// except a scan with a large `limit`, whose cost is the copy of its page.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic while the lock is held cannot leave the map half-changed (every
    // change is one `insert`/`remove` sequence that does not panic), so a
    // poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn put_batch(&self, entries: Vec<KvPair>) -> Result<()> {
        let entries = normalize_batch(entries)?;
        let mut map = self.write();
        for (key, value) in entries {
            map.insert(key, value);
        }
        Ok(())
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.read().get(key).cloned())
    }

    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        for key in &keys {
            check_key(key)?;
        }
        let map = self.read();
        Ok(keys.iter().map(|k| map.get(k).cloned()).collect())
    }

    async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let map = self.read();
        Ok(map
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<Swap> {
        check_entry(key, &new)?;
        let mut map = self.write();
        let current = map.get(key);
        if current.map(Vec::as_slice) != expected {
            return Ok(Swap::Conflict(current.cloned()));
        }
        map.insert(key.to_vec(), new);
        Ok(Swap::Done)
    }

    async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let mut map = self.write();
        // Key by key: `split_off` and `append` would rebuild the whole map
        // (every key compared and moved) for each deletion, however small.
        let doomed: Vec<Vec<u8>> = map
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            map.remove(&key);
        }
        Ok(())
    }
}
