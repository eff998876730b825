//! The cluster losing nodes under load, on this machine: three nats-servers
//! routed on loopback (the pinned version, every stream R3), the in-repo
//! TiKV test server, and two processes each of ingest, the indexer, the
//! escalator (which takes its four shards through leases) and the API.
//! Events are published at 2,000 a second while, in turn, the server leading
//! EVENTS, one ingest, one indexer, one escalator and one API are killed
//! with SIGKILL. Afterwards the store holds every published event once, ALERTS
//! holds exactly the escalations of a straight replay of EVENTS, each once,
//! each was recorded once by the API replicas, and the live feed of each API
//! replica (an SSE client that reconnects with `Last-Event-ID`) delivered
//! every one. The times to recover are printed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use posbon_bus::subjects::{ALERTS_STREAM, EVENTS_STREAM, INGEST_STREAM};
use posbon_bus::{Bus, Headers, NatsBus, NatsOptions, OutgoingMessage};
use posbon_escalator::{Escalator, Shard};
use posbon_model::{EnrichedEvent, Escalation, Limits, parse_event};
use posbon_risk::{Engine, RiskConfig};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimRegistry};
use posbon_store::{
    EscalationStoreExt as _, EventStoreExt as _, LeaseStoreExt as _, Store, StoreConfig, open_store,
};
use posbon_testkit::NatsServer;
use posbon_tikv_testserver::TestServer;
use tokio_util::sync::CancellationToken;

/// Events published, at [`RATE`] a second.
const EVENTS: usize = 40_000;
const RATE: usize = 2_000;
const SHARDS: u32 = 4;
const LEASE_TTL_SECS: u64 = 3;

/// A service process that can be killed and started again.
struct Service {
    name: String,
    binary: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Service {
    fn start(name: &str, binary: &str, config: PathBuf) -> Service {
        let mut service = Service {
            name: name.to_owned(),
            binary: posbon_tests::service_bin(binary),
            config,
            child: None,
        };
        service.spawn();
        service
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.name));
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("sigkill");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill -TERM");
            let status = child.wait().expect("exits");
            assert!(status.success(), "{} exited with {status}", self.name);
        }
    }

    fn assert_running(&mut self) {
        if let Some(child) = &mut self.child {
            let status = child.try_wait().expect("try_wait");
            assert!(status.is_none(), "{} died: {status:?}", self.name);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    posbon_tests::http::free_port()
}

fn urls(servers: &[NatsServer]) -> String {
    let urls: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.url())).collect();
    urls.join(", ")
}

fn write(dir: &Path, name: &str, text: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("config");
    path
}

async fn connect(servers: &[NatsServer]) -> Arc<dyn Bus> {
    Arc::new(
        NatsBus::connect(
            servers.iter().map(NatsServer::url).collect(),
            NatsOptions {
                request_timeout: Duration::from_secs(5),
                max_reconnect_delay: Duration::from_millis(200),
                ..NatsOptions::default()
            },
        )
        .await
        .expect("nats connects"),
    )
}

/// Valid simulated event lines, their ids distinct.
fn lines(sim: Arc<SimRegistry>) -> Vec<String> {
    let options = EventOptions {
        seed: 5,
        rate_per_hour: 2_000.0,
        duration: chrono::TimeDelta::hours(24),
        bad_fraction: 0.0,
        ..EventOptions::default()
    };
    let now = Utc::now();
    let mut seen = HashSet::new();
    EventStream::new(sim, &options)
        .expect("event stream")
        .map(|item| item.line)
        .filter(|line| {
            parse_event(line.as_bytes(), &Limits::default(), now)
                .is_ok_and(|e| seen.insert(e.id().to_owned()))
        })
        .take(EVENTS)
        .collect()
}

fn find(services: &[Service], name: &str) -> usize {
    services
        .iter()
        .position(|s| s.name == name)
        .expect("service")
}

