//! Load and soak test: `posbon standalone` (the release binary, on the
//! embedded store, with a real nats-server) under the load of a busy day
//! and a hostile client at once, for a bounded time.
//!
//! ```sh
//! cargo build --release -p posbon
//! eval "$(scripts/install-test-deps.sh)"
//! cargo bench -p posbon-benches --bench soak     # 10 minutes
//! POSBON_SOAK_SECS=120 cargo bench -p posbon-benches --bench soak
//! ```
//!
//! Load, on loopback only:
//! - `POSBON_SOAK_SUBSCRIBERS` (1,000) live-feed clients, half SSE and half
//!   WebSocket, spread over 40 identities;
//! - `POSBON_SOAK_RATE` (10,000) simulated events per second, half over
//!   HTTP (`POST /v1/events`, NDJSON) and half over NATS
//!   (`posbon.ingest.<kind>`), with the simulator's patterns so that
//!   escalations open;
//! - 4 analysts running SQL in a loop;
//! - one hostile client repeating: a 40,000-item array, 400 half-sent
//!   headers, an H3 query that would allocate gigabytes, a feed replay from
//!   0, an 8 KiB WebSocket frame.
//!
//! It prints events accepted vs stored, escalations opened vs delivered to
//! every subscriber, feed delivery latency (from the escalation's arrival on
//! NATS to each subscriber), SQL latency, the server's resident memory over
//! time and the hostile client's answers, and exits non-zero when an event
//! or an escalation was lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use posbon_service::client::{Endpoint, EventSource, post_json, request};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The release `posbon` binary beside this benchmark's (`target/release`).
fn posbon_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("POSBON_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("exe");
    let dir = exe.parent().and_then(Path::parent).expect("target/release");
    let bin = dir.join("posbon");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release -p posbon` (or set POSBON_BIN)",
        bin.display()
    );
    bin
}

/// Resident memory of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Server {
    child: Child,
    port: u16,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(data: &Path, nats: &str) -> Server {
    let port = free_port();
    let child = Command::new(posbon_bin())
        .args(["standalone", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(data)
        .args(["--nats", nats])
        .env("POSBON__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start posbon standalone");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = request(Endpoint::local(port), "GET", "/readyz", None, b"").await
            && r.status == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "posbon standalone never got ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .expect("admin token")
        .trim()
        .to_owned();
    Server { child, port, admin }
}

async fn token(server: &Server, name: &str, role: &str) -> String {
    let r = post_json(
        Endpoint::local(server.port).with_token(Some(server.admin.clone())),
        "/v1/tokens",
        &json!({"name": name, "role": role}),
    )
    .await
    .expect("create token");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    v["token"].as_str().expect("token").to_owned()
}

/// What the subscribers saw: per subscriber, the opened escalations and
/// their delivery latencies.
#[derive(Default)]
struct Seen {
    opened: Vec<HashSet<String>>,
    latencies_ms: Vec<f64>,
    failures: u64,
}

fn record_item(
    seen: &Mutex<Seen>,
    slot: usize,
    arrivals: &Arrivals,
    kind: &str,
    data: &Value,
    at: Instant,
) {
    if kind != "opened" {
        return;
    }
    let Some(id) = data["id"].as_str() else {
        return;
    };
    let reference = arrivals.lock().expect("lock").get(id).copied();
    let mut seen = seen.lock().expect("lock");
    if seen.opened[slot].insert(id.to_owned()) {
        let latency =
            reference.map_or(0.0, |r| at.saturating_duration_since(r).as_secs_f64() * 1e3);
        seen.latencies_ms.push(latency);
    }
}

async fn sse_subscriber(
    port: u16,
    token: String,
    slot: usize,
    seen: Arc<Mutex<Seen>>,
    arrivals: Arrivals,
    stop: Arc<AtomicBool>,
) {
    let to = Endpoint::local(port).with_token(Some(token));
    let mut source = match EventSource::open(to, "/v1/feed").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sse subscriber {slot}: {e}");
            seen.lock().expect("lock").failures += 1;
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let event = match tokio::time::timeout(Duration::from_millis(500), source.next()).await {
            Err(_) => continue,
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                eprintln!("sse subscriber {slot}: {e}");
                seen.lock().expect("lock").failures += 1;
                return;
            }
        };
        let at = Instant::now();
        if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
            record_item(&seen, slot, &arrivals, &event.event, &data, at);
        }
    }
}

async fn ws_subscriber(
    port: u16,
    token: String,
    slot: usize,
    seen: Arc<Mutex<Seen>>,
    arrivals: Arrivals,
    stop: Arc<AtomicBool>,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://127.0.0.1:{port}/v1/feed/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut socket, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ws subscriber {slot}: {e}");
            seen.lock().expect("lock").failures += 1;
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let message = match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                if !stop.load(Ordering::Relaxed) {
                    seen.lock().expect("lock").failures += 1;
                }
                return;
            }
        };
        let at = Instant::now();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            record_item(&seen, slot, &arrivals, &kind, &v["data"], at);
        }
    }
    let _ = socket.close(None).await;
}

/// Events sent and how many the system said it took.
#[derive(Default)]
struct Produced {
    http_accepted: AtomicU64,
    http_refused: AtomicU64,
    /// Batches whose answer never came (the client gave up): the server may
    /// or may not have taken them.
    http_unknown: AtomicU64,
    nats_published: AtomicU64,
    nats_failed: AtomicU64,
}

fn kind_of(line: &str) -> &'static str {
    if line.contains("\"kind\":\"camera_alert\"") {
        "camera_alert"
    } else if line.contains("\"kind\":\"fraud_flag\"") {
        "fraud_flag"
    } else {
        "incident"
    }
}

/// Generates simulated events in real time at `rate` per second until
/// `stop`: even lines over HTTP, odd lines over NATS, flushed every 100 ms.
async fn produce(
    port: u16,
    producer: String,
    nats: async_nats::Client,
    rate: u64,
    seconds: u64,
    produced: Arc<Produced>,
    stop: Arc<AtomicBool>,
) {
    let city = posbon_sim::city_registry(&posbon_sim::CityOptions::default()).expect("city");
    let sim = Arc::new(posbon_sim::SimRegistry::from_generated(&city).expect("sim"));
    let start = chrono::Utc::now().with_timezone(&posbon_sim::tashkent_offset());
    // The simulator makes at most 10 million events an hour per stream:
    // several streams (other seeds, so other ids) make the rate.
    let per_hour = rate as f64 * 3600.0;
    let count = (per_hour / 9e6).ceil().max(1.0) as u64;
    let mut streams: Vec<(posbon_sim::EventStream, Option<posbon_sim::SimItem>)> = (0..count)
        .map(|k| {
            let options = posbon_sim::EventOptions {
                seed: 7 + k,
                rate_per_hour: per_hour / count as f64,
                duration: chrono::TimeDelta::seconds(i64::try_from(seconds).unwrap_or(600) + 60),
                start,
                bad_fraction: 0.0,
                situations: Default::default(),
            };
            let mut stream = posbon_sim::EventStream::new(sim.clone(), &options).expect("stream");
            let first = stream.next();
            (stream, first)
        })
        .collect();
    let js = async_nats::jetstream::new(nats);
    let to = Endpoint::local(port).with_token(Some(producer));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = chrono::Utc::now();
        let mut http = String::new();
        let mut by_kind: BTreeMap<&'static str, String> = BTreeMap::new();
        for (stream, next) in &mut streams {
            while let Some(item) = next.take() {
                if item.at > now {
                    *next = Some(item);
                    break;
                }
                if n.is_multiple_of(2) {
                    http.push_str(&item.line);
                    http.push('\n');
                } else {
                    let body = by_kind.entry(kind_of(&item.line)).or_default();
                    body.push_str(&item.line);
                    body.push('\n');
                }
                n += 1;
                *next = stream.next();
            }
        }
        // HTTP in batches of at most 5,000 lines, in the background.
        let lines: Vec<&str> = http.lines().collect();
        for chunk in lines.chunks(5000) {
            let body = chunk.join("\n");
            let to = to.clone();
            let produced = produced.clone();
            tokio::spawn(async move {
                match request(
                    to,
                    "POST",
                    "/v1/events",
                    Some("application/x-ndjson"),
                    body.as_bytes(),
                )
                .await
                {
                    Ok(r) if r.status == 200 => {
                        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                        let accepted = v["accepted"].as_u64().unwrap_or(0)
                            + v["duplicates"].as_u64().unwrap_or(0);
                        produced
                            .http_accepted
                            .fetch_add(accepted, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!(
                            "events refused: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                                .chars()
                                .take(200)
                                .collect::<String>()
                        );
                        produced
                            .http_refused
                            .fetch_add(chunk_len(&body), Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("events not sent: {e}");
                        produced
                            .http_refused
                            .fetch_add(chunk_len(&body), Ordering::Relaxed);
                    }
                }
            });
        }
        for (kind, body) in by_kind {
            let lines = chunk_len(&body);
            match js
                .publish(format!("posbon.ingest.{kind}"), Bytes::from(body))
                .await
            {
                Ok(ack) => match ack.await {
                    Ok(_) => produced.nats_published.fetch_add(lines, Ordering::Relaxed),
                    Err(e) => {
                        // No ack in time: the stream may or may not hold it;
                        // a refusal (INGEST full) is counted as refused.
                        if e.to_string().contains("maximum") {
                            produced.nats_failed.fetch_add(lines, Ordering::Relaxed)
                        } else {
                            produced.http_unknown.fetch_add(lines, Ordering::Relaxed)
                        }
                    }
                },
                Err(_) => produced.nats_failed.fetch_add(lines, Ordering::Relaxed),
            };
        }
    }
}

fn chunk_len(body: &str) -> u64 {
    body.lines().filter(|l| !l.trim().is_empty()).count() as u64
}

async fn analyst(
    port: u16,
    token: String,
    latencies: Arc<Mutex<Vec<f64>>>,
    busy: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let to = Endpoint::local(port).with_token(Some(token));
    let queries = [
        "SELECT mahalla_id, count(*) AS n FROM events WHERE occurred_at > now() - INTERVAL '10 minutes' GROUP BY mahalla_id ORDER BY n DESC LIMIT 10",
        "SELECT category, count(*) FROM incidents WHERE occurred_at > now() - INTERVAL '1 hour' GROUP BY category",
        "SELECT count(*) FROM events",
    ];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match post_json(
            to.clone(),
            "/v1/sql",
            &json!({"query": queries[i % queries.len()]}),
        )
        .await
        {
            Ok(r) if r.status == 200 => latencies
                .lock()
                .expect("lock")
                .push(started.elapsed().as_secs_f64() * 1e3),
            Ok(r) if r.status == 503 => {
                busy.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => eprintln!("sql: {} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => eprintln!("sql: {e}"),
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The hostile client's answers: case → status → count (and the slowest).
type Answers = Arc<Mutex<BTreeMap<String, (u64, f64)>>>;

fn answer(answers: &Answers, case: &str, outcome: String, started: Instant) {
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let mut answers = answers.lock().expect("lock");
    let entry = answers.entry(format!("{case}: {outcome}")).or_default();
    entry.0 += 1;
    entry.1 = entry.1.max(ms);
}

async fn hostile(
    port: u16,
    token: String,
    producer: String,
    answers: Answers,
    stop: Arc<AtomicBool>,
) {
    let to = Endpoint::local(port).with_token(Some(token.clone()));
    let as_producer = Endpoint::local(port).with_token(Some(producer));
    let zeros = format!("[{}]", vec!["0"; 40_000].join(","));
    // 400 connections that send half a header and wait.
    let mut half = Vec::new();
    let opened = Instant::now();
    for _ in 0..400 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = c
                .write_all(b"GET /v1/escalations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")
                .await;
            half.push(c);
        }
    }
    let half_task = {
        let answers = answers.clone();
        tokio::spawn(async move {
            let mut closed = 0;
            for mut c in half {
                let mut buf = [0u8; 256];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(60), c.read(&mut buf)).await
                {
                    closed += 1;
                }
            }
            answer(
                &answers,
                "400 half-sent headers",
                format!("{closed} closed by the server"),
                opened,
            );
        })
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let r = request(
            as_producer.clone(),
            "POST",
            "/v1/events",
            Some("application/json"),
            zeros.as_bytes(),
        )
        .await;
        answer(
            &answers,
            "40,000-item array",
            r.map_or_else(|e| e.to_string(), |r| r.status.to_string()),
            started,
        );

        let started = Instant::now();
        let r = post_json(to.clone(), "/v1/sql", &json!({"query": "SELECT h3_cell_to_children(h3_latlng_to_cell(41.3 + value * 0.001, 69.2, 5), 11) FROM generate_series(1, 100000)"})).await;
        answer(
            &answers,
            "H3 query of gigabytes",
            r.map_or_else(|e| e.to_string(), |r| r.status.to_string()),
            started,
        );

        let started = Instant::now();
        let feed = EventSource::open(to.clone(), "/v1/feed?since=0").await;
        answer(
            &answers,
            "feed replay from 0",
            feed.map_or_else(|e| e.to_string(), |_| "200".to_owned()),
            started,
        );

        let started = Instant::now();
        answer(
            &answers,
            "8 KiB WebSocket frame",
            big_frame(port, &token).await,
            started,
        );

        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let _ = half_task.await;
}

async fn big_frame(port: u16, token: &str) -> String {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://127.0.0.1:{port}/v1/feed/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(req).await else {
        return "not connected".to_owned();
    };
    let big = "x".repeat(8192);
    let _ = socket
        .send(tokio_tungstenite::tungstenite::Message::Text(big.into()))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = socket.next().await {
            if m.is_err() || matches!(m, Ok(tokio_tungstenite::tungstenite::Message::Close(_))) {
                return true;
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    if closed {
        "closed".to_owned()
    } else {
        "still open".to_owned()
    }
}

async fn stored_events(port: u16, token: &str) -> u64 {
    let r = post_json(
        Endpoint::local(port).with_token(Some(token.to_owned())),
        "/v1/sql",
        &json!({"query": "SELECT count(*) AS n FROM events"}),
    )
    .await;
    r.ok()
        .filter(|r| r.status == 200)
        .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .and_then(|v| v["rows"][0][0].as_u64())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = env_or("POSBON_SOAK_SECS", 600);
    let subscribers = usize::try_from(env_or("POSBON_SOAK_SUBSCRIBERS", 1000)).unwrap_or(1000);
    let rate = env_or("POSBON_SOAK_RATE", 10_000);
    let nats_server = posbon_testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let server = start_server(dir.path(), &nats_server.url()).await;
    let pid = server.child.id();
    let port = server.port;
    println!(
        "soak: {seconds} s, {subscribers} feed subscribers, {rate} events/s, 4 analysts, 1 hostile client; posbon standalone pid {pid} on 127.0.0.1:{port}"
    );

    let producer = token(&server, "soak-producer", "producer").await;
    let analyst_token = token(&server, "soak-analyst", "analyst").await;
    let mut feed_tokens = Vec::new();
    for i in 0..40 {
        feed_tokens.push(token(&server, &format!("soak-desk-{i}"), "operator").await);
    }
    let hostile_token = token(&server, "soak-hostile", "supervisor").await;

    // The reference: when each escalation reached NATS.
    let nats = async_nats::connect(nats_server.url()).await.expect("nats");
    let arrivals: Arrivals = Arc::default();
    {
        let mut alerts = nats.subscribe("posbon.alerts.>").await.expect("subscribe");
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(m) = alerts.next().await {
                let updated = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Posbon-Alert-Type"))
                    .is_some_and(|v| v.as_str() == "updated");
                if updated {
                    continue;
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&m.payload)
                    && let Some(id) = v["id"].as_str()
                {
                    arrivals
                        .lock()
                        .expect("lock")
                        .entry(id.to_owned())
                        .or_insert_with(Instant::now);
                }
            }
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen {
        opened: vec![HashSet::new(); subscribers],
        ..Seen::default()
    }));
    let mut subs = Vec::new();
    for slot in 0..subscribers {
        let token = feed_tokens[slot % feed_tokens.len()].clone();
        let (seen, arrivals, stop) = (seen.clone(), arrivals.clone(), stop_subscribers.clone());
        subs.push(if slot % 2 == 0 {
            tokio::spawn(sse_subscriber(port, token, slot, seen, arrivals, stop))
        } else {
            tokio::spawn(ws_subscriber(port, token, slot, seen, arrivals, stop))
        });
        if slot % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let subscribed_at = Instant::now();
    let connected = subscribers as u64 - seen.lock().expect("lock").failures;
    println!("subscribers connected: {connected} of {subscribers}");

    let produced = Arc::new(Produced::default());
    let producer_task = tokio::spawn(produce(
        port,
        producer.clone(),
        nats.clone(),
        rate,
        seconds,
        produced.clone(),
        stop.clone(),
    ));
    let sql_latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sql_busy = Arc::new(AtomicU64::new(0));
    let mut analysts = Vec::new();
    for _ in 0..4 {
        analysts.push(tokio::spawn(analyst(
            port,
            analyst_token.clone(),
            sql_latencies.clone(),
            sql_busy.clone(),
            stop.clone(),
        )));
    }
    let answers: Answers = Arc::default();
    let hostile_task = tokio::spawn(hostile(
        port,
        hostile_token,
        producer.clone(),
        answers.clone(),
        stop.clone(),
    ));

    let started = Instant::now();
    let mut memory: Vec<(f64, f64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = started.elapsed().as_secs_f64();
        let rss = rss_mib(pid);
        memory.push((t, rss));
        let p = &produced;
        println!(
            "t={t:>5.0} s  rss {rss:>7.1} MiB  http accepted {}  nats published {}  escalations {}",
            p.http_accepted.load(Ordering::Relaxed),
            p.nats_published.load(Ordering::Relaxed),
            arrivals.lock().expect("lock").len()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer_task.await;
    for a in analysts {
        let _ = a.await;
    }
    // Let in-flight HTTP batches finish, then wait for the store to catch up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = produced.http_accepted.load(Ordering::Relaxed)
        + produced.nats_published.load(Ordering::Relaxed);
    let unknown = produced.http_unknown.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = stored_events(port, &analyst_token).await;
        if stored >= accepted + unknown {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Escalations opened while everyone listened, delivered to each.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_subscribers.store(true, Ordering::Relaxed);
    for s in subs {
        let _ = s.await;
    }
    let _ = hostile_task.await;
    let opened: HashSet<String> = {
        let arrivals = arrivals.lock().expect("lock");
        arrivals
            .iter()
            .filter(|(_, at)| **at >= subscribed_at)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let seen = seen.lock().expect("lock");
    let connected_slots: Vec<&HashSet<String>> = seen.opened.iter().collect();
    let fewest = connected_slots
        .iter()
        .map(|s| s.intersection(&opened).count())
        .min()
        .unwrap_or(0);
    let mut latencies = seen.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let mut sql = sql_latencies.lock().expect("lock").clone();
    sql.sort_by(f64::total_cmp);

    println!();
    println!("== soak results ({seconds} s)");
    let lost = stored < accepted || stored > accepted + unknown;
    println!(
        "events accepted {accepted} (http {}, nats {}), refused {} (http) + {} (nats), no answer {unknown} (gave up waiting: may or may not be stored), stored {stored}: {}",
        produced.http_accepted.load(Ordering::Relaxed),
        produced.nats_published.load(Ordering::Relaxed),
        produced.http_refused.load(Ordering::Relaxed),
        produced.nats_failed.load(Ordering::Relaxed),
        if stored == accepted {
            "equal"
        } else if !lost {
            "every accepted event stored (and some of those without an answer)"
        } else {
            "LOST OR EXTRA EVENTS"
        }
    );
    println!(
        "escalations opened {} ; delivered to every one of {} subscribers: at least {} each: {} ; subscriber failures {}",
        opened.len(),
        subscribers,
        fewest,
        if fewest == opened.len() {
            "all"
        } else {
            "SOME MISSING"
        },
        seen.failures
    );
    println!(
        "feed delivery latency (NATS arrival -> subscriber): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} deliveries",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!(
        "sql latency: p50 {:.1} ms, p99 {:.1} ms over {} queries; {} refused as busy",
        percentile(&sql, 0.5),
        percentile(&sql, 0.99),
        sql.len(),
        sql_busy.load(Ordering::Relaxed)
    );
    let at = |frac: f64| {
        memory
            .get(((memory.len() as f64 - 1.0) * frac).round() as usize)
            .map_or(f64::NAN, |m| m.1)
    };
    let last_half: Vec<f64> = memory[memory.len() / 2..].iter().map(|m| m.1).collect();
    let (lo, hi) = last_half
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    println!(
        "resident memory: start {:.1} MiB, middle {:.1} MiB, end {:.1} MiB; last half {:.1}..{:.1} MiB ({:+.1}%)",
        at(0.0),
        at(0.5),
        at(1.0),
        lo,
        hi,
        (hi - lo) / lo * 100.0
    );
    println!("hostile client:");
    for (case, (count, slowest)) in answers.lock().expect("lock").iter() {
        println!("  {case} x{count} (slowest {slowest:.0} ms)");
    }
    if lost || fewest != opened.len() {
        std::process::exit(1);
    }
}
