//! The conformance suite: what every [`EventStore`] backend must do.
//!
//! Run it against a new, empty, throwaway store: the tests write keys under
//! `z/<test>/` and at the extremes of the key space, and the event tests
//! clear the `e`, `t` and `i` prefixes. A failure panics with a message that
//! names the backend, like an `assert!` in a test.
//!
//! ```
//! use posbon_store::{MemoryStore, conformance};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! conformance::run_all(&MemoryStore::new()).await;
//! # });
//! ```

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use futures::TryStreamExt;
use posbon_geo::{CellIndex, LatLng, Registry, RegistryOptions, Resolution, grid_disk};
use posbon_model::{EnrichedEvent, Event, EventHeader, Incident, IncidentCategory};

use crate::error::StoreErrorKind;
use crate::ext::EventStoreExt;
use crate::keys::{self, EVENT_BY_CELL, EVENT_BY_TIME, EVENT_ID, prefix_range, successor};
use crate::store::{EventStore, KvPair, MAX_KEY_BYTES, MAX_VALUE_BYTES, Swap};

/// The storage resolution the event tests use.
pub const STORAGE: Resolution = Resolution::Ten;

/// Runs every test of the suite, in order.
pub async fn run_all(store: &dyn EventStore) {
    test_put_get(store).await;
    test_overwrite(store).await;
    test_batch_last_wins(store).await;
    test_batch_atomicity(store).await;
    test_compare_and_swap(store).await;
    test_invalid_requests(store).await;
    test_get_many(store).await;
    test_scan_order(store).await;
    test_scan_pagination(store).await;
    test_scan_ranges(store).await;
    test_empty_ranges(store).await;
    test_delete_range(store).await;
    test_binary_keys(store).await;
    test_large_values(store).await;
    test_event_put_get(store).await;
    test_event_cell_scans(store).await;
    test_event_time_windows(store).await;
    test_event_duplicates(store).await;
    test_json_records(store).await;
    test_write_marks(store).await;
    test_events_of_mahalla(store).await;
    test_checkpoints(store).await;
}

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

