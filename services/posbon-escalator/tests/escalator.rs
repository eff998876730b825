//! The escalator reproduces exactly the escalations of a straight replay of
//! the same events: over the in-memory bus and store after a crash in the
//! middle and when the mahallas are re-sharded from one instance to two; and
//! over a real nats-server and TiKV (the in-repo test server) while
//! instances that take shards through leases join, leave and die.

use posbon_model::Span;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeDelta, TimeZone as _, Utc};
use posbon_bus::subjects::{ALERTS_STREAM, EVENTS_STREAM, Place, event_subject};
use posbon_bus::{Bus, ConsumerOptions, Headers, MemoryBus, OutgoingMessage, default_streams};
use posbon_escalator::{EscalatorConfig, Shard};
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, Escalation, Limits, parse_event};
use posbon_risk::{Engine, RiskConfig};
use posbon_sim::{EventOptions, EventStream, SimBody, SimRegistry};
use posbon_store::{MemoryStore, Store};
use posbon_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

fn registry() -> (Arc<Registry>, Arc<SimRegistry>) {
    let city = posbon_sim::city_registry(&posbon_sim::CityOptions::default()).expect("city");
    let reg = city.registry().expect("registry");
    (
        Arc::new(reg),
        Arc::new(SimRegistry::from_generated(&city).expect("sim registry")),
    )
}

/// Four days of the simulated city, enriched as ingest would.
fn events(reg: &Registry, sim: Arc<SimRegistry>) -> Vec<EnrichedEvent> {
    let options = EventOptions {
        seed: 7,
        rate_per_hour: 150.0,
        duration: TimeDelta::days(4),
        start: Utc
            .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
            .single()
            .expect("start")
            .fixed_offset(),
        bad_fraction: 0.0,
        situations: Default::default(),
    };
    let far = Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("now");
    EventStream::new(sim, &options)
        .expect("stream")
        .filter(|item| matches!(item.body, SimBody::Valid { .. }))
        .map(|item| {
            let event = parse_event(item.line.as_bytes(), &Limits::default(), far).expect("valid");
            posbon_sim::enrich(reg, event, far).expect("locate")
        })
        .collect()
}

fn config(shard: Shard) -> EscalatorConfig {
    EscalatorConfig {
        listen: "127.0.0.1:0".into(),
        http: Default::default(),
        nats_urls: vec![],
        registry: None,
        shard_index: Some(shard.index),
        shard_count: shard.count,
        instance: Some(format!("test-{}", shard.name())),
        lease_ttl: Span::from_secs(3),
        allowed_lateness: Span::from_secs(300),
        // No idle ticks during the test: the reference has none either.
        tick: Span::from_secs(3600),
        checkpoint: Span::from_secs(1),
        fetch_batch: 500,
        fetch_wait: Span::from_millis(50),
        ack_wait: Span::from_secs(2),
    }
}

/// The escalations of a straight in-process replay (one shard, no bus).
fn reference(reg: Arc<Registry>, events: &[EnrichedEvent]) -> BTreeMap<String, Escalation> {
    let engine = Engine::new(RiskConfig::default(), reg).expect("engine");
    let mut e = posbon_escalator::Escalator::new(
        Shard::new(0, 1).expect("shard"),
        engine,
        Duration::from_secs(300),
        Duration::from_secs(3600),
    )
    .expect("escalator");
    for (i, event) in events.iter().enumerate() {
        e.apply(i as u64 + 1, event);
    }
    e.outbox()
        .iter()
        .map(|x| (x.id.clone(), x.clone()))
        .collect()
}

async fn publish(bus: &dyn Bus, events: &[EnrichedEvent]) {
    let messages = events
        .iter()
        .map(|e| {
            let place = match (&e.region_id, &e.district_id, &e.mahalla_id) {
                (Some(r), Some(d), Some(m)) => Some(Place::new(r, d, m)),
                _ => None,
            };
            OutgoingMessage::new(
                event_subject(place, e.event.kind().as_str()).expect("subject"),
                Headers::new().with_msg_id(e.event.id()),
                Bytes::from(serde_json::to_vec(e).expect("json")),
            )
        })
        .collect();
    for r in bus.publish_many(messages).await {
        r.expect("publish");
    }
}

fn spawn(
    shard: Shard,
    bus: Arc<dyn Bus>,
    store: Store,
    reg: Arc<Registry>,
) -> (
    tokio::task::JoinHandle<anyhow::Result<()>>,
    CancellationToken,
) {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move {
        posbon_escalator::consume(
            config(shard),
            RiskConfig::default(),
            bus,
            store,
            reg,
            &Metrics::new(),
            token,
        )
        .await
    });
    (handle, stop)
}

/// Every escalation on ALERTS, by id; panics on a duplicate id.
async fn alerts(bus: &dyn Bus, durable: &str) -> BTreeMap<String, Escalation> {
    let c = bus
        .consumer(ALERTS_STREAM, durable, vec![], ConsumerOptions::default())
        .await
        .expect("consumer");
    let mut out = BTreeMap::new();
    loop {
        let got = c
            .fetch(1000, Duration::from_millis(200))
            .await
            .expect("fetch");
        if got.is_empty() {
            return out;
        }
        for d in got {
            let e: Escalation = serde_json::from_slice(&d.payload).expect("escalation");
            assert!(
                out.insert(e.id.clone(), e).is_none(),
                "duplicate escalation on ALERTS"
            );
            d.ack().await.expect("ack");
        }
    }
}

