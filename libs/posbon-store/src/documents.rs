//! Documents under the `r` prefix: named values that may be larger than one
//! store value ([`crate::MAX_VALUE_BYTES`]), stored in parts. The reporter's
//! daily reports and facts, the SQL engine's columnar day segments and the
//! escalator's checkpoints are documents.
//!
//! | key | value |
//! |---|---|
//! | `r` · kind · `0x00` · key · `0x00` · `0u32` | the head: version byte 2, generation (u64 BE), part count (u32 BE), length (u64 BE) |
//! | `r` · kind · `0x00` · key · `0x02` · generation (u64 BE) · part (u32 BE) | the parts of that generation, in order |
//! | `r` · kind · `0x01` · key | empty: the listing of the documents of a kind |
//!
//! *kind* names a family of documents (e.g. `daily_scopes`) and *key* one
//! document in it (e.g. a date, `2026-05-01`); both are 1..=128 bytes of
//! visible ASCII (0x21..=0x7E), so the separators cannot occur in them and
//! keys of a kind list in byte order (dates in date order).
//!
//! A document is written in three steps, each finished before the next: its
//! parts under a new generation; then its head and listing entry; then the
//! removal of every other generation. No step needs a write of several keys
//! to be atomic (TiKV's raw batches are not, across requests), so a crash at
//! any point leaves the earlier version or the new one readable, never a mix,
//! and at worst parts of an unreferenced generation until the next write. A
//! reader that finds parts missing (a newer version replaced the head it
//! read and removed its parts) reads the head again.
//!
//! Version 1 (earlier releases: the part count and the first bytes in the
//! head, parts `1..count` at `0x00` · part) is still read, and replaced by
//! the next write. The bytes are opaque here: their format belongs to the
//! writer.

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::keys::{DOCUMENT, prefix_range, successor};
use crate::store::EventStore;

/// Largest part of a document, in bytes.
pub const MAX_PART_BYTES: usize = 512 * 1024;
/// Longest kind or key, in bytes.
pub const MAX_DOCUMENT_NAME_BYTES: usize = 128;

/// Separator before the key of a head (and of version 1 parts).
const PART: u8 = 0x00;
/// Separator before the key of a listing entry.
const LISTING: u8 = 0x01;
/// Separator before the generation of version 2 parts.
const GENERATION: u8 = 0x02;
/// Version byte of a version 1 head (count and first bytes).
const PARTS_V1: u8 = 1;
/// Version byte of a head: generation, count, length.
const HEAD_V2: u8 = 2;
/// Bytes of a version 2 head.
const HEAD_V2_BYTES: usize = 1 + 8 + 4 + 8;
/// Reads of the head before missing parts are an error.
const READ_ATTEMPTS: usize = 5;

/// Checks a kind or key: 1..=128 bytes of visible ASCII.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_DOCUMENT_NAME_BYTES
        && name.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "invalid document {what} {name:?}: expected 1..={MAX_DOCUMENT_NAME_BYTES} bytes of visible ascii"
        )))
    }
}

/// `r` · kind · `0x00` · key: the start of a document's keys (see
/// [`document_range`]).
fn document_prefix(kind: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + kind.len() + key.len());
    out.push(DOCUMENT);
    out.extend_from_slice(kind.as_bytes());
    out.push(PART);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Every key of one document but its listing: `[prefix · 0x00, prefix · 0x03)`
/// (a key that extends another, `2026-05-01` after `2026-05-0`, continues
/// with a visible character, above 0x02, so it is outside).
fn document_range(kind: &str, key: &str) -> (Vec<u8>, Vec<u8>) {
    let prefix = document_prefix(kind, key);
    (
        [&prefix[..], &[PART]].concat(),
        [&prefix[..], &[GENERATION + 1]].concat(),
    )
}

/// The key of a document's head (part 0 of version 1).
pub fn document_head_key(kind: &str, key: &str) -> Vec<u8> {
    document_part_key_v1(kind, key, 0)
}

