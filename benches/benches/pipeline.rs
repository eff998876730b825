//! End to end on this machine: events/s from publish to indexed, through a real
//! JetStream (nats-server from posbon-testkit) and through the in-memory bus,
//! printed beside a raw JetStream publish-and-consume of the same messages
//! measured in the same run.
//!
//! Run: `cargo bench -p posbon-benches --bench pipeline` (needs the pinned
//! nats-server: `eval "$(scripts/install-test-deps.sh)"`). Targets: the
//! pipeline sustains at least 60% of the raw broker rate; the embedded path
//! (in-memory bus) at least 200k events/s on 2 cores.
//!
//! Events are simulated over the Tashkent registry (about 400 bytes each), all
//! valid. "Indexed" means written durably to the embedded store and
//! acknowledged.
//!
//! Each JetStream figure is printed with the CPU time nats-server and this
//! process used for it: on two cores the two together are the bound. The
//! publisher, ingest and the indexer each have a connection, as the services
//! have in a deployment. The in-memory pipeline runs three times by default,
//! each on a fresh bus and store, and the median is the figure: the first
//! pass of a process also pays for fresh memory from the kernel, which a
//! running service has long since paid for.
//!
//! Knobs: `POSBON_BENCH_PIPELINE=memory` runs only the in-memory pipeline,
//! `POSBON_BENCH_PIPELINE_PASSES=n` runs it n times, `POSBON_BENCH_INGEST_BATCH=n`
//! and `POSBON_BENCH_INDEXER_BATCH=n` set the batches of ingest and the
//! indexer (their configurations' defaults otherwise), and `POSBON_BENCH_PIPELINE_STAGES=1` prints when
//! each stage finished (the last publish, ingest's last ack, the indexer's
//! last ack) and the indexer's batch count and time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use posbon_bus::subjects::{EVENTS_STREAM, INGEST_STREAM};
use posbon_bus::{Bus, ConsumerOptions, Headers, MemoryBus, NatsBus, NatsOptions, OutgoingMessage};
use posbon_geo::{Registry, RegistryOptions};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimRegistry};
use posbon_store::{EmbeddedStore, Store};
use posbon_telemetry::Metrics;
use posbon_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 100_000;

/// The allocator the service binaries use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn lines(geojson: &str) -> Vec<Bytes> {
    let sim = Arc::new(SimRegistry::from_geojson(geojson.as_bytes()).expect("registry"));
    let options = EventOptions {
        seed: 5,
        rate_per_hour: 50_000.0,
        duration: chrono::TimeDelta::hours(6),
        ..EventOptions::default()
    };
    EventStream::new(sim, &options)
        .expect("stream")
        .map(|item| Bytes::from(item.line))
        .take(EVENTS)
        .collect()
}

/// Raw async-nats: publish with a window of 4096 acks in flight while a pull
/// consumer on a connection of its own (as the pipeline's consumers have)
/// receives and acknowledges each message.
async fn raw_jetstream(url: &str, payloads: &[Bytes]) -> Duration {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let consumer = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"))
        .get_stream("RAW")
        .await
        .expect("stream")
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let started = Instant::now();
    let n = payloads.len();
    let consume = tokio::spawn(async move {
        let mut messages = consumer.messages().await.expect("messages");
        let mut seen = 0;
        while seen < n {
            let m = messages.next().await.expect("message").expect("ok");
            m.ack().await.expect("ack");
            seen += 1;
        }
    });
    let mut window = VecDeque::new();
    for p in payloads {
        window.push_back(js.publish("raw.event", p.clone()).await.expect("publish"));
        if window.len() >= 4096 {
            window.pop_front().expect("some").await.expect("ack");
        }
    }
    while let Some(ack) = window.pop_front() {
        ack.await.expect("ack");
    }
    consume.await.expect("consumer");
    started.elapsed()
}

