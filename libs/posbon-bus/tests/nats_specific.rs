//! NatsBus behaviour that only a real server shows: crash and restart, reconnecting,
//! several server URLs, and a consumer resumed through a new connection.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use posbon_bus::{Bus, BusErrorKind, ConsumerOptions, Headers, NatsBus, NatsOptions, StreamConfig};
use posbon_testkit::NatsServer;

async fn start_server() -> NatsServer {
    posbon_testkit::init_test_logging();
    tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("start nats-server")
}

fn fast_options() -> NatsOptions {
    NatsOptions {
        request_timeout: Duration::from_secs(2),
        max_reconnect_delay: Duration::from_millis(200),
        ..NatsOptions::default()
    }
}

async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server is killed (SIGKILL) and restarted while one task publishes and another
/// fetches: every acknowledged publish is in the stream afterwards, retried publishes are
/// de-duplicated by their message id, and the consumer receives everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_and_restart_while_publishing_and_consuming() {
    const TOTAL: usize = 3000;
    let mut server = start_server().await;
    let bus = Arc::new(
        NatsBus::connect(vec![server.url()], fast_options())
            .await
            .expect("connect"),
    );
    bus.ensure_streams(&[StreamConfig::new("RESTART", vec!["restart.>".to_owned()])])
        .await
        .expect("ensure stream");
    let consumer = bus
        .consumer(
            "RESTART",
            "survivor",
            vec![],
            ConsumerOptions {
                ack_wait: Duration::from_secs(2),
                ..ConsumerOptions::default()
            },
        )
        .await
        .expect("consumer");

    let published = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn({
        let bus = Arc::clone(&bus);
        let published = Arc::clone(&published);
        async move {
            let mut retries = 0usize;
            for i in 0..TOTAL {
                loop {
                    let headers = Headers::new().with_msg_id(format!("evt-{i}"));
                    match bus
                        .publish("restart.events", headers, Bytes::from(i.to_string()))
                        .await
                    {
                        Ok(_) => break,
                        Err(err) if err.is_retryable() => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(err) => panic!("publish {i}: {err}"),
                    }
                }
                published.store(i + 1, Ordering::Relaxed);
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            retries
        }
    });
    let fetcher = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        let mut deliveries = 0usize;
        let mut errors = 0usize;
        let deadline = Instant::now() + Duration::from_secs(90);
        while seen.len() < TOTAL && Instant::now() < deadline {
            match consumer.fetch(200, Duration::from_millis(500)).await {
                Ok(batch) => {
                    for delivery in batch {
                        deliveries += 1;
                        let i: usize = std::str::from_utf8(&delivery.payload)
                            .expect("utf-8")
                            .parse()
                            .expect("number");
                        seen.insert(i);
                        // An ack lost in the crash only means a redelivery.
                        let _ = delivery.ack().await;
                    }
                }
                Err(err) => {
                    assert!(err.is_retryable(), "fetch: {err}");
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        (seen, deliveries, errors)
    });

    // Crash the server in the middle of the traffic.
    eventually("a third published", Duration::from_secs(30), async || {
        published.load(Ordering::Relaxed) >= TOTAL / 3
    })
    .await;
    bus.health().await.expect("healthy before the crash");
    let before_crash = published.load(Ordering::Relaxed);
    let mut server = tokio::task::spawn_blocking(move || {
        server.kill9();
        server
    })
    .await
    .expect("kill");
    eventually(
        "health reports the outage",
        Duration::from_secs(10),
        async || bus.health().await.is_err(),
    )
    .await;
    let error = bus.health().await.expect_err("down");
    assert!(error.is_retryable(), "{error}");
    // Longer than the request timeout: publishes in flight time out and are retried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart");
    eventually(
        "health after the restart",
        Duration::from_secs(20),
        async || bus.health().await.is_ok(),
    )
    .await;

    let retries = tokio::time::timeout(Duration::from_secs(90), publisher)
        .await
        .expect("publisher finishes")
        .expect("publisher task");
    let (seen, deliveries, fetch_errors) = tokio::time::timeout(Duration::from_secs(120), fetcher)
        .await
        .expect("fetcher finishes")
        .expect("fetcher task");
    let missing: Vec<usize> = (0..TOTAL).filter(|i| !seen.contains(i)).take(20).collect();
    assert!(
        missing.is_empty(),
        "consumer missed {} events, e.g. {missing:?}",
        TOTAL - seen.len()
    );
    let info = bus.stream_info("RESTART").await.expect("stream info");
    assert_eq!(
        info.messages, TOTAL as u64,
        "every acked publish survived, retries were de-duplicated"
    );
    assert_eq!(info.last_sequence, TOTAL as u64);
    tracing::info!(
        before_crash,
        retries,
        deliveries,
        fetch_errors,
        "restart test finished"
    );
    drop(server);
}

/// A durable consumer opened through a new connection resumes after its acked messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumer_resumes_on_a_new_connection() {
    let server = start_server().await;
    let options = ConsumerOptions {
        ack_wait: Duration::from_secs(1),
        ..ConsumerOptions::default()
    };
    {
        let bus = NatsBus::connect(vec![server.url()], NatsOptions::default())
            .await
            .expect("connect");
        bus.ensure_streams(&[StreamConfig::new("RESUME", vec!["resume.>".to_owned()])])
            .await
            .expect("ensure stream");
        for i in 0..10 {
            bus.publish("resume.x", Headers::new(), Bytes::from(i.to_string()))
                .await
                .expect("publish");
        }
        let consumer = bus
            .consumer("RESUME", "worker", vec![], options)
            .await
            .expect("consumer");
        let mut acked = 0;
        while acked < 4 {
            for delivery in consumer
                .fetch(4 - acked, Duration::from_secs(1))
                .await
                .expect("fetch")
            {
                delivery.ack().await.expect("ack");
                acked += 1;
            }
        }
        // Acks are fire-and-forget; flush them before the connection goes away.
        bus.client().flush().await.expect("flush");
    }
    let bus = NatsBus::connect(vec![server.url()], NatsOptions::default())
        .await
        .expect("reconnect");
    let consumer = bus
        .consumer("RESUME", "worker", vec![], options)
        .await
        .expect("consumer again");
    let mut payloads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while payloads.len() < 6 && Instant::now() < deadline {
        for delivery in consumer
            .fetch(10, Duration::from_secs(1))
            .await
            .expect("fetch")
        {
            payloads.push(String::from_utf8_lossy(&delivery.payload).into_owned());
            delivery.ack().await.expect("ack");
        }
    }
    assert_eq!(payloads, ["4", "5", "6", "7", "8", "9"]);
    let extra = consumer
        .fetch(10, Duration::from_millis(1500))
        .await
        .expect("fetch");
    assert!(extra.is_empty(), "acked messages came back: {extra:?}");
}

/// Several URLs are a list: a dead one does not prevent connecting to a live one. With no
/// live server, connect fails fast with a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_through_a_list_of_urls() {
    let server = start_server().await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        format!("nats://127.0.0.1:{port}")
    };
    let options = NatsOptions {
        connection_timeout: Duration::from_secs(2),
        ..NatsOptions::default()
    };
    let bus = NatsBus::connect(vec![dead.clone(), server.url()], options.clone())
        .await
        .expect("connect through the live url");
    bus.health().await.expect("healthy");

    let err = NatsBus::connect(vec![dead], options.clone())
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind(), BusErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());

    let err = NatsBus::connect(Vec::new(), options)
        .await
        .expect_err("no url");
    assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{err}");
}
