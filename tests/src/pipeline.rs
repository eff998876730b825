//! The pipeline end to end on a real nats-server, shared by the tests of
//! each store backend (`tests/pipeline.rs`, `tests/pipeline_tikv.rs`): 100k
//! simulated events (2% malformed, 1% sent twice) published over NATS and
//! over HTTP, through ingest (in this process) and the indexer (a `posbon
//! indexer` process) into the store. Afterwards the store holds exactly the
//! accepted events, once each, at the right cells and mahallas, and every
//! malformed line is in the DLQ with its reason, whatever [`Chaos`] happened
//! mid-stream.

use posbon_model::Span;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::posbon_bin;
use bytes::Bytes;
use chrono::Utc;
use posbon_bus::subjects::{DLQ_STREAM, EVENTS_STREAM, INGEST_STREAM};
use posbon_bus::{Bus, ConsumerOptions, Headers, NatsBus, NatsOptions, OutgoingMessage};
use posbon_geo::{Registry, RegistryOptions};
use posbon_model::{Limits, parse_event};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimRegistry};
use posbon_store::{EventStoreExt, StoreConfig, open_store};
use posbon_telemetry::Metrics;
use posbon_testkit::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const LINES: usize = 100_000;
const INDEXER_ACK_WAIT: Span = Span::from_secs(3);

/// The stream: simulated lines, plus every 100th valid line sent again.
struct Workload {
    lines: Vec<String>,
    /// Ids of the valid events (first version wins).
    valid_ids: HashSet<String>,
    /// Malformed lines, exactly as sent.
    malformed: HashSet<String>,
}

