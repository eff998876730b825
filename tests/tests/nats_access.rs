//! The bus locked down, against a real nats-server started from the
//! configuration `posbon nats-config` writes: the admin creates the streams;
//! each service does its job with its own user; producers, services and
//! strangers are refused what they must not do, with an error that names the
//! refusal, and nothing refused reaches a stream. Then `posbon standalone`
//! runs the whole path as its own user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use posbon_bus::subjects::{ALERTS_STREAM, EVENTS_STREAM, INGEST_STREAM};
use posbon_bus::{
    Bus, BusErrorKind, ConsumerOptions, Headers, NatsBus, NatsConfig, default_streams,
};
use posbon_service::client::{Endpoint, get, request};
use posbon_testkit::{NatsServer, ProbeUser};
use posbon_tests::posbon_bin;

const EVENT: &str = "posbon.events.tashkent.chilonzor.chilonzor-001.incident";
const ALERT: &str = "posbon.alerts.tashkent.chilonzor.chilonzor-001";

fn nats_config(out: &Path) {
    let status = Command::new(posbon_bin())
        .args([
            "--quiet",
            "nats-config",
            "--listen",
            "127.0.0.1:4222",
            "--out",
        ])
        .arg(out)
        .arg("--store-dir")
        .arg(out.join("jetstream"))
        .status()
        .expect("posbon nats-config");
    assert!(status.success());
}

fn seed(dir: &Path, user: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{user}.nk")))
        .expect("credentials file")
        .lines()
        .next()
        .expect("seed line")
        .to_owned()
}

/// A connection as `user`, with short request timeouts so that refusals
/// (which the server answers with silence and an asynchronous error) come
/// back quickly.
async fn connect(server: &NatsServer, dir: &Path, user: &str) -> NatsBus {
    let mut options = NatsConfig {
        credentials_file: Some(dir.join(format!("{user}.nk"))),
        ..NatsConfig::default()
    }
    .options(&format!("test-{user}"))
    .expect("options");
    options.request_timeout = Duration::from_secs(2);
    NatsBus::connect(vec![server.url()], options)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

fn refused<T: std::fmt::Debug>(what: &str, result: posbon_bus::BusResult<T>, subject: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.kind(), BusErrorKind::Forbidden, "{what}: {err}");
    let text = err.to_string();
    assert!(
        text.contains("Permissions Violation") && text.contains(subject),
        "{what}: the error names the refusal: {text}"
    );
}

