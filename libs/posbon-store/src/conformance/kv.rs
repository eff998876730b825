//! The raw key-value tests of the suite: puts, gets, batches,
//! compare-and-swap, scans and range deletes, under `z/<test>/` keys.

use futures::TryStreamExt;

use super::clear;
use crate::error::StoreErrorKind;
use crate::ext::EventStoreExt;
use crate::keys::{prefix_range, successor};
use crate::store::{EventStore, KvPair, MAX_KEY_BYTES, MAX_VALUE_BYTES, Swap};

/// `z/<test>/<suffix>`: a key in the test's own namespace.
fn key(test: &str, suffix: &[u8]) -> Vec<u8> {
    [b"z/", test.as_bytes(), b"/", suffix].concat()
}

/// Every entry under `z/<test>/`.
async fn all_of(store: &dyn EventStore, test: &str) -> Vec<KvPair> {
    let (start, end) = prefix_range(&key(test, b""));
    store
        .scan_stream(start, end, 100)
        .try_collect()
        .await
        .expect("scan")
}

fn kv(k: Vec<u8>, v: &[u8]) -> KvPair {
    (k, v.to_vec())
}

/// Put then get, missing keys, and an empty value.
pub async fn test_put_get(store: &dyn EventStore) {
    let name = store.name();
    store
        .put_batch(vec![
            kv(key("put_get", b"a"), b"1"),
            kv(key("put_get", b"b"), b"2"),
            kv(key("put_get", b"empty"), b""),
        ])
        .await
        .expect("put");
    let get = |k: &'static [u8]| async move { store.get(&key("put_get", k)).await.expect("get") };
    assert_eq!(get(b"a").await, Some(b"1".to_vec()), "{name}: get a");
    assert_eq!(get(b"b").await, Some(b"2".to_vec()), "{name}: get b");
    assert_eq!(get(b"empty").await, Some(Vec::new()), "{name}: empty value");
    assert_eq!(get(b"c").await, None, "{name}: missing key");
    assert_eq!(get(b"").await, None, "{name}: the namespace itself");
    store.put_batch(Vec::new()).await.expect("empty batch");
}

/// A second put of a key replaces its value.
pub async fn test_overwrite(store: &dyn EventStore) {
    let k = key("overwrite", b"k");
    for value in [&b"first"[..], b"second", b""] {
        store
            .put_batch(vec![kv(k.clone(), value)])
            .await
            .expect("put");
        assert_eq!(
            store.get(&k).await.expect("get"),
            Some(value.to_vec()),
            "{}: overwrite",
            store.name()
        );
    }
    assert_eq!(all_of(store, "overwrite").await.len(), 1);
}

/// A key given twice in one batch keeps the last value.
pub async fn test_batch_last_wins(store: &dyn EventStore) {
    let k = key("last_wins", b"k");
    store
        .put_batch(vec![
            kv(k.clone(), b"1"),
            kv(key("last_wins", b"other"), b"x"),
            kv(k.clone(), b"2"),
        ])
        .await
        .expect("put");
    assert_eq!(
        store.get(&k).await.expect("get"),
        Some(b"2".to_vec()),
        "{}: last value in a batch wins",
        store.name()
    );
    assert_eq!(all_of(store, "last_wins").await.len(), 2);
}