/// Removes every entry under `prefix`.
async fn clear(store: &dyn EventStore, prefix: &[u8]) {
    let (start, end) = prefix_range(prefix);
    store
        .delete_range(&start, &end)
        .await
        .expect("delete range");
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

/// A Tashkent point in the same res-7 cell as `41.3111, 69.2797`.
const CENTRE: (f64, f64) = (41.3111, 69.2797);

/// An incident with the given id, time and place (a fixture for tests and
/// benchmarks).
pub fn incident(id: &str, occurred_at: DateTime<FixedOffset>, lat: f64, lng: f64) -> Event {
    Event::Incident(Incident {
        header: EventHeader {
            id: id.to_owned(),
            occurred_at,
            location: posbon_model::Location::new(lat, lng),
            source: "iiv-102".to_owned(),
            attributes: Default::default(),
        },
        category: IncidentCategory::Theft,
        severity: 2,
        flags: Default::default(),
        status: Default::default(),
        description: Some("telefon o'g'irlandi".to_owned()),
    })
}

/// An incident at the centre of `cell`, enriched with `cell` at its own
/// resolution and the given mahalla (a fixture for tests and benchmarks).
/// `occurred_at` is shown with Tashkent's `+05:00` offset.
pub fn enriched_in_cell(
    id: &str,
    occurred_at: DateTime<Utc>,
    cell: CellIndex,
    mahalla_id: Option<&str>,
) -> EnrichedEvent {
    let centre = LatLng::from(cell);
    let tashkent = FixedOffset::east_opt(5 * 3600).expect("valid offset");
    EnrichedEvent {
        event: incident(
            id,
            occurred_at.with_timezone(&tashkent),
            centre.lat(),
            centre.lng(),
        ),
        cell: posbon_model::CellId::new(u64::from(cell)).expect("h3 index fits"),
        mahalla_id: mahalla_id.map(str::to_owned),
        district_id: mahalla_id.map(|_| "chilonzor".to_owned()),
        region_id: mahalla_id.map(|_| "tashkent".to_owned()),
        ingested_at: occurred_at + Duration::seconds(2),
    }
}

/// `count` incidents scattered around central Tashkent (roughly normal,
/// deviation about `spread` degrees), at pseudo-random times over `days`
/// days from 2026-05-01 UTC, with ids `<prefix>-0000000`, …: the same
/// deterministic workload for the tests and benchmarks that need many
/// events over many cells and regions.
pub fn scattered_events(prefix: &str, count: usize, spread: f64, days: u32) -> Vec<EnrichedEvent> {
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let span_ms = u64::from(days) * 86_400_000;
    (0..count)
        .map(|i| {
            let lat = 41.31 + spread * rng.normal() / 1.4;
            let lng = 69.25 + spread * rng.normal() / 1.4;
            let cell = LatLng::new(lat, lng).expect("valid").to_cell(STORAGE);
            let at = t0() + Duration::milliseconds((rng.next() % span_ms) as i64);
            enriched_in_cell(&format!("{prefix}-{i:07}"), at, cell, Some("m-1"))
        })
        .collect()
}

/// A small deterministic generator (xorshift).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Roughly normal, mean 0, deviation 1 (a sum of uniforms).
    fn normal(&mut self) -> f64 {
        (0..6)
            .map(|_| (self.next() % 10_000) as f64 / 10_000.0)
            .sum::<f64>()
            - 3.0
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid time")
}

/// Checks that two event lists are equal, naming ids on failure (events
/// print long).
#[track_caller]
fn assert_events(got: &[EnrichedEvent], expected: &[EnrichedEvent], what: &str) {
    let ids = |events: &[EnrichedEvent]| -> Vec<String> {
        events.iter().map(|e| e.event.id().to_owned()).collect()
    };
    assert_eq!(ids(got), ids(expected), "{what}");
    assert!(got == expected, "{what}: same ids, different records");
}

/// Key-order sort of events: (storage cell, time, id).
fn by_cell_key(events: &mut [EnrichedEvent]) {
    events.sort_by_key(|e| {
        keys::event_cell_key(
            e.cell.get(),
            keys::micros(&e.event.occurred_at()),
            e.event.id(),
        )
    });
}

/// Key-order sort of events: (time, id).
fn by_time_key(events: &mut [EnrichedEvent]) {
    events
        .sort_by_key(|e| keys::event_time_key(keys::micros(&e.event.occurred_at()), e.event.id()));
}

async fn clear_events(store: &dyn EventStore) {
    for prefix in [EVENT_BY_CELL, EVENT_BY_TIME, EVENT_ID, keys::WRITE_MARK] {
        clear(store, &[prefix]).await;
    }
}

/// `put_events` then `get_event`: the record comes back equal, offset kept.
pub async fn test_event_put_get(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let event = enriched_in_cell("iiv-2026-000123", t0(), cell, Some("chilonzor-001"));
    let summary = store
        .put_events(std::slice::from_ref(&event))
        .await
        .expect("put");
    assert_eq!((summary.written, summary.duplicates), (1, 0), "{name}");
    let got = store
        .get_event("iiv-2026-000123")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got, event, "{name}: record round trip");
    assert_eq!(got.event.occurred_at().offset().local_minus_utc(), 5 * 3600);
    assert_eq!(store.get_event("missing").await.expect("get"), None);
    assert_eq!(store.get_event("bad id").await.expect("get"), None);
    assert_eq!(store.count_events().await.expect("count"), 1, "{name}");
    let error = store
        .put_events(&[enriched_in_cell("bad id", t0(), cell, None)])
        .await
        .expect_err("invalid id");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest, "{name}");
    clear_events(store).await;
}

/// Events spread over the res-10 children of one res-7 cell and its
/// neighbours, over three days, some at the window edges.
fn cell_fixture() -> (CellIndex, Vec<EnrichedEvent>) {
    let parent = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(Resolution::Seven);
    let children: Vec<CellIndex> = parent.children(STORAGE).collect();
    let neighbours: Vec<CellIndex> = grid_disk(parent, 1)
        .into_iter()
        .filter(|&n| n != parent)
        .filter_map(|n| n.children(STORAGE).next())
        .collect();
    let mut cells: Vec<CellIndex> = children.iter().step_by(23).copied().collect();
    // Several cells under one res-9 parent.
    cells.extend(children.iter().take(3).copied());
    cells.extend(neighbours);
    let mut events = Vec::new();
    let edges = [
        Duration::zero(),
        Duration::microseconds(-1),
        Duration::microseconds(1),
        Duration::hours(24) - Duration::microseconds(1),
        Duration::hours(24),
        Duration::hours(-5),
        Duration::hours(30),
        Duration::hours(7),
    ];
    for (i, cell) in cells.iter().enumerate() {
        for (j, edge) in edges.iter().enumerate() {
            if (i + j) % 3 == 0 {
                continue;
            }
            let id = format!("ev-{i:03}-{j}");
            events.push(enriched_in_cell(&id, t0() + *edge, *cell, None));
        }
    }
    // Two events at the same time and cell: ordered by id.
    events.push(enriched_in_cell("same-b", t0(), children[0], None));
    events.push(enriched_in_cell("same-a", t0(), children[0], None));
    (parent, events)
}

