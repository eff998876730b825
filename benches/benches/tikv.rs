//! The TiKV backend against the in-repo PD + TiKV test server, beside the
//! embedded store, on the two hot paths of the `store` benchmark: durable
//! batched event writes (`put_events`, batches of 1000: id check, then the
//! `e`, `t` and `i` keys) and the scan of one res-7 cell over one day.
//!
//! The test server keeps its data in memory and runs in this process, so
//! the TiKV figures show the client-side cost (tikv-client, gRPC, protobuf,
//! the backend's region-local scans and two-phase writes) plus a trivial
//! server, on the same two cores: an upper bound for what a real cluster
//! can give one client, not a cluster measurement.
//!
//! Run: `cargo bench -p posbon-benches --bench tikv`. Prints one table.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use posbon_geo::{CellIndex, LatLng, Resolution};
use posbon_model::EnrichedEvent;
use posbon_store::{
    EmbeddedStore, EventStore, EventStoreExt, KvPair, Store, StoreConfig, conformance, open_store,
};
use posbon_tikv_testserver::TestServer;

/// Events written (and then scanned).
const EVENTS: usize = 60_000;
const BATCH: usize = 1000;
/// Days the events spread over.
const DAYS: i64 = 3;
/// Scans timed per backend.
const SCANS: usize = 40;
/// Raw pairs per `put_batch` in the raw write test, and their value size.
const RAW_BATCH: usize = 2000;
const RAW_VALUE: usize = 400;
const RAW_BATCHES: usize = 30;

struct Figures {
    backend: String,
    put_events_per_s: f64,
    raw_mb_per_s: f64,
    scan_ms: f64,
    scan_events: usize,
}

async fn measure(name: &str, store: &dyn EventStore, events: &[EnrichedEvent]) -> Figures {
    // Durable event writes.
    let started = Instant::now();
    for batch in events.chunks(BATCH) {
        let summary = store.put_events(batch).await.expect("put events");
        assert_eq!(summary.written, batch.len());
    }
    let put_events_per_s = events.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!("{name}: put_events {put_events_per_s:.0} events/s");
    // Raw batches of opaque pairs.
    let mut bytes = 0;
    let started = Instant::now();
    for b in 0..RAW_BATCHES {
        let batch: Vec<KvPair> = (0..RAW_BATCH)
            .map(|i| {
                let key = format!("z/bench/{b:03}/{i:06}").into_bytes();
                (key, vec![(i % 251) as u8; RAW_VALUE])
            })
            .collect();
        bytes += batch.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        store.put_batch(batch).await.expect("put batch");
    }
    let raw_mb_per_s = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    eprintln!("{name}: raw put_batch {raw_mb_per_s:.1} MB/s");
    // One res-7 cell over one day, the busiest (the centre).
    let cell: CellIndex = LatLng::new(41.31, 69.25)
        .expect("valid")
        .to_cell(Resolution::Seven);
    let from = Utc
        .with_ymd_and_hms(2026, 5, 2, 0, 0, 0)
        .single()
        .expect("time");
    let to = from + chrono::Duration::days(1);
    let mut scan_events = 0;
    let started = Instant::now();
    for _ in 0..SCANS {
        let found = store
            .events_in_cell(cell, Resolution::Ten, from, to)
            .await
            .expect("scan");
        scan_events = found.len();
    }
    let scan_ms = started.elapsed().as_secs_f64() * 1000.0 / SCANS as f64;
    Figures {
        backend: name.to_owned(),
        put_events_per_s,
        raw_mb_per_s,
        scan_ms,
        scan_events,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let events = conformance::scattered_events("bench", EVENTS, 0.04, DAYS as u32);
        let mut figures = Vec::new();

        let dir = tempfile::tempdir().expect("temp dir");
        let embedded = EmbeddedStore::open(dir.path().join("store")).expect("open");
        figures.push(measure("embedded (fjall, fsync per batch)", &embedded, &events).await);
        drop(embedded);

        // Regions at the prefixes and inside the cell keys, so writes and
        // scans cross regions as on a cluster.
        let centre = LatLng::new(41.31, 69.25)
            .expect("valid")
            .to_cell(Resolution::Ten);
        let mut split_keys: Vec<Vec<u8>> = [&b"c"[..], b"e", b"i", b"t", b"z"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        split_keys.push(posbon_store::keys::event_cell_key(u64::from(centre), 0, ""));
        let server = TestServer::with_splits(split_keys)
            .await
            .expect("test server");
        let tikv: Store = open_store(&StoreConfig::tikv([server.pd_endpoint()]))
            .await
            .expect("tikv store");
        figures.push(measure("tikv (raw API, in-process test server)", &*tikv, &events).await);
        let rpcs = [
            "RawBatchPut",
            "RawBatchGet",
            "RawScan",
            "RawBatchScan",
            "GetRegion",
        ]
        .map(|m| format!("{m} {}", server.calls(m)))
        .join(", ");

        println!();
        println!(
            "{} events of about {} bytes in batches of {BATCH}; raw batches of {RAW_BATCH} x {RAW_VALUE} B; one res-7 cell over one day scanned {SCANS} times",
            events.len(),
            posbon_store::codec::encode_event(&events[0]).len()
        );
        println!(
            "{:<42} {:>14} {:>12} {:>12} {:>10}",
            "backend", "put events/s", "raw MB/s", "scan ms", "scan rows"
        );
        for f in &figures {
            println!(
                "{:<42} {:>14.0} {:>12.1} {:>12.2} {:>10}",
                f.backend, f.put_events_per_s, f.raw_mb_per_s, f.scan_ms, f.scan_events
            );
        }
        if let [embedded, tikv] = &figures[..] {
            println!(
                "tikv / embedded: writes {:.2}x, raw writes {:.2}x, scan time {:.2}x",
                tikv.put_events_per_s / embedded.put_events_per_s,
                tikv.raw_mb_per_s / embedded.raw_mb_per_s,
                tikv.scan_ms / embedded.scan_ms
            );
        }
        println!("test server calls: {rpcs}");
        server.stop().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
