//! Event-to-escalation latency through JetStream: enriched events published
//! to EVENTS at a steady 10,000 events/s (real nats-server), the escalator
//! consuming them, escalations read back from ALERTS. The latency of an
//! escalation is the time from the publish of the event that raised it to its
//! arrival on ALERTS (events are stamped with their publish time, so an
//! escalation's `opened_at` is that moment).
//!
//! Run: `cargo bench -p posbon-benches --bench escalation` (needs the pinned
//! nats-server: `eval "$(scripts/install-test-deps.sh)"`).

use posbon_model::Span;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use posbon_bus::subjects::{ALERTS_STREAM, Place, event_subject};
use posbon_bus::{Bus, Headers, NatsBus, NatsOptions, OutgoingMessage, default_streams};
use posbon_geo::{Registry, RegistryOptions};
use posbon_model::{EnrichedEvent, Escalation, Limits, parse_event};
use posbon_risk::RiskConfig;
use posbon_sim::{CityOptions, EventOptions, EventStream, SimBody, SimRegistry};
use posbon_store::{MemoryStore, Store};
use posbon_telemetry::Metrics;
use posbon_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

/// The allocator the service binaries use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RATE: usize = 10_000;
/// Long enough for a few dozen escalations (about one every 3 s here).
const SECONDS: usize = 90;
const TICK: Duration = Duration::from_millis(10);

fn events(reg: &Registry, geojson: &str) -> Vec<EnrichedEvent> {
    let sim = Arc::new(SimRegistry::from_geojson(geojson.as_bytes()).expect("registry"));
    let options = EventOptions {
        seed: 11,
        // Dense enough that drug-handoff clusters and fraud waves recur.
        rate_per_hour: 200_000.0,
        // Enough events for SECONDS at RATE: the simulated rate follows the
        // hour of day, and some events are invalid.
        duration: chrono::TimeDelta::seconds((RATE * SECONDS * 3600 / 200_000 * 2) as i64),
        ..EventOptions::default()
    };
    let far = Utc::now() + chrono::TimeDelta::days(3650);
    EventStream::new(sim, &options)
        .expect("stream")
        .filter(|i| matches!(i.body, SimBody::Valid { .. }))
        .take(RATE * SECONDS)
        .map(|item| {
            let event = parse_event(item.line.as_bytes(), &Limits::default(), far).expect("valid");
            posbon_sim::enrich(reg, event, far).expect("locate")
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let city = posbon_sim::city_registry(&CityOptions::default()).expect("city");
    let geojson = city.to_geojson_string();
    let reg = Arc::new(
        Registry::from_geojson(geojson.as_bytes(), &RegistryOptions::default()).expect("registry"),
    );
    let mut events = events(&reg, &geojson);
    let nats = NatsServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let bus: Arc<dyn Bus> = Arc::new(
            NatsBus::connect(vec![nats.url()], NatsOptions::default())
                .await
                .expect("connect"),
        );
        bus.ensure_streams(&default_streams()).await.expect("streams");
        let store: Store = Arc::new(MemoryStore::new());
        let stop = CancellationToken::new();
        let metrics = Metrics::new();
        let escalator = tokio::spawn({
            let (bus, store, reg, stop, metrics) = (
                bus.clone(),
                store.clone(),
                reg.clone(),
                stop.clone(),
                metrics.clone(),
            );
            async move {
                let config = posbon_escalator::EscalatorConfig {
                    listen: "127.0.0.1:0".into(),
                    http: Default::default(),
                    nats_urls: vec![],
                    registry: None,
                    shard_index: Some(0),
                    shard_count: 1,
                    instance: Some("bench".into()),
                    lease_ttl: Span::from_secs(10),
                    allowed_lateness: Span::from_secs(5),
                    tick: Span::from_secs(60),
                    checkpoint: Span::from_secs(5),
                    fetch_batch: 2000,
                    fetch_wait: Span::from_millis(20),
                    ack_wait: Span::from_secs(60),
                };
                posbon_escalator::consume(config, RiskConfig::default(), bus, store, reg, &metrics, stop).await
            }
        });
        // Read ALERTS as they come.
        let reader = tokio::spawn({
            let bus = bus.clone();
            let stop = stop.clone();
            async move {
                let mut r = bus.read_stream(ALERTS_STREAM, vec![], 1).await.expect("reader");
                let mut latencies = Vec::new();
                loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => break,
                        m = r.next() => m,
                    };
                    let Some(Ok(m)) = next else { break };
                    if let Ok(e) = serde_json::from_slice::<Escalation>(&m.payload) {
                        let ms = (Utc::now() - e.opened_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                        latencies.push((ms, e.rule));
                    }
                }
                latencies
            }
        });
        // Publish at RATE, stamping each event with its publish time.
        let per_tick = RATE * TICK.as_millis() as usize / 1000;
        let started = Instant::now();
        let mut next = tokio::time::Instant::now();
        for chunk in events.chunks_mut(per_tick) {
            let now = Utc::now().fixed_offset();
            let messages = chunk
                .iter_mut()
                .map(|e| {
                    e.event.header_mut().occurred_at = now;
                    let place = match (&e.region_id, &e.district_id, &e.mahalla_id) {
                        (Some(r), Some(d), Some(m)) => Some(Place::new(r, d, m)),
                        _ => None,
                    };
                    OutgoingMessage::new(
                        event_subject(place, e.event.kind().as_str()).expect("subject"),
                        Headers::new().with_msg_id(e.event.id()),
                        Bytes::from(serde_json::to_vec(&*e).expect("json")),
                    )
                })
                .collect();
            for r in bus.publish_many(messages).await {
                r.expect("publish");
            }
            next += TICK;
            tokio::time::sleep_until(next).await;
        }
        let elapsed = started.elapsed();
        let published = events.len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.cancel();
        let _ = escalator.await;
        let latencies = reader.await.expect("reader");
        let mut all: Vec<f64> = latencies.iter().map(|(l, _)| *l).collect();
        all.sort_by(f64::total_cmp);
        println!(
            "escalation latency through JetStream: {} events in {:.1} s ({:.0} events/s offered), {} escalations",
            published,
            elapsed.as_secs_f64(),
            published as f64 / elapsed.as_secs_f64(),
            all.len()
        );
        println!(
            "  event published -> escalation on ALERTS: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all.last().copied().unwrap_or(f64::NAN)
        );
        // With a few dozen escalations the p99 is the maximum: show the tail.
        let tail: Vec<String> = all.iter().rev().take(5).map(|l| format!("{l:.1}")).collect();
        println!("  slowest (ms): {}", tail.join(", "));
        let mut rules: std::collections::BTreeMap<&str, usize> = Default::default();
        for (_, r) in &latencies {
            *rules.entry(r.as_str()).or_default() += 1;
        }
        println!("  by rule: {rules:?}");
        // Where the loop pauses: checkpoints are written inside it.
        for line in metrics.render().lines() {
            if line.starts_with("posbon_escalator_checkpoint_seconds") {
                println!("  {line}");
            }
        }
    });
}