/// Compare-and-swap: creates only what is absent, replaces only what it
/// expects, answers what is there on a conflict, refuses invalid entries, and
/// concurrent read-modify-write loops lose no update.
pub async fn test_compare_and_swap(store: &dyn EventStore) {
    let name = store.name();
    let k = key("cas", b"k");
    let swap = |expected: Option<&'static [u8]>, new: &'static [u8]| {
        let k = k.clone();
        async move {
            store
                .compare_and_swap(&k, expected, new.to_vec())
                .await
                .expect("compare and swap")
        }
    };
    assert_eq!(swap(None, b"1").await, Swap::Done, "{name}: create");
    assert_eq!(
        swap(None, b"2").await,
        Swap::Conflict(Some(b"1".to_vec())),
        "{name}: create over an existing key"
    );
    assert_eq!(
        swap(Some(b"0"), b"2").await,
        Swap::Conflict(Some(b"1".to_vec())),
        "{name}: a stale expectation"
    );
    assert_eq!(store.get(&k).await.expect("get"), Some(b"1".to_vec()));
    assert_eq!(swap(Some(b"1"), b"2").await, Swap::Done, "{name}: replace");
    assert_eq!(
        swap(Some(b"2"), b"").await,
        Swap::Done,
        "{name}: empty value"
    );
    assert_eq!(store.get(&k).await.expect("get"), Some(Vec::new()));
    let missing = key("cas", b"missing");
    assert_eq!(
        store
            .compare_and_swap(&missing, Some(b"x"), b"y".to_vec())
            .await
            .expect("swap"),
        Swap::Conflict(None),
        "{name}: expecting a value where there is none"
    );
    assert_eq!(store.get(&missing).await.expect("get"), None);
    for (bad_key, value) in [
        (Vec::new(), Vec::new()),
        (vec![b'z'; MAX_KEY_BYTES + 1], Vec::new()),
        (key("cas", b"big"), vec![0u8; MAX_VALUE_BYTES + 1]),
    ] {
        let err = store
            .compare_and_swap(&bad_key, None, value)
            .await
            .expect_err("an invalid entry is refused");
        assert_eq!(err.kind(), StoreErrorKind::InvalidRequest, "{name}: {err}");
    }

    // Eight writers add ten each to one counter, reading and swapping.
    let counter = key("cas", b"counter");
    let writer = |_| {
        let counter = counter.clone();
        async move {
            for _ in 0..10 {
                let mut current = store.get(&counter).await.expect("get");
                loop {
                    let n: u64 = current
                        .as_deref()
                        .map_or(0, |v| String::from_utf8_lossy(v).parse().expect("number"));
                    let new = (n + 1).to_string().into_bytes();
                    match store
                        .compare_and_swap(&counter, current.as_deref(), new)
                        .await
                        .expect("swap")
                    {
                        Swap::Done => break,
                        Swap::Conflict(now) => current = now,
                    }
                }
            }
        }
    };
    futures::future::join_all((0..8).map(writer)).await;
    assert_eq!(
        store.get(&counter).await.expect("get"),
        Some(b"80".to_vec()),
        "{name}: concurrent swaps lost an update"
    );
    clear(store, &key("cas", b"")).await;
}

/// Many ranges at once: each answer is what a scan of its range with the
/// same limit gives, empty ranges included, ranges spread over the key space
/// (and so over a backend's regions) and a long list of small ranges.
pub async fn test_scan_ranges(store: &dyn EventStore) {
    let name = store.name();
    let mut batch = Vec::new();
    for group in 0..40u32 {
        for i in 0..(group % 7) * 3 {
            batch.push(kv(
                key("scan_ranges", format!("{group:03}/{i:03}").as_bytes()),
                b"v",
            ));
        }
    }
    // Keys at both ends of the key space too.
    batch.push(kv(vec![0x00, b's', b'r'], b"low"));
    batch.push(kv(vec![0xff, b's', b'r'], b"high"));
    store.put_batch(batch).await.expect("put");
    let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = vec![(vec![0x00], vec![0x00, b't'])];
    for group in 0..40u32 {
        let start = key("scan_ranges", format!("{group:03}/").as_bytes());
        let end = key("scan_ranges", format!("{group:03}0").as_bytes());
        if group == 5 {
            // An empty range and a reversed one.
            ranges.push((start.clone(), start.clone()));
        } else {
            ranges.push((start, end));
        }
    }
    ranges.push((vec![0xff], vec![0xff, 0xff]));
    for limit in [1usize, 4, 100] {
        let got = store
            .scan_ranges(&ranges, limit)
            .await
            .expect("scan ranges");
        assert_eq!(got.len(), ranges.len(), "{name}: one answer per range");
        for ((start, end), list) in ranges.iter().zip(&got) {
            let want = store.scan(start, end, limit).await.expect("scan");
            assert_eq!(
                list, &want,
                "{name}: range {start:?}..{end:?} limit {limit}"
            );
        }
    }
    assert!(
        store.scan_ranges(&[], 10).await.expect("none").is_empty(),
        "{name}: no ranges"
    );
    store
        .delete_range(&[0x00], &[0x00, b't'])
        .await
        .expect("delete");
    store
        .delete_range(&[0xff], &[0xff, 0xff])
        .await
        .expect("delete");
    clear(store, &key("scan_ranges", b"")).await;
}

