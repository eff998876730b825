//! The indexer's consumer loop on the in-memory bus (same semantics as
//! JetStream, see `posbon-bus`) and the in-memory store.

use posbon_model::Span;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use posbon_bus::subjects::{EVENTS_STREAM, event_subject};
use posbon_bus::{Bus, ConsumerOptions, Headers, MemoryBus};
use posbon_geo::LatLng;
use posbon_indexer::{DURABLE, IndexerConfig};
use posbon_model::EnrichedEvent;
use posbon_store::conformance::enriched_in_cell;
use posbon_store::{EventStoreExt, MemoryStore, Store};
use posbon_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

/// Far longer than the test waits: an event counted below was acknowledged
/// by the indexer, never merely redelivered after the ack wait.
const ACK_WAIT: Span = Span::from_minutes(10);

fn event(id: &str, minute: i64) -> EnrichedEvent {
    let cell = LatLng::new(41.31, 69.25)
        .expect("valid")
        .to_cell(posbon_geo::Resolution::Ten);
    let at = DateTime::<Utc>::from_timestamp(1_780_000_000 + 60 * minute, 0).expect("valid");
    enriched_in_cell(id, at, cell, None)
}

async fn publish(bus: &Arc<dyn Bus>, events: &[EnrichedEvent]) {
    let subject = event_subject(None, "incident").expect("subject");
    for e in events {
        // Without a message id, so the bus stores repeats as they come.
        let payload = Bytes::from(serde_json::to_vec(e).expect("json"));
        bus.publish(&subject, Headers::new(), payload)
            .await
            .expect("published");
    }
}

/// Runs the indexer until everything published is acknowledged; returns the store.
async fn index(bus: Arc<dyn Bus>, fetch_batch: usize) -> Store {
    let store: Store = Arc::new(MemoryStore::new());
    let config = IndexerConfig {
        fetch_batch,
        fetch_wait: Span::from_millis(50),
        ack_wait: ACK_WAIT,
        listen: "127.0.0.1:0".into(),
        http: Default::default(),
        nats_urls: Vec::new(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (bus, store, shutdown) = (Arc::clone(&bus), Arc::clone(&store), shutdown.clone());
        async move { posbon_indexer::consume(&config, bus, store, &Metrics::new(), shutdown).await }
    });
    let mut lag = u64::MAX;
    for _ in 0..600 {
        lag = bus
            .consumer_lag(EVENTS_STREAM, DURABLE)
            .await
            .map_or(u64::MAX, |l| l.total());
        if lag == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lag, 0, "everything acknowledged well within the ack wait");
    shutdown.cancel();
    task.await.expect("task").expect("indexer");
    store
}

async fn bus() -> Arc<dyn Bus> {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    bus.ensure_streams(&posbon_bus::default_streams())
        .await
        .expect("streams");
    // The indexer's durable consumer exists before anything is published.
    bus.consumer(
        EVENTS_STREAM,
        DURABLE,
        Vec::new(),
        ConsumerOptions {
            ack_wait: ACK_WAIT.to_std(),
            ..ConsumerOptions::default()
        },
    )
    .await
    .expect("consumer");
    bus
}

/// The last batch is acknowledged as soon as it is written, not when a next
/// one comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_batch_is_acknowledged_once_written() {
    let bus = bus().await;
    let events: Vec<EnrichedEvent> = (0..10).map(|i| event(&format!("lone-{i}"), i)).collect();
    publish(&bus, &events).await;
    let store = index(bus, 1000).await;
    assert_eq!(store.count_events().await.expect("count"), 10);
}

/// Batches of 7 over ids that come back in later batches (each id three
/// times, with another time each): every id stored once, with the time of
/// its first version, however the batches overlapped in the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_repeated_across_overlapping_batches_are_stored_once() {
    let bus = bus().await;
    let mut events = Vec::new();
    for round in 0..3 {
        for i in 0..40 {
            events.push(event(&format!("rep-{i:02}"), 100 * round + i));
        }
    }
    publish(&bus, &events).await;
    let store = index(bus, 7).await;
    let from = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid");
    let to = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid");
    let stored = store.events_in_time(from, to).await.expect("scan");
    assert_eq!(stored.len(), 40);
    for e in &stored {
        let i: i64 = e.event.id()[4..].parse().expect("number");
        assert_eq!(
            e.event.occurred_at().timestamp(),
            1_780_000_000 + 60 * i,
            "{} keeps its first version",
            e.event.id()
        );
    }
}

/// Defence in depth: a fraud flag on EVENTS whose account reference is not a
/// pseudonym (only ingest may publish EVENTS, and it always pseudonymises)
/// is not stored, and the dead-letter queue does not keep its payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fraud_flag_in_clear_is_dead_lettered_not_stored() {
    let bus = bus().await;
    let mut flag: serde_json::Value = serde_json::to_value(event("clear-0", 0)).expect("json");
    flag["event"] = serde_json::from_str(include_str!(
        "../../../schemas/examples/valid/fraud_flag_scam_call.json"
    ))
    .expect("example");
    let card = flag["event"]["account_ref"]
        .as_str()
        .expect("ref")
        .to_owned();
    let subject = event_subject(None, "fraud_flag").expect("subject");
    bus.publish(
        &subject,
        Headers::new(),
        Bytes::from(serde_json::to_vec(&flag).expect("json")),
    )
    .await
    .expect("published");
    publish(&bus, &[event("ok-1", 1)]).await;
    let store = index(bus.clone(), 100).await;
    assert_eq!(
        store.count_events().await.expect("count"),
        1,
        "only the incident"
    );
    let dlq = bus
        .consumer(
            posbon_bus::subjects::DLQ_STREAM,
            "test",
            Vec::new(),
            ConsumerOptions::default(),
        )
        .await
        .expect("dlq consumer");
    let dead = dlq
        .fetch(10, Duration::from_millis(200))
        .await
        .expect("fetch");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].headers.get("Posbon-Reject-Code"),
        Some("not_pseudonymised")
    );
    assert!(dead[0].payload.is_empty());
    assert!(
        dead[0].headers.iter().all(|(_, v)| !v.contains(&card)),
        "the reference is nowhere in the dlq"
    );
}