async fn messages(admin: &NatsBus, stream: &str) -> u64 {
    admin
        .stream_info(stream)
        .await
        .expect("stream info")
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_does_its_job_and_nothing_else() {
    let dir = tempfile::tempdir().expect("dir");
    let creds = dir.path().join("nats");
    nats_config(&creds);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(creds.join("producer-fraud.nk"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let server = NatsServer::start_with_config(
        &creds.join("nats.conf"),
        ProbeUser {
            seed: seed(&creds, "admin"),
            inbox: "_INBOX.admin.probe".into(),
        },
    );

    // Nobody anonymous gets in.
    let anonymous = NatsBus::connect(vec![server.url()], Default::default()).await;
    let e = anonymous.expect_err("anonymous is refused").to_string();
    assert!(e.to_lowercase().contains("authorization"), "{e}");

    // The admin makes the streams (the services may not).
    let out = Command::new(posbon_bin())
        .args(["nats-streams", "--nats", &server.url(), "--nats-creds"])
        .arg(creds.join("admin.nk"))
        .output()
        .expect("posbon nats-streams");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = connect(&server, &creds, "admin").await;

    // A producer publishes its own kind, and nothing else.
    let police = connect(&server, &creds, "producer-police").await;
    police
        .publish(
            "posbon.ingest.incident",
            Headers::new().with_msg_id("p-1"),
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("a police system publishes incidents");
    refused(
        "a police system publishing fraud flags",
        police
            .publish("posbon.ingest.fraud_flag", Headers::new(), Bytes::new())
            .await,
        "posbon.ingest.fraud_flag",
    );
    refused(
        "a producer skipping validation",
        police.publish(EVENT, Headers::new(), Bytes::new()).await,
        EVENT,
    );
    refused(
        "a producer forging an alert",
        police.publish(ALERT, Headers::new(), Bytes::new()).await,
        ALERT,
    );
    refused(
        "a producer reading EVENTS",
        police
            .consumer(EVENTS_STREAM, "indexer", vec![], ConsumerOptions::default())
            .await,
        "$JS.API",
    );
    let deleted = police.jetstream().delete_stream(EVENTS_STREAM).await;
    assert!(deleted.is_err(), "a producer deleting a stream is refused");
    refused(
        "a service creating streams",
        {
            let mut options = NatsConfig {
                credentials_file: Some(creds.join("ingest.nk")),
                manage_streams: Some(true),
                ..NatsConfig::default()
            }
            .options("test-ingest-manage")
            .expect("options");
            options.request_timeout = Duration::from_secs(2);
            let bus = NatsBus::connect(vec![server.url()], options)
                .await
                .expect("connects");
            bus.ensure_streams(&default_streams()).await
        },
        "$JS.API.STREAM",
    );

    // Ingest: checks the streams, reads INGEST, publishes EVENTS.
    let ingest = connect(&server, &creds, "ingest").await;
    ingest
        .ensure_streams(&default_streams())
        .await
        .expect("ingest checks the streams");
    let raw = ingest
        .consumer(INGEST_STREAM, "ingest", vec![], ConsumerOptions::default())
        .await
        .expect("ingest's consumer");
    let got = raw.fetch(10, Duration::from_secs(2)).await.expect("fetch");
    assert_eq!(got.len(), 1, "only the police incident reached INGEST");
    got[0].ack().await.expect("ack");
    ingest
        .publish(
            EVENT,
            Headers::new().with_msg_id("e-1"),
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("ingest publishes events");
    refused(
        "ingest publishing an alert",
        ingest.publish(ALERT, Headers::new(), Bytes::new()).await,
        ALERT,
    );

    // The indexer reads EVENTS with its own durable only.
    let indexer = connect(&server, &creds, "indexer").await;
    let events = indexer
        .consumer(EVENTS_STREAM, "indexer", vec![], ConsumerOptions::default())
        .await
        .expect("indexer's consumer");
    let got = events
        .fetch(10, Duration::from_secs(2))
        .await
        .expect("fetch");
    assert_eq!(got.len(), 1);
    got[0].ack().await.expect("ack");
    refused(
        "the indexer publishing an alert",
        indexer.publish(ALERT, Headers::new(), Bytes::new()).await,
        ALERT,
    );
    refused(
        "the indexer taking the escalator's consumer",
        indexer
            .consumer(
                EVENTS_STREAM,
                "escalator-0-of-1",
                vec![],
                ConsumerOptions::default(),
            )
            .await,
        "$JS.API",
    );

    // The escalator reads EVENTS and raises alerts.
    let escalator = connect(&server, &creds, "escalator").await;
    let shard = escalator
        .consumer(
            EVENTS_STREAM,
            "escalator-0-of-1",
            vec![],
            ConsumerOptions::default(),
        )
        .await
        .expect("the escalator's consumer");
    assert_eq!(
        shard
            .fetch(10, Duration::from_secs(2))
            .await
            .expect("fetch")
            .len(),
        1
    );
    escalator
        .publish(
            ALERT,
            Headers::new().with_msg_id("a-1"),
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("the escalator raises an alert");

    // The API follows ALERTS (its lifecycle durable and the live feed).
    let api = connect(&server, &creds, "api").await;
    api.consumer(
        ALERTS_STREAM,
        "api-lifecycle",
        vec![],
        ConsumerOptions::default(),
    )
    .await
    .expect("the api's lifecycle consumer");
    let mut feed = api
        .read_stream(ALERTS_STREAM, vec![], 1)
        .await
        .expect("the live feed");
    let first = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    assert_eq!(first.subject, ALERT);

    // The reporter publishes its report and reads nothing.
    let reporter = connect(&server, &creds, "reporter").await;
    reporter
        .core_publish(
            "posbon.reports.daily",
            Headers::new(),
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("the reporter publishes");
    refused(
        "the reporter reading EVENTS",
        reporter
            .consumer(EVENTS_STREAM, "indexer", vec![], ConsumerOptions::default())
            .await,
        "$JS.API",
    );

    // Nothing refused reached a stream.
    // INGEST is a work queue: the police incident left it when ingest
    // acknowledged it (that only it reached INGEST was checked above).
    assert_eq!(messages(&admin, INGEST_STREAM).await, 0);
    assert_eq!(messages(&admin, EVENTS_STREAM).await, 1);
    assert_eq!(messages(&admin, ALERTS_STREAM).await, 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `posbon standalone --nats URL --nats-creds standalone.nk` runs the whole
/// path (ingest, indexer, escalator, API) as its own least-privilege user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_runs_as_its_own_user() {
    let dir = tempfile::tempdir().expect("dir");
    let creds: PathBuf = dir.path().join("nats");
    nats_config(&creds);
    let server = NatsServer::start_with_config(
        &creds.join("nats.conf"),
        ProbeUser {
            seed: seed(&creds, "admin"),
            inbox: "_INBOX.admin.probe".into(),
        },
    );
    let streams = Command::new(posbon_bin())
        .args([
            "--quiet",
            "nats-streams",
            "--nats",
            &server.url(),
            "--nats-creds",
        ])
        .arg(creds.join("admin.nk"))
        .status()
        .expect("posbon nats-streams");
    assert!(streams.success());
    let port = free_port();
    let data = dir.path().join("data");
    let child = Command::new(posbon_bin())
        .args(["standalone", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(&data)
        .args(["--nats", &server.url(), "--nats-creds"])
        .arg(creds.join("standalone.nk"))
        .env("POSBON__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn posbon standalone");
    let _running = Killed(child);
    let mut ready = false;
    for _ in 0..300 {
        if get(port, "/readyz").await.is_ok_and(|r| r.status == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "posbon standalone became ready with its own nats user"
    );
    let token = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let at = Endpoint::local(port).with_token(Some(token.trim().to_owned()));
    let event = r#"{"kind":"incident","id":"nats-user-1","occurred_at":"2026-05-01T14:30:00+05:00","location":{"lat":41.2995,"lng":69.2401},"source":"iiv","category":"theft","severity":2}"#;
    let r = request(
        at.clone(),
        "POST",
        "/v1/events",
        Some("application/json"),
        event.as_bytes(),
    )
    .await
    .expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
    // Stored by the indexer: through INGEST and EVENTS with the standalone user.
    let mut stored = false;
    for _ in 0..100 {
        let r = posbon_service::client::post_json(
            at.clone(),
            "/v1/sql",
            &serde_json::json!({"query": "SELECT count(*) AS n FROM events"}),
        )
        .await
        .expect("sql");
        if r.status == 200 && r.json()["rows"][0][0] == 1 {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stored, "the event was indexed");
}