/// A batch with one invalid entry writes nothing.
pub async fn test_batch_atomicity(store: &dyn EventStore) {
    let name = store.name();
    let good = key("atomic", b"good");
    let result = store
        .put_batch(vec![
            kv(good.clone(), b"1"),
            kv(key("atomic", b"big"), &vec![0; MAX_VALUE_BYTES + 1]),
        ])
        .await;
    let error = result.expect_err("oversized value is rejected");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest, "{name}");
    assert!(!error.is_retryable());
    assert_eq!(
        store.get(&good).await.expect("get"),
        None,
        "{name}: nothing of a failed batch is written"
    );
    // A large valid batch is all there after the call.
    let batch: Vec<KvPair> = (0..2000u32)
        .map(|i| kv(key("atomic", &i.to_be_bytes()), &i.to_le_bytes()))
        .collect();
    store.put_batch(batch).await.expect("put");
    assert_eq!(all_of(store, "atomic").await.len(), 2000, "{name}");
}

/// Empty and oversized keys and oversized values are rejected as invalid.
pub async fn test_invalid_requests(store: &dyn EventStore) {
    let name = store.name();
    let cases = [
        (Vec::new(), Vec::new()),
        (vec![b'z'; MAX_KEY_BYTES + 1], Vec::new()),
        (key("invalid", b"v"), vec![1; MAX_VALUE_BYTES + 1]),
    ];
    for (k, v) in cases {
        let len = k.len();
        let error = store
            .put_batch(vec![(k, v)])
            .await
            .expect_err("invalid entry is rejected");
        assert_eq!(
            error.kind(),
            StoreErrorKind::InvalidRequest,
            "{name}: key of {len} bytes"
        );
    }
    let error = store.get(b"").await.expect_err("empty key is rejected");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest, "{name}");
    // The longest key and largest value are fine.
    let longest = [key("invalid", b""), vec![b'k'; MAX_KEY_BYTES - 10]].concat();
    store
        .put_batch(vec![(longest.clone(), vec![7; MAX_VALUE_BYTES])])
        .await
        .expect("limits are inclusive");
    let value = store.get(&longest).await.expect("get").expect("stored");
    assert_eq!(value.len(), MAX_VALUE_BYTES, "{name}");
    clear(store, &key("invalid", b"")).await;
}

/// `get_many` answers in the order asked, with `None` for missing keys.
pub async fn test_get_many(store: &dyn EventStore) {
    store
        .put_batch(vec![
            kv(key("get_many", b"a"), b"1"),
            kv(key("get_many", b"c"), b"3"),
        ])
        .await
        .expect("put");
    let got = store
        .get_many(vec![
            key("get_many", b"c"),
            key("get_many", b"b"),
            key("get_many", b"a"),
            key("get_many", b"c"),
        ])
        .await
        .expect("get many");
    assert_eq!(
        got,
        vec![
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ],
        "{}",
        store.name()
    );
    assert!(store.get_many(Vec::new()).await.expect("none").is_empty());
}

/// Scans return keys in unsigned byte order, whatever the write order.
pub async fn test_scan_order(store: &dyn EventStore) {
    let suffixes: [&[u8]; 9] = [
        b"b", b"a", b"ab", b"", b"\x80", b"\x7f", b"a\x00", b"B", b"aa",
    ];
    // Written in three batches, out of order.
    for chunk in suffixes.chunks(3) {
        let batch = chunk
            .iter()
            .map(|s| kv(key("order", s), s))
            .collect::<Vec<_>>();
        store.put_batch(batch).await.expect("put");
    }
    let mut expected: Vec<Vec<u8>> = suffixes.iter().map(|s| key("order", s)).collect();
    expected.sort();
    let got: Vec<Vec<u8>> = all_of(store, "order")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, expected, "{}: scan order", store.name());
}

