//! Reports under the `r` prefix: named documents (a daily report, the
//! per-mahalla figures of one day) stored in parts, so that a document may
//! be larger than one value ([`crate::MAX_VALUE_BYTES`]).
//!
//! | key | value |
//! |---|---|
//! | `r` · kind · `0x00` · key · `0x00` · part (u32 BE) | part 0: version byte 1, part count (u32 BE), then the first bytes; part *n* > 0: the next bytes |
//! | `r` · kind · `0x01` · key | empty: the listing of the documents of a kind |
//!
//! *kind* names a family of documents (e.g. `daily_scopes`) and *key* one
//! document in it (e.g. a date, `2026-05-01`); both are 1..=128 bytes of
//! visible ASCII (0x21..=0x7E), so the `0x00` and `0x01` separators cannot
//! occur in them and keys of a kind list in byte order (dates in date order).
//!
//! A document is written with all its parts and its listing entry in one
//! atomic batch, then parts left over from a longer earlier version are
//! removed. A reader trusts the part count in part 0, so it never mixes two
//! versions and never sees leftovers, even if their removal was interrupted.
//! The bytes are opaque here: their format belongs to the writer.

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::keys::{REPORT, prefix_range};
use crate::store::EventStore;

/// Largest part of a document, in bytes.
pub const MAX_PART_BYTES: usize = 512 * 1024;
/// Longest kind or key, in bytes.
pub const MAX_REPORT_NAME_BYTES: usize = 128;

/// Separator before the key of a part.
const PART: u8 = 0x00;
/// Separator before the key of a listing entry.
const LISTING: u8 = 0x01;
/// Version byte of part 0.
const PARTS_V1: u8 = 1;
/// Bytes of part 0 before its data: version and part count.
const HEAD: usize = 1 + 4;

/// Checks a kind or key: 1..=128 bytes of visible ASCII.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REPORT_NAME_BYTES
        && name.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "invalid report {what} {name:?}: expected 1..={MAX_REPORT_NAME_BYTES} bytes of visible ascii"
        )))
    }
}

/// `r` · kind · `0x00` · key · `0x00`: the prefix of a document's parts.
fn parts_prefix(kind: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + kind.len() + key.len());
    out.push(REPORT);
    out.extend_from_slice(kind.as_bytes());
    out.push(PART);
    out.extend_from_slice(key.as_bytes());
    out.push(PART);
    out
}

/// The key of part `n` of a document.
pub fn report_part_key(kind: &str, key: &str, n: u32) -> Vec<u8> {
    let mut out = parts_prefix(kind, key);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// `r` · kind · `0x01`: the prefix of a kind's listing.
fn listing_prefix(kind: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + kind.len());
    out.push(REPORT);
    out.extend_from_slice(kind.as_bytes());
    out.push(LISTING);
    out
}

/// The listing key of a document.
pub fn report_listing_key(kind: &str, key: &str) -> Vec<u8> {
    let mut out = listing_prefix(kind);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Report documents on any [`EventStore`].
#[async_trait]
pub trait ReportStoreExt: EventStore {
    /// Stores `bytes` as document `key` of `kind`, replacing an earlier
    /// version atomically.
    async fn put_report(&self, kind: &str, key: &str, bytes: &[u8]) -> Result<()> {
        check_name("kind", kind)?;
        check_name("key", key)?;
        let first = bytes.len().min(MAX_PART_BYTES - HEAD);
        let rest = &bytes[first..];
        let parts = 1 + rest.len().div_ceil(MAX_PART_BYTES);
        let count = u32::try_from(parts).map_err(|_| {
            StoreError::invalid(format!("report of {} bytes is too large", bytes.len()))
        })?;
        let mut head = Vec::with_capacity(HEAD + first);
        head.push(PARTS_V1);
        head.extend_from_slice(&count.to_be_bytes());
        head.extend_from_slice(&bytes[..first]);
        let mut batch = Vec::with_capacity(parts + 1);
        batch.push((report_part_key(kind, key, 0), head));
        for (n, chunk) in (1u32..).zip(rest.chunks(MAX_PART_BYTES)) {
            batch.push((report_part_key(kind, key, n), chunk.to_vec()));
        }
        batch.push((report_listing_key(kind, key), Vec::new()));
        self.put_batch(batch).await?;
        // Leftovers of a longer earlier version: unreachable (readers trust
        // the count), removed to free the space.
        let (_, end) = prefix_range(&parts_prefix(kind, key));
        self.delete_range(&report_part_key(kind, key, count), &end)
            .await
    }

    /// The bytes of document `key` of `kind`, if stored.
    async fn get_report(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        check_name("kind", kind)?;
        check_name("key", key)?;
        let Some(head) = self.get(&report_part_key(kind, key, 0)).await? else {
            return Ok(None);
        };
        let (version, rest) = head
            .split_first()
            .ok_or_else(|| StoreError::corrupt("empty report part"))?;
        if *version != PARTS_V1 || rest.len() < 4 {
            return Err(StoreError::corrupt(format!(
                "unknown report part version {version}"
            )));
        }
        let (count, first) = rest.split_at(4);
        let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]);
        let mut out = first.to_vec();
        if count > 1 {
            let wanted = (count - 1) as usize;
            let parts = self
                .scan(
                    &report_part_key(kind, key, 1),
                    &report_part_key(kind, key, count),
                    wanted,
                )
                .await?;
            if parts.len() != wanted {
                return Err(StoreError::corrupt(format!(
                    "report {kind}/{key} has {} of its {count} parts",
                    parts.len() + 1
                )));
            }
            for (_, part) in parts {
                out.extend_from_slice(&part);
            }
        }
        Ok(Some(out))
    }

    /// The keys of the documents of `kind` in `[from, to)`, in byte order
    /// (an empty `to` means no upper bound).
    async fn report_keys(&self, kind: &str, from: &str, to: &str) -> Result<Vec<String>> {
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
                    .map_err(|_| StoreError::corrupt("report key is not utf-8"))?;
                keys.push(name.to_owned());
            }
            match page.last() {
                Some((last, _)) if full => next = crate::keys::successor(last),
                _ => return Ok(keys),
            }
        }
    }

    /// Removes document `key` of `kind` (a no-op when it is not stored).
    async fn delete_report(&self, kind: &str, key: &str) -> Result<()> {
        check_name("kind", kind)?;
        check_name("key", key)?;
        // The listing entry first: a reader listing keys never finds a
        // document whose parts are gone.
        let listing = report_listing_key(kind, key);
        self.delete_range(&listing, &crate::keys::successor(&listing))
            .await?;
        let (start, end) = prefix_range(&parts_prefix(kind, key));
        self.delete_range(&start, &end).await
    }
}

