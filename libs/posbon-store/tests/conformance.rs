//! The conformance suite against every backend in this crate, and the
//! embedded store across a reopen.

use chrono::{TimeZone, Utc};
use posbon_geo::{LatLng, Resolution};
use posbon_store::{EmbeddedStore, EventStore, EventStoreExt, MemoryStore, conformance};

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run_all(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 9, 0, 0)
        .single()
        .expect("time");
    let cell = LatLng::new(41.3111, 69.2797)
        .expect("valid")
        .to_cell(Resolution::Ten);
    let events: Vec<_> = (0..100)
        .map(|i| conformance::enriched_in_cell(&format!("r-{i}"), at, cell, Some("m-1")))
        .collect();
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let summary = store.put_events(&events).await.expect("put");
        assert_eq!(summary.written, 100);
        store
            .put_batch(vec![(b"z/reopen".to_vec(), vec![0xAB; 70_000])])
            .await
            .expect("put");
        store.delete_range(b"i", b"ir-5").await.expect("delete");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.name(), "embedded");
    assert_eq!(store.path(), dir.path());
    assert_eq!(
        store.get(b"z/reopen").await.expect("get"),
        Some(vec![0xAB; 70_000])
    );
    let back = store
        .events_in_cell(cell, Resolution::Ten, at, at + chrono::Duration::seconds(1))
        .await
        .expect("scan");
    assert_eq!(back.len(), 100);
    // r-0..r-49 sort before "r-5": their id-index entries were removed.
    assert_eq!(store.count_events().await.expect("count"), 100 - 45);
    assert!(store.disk_space().expect("disk space") > 0);
    // Redelivering the batch after reopen writes only the ids whose index
    // entries were removed.
    let summary = store.put_events(&events).await.expect("put");
    assert_eq!((summary.written, summary.duplicates), (45, 55));
}