/// Pages of a scan: `limit` is honoured, short pages only at the end, and
/// paging from the successor of the last key visits every key once.
pub async fn test_scan_pagination(store: &dyn EventStore) {
    let name = store.name();
    const N: u32 = 2500;
    let batch: Vec<KvPair> = (0..N)
        .rev()
        .map(|i| kv(key("pages", format!("{i:05}").as_bytes()), &i.to_be_bytes()))
        .collect();
    store.put_batch(batch).await.expect("put");
    let (start, end) = prefix_range(&key("pages", b""));
    for limit in [1usize, 7, 1000, 2500, 5000] {
        let page = store.scan(&start, &end, limit).await.expect("scan");
        assert_eq!(page.len(), limit.min(N as usize), "{name}: limit {limit}");
        assert_eq!(page[0].0, key("pages", b"00000"), "{name}");
    }
    // Manual paging.
    let mut next = start.clone();
    let mut seen = 0u32;
    loop {
        let page = store.scan(&next, &end, 333).await.expect("scan");
        for (k, v) in &page {
            assert_eq!(k, &key("pages", format!("{seen:05}").as_bytes()), "{name}");
            assert_eq!(v, &seen.to_be_bytes(), "{name}");
            seen += 1;
        }
        match page.last() {
            Some((last, _)) if page.len() == 333 => next = successor(last),
            _ => break,
        }
    }
    assert_eq!(seen, N, "{name}: manual paging");
    // Streams, with pages that divide N and pages that do not.
    for page in [1usize, 64, 500, 2500, 4096] {
        let all: Vec<KvPair> = store
            .scan_stream(start.clone(), end.clone(), page)
            .try_collect()
            .await
            .expect("stream");
        assert_eq!(all.len(), N as usize, "{name}: stream page {page}");
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "{name}: order");
    }
    // A sub-range.
    let sub = store
        .scan(&key("pages", b"00100"), &key("pages", b"00200"), usize::MAX)
        .await
        .expect("scan");
    assert_eq!(sub.len(), 100, "{name}: [100, 200)");
    assert_eq!(
        sub[0].0,
        key("pages", b"00100"),
        "{name}: start is inclusive"
    );
    assert_eq!(
        sub[99].0,
        key("pages", b"00199"),
        "{name}: end is exclusive"
    );
}

/// Empty ranges, `start == end`, `start > end`, `limit == 0`.
pub async fn test_empty_ranges(store: &dyn EventStore) {
    let name = store.name();
    let a = key("empty", b"a");
    let b = key("empty", b"b");
    store
        .put_batch(vec![kv(a.clone(), b"1"), kv(b.clone(), b"2")])
        .await
        .expect("put");
    let nothing = |start: Vec<u8>, end: Vec<u8>, limit: usize| async move {
        let page = store.scan(&start, &end, limit).await.expect("scan");
        assert!(page.is_empty(), "{name}: {start:?}..{end:?} limit {limit}");
    };
    nothing(a.clone(), a.clone(), 10).await;
    nothing(b.clone(), a.clone(), 10).await;
    nothing(a.clone(), b.clone(), 0).await;
    nothing(a.clone(), Vec::new(), 10).await;
    nothing(key("empty", b"c"), key("empty", b"d"), 10).await;
    nothing(successor(&a), b.clone(), 10).await;
    let one = store.scan(&a, &successor(&a), 10).await.expect("scan");
    assert_eq!(one, vec![kv(a.clone(), b"1")], "{name}: [a, a+0x00)");
    // Deleting empty ranges changes nothing.
    store.delete_range(&a, &a).await.expect("start == end");
    store.delete_range(&b, &a).await.expect("start > end");
    assert_eq!(all_of(store, "empty").await.len(), 2, "{name}");
}