impl<S: EventStore + ?Sized> ReportStoreExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStoreExt, MemoryStore};

    #[tokio::test]
    async fn documents_round_trip_in_parts() {
        let store = MemoryStore::new();
        assert_eq!(
            store.get_report("daily", "2026-05-01").await.expect("get"),
            None
        );
        let big: Vec<u8> = (0..(2 * MAX_PART_BYTES + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        store
            .put_report("daily", "2026-05-02", &big)
            .await
            .expect("put");
        store
            .put_report("daily", "2026-05-01", b"small")
            .await
            .expect("put");
        store
            .put_report("other", "2026-05-01", b"x")
            .await
            .expect("put");
        assert_eq!(
            store.get_report("daily", "2026-05-02").await.expect("get"),
            Some(big.clone())
        );
        assert_eq!(
            store.get_report("daily", "2026-05-01").await.expect("get"),
            Some(b"small".to_vec())
        );
        // An empty document is a document.
        store
            .put_report("daily", "2026-05-03", b"")
            .await
            .expect("put");
        assert_eq!(
            store.get_report("daily", "2026-05-03").await.expect("get"),
            Some(Vec::new())
        );
        assert_eq!(
            store.report_keys("daily", "", "").await.expect("keys"),
            vec!["2026-05-01", "2026-05-02", "2026-05-03"]
        );
        assert_eq!(
            store
                .report_keys("daily", "2026-05-02", "2026-05-03")
                .await
                .expect("keys"),
            vec!["2026-05-02"]
        );
        // A shorter version replaces a longer one and leaves no parts behind.
        let before = store.len();
        store
            .put_report("daily", "2026-05-02", b"short")
            .await
            .expect("put");
        assert_eq!(store.len(), before - 2);
        assert_eq!(
            store.get_report("daily", "2026-05-02").await.expect("get"),
            Some(b"short".to_vec())
        );
        store
            .delete_report("daily", "2026-05-02")
            .await
            .expect("delete");
        assert_eq!(
            store.get_report("daily", "2026-05-02").await.expect("get"),
            None
        );
        assert_eq!(
            store.report_keys("daily", "", "").await.expect("keys"),
            vec!["2026-05-01", "2026-05-03"]
        );
        // Reports are not events.
        assert_eq!(store.count_events().await.expect("count"), 0);
    }

    #[tokio::test]
    async fn bad_names_and_missing_parts_are_errors() {
        let store = MemoryStore::new();
        let err = store
            .put_report("daily", "a b", b"x")
            .await
            .expect_err("space");
        assert!(err.to_string().contains("invalid report key"), "{err}");
        assert!(store.put_report("", "k", b"x").await.is_err());
        let big = vec![7u8; MAX_PART_BYTES * 2];
        store.put_report("daily", "k", &big).await.expect("put");
        let part = report_part_key("daily", "k", 1);
        store
            .delete_range(&part, &crate::keys::successor(&part))
            .await
            .expect("delete");
        let err = store
            .get_report("daily", "k")
            .await
            .expect_err("missing part");
        assert!(err.to_string().contains("has 2 of its 3 parts"), "{err}");
    }
}