fn workload(registry_geojson: &str) -> Workload {
    let sim = Arc::new(
        SimRegistry::from_geojson(registry_geojson.as_bytes()).expect("simulated registry"),
    );
    let options = EventOptions {
        seed: 99,
        rate_per_hour: 20_000.0,
        duration: chrono::TimeDelta::hours(10),
        bad_fraction: 0.02,
        situations: Default::default(),
        ..EventOptions::default()
    };
    let mut lines: Vec<String> = EventStream::new(sim, &options)
        .expect("event stream")
        .map(|item| item.line)
        .take(LINES)
        .collect();
    let now = Utc::now();
    let mut valid_ids = HashSet::new();
    let mut malformed = HashSet::new();
    let mut repeats = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match parse_event(line.as_bytes(), &Limits::default(), now) {
            Ok(event) => {
                valid_ids.insert(event.id().to_owned());
                if n % 100 == 0 {
                    repeats.push(line.clone());
                }
            }
            Err(_) => {
                malformed.insert(line.clone());
            }
        }
    }
    // The repeats go in the middle and the end of the stream.
    let half = lines.len() / 2;
    let tail = lines.split_off(half);
    let (first, second) = repeats.split_at(repeats.len() / 2);
    lines.extend(first.iter().cloned());
    lines.extend(tail);
    lines.extend(second.iter().cloned());
    assert!(
        malformed.len() > LINES / 100,
        "{} malformed lines",
        malformed.len()
    );
    Workload {
        lines,
        valid_ids,
        malformed,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The indexer as a separate process, so it can be killed.
struct Indexer {
    child: Child,
    config: PathBuf,
}

impl Indexer {
    fn start(config: &Path) -> Indexer {
        let child = Command::new(posbon_bin())
            .args(["indexer", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("posbon indexer starts");
        Indexer {
            child,
            config: config.to_owned(),
        }
    }

    fn kill9(&mut self) {
        self.child.kill().expect("sigkill");
        self.child.wait().expect("reaped");
    }

    fn restart(&mut self) {
        *self = Indexer::start(&self.config);
    }

    /// SIGTERM, and waits for a clean exit: the batch in hand is written first.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let status = self.child.wait().expect("indexer exits");
        assert!(status.success(), "indexer exited with {status}");
    }
}

/// The `[store]` section of the indexer's configuration file.
fn store_section(store: &StoreConfig) -> String {
    match &store.tikv {
        None => format!("[store]\npath = \"{}\"\n", store.path.display()),
        Some(tikv) => {
            let endpoints: Vec<String> = tikv
                .pd_endpoints
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect();
            format!(
                "[store]\n[store.tikv]\npd_endpoints = [{}]\n",
                endpoints.join(", ")
            )
        }
    }
}

fn write_indexer_config(dir: &Path, nats_url: &str, store: &StoreConfig) -> PathBuf {
    let path = dir.join("indexer.toml");
    let config = format!(
        "[indexer]\nlisten = \"127.0.0.1:{port}\"\nnats_urls = [\"{nats_url}\"]\nfetch_batch = 1000\nfetch_wait = \"100ms\"\nack_wait = \"{INDEXER_ACK_WAIT}\"\n\n{store}\n[telemetry]\nlog_level = \"warn\"\n",
        port = free_port(),
        store = store_section(store),
    );
    std::fs::write(&path, config).expect("indexer config");
    path
}

async fn connect(url: &str) -> Arc<dyn Bus> {
    Arc::new(
        NatsBus::connect(vec![url.to_owned()], NatsOptions::default())
            .await
            .expect("nats connects"),
    )
}

/// Publishes each line as one message on `posbon.ingest.<kind>`, retrying what
/// the server did not acknowledge, as a JetStream producer does.
async fn publish_over_nats(bus: &Arc<dyn Bus>, lines: &[String]) {
    for chunk in lines.chunks(2000) {
        let mut pending: Vec<&String> = chunk.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !pending.is_empty() {
            assert!(Instant::now() < deadline, "nats did not take the events");
            let messages = pending
                .iter()
                .map(|l| {
                    OutgoingMessage::new(
                        "posbon.ingest.event",
                        Headers::new(),
                        Bytes::from((*l).clone()),
                    )
                })
                .collect();
            let t = Instant::now();
            let results = bus.publish_many(messages).await;
            let failed = results.iter().filter(|r| r.is_err()).count();
            if failed > 0 {
                eprintln!(
                    "nats publish: {failed} of {} not acknowledged after {:.1?}, retrying",
                    results.len(),
                    t.elapsed()
                );
            }
            pending = pending
                .into_iter()
                .zip(results)
                .filter(|(_, r)| r.is_err())
                .map(|(l, _)| l)
                .collect();
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Posts NDJSON batches to ingest, retrying on 503 (bus unavailable).
async fn post_over_http(port: u16, token: &str, lines: &[String]) {
    for chunk in lines.chunks(1000) {
        let body = chunk.join("\n");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "ingest did not take the batch");
            // A request that gets no answer in time is retried like a 503.
            match tokio::time::timeout(Duration::from_secs(30), post_ndjson(port, token, &body))
                .await
            {
                Ok(Ok(200 | 422)) => break,
                Ok(Ok(503) | Err(_)) | Err(_) => {
                    eprintln!("http post not taken, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(Ok(other)) => panic!("ingest answered {other}"),
            }
        }
    }
}

async fn post_ndjson(port: u16, token: &str, body: &str) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let status = String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(status)
}

/// Waits until ingest and the indexer have acknowledged everything.
async fn wait_until_drained(bus: &Arc<dyn Bus>, ingest_ack_wait: Duration) {
    let ingest = bus
        .consumer(
            INGEST_STREAM,
            posbon_ingest::consumer::DURABLE,
            Vec::new(),
            ConsumerOptions {
                ack_wait: ingest_ack_wait,
                ..ConsumerOptions::default()
            },
        )
        .await
        .expect("ingest consumer");
    let indexer = bus
        .consumer(
            EVENTS_STREAM,
            posbon_indexer::DURABLE,
            Vec::new(),
            // As the indexer binds it, so that reading the lag changes nothing.
            posbon_indexer::IndexerConfig {
                ack_wait: INDEXER_ACK_WAIT,
                ..posbon_indexer::serve::load_config(None)
                    .expect("indexer defaults")
                    .indexer
            }
            .consumer_options(),
        )
        .await
        .expect("indexer consumer");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut quiet = 0;
    let mut polls = 0u64;
    while quiet < 3 {
        assert!(Instant::now() < deadline, "the pipeline did not drain");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (a, b) = (ingest.pending().await, indexer.pending().await);
        polls += 1;
        if polls.is_multiple_of(20) {
            eprintln!("waiting for the pipeline to drain: ingest {a:?}, indexer {b:?}");
        }
        match (a, b) {
            (Ok(a), Ok(b)) if a.total() == 0 && b.total() == 0 => quiet += 1,
            _ => quiet = 0,
        }
    }
}

/// Reads every DLQ message: original bytes → reject codes.
async fn dead_letters(bus: &Arc<dyn Bus>) -> HashMap<String, String> {
    let consumer = bus
        .consumer(
            DLQ_STREAM,
            "pipeline-test",
            Vec::new(),
            ConsumerOptions::default(),
        )
        .await
        .expect("dlq consumer");
    let mut out = HashMap::new();
    loop {
        let batch = consumer
            .fetch(5000, Duration::from_millis(500))
            .await
            .expect("dlq fetch");
        if batch.is_empty() {
            break;
        }
        for d in batch {
            let codes = d.headers.get("Posbon-Reject-Code").unwrap_or("").to_owned();
            assert!(
                d.headers
                    .get("Posbon-Reject-Reason")
                    .is_some_and(|r| !r.is_empty()),
                "dlq message without a reason"
            );
            out.insert(String::from_utf8_lossy(&d.payload).into_owned(), codes);
            d.ack().await.expect("ack");
        }
    }
    out
}

/// What goes wrong in the middle of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chaos {
    /// The indexer process is killed with SIGKILL and restarted.
    KillIndexer,
    /// nats-server is killed with SIGKILL and restarted on the same store.
    RestartNats,
}

/// Where the indexer stores events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store, in a temporary directory.
    Embedded,
    /// The TiKV cluster (or test server) whose PD answers here.
    Tikv {
        /// PD's `host:port`.
        pd_endpoint: String,
    },
}

/// Runs 100k simulated events through ingest (in this process) and a
/// `posbon indexer` process into `backend`, with `chaos` a third of the way
/// through, and checks that the store holds exactly the valid events, once
/// each, at the cell and mahalla a fresh `locate` gives, and that every
/// malformed line is in the DLQ with its codes.
pub async fn run_pipeline(chaos: Chaos, backend: Backend) {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let city = posbon_sim::city_registry(&CityOptions::default()).expect("city");
    let geojson = city.to_geojson_string();
    let registry = Arc::new(
        Registry::from_geojson(geojson.as_bytes(), &RegistryOptions::default()).expect("registry"),
    );
    let work = workload(&geojson);

    // Ingest in this process: the INGEST consumer and the HTTP endpoint.
    let bus = connect(&nats.url()).await;
    bus.ensure_streams(&posbon_bus::default_streams())
        .await
        .expect("streams");
    let mut config = posbon_ingest::serve::load_config(None).expect("ingest config");
    config.ingest.ack_wait = Span::from_secs(5);
    config.ingest.pseudonym_key = Some(posbon_auth::secret::random_hex(32));
    let ingest_ack_wait = config.ingest.ack_wait.to_std();
    // What the DLQ keeps of a malformed line: the line, with any account
    // reference pseudonymised under ingest's key.
    let kept = posbon_ingest::Enricher::new(
        registry.clone(),
        posbon_model::Limits::default(),
        config.ingest.pseudonym_key().expect("key"),
    );
    let ingest = posbon_ingest::build(
        &config.ingest,
        bus.clone(),
        registry.clone(),
        &Metrics::new(),
    )
    .expect("ingest");
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_port = listener.local_addr().expect("addr").port();
    // The indexer process owns the store: ingest's identities live apart.
    let identities: posbon_store::Store = Arc::new(posbon_store::MemoryStore::new());
    let auth =
        posbon_auth::Auth::new(identities, registry.clone(), Default::default()).expect("auth");
    let (_, producer_token) = auth
        .identities()
        .create_token(
            "pipeline-producer",
            posbon_auth::Role::Producer,
            vec![],
            None,
            "test",
        )
        .await
        .expect("producer token");
    let app = posbon_ingest::routes(ingest.clone(), &config.ingest).into_router(auth);
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
            .await
    });
    let consumer = {
        let (ingest, shutdown) = (ingest.clone(), shutdown.clone());
        tokio::spawn(async move {
            posbon_ingest::consumer::run(
                ingest,
                posbon_ingest::consumer::ConsumerSettings {
                    fetch_batch: 256,
                    fetch_max_bytes: 16 << 20,
                    ack_wait: ingest_ack_wait,
                },
                &Metrics::new(),
                shutdown,
            )
            .await
        })
    };

    let store_config = match &backend {
        Backend::Embedded => StoreConfig::embedded(dir.path().join("store")),
        Backend::Tikv { pd_endpoint } => StoreConfig::tikv([pd_endpoint.clone()]),
    };
    let indexer_config = write_indexer_config(dir.path(), &nats.url(), &store_config);
    let mut indexer = Indexer::start(&indexer_config);

    // Half the lines over NATS, half over HTTP, in three parts; the chaos
    // happens between the first and the second part.
    let (nats_lines, http_lines): (Vec<String>, Vec<String>) = {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (i, l) in work.lines.iter().enumerate() {
            if i % 2 == 0 {
                a.push(l.clone())
            } else {
                b.push(l.clone())
            }
        }
        (a, b)
    };
    let third = |v: &Vec<String>, k: usize| -> Vec<String> {
        let n = v.len().div_ceil(3);
        v.iter().skip(k * n).take(n).cloned().collect()
    };
    let started = Instant::now();
    for part in 0..3 {
        let publisher = connect(&nats.url()).await;
        let (nl, hl) = (third(&nats_lines, part), third(&http_lines, part));
        let over_nats = async { publish_over_nats(&publisher, &nl).await };
        let over_http = async { post_over_http(http_port, &producer_token, &hl).await };
        if part == 1 {
            let chaos_act = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                match chaos {
                    Chaos::KillIndexer => {
                        tokio::task::block_in_place(|| indexer.kill9());
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        indexer.restart();
                    }
                    Chaos::RestartNats => {
                        tokio::task::block_in_place(|| nats.kill9());
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        tokio::task::block_in_place(|| nats.restart());
                    }
                }
            };
            tokio::join!(over_nats, over_http, chaos_act);
        } else {
            tokio::join!(over_nats, over_http);
        }
        eprintln!("part {part} published after {:.1?}", started.elapsed());
    }
    wait_until_drained(&bus, ingest_ack_wait).await;
    eprintln!(
        "pipeline ({}, {}): {} lines through in {:.1?}",
        if chaos == Chaos::KillIndexer {
            "indexer killed"
        } else {
            "nats restarted"
        },
        store_config.describe(),
        work.lines.len(),
        started.elapsed()
    );
    let dead = dead_letters(&bus).await;
    shutdown.cancel();
    consumer.await.expect("consumer task").expect("consumer");
    server.await.expect("server task").expect("server");
    tokio::task::block_in_place(|| indexer.stop());

    // Every malformed line is in the DLQ, with its codes, and no account
    // reference rests there in clear.
    let expected: HashSet<String> = work
        .malformed
        .iter()
        .map(|l| {
            let mut payload = kept
                .dead_letter_payload(&Bytes::copy_from_slice(l.as_bytes()))
                .payload;
            // A dead letter keeps the start of an oversized line.
            payload.truncate(posbon_ingest::MAX_DEAD_LETTER_PAYLOAD);
            String::from_utf8_lossy(&payload).into_owned()
        })
        .collect();
    let missing: Vec<&String> = expected.iter().filter(|l| !dead.contains_key(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} malformed lines are not in the dlq, e.g. {:?}",
        missing.len(),
        missing.first().map(|l| &l[..l.len().min(200)])
    );
    assert_eq!(dead.len(), expected.len(), "nothing else is in the dlq");
    assert!(dead.values().all(|codes| !codes.is_empty()));

    eprintln!(
        "{} valid ids, {} malformed lines, {} in the dlq",
        work.valid_ids.len(),
        work.malformed.len(),
        dead.len()
    );
    // The store holds exactly the accepted events, once each, at the right place.
    let store = open_store(&store_config).await.expect("store opens");
    let count = store.count_events().await.expect("count");
    let events = store
        .events_in_time(
            chrono::DateTime::<Utc>::MIN_UTC,
            chrono::DateTime::<Utc>::MAX_UTC,
        )
        .await
        .expect("all events");
    assert_eq!(count, work.valid_ids.len(), "one stored event per valid id");
    assert_eq!(events.len(), work.valid_ids.len());
    let stored: HashSet<String> = events.iter().map(|e| e.event.id().to_owned()).collect();
    assert_eq!(stored, work.valid_ids);
    let points: Vec<(f64, f64)> = events
        .iter()
        .map(|e| (e.event.location().lat, e.event.location().lng))
        .collect();
    let mut located = Vec::new();
    registry.locate_many(&points, &mut located);
    for (e, place) in events.iter().zip(located) {
        let place = place.expect("valid location");
        assert_eq!(
            e.cell.get(),
            u64::from(place.cell),
            "cell of {}",
            e.event.id()
        );
        let mahalla = place.mahalla.map(|m| registry.mahalla(m).id.clone());
        assert_eq!(e.mahalla_id, mahalla, "mahalla of {}", e.event.id());
    }
}