/// Cell scans at resolutions 10, 9 and 7 equal a brute-force filter, in key
/// order, with small and large pages.
pub async fn test_event_cell_scans(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let (parent, events) = cell_fixture();
    for chunk in events.chunks(50) {
        store.put_events(chunk).await.expect("put");
    }
    let from = t0();
    let to = t0() + Duration::hours(24);
    let first = events[0].cell;
    let first = CellIndex::try_from(first.get()).expect("valid cell");
    let queries = [
        first,
        first.parent(Resolution::Nine).expect("res 9"),
        parent,
        parent.parent(Resolution::Five).expect("res 5"),
    ];
    for query in queries {
        let mut expected: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| {
                let cell = CellIndex::try_from(e.cell.get()).expect("valid cell");
                let t = e.event.occurred_at();
                cell.parent(query.resolution()) == Some(query) && t >= from && t < to
            })
            .cloned()
            .collect();
        by_cell_key(&mut expected);
        assert!(!expected.is_empty(), "fixture covers {query}");
        let got = store
            .events_in_cell(query, STORAGE, from, to)
            .await
            .expect("scan");
        assert_events(&got, &expected, &format!("{name}: cell {query}"));
        for page in [1, 3, 1000] {
            let got: Vec<EnrichedEvent> = store
                .events_in_cell_stream(query, STORAGE, from, to, page)
                .try_collect()
                .await
                .expect("scan");
            assert_events(
                &got,
                &expected,
                &format!("{name}: cell {query} page {page}"),
            );
        }
    }
    // An empty window, and a cell finer than the storage resolution.
    let none = store
        .events_in_cell(parent, STORAGE, to, from)
        .await
        .expect("empty window");
    assert!(none.is_empty(), "{name}: from > to");
    let fine = first.children(Resolution::Eleven).next().expect("child");
    let error = store
        .events_in_cell(fine, STORAGE, from, to)
        .await
        .expect_err("finer than storage");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest, "{name}");
    clear_events(store).await;
}

/// Time windows are `[from, to)` at microsecond precision, in time order.
pub async fn test_event_time_windows(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let (_, events) = cell_fixture();
    store.put_events(&events).await.expect("put");
    let windows = [
        (t0(), t0() + Duration::hours(24)),
        (t0() + Duration::microseconds(1), t0() + Duration::hours(24)),
        (t0() - Duration::days(10), t0() + Duration::days(10)),
        (t0(), t0()),
        (t0() + Duration::hours(1), t0()),
    ];
    for (from, to) in windows {
        let mut expected: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| e.event.occurred_at() >= from && e.event.occurred_at() < to)
            .cloned()
            .collect();
        by_time_key(&mut expected);
        let got = store.events_in_time(from, to).await.expect("scan");
        assert_events(&got, &expected, &format!("{name}: window {from}..{to}"));
        let paged: Vec<EnrichedEvent> = store
            .events_in_time_stream(from, to, 4)
            .try_collect()
            .await
            .expect("scan");
        assert_events(
            &paged,
            &expected,
            &format!("{name}: window {from}..{to} page 4"),
        );
    }
    let at_t0 = store
        .events_in_time(t0(), t0() + Duration::microseconds(1))
        .await
        .expect("scan");
    assert!(!at_t0.is_empty(), "{name}: from is inclusive");
    assert!(
        at_t0.iter().all(|e| e.event.occurred_at() == t0()),
        "{name}"
    );
    clear_events(store).await;
}