/// Follows the live feed of the API at `port` until `stop`, reconnecting
/// with `Last-Event-ID` when the connection ends; answers the ids of the
/// escalations it announced as opened, and how many times it reconnected.
async fn follow_feed(
    port: u16,
    token: String,
    stop: CancellationToken,
) -> (BTreeSet<String>, usize) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut opened = BTreeSet::new();
    let mut last: Option<u64> = None;
    let mut connections = 0;
    while !stop.is_cancelled() {
        let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        connections += 1;
        let resume = last
            .map(|l| format!("Last-Event-ID: {l}\r\n"))
            .unwrap_or_default();
        // HTTP/1.0: the body ends with the connection, without chunks.
        let query = if last.is_none() { "?since=0" } else { "" };
        let request = format!(
            "GET /v1/feed{query} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        );
        if conn.write_all(request.as_bytes()).await.is_err() {
            continue;
        }
        let mut text = String::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = tokio::select! {
                () = stop.cancelled() => return (opened, connections - 1),
                n = conn.read(&mut buf) => n.unwrap_or(0),
            };
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            // Complete events only; the rest waits for more bytes.
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, "", String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse::<u64>().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = if v.trim() == "opened" {
                            "opened"
                        } else {
                            "other"
                        };
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    last = Some(id);
                }
                if event == "opened"
                    && let Ok(value) = serde_json::from_str::<serde_json::Value>(&data)
                    && let Some(id) = value["id"].as_str()
                {
                    opened.insert(id.to_owned());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (opened, connections.saturating_sub(1))
}

/// Who holds each escalator shard now.
async fn holders(store: &Store) -> BTreeMap<String, String> {
    let now = Utc::now().timestamp_millis();
    store
        .leases(posbon_escalator::leased::SHARD_LEASE_PREFIX)
        .await
        .expect("leases")
        .into_iter()
        .filter(|(_, l)| l.is_live(now))
        // The instance's name, without the process's own mark (`#…`).
        .map(|(n, l)| (n, l.holder.split('#').next().unwrap_or_default().to_owned()))
        .collect()
}

/// Every message of `stream`, in order.
async fn read_all(bus: &dyn Bus, stream: &str) -> Vec<posbon_bus::StreamMessage> {
    let last = bus.stream_info(stream).await.expect("info").last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let mut reader = bus
        .read_stream(stream, Vec::new(), 1)
        .await
        .expect("reader");
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("read");
        let done = m.sequence >= last;
        out.push(m);
        if done {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_loses_a_node_of_each_kind_under_load_and_nothing_is_lost_or_doubled() {
    posbon_testkit::init_test_logging();
    let mut nats = tokio::task::spawn_blocking(|| NatsServer::start_cluster(3))
        .await
        .expect("cluster");
    let tikv = TestServer::start(Default::default())
        .await
        .expect("tikv test server");
    let dir = tempfile::tempdir().expect("dir");
    let city = posbon_sim::city_registry(&CityOptions::default()).expect("city");
    let geojson = city.to_geojson_string();
    let registry_path = dir.path().join("mahallas.geojson");
    std::fs::write(&registry_path, &geojson).expect("registry");
    let registry = Arc::new(city.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_geojson(geojson.as_bytes()).expect("sim"));
    let lines = lines(sim);
    assert_eq!(lines.len(), EVENTS);

    let bus = connect(&nats).await;
    bus.ensure_streams(&posbon_bus::default_streams())
        .await
        .expect("streams");
    let events = bus.stream_info(EVENTS_STREAM).await.expect("info");
    assert_eq!(events.replicas, 3, "R3 on a cluster of three");
    let store: Store = open_store(&StoreConfig::tikv([tikv.pd_endpoint()]))
        .await
        .expect("store");
    let common = format!(
        "[store]\n[store.tikv]\npd_endpoints = [\"{}\"]\n\n[telemetry]\nlog_level = \"warn\"\n",
        tikv.pd_endpoint()
    );
    let key = posbon_auth::secret::random_hex(32);
    let nats_urls = urls(&nats);
    let registry_file = registry_path.display();
    let mut services = Vec::new();
    for i in 0..2 {
        services.push(Service::start(
            &format!("ingest-{i}"),
            "posbon-ingest",
            write(
                dir.path(),
                &format!("ingest-{i}.toml"),
                format!(
                    "[ingest]\nlisten = \"127.0.0.1:{}\"\nnats_urls = [{nats_urls}]\nregistry = \"{registry_file}\"\n\
                     pseudonym_key = \"{key}\"\nack_wait = \"5s\"\nfetch_batch = 500\n\n{common}",
                    free_port()
                ),
            ),
        ));
        services.push(Service::start(
            &format!("indexer-{i}"),
            "posbon-indexer",
            write(
                dir.path(),
                &format!("indexer-{i}.toml"),
                format!(
                    "[indexer]\nlisten = \"127.0.0.1:{}\"\nnats_urls = [{nats_urls}]\nfetch_batch = 1000\n\
                     fetch_wait = \"100ms\"\nack_wait = \"5s\"\n\n{common}",
                    free_port()
                ),
            ),
        ));
        services.push(Service::start(
            &format!("escalator-{i}"),
            "posbon-escalator",
            write(
                dir.path(),
                &format!("escalator-{i}.toml"),
                format!(
                    "[escalator]\nlisten = \"127.0.0.1:{}\"\nnats_urls = [{nats_urls}]\nregistry = \"{registry_file}\"\n\
                     shard_count = {SHARDS}\ninstance = \"escalator-{i}\"\nlease_ttl = \"{LEASE_TTL_SECS}s\"\n\
                     tick = \"1h\"\ncheckpoint = \"1s\"\nack_wait = \"5s\"\n\n{common}",
                    free_port()
                ),
            ),
        ));
    }
    // Two API replicas, and a feed client on each (the token made here, in
    // the store they share).
    let auth =
        posbon_auth::Auth::new(store.clone(), registry.clone(), Default::default()).expect("auth");
    let (_, token) = auth
        .identities()
        .create_token(
            "command-centre",
            posbon_auth::Role::Supervisor,
            vec![],
            None,
            "test",
        )
        .await
        .expect("token");
    let api_ports = [free_port(), free_port()];
    for (i, port) in api_ports.iter().enumerate() {
        services.push(Service::start(
            &format!("api-{i}"),
            "posbon-api",
            write(
                dir.path(),
                &format!("api-{i}.toml"),
                format!(
                    "[api]\nlisten = \"127.0.0.1:{port}\"\nnats_urls = [{nats_urls}]\nregistry = \"{registry_file}\"\n\n{common}"
                ),
            ),
        ));
    }
    let stop_feeds = CancellationToken::new();
    let feeds: Vec<_> = api_ports
        .iter()
        .map(|port| tokio::spawn(follow_feed(*port, token.clone(), stop_feeds.clone())))
        .collect();

    // The escalators share the shards before the load starts.
    let started = Instant::now();
    loop {
        let h = holders(&store).await;
        let per: BTreeSet<usize> = ["escalator-0", "escalator-1"]
            .iter()
            .map(|n| h.values().filter(|v| v == n).count())
            .collect();
        if h.len() == SHARDS as usize && per == BTreeSet::from([2]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the escalators did not share the shards: {h:?}"
        );
        for s in &mut services {
            s.assert_running();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Publish at RATE a second; chaos on a schedule, from another task.
    let publisher = connect(&nats).await;
    let load = tokio::spawn({
        let lines = lines.clone();
        async move {
            let started = Instant::now();
            let per_tick = RATE / 10;
            let mut longest_gap = Duration::ZERO;
            let mut last_ok = Instant::now();
            for (n, chunk) in lines.chunks(per_tick).enumerate() {
                let due = started + Duration::from_millis(100 * n as u64);
                tokio::time::sleep_until(due.into()).await;
                let mut pending: Vec<&String> = chunk.iter().collect();
                while !pending.is_empty() {
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
                    let results = publisher.publish_many(messages).await;
                    pending = pending
                        .into_iter()
                        .zip(results)
                        .filter(|(_, r)| r.is_err())
                        .map(|(l, _)| l)
                        .collect();
                    if pending.is_empty() {
                        longest_gap = longest_gap.max(last_ok.elapsed());
                        last_ok = Instant::now();
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            (started.elapsed(), longest_gap)
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The server leading EVENTS.
    let leader = bus
        .stream_info(EVENTS_STREAM)
        .await
        .expect("info")
        .leader
        .expect("a leader");
    let index: usize = leader
        .trim_start_matches('n')
        .parse()
        .expect("leader name n<i>");
    tokio::task::block_in_place(|| nats[index - 1].kill9());
    eprintln!("killed nats-server {leader}, the leader of EVENTS");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let i = find(&services, "ingest-0");
    tokio::task::block_in_place(|| services[i].kill9());
    eprintln!("killed ingest-0");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let i = find(&services, "indexer-0");
    tokio::task::block_in_place(|| services[i].kill9());
    eprintln!("killed indexer-0");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let i = find(&services, "escalator-0");
    tokio::task::block_in_place(|| services[i].kill9());
    let escalator_killed = Instant::now();
    eprintln!("killed escalator-0");
    let takeover = loop {
        let h = holders(&store).await;
        if h.len() == SHARDS as usize && h.values().all(|v| v == "escalator-1") {
            break escalator_killed.elapsed();
        }
        assert!(
            escalator_killed.elapsed() < Duration::from_secs(30),
            "escalator-1 did not take the dead one's shards: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "escalator-0's shards taken over by escalator-1 {takeover:?} after SIGKILL (lease {LEASE_TTL_SECS} s)"
    );
    // The lease, the tick that notices, and slack for a loaded machine.
    assert!(takeover <= Duration::from_secs(LEASE_TTL_SECS + 1 + 5));
    // An API replica dies too: its feed client reconnects (with
    // Last-Event-ID) once it is back; the other replica goes on.
    let i = find(&services, "api-0");
    tokio::task::block_in_place(|| services[i].kill9());
    eprintln!("killed api-0");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The killed ingest, indexer and API come back (as a supervisor would
    // restart them).
    for name in ["ingest-0", "indexer-0", "api-0"] {
        let i = find(&services, name);
        services[i].spawn();
    }
    let (took, longest_gap) = load.await.expect("load");
    eprintln!(
        "{EVENTS} events published in {took:.1?} (target {} s); longest wait for an acknowledged publish: {longest_gap:.1?}",
        EVENTS / RATE
    );

    // Drained: ingest and the indexer acknowledged everything, every shard's
    // checkpoint covers the last EVENTS sequence.
    let drain_started = Instant::now();
    loop {
        assert!(
            drain_started.elapsed() < Duration::from_secs(300),
            "the cluster did not drain"
        );
        for s in &mut services {
            s.assert_running();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ingest = bus
            .consumer_lag(INGEST_STREAM, posbon_ingest::consumer::DURABLE)
            .await;
        let indexer = bus
            .consumer_lag(EVENTS_STREAM, posbon_indexer::DURABLE)
            .await;
        let (Ok(ingest), Ok(indexer)) = (ingest, indexer) else {
            continue;
        };
        if ingest.total() != 0 || indexer.total() != 0 {
            continue;
        }
        let last = bus
            .stream_info(EVENTS_STREAM)
            .await
            .expect("info")
            .last_sequence;
        let mut covered = true;
        for index in 0..SHARDS {
            let shard = Shard::new(index, SHARDS).expect("shard");
            let at = posbon_escalator::read_checkpoint(&store, &shard.name())
                .await
                .expect("checkpoint")
                .map_or(0, |c| c.sequence);
            covered &= at >= last;
        }
        if covered && store.count_events().await.expect("count") >= EVENTS {
            break;
        }
    }
    eprintln!(
        "drained {:.1?} after the last publish",
        drain_started.elapsed()
    );

    // Every event stored, once.
    let published: HashSet<String> = lines
        .iter()
        .map(|l| {
            parse_event(l.as_bytes(), &Limits::default(), Utc::now())
                .expect("valid")
                .id()
                .to_owned()
        })
        .collect();
    assert_eq!(store.count_events().await.expect("count"), EVENTS);
    let stored: Vec<String> = store
        .events_in_time(
            chrono::DateTime::<Utc>::MIN_UTC,
            chrono::DateTime::<Utc>::MAX_UTC,
        )
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event.id().to_owned())
        .collect();
    assert_eq!(stored.len(), EVENTS, "nothing stored twice");
    assert_eq!(
        stored.into_iter().collect::<HashSet<_>>(),
        published,
        "every event stored"
    );

    // ALERTS holds exactly the escalations of a straight replay of EVENTS, once each.
    let on_events: Vec<EnrichedEvent> = read_all(&*bus, EVENTS_STREAM)
        .await
        .iter()
        .map(|m| {
            EnrichedEvent::from_message(
                m.headers.get(posbon_bus::headers::CONTENT_TYPE),
                &m.payload,
            )
            .expect("enriched event")
        })
        .collect();
    assert_eq!(on_events.len(), EVENTS, "EVENTS holds each event once");
    let mut reference = Escalator::new(
        Shard::new(0, 1).expect("shard"),
        Engine::new(RiskConfig::default(), registry).expect("engine"),
        Duration::from_secs(300),
        Duration::from_secs(3600),
    )
    .expect("escalator");
    for (i, e) in on_events.iter().enumerate() {
        reference.apply(i as u64 + 1, e);
    }
    let want: BTreeSet<String> = reference.outbox().iter().map(|e| e.id.clone()).collect();
    let alerts: Vec<Escalation> = read_all(&*bus, ALERTS_STREAM)
        .await
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).expect("escalation"))
        .collect();
    let got: BTreeSet<String> = alerts.iter().map(|e| e.id.clone()).collect();
    assert_eq!(got.len(), alerts.len(), "no escalation published twice");
    assert_eq!(got, want, "the escalations of a straight replay");
    eprintln!(
        "{} events stored once each; {} escalations, each once",
        EVENTS,
        alerts.len()
    );
    // The API replicas recorded each escalation once, and each one's feed
    // announced every one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: BTreeSet<String> = store
            .escalations()
            .await
            .expect("records")
            .into_iter()
            .map(|r| r.escalation.id)
            .collect();
        if recorded == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the API replicas recorded {recorded:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A feed reader that lost its place while the stream's leader changed
    // notices within 2 s of quiet and reads again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_feeds.cancel();
    for (i, feed) in feeds.into_iter().enumerate() {
        let (opened, reconnects) = feed.await.expect("feed");
        eprintln!(
            "api-{i}: the feed announced {} escalations ({reconnects} reconnections)",
            opened.len()
        );
        assert_eq!(opened, want, "the feed of api-{i}");
    }
    for s in &mut services {
        s.stop();
    }
}
