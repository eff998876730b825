//! Scans of the TiKV backend over a range that a region boundary cuts: the
//! cell scan of the `tikv` benchmark (a split inside the scanned cell range)
//! and raw scans around boundaries, each checked against the in-memory
//! store with the same data. Every scan runs under a deadline, so a scan
//! that stalls fails instead of hanging the test.
//!
//! The benchmark's cell scan walks the res-10 cells of one res-7 cell: a
//! few hundred small reads, each a `RawScan` and a `RawBatchGet`. When the
//! test server did not set TCP_NODELAY, every such call waited about 40 ms
//! for a delayed ACK, so one scan took tens of seconds and the benchmark's
//! forty looked hung; the deadline below catches that too.

use posbon_model::Span;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use posbon_geo::{CellIndex, LatLng, Resolution};
use posbon_model::EnrichedEvent;
use posbon_store::keys::{self, prefix_range};
use posbon_store::{
    EventStore, EventStoreExt, KvPair, MemoryStore, TikvConfig, TikvStore, conformance,
};
use posbon_tikv_testserver::TestServer;

/// Longest any one scan below may take (a few hundred calls, well under a
/// second when each call takes a millisecond).
const DEADLINE: Duration = Duration::from_secs(10);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("time")
}

fn centre(resolution: Resolution) -> CellIndex {
    LatLng::new(41.31, 69.25)
        .expect("valid")
        .to_cell(resolution)
}

async fn server_with(split_keys: Vec<Vec<u8>>) -> TestServer {
    TestServer::with_splits(split_keys)
        .await
        .expect("test server starts")
}

async fn store_on(server: &TestServer) -> TikvStore {
    let mut config = TikvConfig::new([server.pd_endpoint()]);
    // Fail fast rather than wait out the default 30 s per attempt.
    config.operation_timeout = Span::from_secs(5);
    config.retries = 1;
    TikvStore::connect(&config, None).await.expect("connects")
}

async fn within<T>(what: &str, server: &TestServer, work: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, work).await {
        Ok(value) => value,
        Err(_) => panic!(
            "{what} did not finish within {DEADLINE:?} (RawScan {}, RawBatchScan {}, RawBatchGet {}, GetRegion {}, region errors {})",
            server.calls("RawScan"),
            server.calls("RawBatchScan"),
            server.calls("RawBatchGet"),
            server.calls("GetRegion"),
            server.region_errors(),
        ),
    }
}

fn ids(events: &[EnrichedEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.id().to_string()).collect()
}

/// The benchmark's layout and scan: the res-7 cell around the centre over
/// one day, with a region boundary at the centre res-10 cell's first key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cell_scan_across_a_split_inside_the_cell() {
    // The benchmark's spread: the centre res-7 cell gets a share of the
    // events, spread over many of its res-10 cells.
    let events = conformance::scattered_events("split", 12_000, 0.04, 3);
    let mut split_keys: Vec<Vec<u8>> = [&b"c"[..], b"e", b"i", b"t", b"z"]
        .iter()
        .map(|k| k.to_vec())
        .collect();
    split_keys.push(keys::event_cell_key(
        u64::from(centre(Resolution::Ten)),
        0,
        "",
    ));
    let server = server_with(split_keys).await;
    let store = store_on(&server).await;
    let memory = MemoryStore::new();
    for batch in events.chunks(1000) {
        within("put_events", &server, store.put_events(batch))
            .await
            .expect("put");
        memory.put_events(batch).await.expect("put");
    }
    let cell = centre(Resolution::Seven);
    for day in 0..3 {
        let from = start() + chrono::Duration::days(day);
        let to = from + chrono::Duration::days(1);
        let expected = memory
            .events_in_cell(cell, Resolution::Ten, from, to)
            .await
            .expect("memory scan");
        assert!(
            expected.len() > 100,
            "{} events on day {day}",
            expected.len()
        );
        for round in 0..3 {
            let got = within(
                &format!("events_in_cell day {day} round {round}"),
                &server,
                store.events_in_cell(cell, Resolution::Ten, from, to),
            )
            .await
            .expect("tikv scan");
            assert_eq!(ids(&got), ids(&expected), "day {day} round {round}");
        }
    }
    // The whole cell prefix, raw, in pages of several sizes.
    let (start, end) = prefix_range(&[keys::EVENT_BY_CELL]);
    for page in [1, 7, 100, 1024, 5000] {
        let expected = memory.scan(&start, &end, page).await.expect("memory");
        let got = within(
            &format!("scan page {page}"),
            &server,
            store.scan(&start, &end, page),
        )
        .await
        .expect("tikv scan");
        assert_eq!(got, expected, "page {page}");
    }
}

/// Raw scans whose start, end or stored keys sit exactly on a region
/// boundary, or just beside it, against the in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_scans_around_boundaries() {
    let stored: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| format!("k{i:05}").into_bytes())
        .collect();
    // Boundaries at stored keys, between stored keys, and at a successor.
    let boundaries: Vec<Vec<u8>> = vec![
        b"k00500".to_vec(),
        b"k01000\0".to_vec(),
        b"k01500x".to_vec(),
        b"k02000".to_vec(),
        b"k02001".to_vec(),
    ];
    let mut split_keys = boundaries.clone();
    split_keys.extend([b"e".to_vec(), b"t".to_vec(), b"z".to_vec()]);
    let server = server_with(split_keys).await;
    let store = store_on(&server).await;
    let memory = MemoryStore::new();
    let entries: Vec<KvPair> = stored.iter().map(|k| (k.clone(), k.clone())).collect();
    within("put_batch", &server, store.put_batch(entries.clone()))
        .await
        .expect("put");
    memory.put_batch(entries).await.expect("put");
    let mut bounds: Vec<Vec<u8>> = vec![b"k".to_vec(), b"k\xff".to_vec(), b"k02999\0".to_vec()];
    for b in &boundaries {
        bounds.push(b.clone());
        bounds.push(keys::successor(b));
        let mut before = b.clone();
        before.pop();
        bounds.push(before);
    }
    for lower in &bounds {
        for upper in &bounds {
            if lower >= upper {
                continue;
            }
            for limit in [1, 2, 499, 500, 501, 4000] {
                let expected = memory.scan(lower, upper, limit).await.expect("memory");
                let what = format!(
                    "scan {:?}..{:?} limit {limit}",
                    String::from_utf8_lossy(lower),
                    String::from_utf8_lossy(upper)
                );
                let got = within(&what, &server, store.scan(lower, upper, limit))
                    .await
                    .expect("tikv scan");
                assert_eq!(got, expected, "{what}");
            }
        }
    }
}