/// Ingest and indexer in this process on `bus`, writing to an embedded store;
/// time from the first publish on `posbon.ingest.*` until both consumers have
/// acknowledged everything.
async fn pipeline(buses: Buses, registry: Arc<Registry>, payloads: &[Bytes]) -> Duration {
    let bus = buses.producer.clone();
    bus.ensure_streams(&posbon_bus::default_streams())
        .await
        .expect("streams");
    let dir = tempfile::tempdir().expect("dir");
    let store: Store = Arc::new(EmbeddedStore::open(dir.path().join("store")).expect("store"));
    let mut ingest_config = posbon_ingest::serve::load_config(None)
        .expect("config")
        .ingest;
    ingest_config.pseudonym_key = Some("posbon benchmark pseudonym key, 32+ characters".into());
    let mut indexer_config = posbon_indexer::serve::load_config(None)
        .expect("config")
        .indexer;
    if let Some(batch) = std::env::var("POSBON_BENCH_INDEXER_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        indexer_config.fetch_batch = batch;
    }
    let ingest_batch = std::env::var("POSBON_BENCH_INGEST_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ingest_config.fetch_batch);
    let ingest = posbon_ingest::build(
        &ingest_config,
        buses.ingest.clone(),
        registry,
        &Metrics::new(),
    )
    .expect("ingest");
    let shutdown = CancellationToken::new();
    let ingest_task = {
        let (ingest, shutdown) = (ingest.clone(), shutdown.clone());
        tokio::spawn(async move {
            posbon_ingest::consumer::run(
                ingest,
                posbon_ingest::consumer::ConsumerSettings {
                    fetch_batch: ingest_batch,
                    ..posbon_ingest::consumer::ConsumerSettings::from(&ingest_config)
                },
                &Metrics::new(),
                shutdown,
            )
            .await
        })
    };
    let indexer_metrics = Metrics::new();
    let indexer_task = {
        let indexer_metrics = indexer_metrics.clone();
        let (bus, store, shutdown, config) = (
            buses.indexer.clone(),
            store.clone(),
            shutdown.clone(),
            indexer_config.clone(),
        );
        tokio::spawn(async move {
            posbon_indexer::consume(&config, bus, store, &indexer_metrics, shutdown).await
        })
    };
    // Each event on its kind's subject, as producers publish (ingest refuses
    // another kind than the subject names).
    let subjects: Vec<String> = payloads
        .iter()
        .map(|p| {
            let kind = serde_json::from_slice::<serde_json::Value>(p)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "incident".to_owned());
            format!("posbon.ingest.{kind}")
        })
        .collect();
    let started = Instant::now();
    for (chunk, subjects) in payloads.chunks(4096).zip(subjects.chunks(4096)) {
        let messages = chunk
            .iter()
            .zip(subjects)
            .map(|(p, subject)| OutgoingMessage::new(subject.clone(), Headers::new(), p.clone()))
            .collect();
        for r in bus.publish_many(messages).await {
            r.expect("published");
        }
    }
    let published = started.elapsed();
    let mut ingested = None;
    let ingest_lag = bus
        .consumer(
            INGEST_STREAM,
            posbon_ingest::consumer::DURABLE,
            Vec::new(),
            ConsumerOptions::default(),
        )
        .await
        .expect("consumer");
    let indexer_lag = bus
        .consumer(
            EVENTS_STREAM,
            posbon_indexer::DURABLE,
            Vec::new(),
            indexer_config.consumer_options(),
        )
        .await
        .expect("consumer");
    loop {
        let events = bus.stream_info(EVENTS_STREAM).await.expect("info").messages;
        let a = ingest_lag.pending().await.expect("lag").total();
        let b = indexer_lag.pending().await.expect("lag").total();
        if a == 0 && events as usize >= payloads.len() && ingested.is_none() {
            ingested = Some(started.elapsed());
        }
        if a == 0 && b == 0 && events as usize >= payloads.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    if std::env::var("POSBON_BENCH_PIPELINE_STAGES").is_ok() {
        println!(
            "  published after {published:.2?}, ingested after {:.2?}, indexed after {elapsed:.2?}",
            ingested.unwrap_or(elapsed)
        );
        for line in indexer_metrics.render().lines() {
            if line.starts_with("posbon_indexer_batch") && !line.contains("bucket") {
                println!("  {line}");
            }
        }
    }
    shutdown.cancel();
    ingest_task.await.expect("task").expect("ingest");
    indexer_task.await.expect("task").expect("indexer");
    elapsed
}

/// The connections of the benchmark's publisher, ingest and the indexer.
struct Buses {
    producer: Arc<dyn Bus>,
    ingest: Arc<dyn Bus>,
    indexer: Arc<dyn Bus>,
}

impl Buses {
    fn shared(bus: Arc<dyn Bus>) -> Self {
        Self {
            producer: bus.clone(),
            ingest: bus.clone(),
            indexer: bus,
        }
    }
}

/// The raw JetStream figure and the pipeline through JetStream, each on a
/// fresh nats-server, with the CPU nats-server and this process used for each.
async fn jetstream_figures(registry: Arc<Registry>, payloads: &[Bytes]) {
    let n = payloads.len();
    let server = NatsServer::start();
    let cpu = Cpu::now(&server);
    let raw = raw_jetstream(&server.url(), payloads).await;
    println!(
        "raw jetstream publish + consume (ack each): {:.0} events/s ({raw:.2?}); {}",
        rate(n, raw),
        cpu.used(&server, n)
    );
    drop(server);
    let server = NatsServer::start();
    // A connection for each, as the services have in a deployment.
    let connect = || async {
        Arc::new(
            NatsBus::connect(vec![server.url()], NatsOptions::default())
                .await
                .expect("connect"),
        ) as Arc<dyn Bus>
    };
    let buses = Buses {
        producer: connect().await,
        ingest: connect().await,
        indexer: connect().await,
    };
    let cpu = Cpu::now(&server);
    let through_nats = pipeline(buses, registry, payloads).await;
    println!(
        "pipeline through jetstream, publish to indexed: {:.0} events/s ({through_nats:.2?}) = {:.0}% of raw (target >= 60%); {}",
        rate(n, through_nats),
        100.0 * raw.as_secs_f64() / through_nats.as_secs_f64(),
        cpu.used(&server, n)
    );
}

/// CPU time (user and system) used so far by nats-server and by this process.
struct Cpu {
    server: f64,
    this: f64,
}

impl Cpu {
    fn now(server: &NatsServer) -> Self {
        Self {
            server: cpu_seconds(&server.pid().expect("nats-server runs").to_string()),
            this: cpu_seconds("self"),
        }
    }

    /// The CPU used since `self` was taken, in all and per event.
    fn used(&self, server: &NatsServer, events: usize) -> String {
        let now = Self::now(server);
        let (s, t) = (now.server - self.server, now.this - self.this);
        let per_event = |secs: f64| secs * 1e6 / events as f64;
        format!(
            "cpu: nats-server {s:.2}s ({:.1} us/event), this process {t:.2}s ({:.1} us/event)",
            per_event(s),
            per_event(t)
        )
    }
}

/// CPU seconds a process has used, from `/proc/<pid>/stat` (utime + stime,
/// fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat ends its command name with ')'")
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("clock ticks");
    (ticks(11) + ticks(12)) / 100.0
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; this benchmark takes no options, only
    // the environment variables below.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let city = posbon_sim::city_registry(&CityOptions::default()).expect("city");
    let geojson = city.to_geojson_string();
    let registry = Arc::new(
        Registry::from_geojson(geojson.as_bytes(), &RegistryOptions::default()).expect("registry"),
    );
    let payloads = lines(&geojson);
    let mean = payloads.iter().map(|p| p.len()).sum::<usize>() / payloads.len();
    println!(
        "{} simulated events, {mean} bytes on average",
        payloads.len()
    );
    // POSBON_BENCH_PIPELINE=memory runs only the in-memory pipeline (for
    // profiling it alone); POSBON_BENCH_PIPELINE_PASSES runs it that many
    // times, each on a fresh bus and store.
    let memory_only = std::env::var("POSBON_BENCH_PIPELINE").is_ok_and(|v| v == "memory");
    let passes: usize = std::env::var("POSBON_BENCH_PIPELINE_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    runtime.block_on(async {
        if !memory_only {
            jetstream_figures(registry.clone(), &payloads).await;
        }
        let mut rates = Vec::new();
        for pass in 1..=passes {
            let memory: Arc<dyn Bus> = Arc::new(MemoryBus::new());
            let embedded = pipeline(Buses::shared(memory), registry.clone(), &payloads).await;
            rates.push(rate(payloads.len(), embedded));
            println!(
                "pipeline on the in-memory bus, pass {pass}, publish to indexed: {:.0} events/s ({embedded:.2?})",
                rate(payloads.len(), embedded),
            );
        }
        if !rates.is_empty() {
            rates.sort_by(f64::total_cmp);
            println!(
                "pipeline on the in-memory bus, median of {passes} passes: {:.0} events/s (target >= 200k/s)",
                rates[rates.len() / 2]
            );
        }
    });
}