/// The key of part `n` of a version 1 document.
fn document_part_key_v1(kind: &str, key: &str, n: u32) -> Vec<u8> {
    let mut out = document_prefix(kind, key);
    out.push(PART);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// `r` · kind · `0x00` · key · `0x02` · generation: one generation's parts.
fn generation_prefix(kind: &str, key: &str, generation: u64) -> Vec<u8> {
    let mut out = document_prefix(kind, key);
    out.push(GENERATION);
    out.extend_from_slice(&generation.to_be_bytes());
    out
}

/// The key of part `n` of `generation` of a document.
pub fn document_part_key(kind: &str, key: &str, generation: u64, n: u32) -> Vec<u8> {
    let mut out = generation_prefix(kind, key, generation);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// `r` · kind · `0x01`: the prefix of a kind's listing.
fn listing_prefix(kind: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + kind.len());
    out.push(DOCUMENT);
    out.extend_from_slice(kind.as_bytes());
    out.push(LISTING);
    out
}

/// The listing key of a document.
pub fn document_listing_key(kind: &str, key: &str) -> Vec<u8> {
    let mut out = listing_prefix(kind);
    out.extend_from_slice(key.as_bytes());
    out
}

/// A generation no earlier write of this process used: microseconds since
/// 1970, or one more than the last one given.
fn new_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// What a head says.
enum Head {
    /// Version 1: part count, then the first bytes.
    V1 { count: u32, first: Vec<u8> },
    /// Version 2.
    V2 {
        generation: u64,
        count: u32,
        length: u64,
    },
}

fn parse_head(kind: &str, key: &str, head: &[u8]) -> Result<Head> {
    let corrupt = || StoreError::corrupt(format!("document {kind}/{key} has an unreadable head"));
    let (version, rest) = head.split_first().ok_or_else(corrupt)?;
    let u32_at = |b: &[u8]| -> Result<u32> {
        Ok(u32::from_be_bytes(
            b.get(..4)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        ))
    };
    let u64_at = |b: &[u8]| -> Result<u64> {
        Ok(u64::from_be_bytes(
            b.get(..8)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        ))
    };
    match *version {
        PARTS_V1 => Ok(Head::V1 {
            count: u32_at(rest)?,
            first: rest.get(4..).ok_or_else(corrupt)?.to_vec(),
        }),
        HEAD_V2 if head.len() == HEAD_V2_BYTES => Ok(Head::V2 {
            generation: u64_at(rest)?,
            count: u32_at(&rest[8..])?,
            length: u64_at(&rest[12..])?,
        }),
        other => Err(StoreError::corrupt(format!(
            "document {kind}/{key}: unknown head version {other}"
        ))),
    }
}

/// Documents on any [`EventStore`].
#[async_trait]
pub trait DocumentStoreExt: EventStore {
    /// Stores `bytes` as document `key` of `kind`, replacing an earlier
    /// version (see the [module docs](self) for how a crash leaves it).
    async fn put_document(&self, kind: &str, key: &str, bytes: &[u8]) -> Result<()> {
        check_name("kind", kind)?;
        check_name("key", key)?;
        let count = u32::try_from(bytes.len().div_ceil(MAX_PART_BYTES)).map_err(|_| {
            StoreError::invalid(format!("document of {} bytes is too large", bytes.len()))
        })?;
        let generation = new_generation();
        let parts: Vec<_> = (0u32..)
            .zip(bytes.chunks(MAX_PART_BYTES))
            .map(|(n, chunk)| (document_part_key(kind, key, generation, n), chunk.to_vec()))
            .collect();
        if !parts.is_empty() {
            self.put_batch(parts).await?;
        }
        let mut head = Vec::with_capacity(HEAD_V2_BYTES);
        head.push(HEAD_V2);
        head.extend_from_slice(&generation.to_be_bytes());
        head.extend_from_slice(&count.to_be_bytes());
        head.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        self.put_batch(vec![
            (document_head_key(kind, key), head),
            (document_listing_key(kind, key), Vec::new()),
        ])
        .await?;
        // Everything but the head and this generation: version 1 parts
        // after the head, and other generations before and after this one.
        let head_key = document_head_key(kind, key);
        let (_, all_end) = document_range(kind, key);
        let (this_start, this_end) = prefix_range(&generation_prefix(kind, key, generation));
        self.delete_range(&successor(&head_key), &this_start)
            .await?;
        self.delete_range(&this_end, &all_end).await
    }

    /// The bytes of document `key` of `kind`, if stored.
    async fn get_document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        check_name("kind", kind)?;
        check_name("key", key)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(head) = self.get(&document_head_key(kind, key)).await? else {
                return Ok(None);
            };
            let (start, end, count, mut out) = match parse_head(kind, key, &head)? {
                Head::V1 { count, first } => (
                    document_part_key_v1(kind, key, 1),
                    document_part_key_v1(kind, key, count.max(1)),
                    count.saturating_sub(1),
                    first,
                ),
                Head::V2 {
                    generation,
                    count,
                    length,
                } => (
                    document_part_key(kind, key, generation, 0),
                    document_part_key(kind, key, generation, count),
                    count,
                    Vec::with_capacity(usize::try_from(length).unwrap_or(0)),
                ),
            };
            let wanted = count as usize;
            let parts = if wanted == 0 {
                Vec::new()
            } else {
                self.scan(&start, &end, wanted).await?
            };
            if parts.len() != wanted {
                if attempt < READ_ATTEMPTS {
                    // Replaced while read: read the new head.
                    continue;
                }
                return Err(StoreError::corrupt(format!(
                    "document {kind}/{key} has {} of its {wanted} parts",
                    parts.len()
                )));
            }
            for (_, part) in parts {
                out.extend_from_slice(&part);
            }
            if let Head::V2 { length, .. } = parse_head(kind, key, &head)?
                && out.len() as u64 != length
            {
                return Err(StoreError::corrupt(format!(
                    "document {kind}/{key} has {} bytes, its head says {length}",
                    out.len()
                )));
            }
            return Ok(Some(out));
        }
    }

    /// The keys of the documents of `kind` in `[from, to)`, in byte order
    /// (an empty `to` means no upper bound).
    async fn document_keys(&self, kind: &str, from: &str, to: &str) -> Result<Vec<String>> {
        check_name("kind", kind)?;
        let prefix = listing_prefix(kind);
        let (start, end) = prefix_range(&prefix);
        let start = [&start[..], from.as_bytes()].concat();
        let end = if to.is_empty() {
            end
        } else {
            [&prefix[..], to.as_bytes()].concat()
        };
        let mut keys = Vec::new();
        let mut next = start;
        loop {
            let page = self.scan(&next, &end, 1024).await?;
            let full = page.len() == 1024;
            for (key, _) in &page {
                let name = std::str::from_utf8(&key[prefix.len()..])
                    .map_err(|_| StoreError::corrupt("document key is not utf-8"))?;
                keys.push(name.to_owned());
            }
            match page.last() {
                Some((last, _)) if full => next = successor(last),
                _ => return Ok(keys),
            }
        }
    }

    /// Removes document `key` of `kind` (a no-op when it is not stored).
    async fn delete_document(&self, kind: &str, key: &str) -> Result<()> {
        check_name("kind", kind)?;
        check_name("key", key)?;
        // The listing entry first: a reader listing keys never finds a
        // document whose parts are gone.
        let listing = document_listing_key(kind, key);
        self.delete_range(&listing, &successor(&listing)).await?;
        let (start, end) = document_range(kind, key);
        self.delete_range(&start, &end).await
    }
}