/// Waits until every consumer of `shards` applied all of EVENTS.
async fn drained(bus: &dyn Bus, store: &Store, shards: &[Shard], last: u64) {
    for _ in 0..600 {
        let mut done = true;
        for s in shards {
            let seq = posbon_escalator::read_checkpoint(store, &s.name())
                .await
                .expect("checkpoint")
                .map_or(0, |c| c.sequence);
            done &= seq >= last;
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = bus;
    panic!("the escalators did not catch up with sequence {last}");
}

fn same(got: &BTreeMap<String, Escalation>, want: &BTreeMap<String, Escalation>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (id, w) in want {
        let g = &got[id];
        assert_eq!(
            (g.level, g.previous_level, &g.rule, &g.mahalla_id),
            (w.level, w.previous_level, &w.rule, &w.mahalla_id),
            "{id}"
        );
        assert_eq!(g.evidence, w.evidence, "{id}");
        assert_eq!(g.opened_at, w.opened_at, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_reshard_reproduce_the_straight_replay() {
    posbon_testkit::init_test_logging();
    let (reg, sim) = registry();
    let events = events(&reg, sim);
    let want = reference(reg.clone(), &events);
    assert!(
        want.len() >= 3,
        "the simulated days must escalate: {}",
        want.len()
    );
    eprintln!(
        "{} events, {} escalations in the straight replay",
        events.len(),
        want.len()
    );

    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let store: Store = Arc::new(MemoryStore::new());
    let one = Shard::new(0, 1).expect("shard");
    let half = events.len() / 2;

    // First half, then a crash: the task is aborted without a final checkpoint.
    let (task, _stop) = spawn(one, bus.clone(), store.clone(), reg.clone());
    publish(&*bus, &events[..half / 2]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    publish(&*bus, &events[half / 2..half]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let _ = task.await;

    // Restart the same shard; it finishes the first half.
    let (task, stop) = spawn(one, bus.clone(), store.clone(), reg.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    if task.is_finished() {
        panic!("escalator ended: {:?}", task.await);
    }
    drained(&*bus, &store, &[one], half as u64).await;
    stop.cancel();
    task.await.expect("join").expect("escalator");

    // Re-shard to two instances for the second half.
    let shards = [Shard::new(0, 2).expect("s0"), Shard::new(1, 2).expect("s1")];
    let running: Vec<_> = shards
        .iter()
        .map(|s| spawn(*s, bus.clone(), store.clone(), reg.clone()))
        .collect();
    publish(&*bus, &events[half..]).await;
    let last = bus
        .stream_info(EVENTS_STREAM)
        .await
        .expect("info")
        .last_sequence;
    assert_eq!(last, events.len() as u64);
    drained(&*bus, &store, &shards, last).await;
    for (task, stop) in running {
        stop.cancel();
        task.await.expect("join").expect("escalator");
    }
    same(&alerts(&*bus, "check").await, &want);
}

/// A leased escalator instance named `name` over `shard_count` shards.
fn spawn_leased(
    name: &str,
    shard_count: u32,
    bus: Arc<dyn Bus>,
    store: Store,
    reg: Arc<Registry>,
    metrics: Metrics,
) -> (
    tokio::task::JoinHandle<anyhow::Result<()>>,
    CancellationToken,
) {
    let config = EscalatorConfig {
        shard_index: None,
        instance: Some(name.to_owned()),
        ..config(Shard::new(0, shard_count).expect("shard"))
    };
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move {
        posbon_escalator::consume(
            config,
            RiskConfig::default(),
            bus,
            store,
            reg,
            &metrics,
            token,
        )
        .await
    });
    (handle, stop)
}

/// Who holds each shard lease now (live ones only).
async fn holders(store: &Store) -> BTreeMap<String, String> {
    use posbon_store::LeaseStoreExt as _;
    let now = Utc::now().timestamp_millis();
    store
        .leases(posbon_escalator::leased::SHARD_LEASE_PREFIX)
        .await
        .expect("leases")
        .into_iter()
        .filter(|(_, l)| l.is_live(now))
        // The instance's name, without the process's own mark (`#…`).
        .map(|(name, l)| {
            (
                name,
                l.holder.split('#').next().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Waits until `check` holds of the shard holders; returns how long it took.
async fn until_holders(
    store: &Store,
    what: &str,
    check: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let now = holders(store).await;
        if check(&now) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: holders stayed {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn held_by(holders: &BTreeMap<String, String>, name: &str) -> usize {
    holders.values().filter(|h| *h == name).count()
}

/// Escalator instances taking shards through leases, over a real
/// nats-server and TiKV: a second instance gets half the shards, the first
/// one's shards pass to the second within the lease's time when it dies
/// (aborted: no checkpoint, no release), a third one joins, and through all
/// of it the escalations are exactly those of a straight replay, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_shards_move_between_instances_and_nothing_is_lost_or_doubled() {
    posbon_testkit::init_test_logging();
    let (reg, sim) = registry();
    let events = events(&reg, sim);
    let want = reference(reg.clone(), &events);
    let nats = posbon_testkit::NatsServer::start();
    let tikv = posbon_tikv_testserver::TestServer::start(Default::default())
        .await
        .expect("tikv test server");
    let bus: Arc<dyn Bus> = Arc::new(
        posbon_bus::NatsBus::connect(vec![nats.url()], Default::default())
            .await
            .expect("nats"),
    );
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let store: Store = Arc::new(
        posbon_store::TikvStore::connect(
            &posbon_store::TikvConfig::new([tikv.pd_endpoint()]),
            None,
        )
        .await
        .expect("tikv"),
    );
    const SHARDS: u32 = 4;
    let shards: Vec<Shard> = (0..SHARDS)
        .map(|i| Shard::new(i, SHARDS).expect("shard"))
        .collect();
    let all = |h: &BTreeMap<String, String>| h.len() == SHARDS as usize;
    let quarter = events.len() / 4;

    // One instance takes every shard.
    let (a, _stop_a) = spawn_leased(
        "a",
        SHARDS,
        bus.clone(),
        store.clone(),
        reg.clone(),
        Metrics::new(),
    );
    until_holders(&store, "a takes all", |h| all(h) && held_by(h, "a") == 4).await;
    publish(&*bus, &events[..quarter]).await;

    // A second joins: each holds two.
    let (b, stop_b) = spawn_leased(
        "b",
        SHARDS,
        bus.clone(),
        store.clone(),
        reg.clone(),
        Metrics::new(),
    );
    let balanced = until_holders(&store, "a and b share", |h| {
        all(h) && held_by(h, "a") == 2 && held_by(h, "b") == 2
    })
    .await;
    eprintln!("shards shared between two instances after {balanced:?}");
    publish(&*bus, &events[quarter..2 * quarter]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    // The first dies without a word: its shards pass to b.
    a.abort();
    let _ = a.await;
    let recovered = until_holders(&store, "b takes a's shards", |h| {
        all(h) && held_by(h, "b") == 4
    })
    .await;
    eprintln!(
        "shards of the dead instance taken over after {recovered:?} (lease 3 s, renewed every 1 s)"
    );
    // The lease, the tick that notices, and slack for a loaded machine.
    assert!(
        recovered <= Duration::from_secs(3 + 1 + 4),
        "taken over within the lease and a tick: {recovered:?}"
    );
    publish(&*bus, &events[2 * quarter..3 * quarter]).await;

    // A third joins; then b stops cleanly and c takes everything.
    let (c, stop_c) = spawn_leased(
        "c",
        SHARDS,
        bus.clone(),
        store.clone(),
        reg.clone(),
        Metrics::new(),
    );
    until_holders(&store, "b and c share", |h| {
        all(h) && held_by(h, "b") == 2 && held_by(h, "c") == 2
    })
    .await;
    publish(&*bus, &events[3 * quarter..]).await;
    stop_b.cancel();
    b.await.expect("join").expect("b");
    let handed = until_holders(&store, "c takes b's shards", |h| {
        all(h) && held_by(h, "c") == 4
    })
    .await;
    eprintln!("shards of a stopped instance taken over after {handed:?}");
    let last = bus
        .stream_info(EVENTS_STREAM)
        .await
        .expect("info")
        .last_sequence;
    assert_eq!(last, events.len() as u64);
    drained(&*bus, &store, &shards, last).await;
    stop_c.cancel();
    c.await.expect("join").expect("c");
    // Exactly the straight replay's escalations, each once on ALERTS (a
    // re-publication after a takeover is dropped by its message id).
    same(&alerts(&*bus, "check").await, &want);
}

/// Defence in depth: an event stamped far ahead of its ingestion (ingest
/// would have refused it) is not applied, so the watermark, and every tick,
/// stays where the real events put it.
#[test]
fn an_event_from_the_future_is_not_applied() {
    let (reg, sim) = registry();
    let events = events(&reg, sim);
    let engine = Engine::new(RiskConfig::default(), reg).expect("engine");
    let mut e = posbon_escalator::Escalator::new(
        Shard::new(0, 1).expect("shard"),
        engine,
        Duration::from_secs(300),
        Duration::from_secs(3600),
    )
    .expect("escalator");
    assert!(matches!(
        e.apply(1, &events[0]),
        posbon_escalator::Applied::Applied { .. }
    ));
    let watermark = e.watermark();
    let mut forged = events[1].clone();
    forged.ingested_at = forged.event.occurred_at().with_timezone(&Utc)
        - posbon_escalator::MAX_AHEAD_OF_INGEST
        - TimeDelta::minutes(1);
    assert_eq!(e.apply(2, &forged), posbon_escalator::Applied::OutOfWindow);
    assert_eq!(e.watermark(), watermark, "the watermark did not move");
    assert!(matches!(
        e.apply(3, &events[1]),
        posbon_escalator::Applied::Applied { .. }
    ));
}
