//! [`copy`]: every key of one store into another (e.g. embedded → TiKV), what
//! `posbon store copy` runs. Both backends share the key layout, so the copy
//! is byte for byte.

use std::time::{Duration, Instant};

use futures::TryStreamExt;

use crate::error::Result;
use crate::ext::EventStoreExt;
use crate::store::{EventStore, KvPair, MAX_KEY_BYTES};

/// Options of [`copy_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Entries read per scan of the source.
    pub page: usize,
    /// Bytes of keys and values per write to the target: a batch is written
    /// when it reaches this size (or the source ends).
    pub batch_bytes: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            page: 1000,
            batch_bytes: 4 << 20,
        }
    }
}

/// Where a running copy is, given to the progress callback after each
/// written batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyProgress {
    /// Entries written so far.
    pub keys: u64,
    /// Bytes of keys and values written so far.
    pub bytes: u64,
    /// The last key written: a copy that failed can be checked up to here.
    pub last_key: Vec<u8>,
}

/// What a finished [`copy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySummary {
    /// Entries copied.
    pub keys: u64,
    /// Bytes of keys and values copied.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// The first possible key: every key is at least one byte.
const FIRST_KEY: [u8; 1] = [0];

/// A bound above every valid key: longer than the longest key, all `0xFF`.
fn key_space_end() -> Vec<u8> {
    vec![0xFF; MAX_KEY_BYTES + 1]
}

/// Copies every entry of `from` (every prefix: events, indexes,
/// checkpoints, escalations, reports) into `to`, with default
/// [`CopyOptions`]; see [`copy_with`].
pub async fn copy(
    from: &dyn EventStore,
    to: &dyn EventStore,
    progress: impl FnMut(&CopyProgress) + Send,
) -> Result<CopySummary> {
    copy_with(from, to, CopyOptions::default(), progress).await
}

/// Copies every entry of `from` into `to` in key order, overwriting keys
/// that exist in `to` and leaving other keys of `to` alone.
///
/// The source is read one page at a time while the previous batch is being
/// written, so memory stays at about two batches however large the store.
/// Each batch is one [`EventStore::put_batch`]: durable when `progress` sees
/// it. The copy is idempotent: after a failure, run it again (it rewrites the
/// same bytes). It is not a snapshot: entries written to `from` during the
/// copy may or may not be copied, so stop the writers first.
pub async fn copy_with(
    from: &dyn EventStore,
    to: &dyn EventStore,
    options: CopyOptions,
    mut progress: impl FnMut(&CopyProgress) + Send,
) -> Result<CopySummary> {
    let started = Instant::now();
    let batch_bytes = options.batch_bytes.max(1);
    let mut source = from.scan_stream(FIRST_KEY.to_vec(), key_space_end(), options.page.max(1));
    let mut state = CopyProgress {
        keys: 0,
        bytes: 0,
        last_key: Vec::new(),
    };
    // The next batch is read while the current one is written.
    let mut current = next_batch(&mut source, batch_bytes).await?;
    while !current.is_empty() {
        let (n, bytes) = (current.len() as u64, size(&current));
        let last_key = current.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let (written, next) =
            futures::join!(to.put_batch(current), next_batch(&mut source, batch_bytes));
        written?;
        state.keys += n;
        state.bytes += bytes;
        state.last_key = last_key;
        progress(&state);
        current = next?;
    }
    Ok(CopySummary {
        keys: state.keys,
        bytes: state.bytes,
        elapsed: started.elapsed(),
    })
}

fn size(batch: &[KvPair]) -> u64 {
    batch.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// Entries from `source` until they reach `batch_bytes` or it ends.
async fn next_batch(
    source: &mut (impl futures::Stream<Item = Result<KvPair>> + Unpin),
    batch_bytes: usize,
) -> Result<Vec<KvPair>> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while bytes < batch_bytes {
        match source.try_next().await? {
            Some((key, value)) => {
                bytes += key.len() + value.len();
                batch.push((key, value));
            }
            None => break,
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn copies_every_key_in_batches() {
        let from = MemoryStore::new();
        let mut entries: Vec<KvPair> = (0..5000u32)
            .map(|i| {
                let prefix = [b'c', b'e', b'i', b't', b'x', b'r', b'z'][i as usize % 7];
                ([&[prefix][..], &i.to_be_bytes()].concat(), vec![7; 100])
            })
            .collect();
        entries.push((vec![0], b"lowest".to_vec()));
        entries.push((vec![0xFF; MAX_KEY_BYTES], b"highest".to_vec()));
        from.put_batch(entries.clone()).await.expect("put");
        let to = MemoryStore::new();
        to.put_batch(vec![(b"c-kept".to_vec(), b"1".to_vec())])
            .await
            .expect("put");
        let mut calls = Vec::new();
        let options = CopyOptions {
            page: 333,
            batch_bytes: 64 << 10,
        };
        let summary = copy_with(&from, &to, options, |p| calls.push(p.clone()))
            .await
            .expect("copy");
        assert_eq!(summary.keys, 5002);
        assert!(calls.len() > 5, "{} batches", calls.len());
        assert!(calls.windows(2).all(|w| w[0].last_key < w[1].last_key));
        assert_eq!(calls.last().map(|p| p.keys), Some(5002));
        let mut expected = all(&from).await.expect("scan");
        expected.push((b"c-kept".to_vec(), b"1".to_vec()));
        expected.sort();
        assert_eq!(all(&to).await.expect("scan"), expected);
        // Again: idempotent.
        let again = copy(&from, &to, |_| {}).await.expect("copy");
        assert_eq!(again.keys, 5002);
        assert_eq!(all(&to).await.expect("scan").len(), 5003);
    }

    async fn all(store: &MemoryStore) -> Result<Vec<KvPair>> {
        store
            .scan_stream(FIRST_KEY.to_vec(), key_space_end(), 1000)
            .try_collect()
            .await
    }
}