/// Duplicate ids are counted and not stored twice; the first version wins.
pub async fn test_event_duplicates(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let other = cell.grid_disk::<Vec<_>>(2)[5];
    let a = enriched_in_cell("dup-a", t0(), cell, None);
    let b = enriched_in_cell("dup-b", t0(), cell, None);
    // Same id, other content, time and cell: a producer resending.
    let a_changed = enriched_in_cell("dup-a", t0() + Duration::hours(1), other, Some("m-1"));
    let summary = store
        .put_events(&[a.clone(), b.clone(), a_changed.clone()])
        .await
        .expect("put");
    assert_eq!((summary.written, summary.duplicates), (2, 1), "{name}");
    // Redelivery of the whole batch, plus one new event.
    let c = enriched_in_cell("dup-c", t0(), cell, None);
    let summary = store
        .put_events(&[a.clone(), a_changed, b, c])
        .await
        .expect("put");
    assert_eq!((summary.written, summary.duplicates), (1, 3), "{name}");
    assert_eq!(store.count_events().await.expect("count"), 3, "{name}");
    for prefix in [EVENT_BY_CELL, EVENT_BY_TIME] {
        let (start, end) = prefix_range(&[prefix]);
        let n = store.scan(&start, &end, 100).await.expect("scan").len();
        assert_eq!(n, 3, "{name}: one {} key per event", prefix as char);
    }
    assert_eq!(
        store.get_event("dup-a").await.expect("get"),
        Some(a),
        "{name}: first version wins"
    );
    let summary = store.put_events(&[]).await.expect("empty");
    assert_eq!(summary, crate::PutSummary::default());
    clear_events(store).await;
}

/// Records of the first version (the event as JSON, which earlier releases
/// wrote) are read next to compact ones: by id, in cell and time scans, and
/// as duplicates of a rewrite. Here the JSON is pretty-printed, which the
/// first version allowed.
pub async fn test_json_records(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let a = enriched_in_cell("json-a", t0(), cell, Some("m-1"));
    let b = enriched_in_cell("json-b", t0() + Duration::minutes(3), cell, None);
    store
        .put_events(std::slice::from_ref(&a))
        .await
        .expect("put a");
    let at = crate::keys::micros(&b.event.occurred_at());
    let mut record = vec![crate::codec::EVENT_JSON_V1];
    serde_json::to_writer_pretty(&mut record, &b).expect("json");
    let cell_key = crate::keys::event_cell_key(b.cell.get(), at, "json-b");
    store
        .put_batch(vec![
            (crate::keys::event_time_key(at, "json-b"), record.clone()),
            (cell_key.clone(), record),
            (crate::keys::event_id_key("json-b"), cell_key),
        ])
        .await
        .expect("put a json record");
    let got = store
        .get_event("json-b")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got, b, "{name}: the JSON record decodes to the event");
    let (start, end) = prefix_range(&[EVENT_BY_TIME]);
    let records = store.scan(&start, &end, 10).await.expect("scan");
    let versions: Vec<u8> = records.iter().map(|(_, v)| v[0]).collect();
    assert_eq!(
        versions,
        [crate::codec::EVENT_COMPACT_V2, crate::codec::EVENT_JSON_V1],
        "{name}"
    );
    let window = store
        .events_in_time(t0(), t0() + Duration::hours(1))
        .await
        .expect("window");
    assert_eq!(window, vec![a.clone(), b.clone()], "{name}");
    let in_cell: Vec<EnrichedEvent> = store
        .events_in_cell_stream(cell, STORAGE, t0(), t0() + Duration::hours(1), 10)
        .try_collect()
        .await
        .expect("cell");
    assert_eq!(in_cell, vec![a.clone(), b.clone()], "{name}");
    let summary = store.put_events(&[a, b]).await.expect("rewrite");
    assert_eq!((summary.written, summary.duplicates), (0, 2), "{name}");
    clear_events(store).await;
}

/// The write-marks digest of a window changes exactly when events of the
/// hours it overlaps are written: not for other hours, not for a rewrite
/// that stores nothing.
pub async fn test_write_marks(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let day = |d: i64| {
        let from = keys::micros(&(t0() + Duration::days(d)));
        (from, from + 24 * keys::HOUR_MICROS)
    };
    let digest = |(from, to): (i64, i64)| async move {
        store
            .write_marks_digest(from, to)
            .await
            .expect("write marks")
    };
    let empty = digest(day(0)).await;
    assert_eq!(digest(day(0)).await, empty, "{name}: stable");
    let a = enriched_in_cell("mark-a", t0() + Duration::hours(3), cell, None);
    store
        .put_events(std::slice::from_ref(&a))
        .await
        .expect("put");
    let first = digest(day(0)).await;
    assert_ne!(first, empty, "{name}: a write in the window");
    assert_eq!(digest(day(1)).await, empty, "{name}: not the next day");
    assert_eq!(digest(day(-1)).await, empty, "{name}: not the day before");
    // The same event again stores nothing and leaves the marks.
    let summary = store
        .put_events(std::slice::from_ref(&a))
        .await
        .expect("put");
    assert_eq!(summary.written, 0, "{name}");
    assert_eq!(digest(day(0)).await, first, "{name}: a rewrite is no write");
    // Another event in the same hour, and one a day later.
    let b = enriched_in_cell("mark-b", t0() + Duration::minutes(200), cell, None);
    let c = enriched_in_cell("mark-c", t0() + Duration::hours(25), cell, None);
    store.put_events(&[b, c]).await.expect("put");
    let second = digest(day(0)).await;
    assert_ne!(second, first, "{name}: a second write in the same hour");
    assert_ne!(digest(day(1)).await, empty, "{name}: the next day now");
    // The last hour of the day and the first of the next are different marks.
    let d = enriched_in_cell("mark-d", t0() + Duration::hours(24), cell, None);
    store.put_events(&[d]).await.expect("put");
    assert_eq!(digest(day(0)).await, second, "{name}: day 0 unchanged");
    clear_events(store).await;
}