impl<S: EventStore + ?Sized> DocumentStoreExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStoreExt, MemoryStore};

    #[tokio::test]
    async fn documents_round_trip_in_parts() {
        let store = MemoryStore::new();
        assert_eq!(
            store
                .get_document("daily", "2026-05-01")
                .await
                .expect("get"),
            None
        );
        let big: Vec<u8> = (0..(2 * MAX_PART_BYTES + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        store
            .put_document("daily", "2026-05-02", &big)
            .await
            .expect("put");
        store
            .put_document("daily", "2026-05-01", b"small")
            .await
            .expect("put");
        store
            .put_document("other", "2026-05-01", b"x")
            .await
            .expect("put");
        assert_eq!(
            store
                .get_document("daily", "2026-05-02")
                .await
                .expect("get"),
            Some(big.clone())
        );
        assert_eq!(
            store
                .get_document("daily", "2026-05-01")
                .await
                .expect("get"),
            Some(b"small".to_vec())
        );
        // An empty document is a document.
        store
            .put_document("daily", "2026-05-03", b"")
            .await
            .expect("put");
        assert_eq!(
            store
                .get_document("daily", "2026-05-03")
                .await
                .expect("get"),
            Some(Vec::new())
        );
        assert_eq!(
            store.document_keys("daily", "", "").await.expect("keys"),
            vec!["2026-05-01", "2026-05-02", "2026-05-03"]
        );
        assert_eq!(
            store
                .document_keys("daily", "2026-05-02", "2026-05-03")
                .await
                .expect("keys"),
            vec!["2026-05-02"]
        );
        // A shorter version replaces a longer one and leaves no parts behind.
        let before = store.len();
        store
            .put_document("daily", "2026-05-02", b"short")
            .await
            .expect("put");
        assert_eq!(store.len(), before - 2);
        assert_eq!(
            store
                .get_document("daily", "2026-05-02")
                .await
                .expect("get"),
            Some(b"short".to_vec())
        );
        store
            .delete_document("daily", "2026-05-02")
            .await
            .expect("delete");
        assert_eq!(
            store
                .get_document("daily", "2026-05-02")
                .await
                .expect("get"),
            None
        );
        assert_eq!(
            store.document_keys("daily", "", "").await.expect("keys"),
            vec!["2026-05-01", "2026-05-03"]
        );
        // Documents are not events.
        assert_eq!(store.count_events().await.expect("count"), 0);
    }

    /// Writing or deleting a document leaves one whose key extends its key alone.
    #[tokio::test]
    async fn a_longer_key_is_another_document() {
        let store = MemoryStore::new();
        store
            .put_document("k", "2026-05-01", b"long")
            .await
            .expect("put");
        store
            .put_document("k", "2026-05-0", b"short")
            .await
            .expect("put");
        store
            .put_document("k", "2026-05-0", b"again")
            .await
            .expect("put");
        store
            .delete_document("k", "2026-05-0")
            .await
            .expect("delete");
        assert_eq!(
            store.get_document("k", "2026-05-01").await.expect("get"),
            Some(b"long".to_vec())
        );
    }

    /// A write cut after its parts (a crash; on TiKV also a batch cut
    /// between requests) leaves the earlier version readable; the next write
    /// removes the orphaned parts.
    #[tokio::test]
    async fn a_cut_write_leaves_the_earlier_version() {
        let store = MemoryStore::new();
        let first = vec![1u8; MAX_PART_BYTES + 5];
        store.put_document("k", "d", &first).await.expect("put");
        // The parts of a newer version, and no head for them.
        store
            .put_batch(vec![
                (document_part_key("k", "d", u64::MAX - 1, 0), vec![9u8; 10]),
                (document_part_key("k", "d", u64::MAX - 1, 1), vec![9u8; 10]),
            ])
            .await
            .expect("orphans");
        assert_eq!(
            store.get_document("k", "d").await.expect("get"),
            Some(first)
        );
        store.put_document("k", "d", b"second").await.expect("put");
        assert_eq!(
            store.get_document("k", "d").await.expect("get"),
            Some(b"second".to_vec())
        );
        // Head, one part, listing: the orphans are gone.
        assert_eq!(store.len(), 3);
    }

    /// Documents written by earlier releases (version 1) are read, and the
    /// next write replaces them whole.
    #[tokio::test]
    async fn version_1_documents_are_read_and_replaced() {
        let store = MemoryStore::new();
        let mut head = vec![PARTS_V1];
        head.extend_from_slice(&2u32.to_be_bytes());
        head.extend_from_slice(b"hello ");
        store
            .put_batch(vec![
                (document_part_key_v1("daily", "k", 0), head),
                (document_part_key_v1("daily", "k", 1), b"world".to_vec()),
                (document_listing_key("daily", "k"), Vec::new()),
            ])
            .await
            .expect("v1");
        assert_eq!(
            store.get_document("daily", "k").await.expect("get"),
            Some(b"hello world".to_vec())
        );
        store.put_document("daily", "k", b"new").await.expect("put");
        assert_eq!(
            store.get_document("daily", "k").await.expect("get"),
            Some(b"new".to_vec())
        );
        assert_eq!(store.len(), 3, "no version 1 part is left");
    }

    #[tokio::test]
    async fn bad_names_and_missing_parts_are_errors() {
        let store = MemoryStore::new();
        let err = store
            .put_document("daily", "a b", b"x")
            .await
            .expect_err("space");
        assert!(err.to_string().contains("invalid document key"), "{err}");
        assert!(store.put_document("", "k", b"x").await.is_err());
        let big = vec![7u8; MAX_PART_BYTES * 2 + 1];
        store.put_document("daily", "k", &big).await.expect("put");
        // Remove the middle part behind the layer's back.
        let (start, end) = document_range("daily", "k");
        let keys: Vec<Vec<u8>> = store
            .scan(&start, &end, 10)
            .await
            .expect("scan")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys.len(), 4, "head and three parts");
        store
            .delete_range(&keys[2], &successor(&keys[2]))
            .await
            .expect("delete");
        let err = store
            .get_document("daily", "k")
            .await
            .expect_err("missing part");
        assert!(err.to_string().contains("has 2 of its 3 parts"), "{err}");
    }
}
