//! [`EmbeddedStore`]: the default backend, an embedded LSM-tree (fjall) in
//! one directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::{Result, StoreError, StoreErrorKind};
use crate::keys::successor;
use crate::store::{EventStore, KvPair, Swap, check_entry, check_key, normalize_batch};

/// Name of the fjall keyspace that holds every key.
const KEYSPACE: &str = "posbon";

/// Reads of at most this many records run on the calling task rather than
/// the blocking pool (see [`EmbeddedStore`]).
pub const INLINE_RECORDS: usize = 64;

/// Keys removed per write batch by [`EventStore::delete_range`].
const DELETE_CHUNK: usize = 10_000;

/// The embedded backend: one fjall database (an LSM-tree with a write-ahead
/// journal) in a directory, one keyspace for every prefix.
///
/// Every [`put_batch`](EventStore::put_batch) is one fjall write batch
/// committed with `PersistMode::SyncAll`: the journal is fsynced before it
/// returns.
///
/// Engine calls block. Writes (an fsync takes milliseconds), range deletes,
/// scans of more than [`INLINE_RECORDS`] records and `get_many` of more keys
/// run on tokio's blocking pool through `spawn_blocking`. Point reads and
/// small scans run on the calling task: from the block cache they take
/// about 13 µs plus 1 µs per record (measured on a store of 200,000 events),
/// while a `spawn_blocking` hand-off costs about 50 µs on a busy two-core
/// machine, so pooling them would make the cell scans of
/// [`EventStoreExt`](crate::EventStoreExt), which issue many small reads,
/// several times slower. Outside a tokio runtime every call runs on the
/// calling thread.
///
/// Only one process can open a directory at a time.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: Database,
    keys: Keyspace,
    /// Held across the read and the write of a compare-and-swap (one process
    /// opens a directory, so a lock in it serialises every swap).
    swaps: std::sync::Mutex<()>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store in directory `path`, creating it when missing and
    /// recovering the journal after a crash. Blocks: call it at start-up or
    /// from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder(&path).open().map_err(engine_error)?;
        let keys = db
            .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(engine_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                db,
                keys,
                swaps: std::sync::Mutex::new(()),
            }),
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes the store takes on disk (tables and journal). Blocks.
    pub fn disk_space(&self) -> Result<u64> {
        self.inner.db.disk_space().map_err(engine_error)
    }

    /// Runs a blocking engine call on tokio's blocking pool, or on the
    /// calling thread when `inline` or when there is no tokio runtime.
    async fn run<T, F>(&self, inline: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !inline => runtime,
            _ => return f(&self.inner),
        };
        let inner = Arc::clone(&self.inner);
        runtime
            .spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| {
                if e.is_cancelled() {
                    StoreError::new(StoreErrorKind::Unavailable, "runtime is shutting down")
                } else {
                    StoreError::new(StoreErrorKind::Fatal, "store task panicked")
                }
            })?
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    fn name(&self) -> &str {
        "embedded"
    }

    async fn put_batch(&self, entries: Vec<KvPair>) -> Result<()> {
        let entries = normalize_batch(entries)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.run(false, move |inner| {
            let mut batch = fjall::OwnedWriteBatch::with_capacity(inner.db.clone(), entries.len())
                .durability(Some(PersistMode::SyncAll));
            for (key, value) in entries {
                batch.insert(&inner.keys, key, value);
            }
            batch.commit().map_err(engine_error)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<Swap> {
        check_entry(key, &new)?;
        let (key, expected) = (key.to_vec(), expected.map(<[u8]>::to_vec));
        self.run(false, move |inner| {
            // A panic under the lock leaves nothing half-written: the write
            // is one batch.
            let _swap = inner.swaps.lock().unwrap_or_else(|e| e.into_inner());
            let current = inner.keys.get(&key).map_err(engine_error)?;
            if current.as_deref() != expected.as_deref() {
                return Ok(Swap::Conflict(current.map(|v| v.to_vec())));
            }
            let mut batch = fjall::OwnedWriteBatch::with_capacity(inner.db.clone(), 1)
                .durability(Some(PersistMode::SyncAll));
            batch.insert(&inner.keys, key, new);
            batch.commit().map_err(engine_error)?;
            Ok(Swap::Done)
        })
        .await
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let key = key.to_vec();
        self.run(true, move |inner| {
            let value = inner.keys.get(&key).map_err(engine_error)?;
            Ok(value.map(|v| v.to_vec()))
        })
        .await
    }

    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        for key in &keys {
            check_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(keys.len() <= INLINE_RECORDS, move |inner| {
            keys.iter()
                .map(|key| {
                    let value = inner.keys.get(key).map_err(engine_error)?;
                    Ok(value.map(|v| v.to_vec()))
                })
                .collect()
        })
        .await
    }

    async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let (start, end) = (start.to_vec(), end.to_vec());
        self.run(limit <= INLINE_RECORDS, move |inner| {
            let mut out = Vec::with_capacity(limit.min(1024));
            for guard in inner.keys.range(start..end).take(limit) {
                let (key, value) = guard.into_inner().map_err(engine_error)?;
                out.push((key.to_vec(), value.to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let (mut start, end) = (start.to_vec(), end.to_vec());
        self.run(false, move |inner| {
            loop {
                let mut keys = Vec::with_capacity(DELETE_CHUNK.min(1024));
                for guard in inner
                    .keys
                    .range(start.clone()..end.clone())
                    .take(DELETE_CHUNK)
                {
                    keys.push(guard.key().map_err(engine_error)?);
                }
                let Some(last) = keys.last() else {
                    return Ok(());
                };
                let next = successor(last);
                let full = keys.len() == DELETE_CHUNK;
                let mut batch = inner.db.batch().durability(Some(PersistMode::SyncAll));
                for key in keys {
                    batch.remove(&inner.keys, key);
                }
                batch.commit().map_err(engine_error)?;
                if !full {
                    return Ok(());
                }
                start = next;
            }
        })
        .await
    }
}

/// Maps a fjall error to a [`StoreError`] kind.
fn engine_error(e: fjall::Error) -> StoreError {
    let kind = match &e {
        fjall::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            StoreErrorKind::Timeout
        }
        fjall::Error::Io(_) => StoreErrorKind::Io,
        fjall::Error::Storage(inner) => storage_kind(inner),
        fjall::Error::JournalRecovery(_)
        | fjall::Error::InvalidVersion(_)
        | fjall::Error::Decompress(_)
        | fjall::Error::InvalidTrailer
        | fjall::Error::InvalidTag(_) => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Fatal,
    };
    StoreError::with_source(kind, "embedded engine failed", e)
}

/// The kind of an error inside fjall's LSM-tree.
fn storage_kind(e: &fjall::LsmError) -> StoreErrorKind {
    match e {
        fjall::LsmError::Io(_) => StoreErrorKind::Io,
        _ => StoreErrorKind::Corrupt,
    }
}