/// Two square mahallas side by side in Tashkent, and a third one apart.
const MAHALLAS: &str = r#"{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"id": "m-west", "name": "West", "district": "chilonzor", "region": "tashkent"},
  "geometry": {"type": "Polygon", "coordinates": [[[69.200, 41.280], [69.210, 41.280], [69.210, 41.290], [69.200, 41.290], [69.200, 41.280]]]}},
 {"type": "Feature", "properties": {"id": "m-east", "name": "East", "district": "chilonzor", "region": "tashkent"},
  "geometry": {"type": "Polygon", "coordinates": [[[69.210, 41.280], [69.220, 41.280], [69.220, 41.290], [69.210, 41.290], [69.210, 41.280]]]}}
]}"#;

/// A mahalla's events: its covering cells, filtered by `mahalla_id`, equal a
/// brute-force filter, including events in cells shared with its neighbour.
pub async fn test_events_of_mahalla(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let registry =
        Registry::from_geojson(MAHALLAS.as_bytes(), &RegistryOptions::default()).expect("registry");
    let mut events = Vec::new();
    // A grid of points across both squares and a margin outside them.
    for i in 0..40 {
        for j in 0..20 {
            let lat = 41.2785 + f64::from(j) * 0.0007;
            let lng = 69.1985 + f64::from(i) * 0.00058;
            let found = registry.locate(lat, lng).expect("valid point");
            let id = format!("m-{i:02}-{j:02}");
            let at = t0() + Duration::minutes(i64::from(i * 20 + j) * 7);
            let mahalla = found.mahalla.map(|m| registry.mahalla(m).id.as_str());
            let mut event = enriched_in_cell(&id, at, found.cell, mahalla);
            event.event.header_mut().location = posbon_model::Location::new(lat, lng);
            events.push(event);
        }
    }
    store.put_events(&events).await.expect("put");
    let (from, to) = (t0() + Duration::hours(3), t0() + Duration::hours(60));
    for (idx, mahalla) in registry.mahallas().iter().enumerate() {
        let idx = posbon_geo::MahallaIdx(idx as u32);
        let mut expected: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| e.mahalla_id.as_deref() == Some(mahalla.id.as_str()))
            .filter(|e| e.event.occurred_at() >= from && e.event.occurred_at() < to)
            .cloned()
            .collect();
        by_cell_key(&mut expected);
        assert!(expected.len() > 10, "fixture has events in {}", mahalla.id);
        let got = store
            .events_of_mahalla(&registry, idx, from, to)
            .await
            .expect("scan");
        assert_events(&got, &expected, &format!("{name}: mahalla {}", mahalla.id));
    }
    clear_events(store).await;
}

/// Checkpoints are stored under `c` · name and can be replaced.
pub async fn test_checkpoints(store: &dyn EventStore) {
    let name = store.name();
    assert_eq!(store.checkpoint("conformance").await.expect("get"), None);
    store
        .put_checkpoint("conformance", b"1".to_vec())
        .await
        .expect("put");
    store
        .put_checkpoint("conformance", b"2".to_vec())
        .await
        .expect("put");
    assert_eq!(
        store.checkpoint("conformance").await.expect("get"),
        Some(b"2".to_vec()),
        "{name}"
    );
    assert_eq!(
        store
            .get(&crate::checkpoint_key("conformance"))
            .await
            .expect("get"),
        Some(b"2".to_vec()),
        "{name}: raw key"
    );
    clear(store, &crate::checkpoint_key("conformance")).await;
}