/// `delete_range` removes `[start, end)` exactly, and is idempotent.
pub async fn test_delete_range(store: &dyn EventStore) {
    let name = store.name();
    let batch: Vec<KvPair> = (0..100u8).map(|i| kv(key("delete", &[i]), &[i])).collect();
    store.put_batch(batch).await.expect("put");
    for _ in 0..2 {
        store
            .delete_range(&key("delete", &[10]), &key("delete", &[20]))
            .await
            .expect("delete");
    }
    let left: Vec<u8> = all_of(store, "delete")
        .await
        .into_iter()
        .map(|(_, v)| v[0])
        .collect();
    let expected: Vec<u8> = (0..10).chain(20..100).collect();
    assert_eq!(left, expected, "{name}: [10, 20) removed");
    // A range that starts and ends between keys.
    store
        .delete_range(&key("delete", &[49, 0]), &key("delete", &[60, 0]))
        .await
        .expect("delete");
    let left = all_of(store, "delete").await;
    assert_eq!(left.len(), 79, "{name}: (49, 60] removed");
    assert!(
        store
            .get(&key("delete", &[49]))
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        store
            .get(&key("delete", &[50]))
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get(&key("delete", &[60]))
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get(&key("delete", &[61]))
            .await
            .expect("get")
            .is_some()
    );
    // A removed key can be written again.
    store
        .put_batch(vec![kv(key("delete", &[15]), b"back")])
        .await
        .expect("put");
    assert_eq!(
        store.get(&key("delete", &[15])).await.expect("get"),
        Some(b"back".to_vec())
    );
    // More keys than one internal delete step.
    let batch: Vec<KvPair> = (0..25_000u32)
        .map(|i| kv(key("delete_many", &i.to_be_bytes()), b""))
        .collect();
    store.put_batch(batch).await.expect("put");
    clear(store, &key("delete_many", b"")).await;
    assert!(all_of(store, "delete_many").await.is_empty(), "{name}");
    clear(store, &key("delete", b"")).await;
    assert!(all_of(store, "delete").await.is_empty(), "{name}");
}

/// Keys with `0x00` and `0xFF` bytes, including the extremes of the key space.
pub async fn test_binary_keys(store: &dyn EventStore) {
    let name = store.name();
    let suffixes: [&[u8]; 7] = [
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
        b"\x01\x00\x02",
    ];
    let batch: Vec<KvPair> = suffixes.iter().map(|s| kv(key("binary", s), s)).collect();
    store.put_batch(batch).await.expect("put");
    for s in suffixes {
        assert_eq!(
            store.get(&key("binary", s)).await.expect("get"),
            Some(s.to_vec()),
            "{name}: {s:?}"
        );
    }
    let mut expected: Vec<Vec<u8>> = suffixes.iter().map(|s| key("binary", s)).collect();
    expected.sort();
    let got: Vec<Vec<u8>> = all_of(store, "binary")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, expected, "{name}: binary order");
    // The smallest and a very large key.
    let lowest = vec![0u8];
    let highest = vec![0xFFu8; 64];
    store
        .put_batch(vec![kv(lowest.clone(), b"lo"), kv(highest.clone(), b"hi")])
        .await
        .expect("put");
    let first = store.scan(&[0], &[0, 0], 10).await.expect("scan");
    assert_eq!(first, vec![kv(lowest.clone(), b"lo")], "{name}: key 0x00");
    let last = store
        .scan(&[0xFF; 63], &[0xFF; 65], 10)
        .await
        .expect("scan");
    assert_eq!(
        last,
        vec![kv(highest.clone(), b"hi")],
        "{name}: key 0xFF*64"
    );
    store.delete_range(&lowest, &[0, 0]).await.expect("delete");
    store
        .delete_range(&highest, &[0xFF; 65])
        .await
        .expect("delete");
    assert_eq!(store.get(&lowest).await.expect("get"), None, "{name}");
    assert_eq!(store.get(&highest).await.expect("get"), None, "{name}");
}

/// Values of 64 KiB, written in one batch and read back exactly.
pub async fn test_large_values(store: &dyn EventStore) {
    let name = store.name();
    let values: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            (0..64 * 1024)
                .map(|j: u32| (j.wrapping_mul(31) as u8) ^ i)
                .collect()
        })
        .collect();
    let batch: Vec<KvPair> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (key("large", &[i as u8]), v.clone()))
        .collect();
    store.put_batch(batch).await.expect("put");
    for (i, v) in values.iter().enumerate() {
        let got = store.get(&key("large", &[i as u8])).await.expect("get");
        assert_eq!(got.as_ref(), Some(v), "{name}: value {i}");
    }
    let all = all_of(store, "large").await;
    assert_eq!(all.len(), 8, "{name}");
    assert!(all.iter().zip(&values).all(|((_, a), b)| a == b), "{name}");
}
