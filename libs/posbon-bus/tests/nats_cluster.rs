//! Streams on a three-server NATS cluster (the pinned nats-server, routed
//! on loopback): replicated three times by default, as configured when
//! asked, updated in place from one replica to three, and still taking
//! publishes after the server leading a stream is killed.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use posbon_bus::{Bus, Headers, NatsBus, NatsOptions, StreamConfig, default_streams};
use posbon_testkit::NatsServer;

async fn cluster() -> Vec<NatsServer> {
    posbon_testkit::init_test_logging();
    tokio::task::spawn_blocking(|| NatsServer::start_cluster(3))
        .await
        .expect("start the cluster")
}

fn options(replicas: Option<usize>) -> NatsOptions {
    NatsOptions {
        request_timeout: Duration::from_secs(5),
        max_reconnect_delay: Duration::from_millis(200),
        replicas,
        ..NatsOptions::default()
    }
}

/// The stream's configured replicas and the servers holding it, leader first.
async fn placement(url: &str, stream: &str) -> (usize, Vec<String>) {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let mut s = js.get_stream(stream).await.expect("stream");
    let info = s.info().await.expect("info");
    let cluster = info.cluster.clone().expect("a clustered stream");
    let mut servers: Vec<String> = cluster.leader.into_iter().collect();
    servers.extend(cluster.replicas.iter().map(|r| r.name.clone()));
    (info.config.num_replicas, servers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_replicated_on_a_cluster_and_survive_their_leader() {
    let mut servers = cluster().await;
    let urls: Vec<String> = servers.iter().map(NatsServer::url).collect();
    // The default: three replicas on a cluster of three.
    let bus = NatsBus::connect(urls.clone(), options(None))
        .await
        .expect("connect");
    assert_eq!(bus.stream_replicas(), 3);
    bus.ensure_streams(&default_streams())
        .await
        .expect("ensure");
    for stream in default_streams() {
        let (replicas, held) = placement(&urls[0], &stream.name).await;
        assert_eq!((replicas, held.len()), (3, 3), "{}: {held:?}", stream.name);
    }
    // A stream made with one replica is updated in place to three.
    let one = NatsBus::connect(urls.clone(), options(Some(1)))
        .await
        .expect("connect");
    let small = StreamConfig::new("SCALED", vec!["scaled.>".to_owned()]);
    one.ensure_streams(std::slice::from_ref(&small))
        .await
        .expect("R1");
    assert_eq!(placement(&urls[0], "SCALED").await.0, 1);
    bus.ensure_streams(std::slice::from_ref(&small))
        .await
        .expect("R1 to R3");
    assert_eq!(placement(&urls[0], "SCALED").await.0, 3);
    // Out of range is refused at configuration.
    let bad = posbon_bus::NatsConfig {
        replicas: Some(7),
        ..Default::default()
    };
    let refused = bad.options("test").expect_err("7 replicas");
    assert!(refused.to_string().contains("nats.replicas"), "{refused}");

    // Kill the server leading EVENTS: publishes go on after a new leader is
    // elected, and nothing acknowledged before is lost.
    for i in 0..100 {
        bus.publish(
            &format!("posbon.events.r.d.m.incident.{i}"),
            Headers::new().with_msg_id(format!("before-{i}")),
            Bytes::from_static(b"x"),
        )
        .await
        .expect("publish before");
    }
    let (_, held) = placement(&urls[0], posbon_bus::subjects::EVENTS_STREAM).await;
    let leader: usize = held[0]
        .strip_prefix('n')
        .and_then(|n| n.parse().ok())
        .expect("leader name n<i>");
    servers[leader - 1].kill9();
    let killed = Instant::now();
    let survivor = urls[if leader == 1 { 1 } else { 0 }].clone();
    let mut published_after = None;
    while killed.elapsed() < Duration::from_secs(30) {
        if bus
            .publish(
                "posbon.events.r.d.m.incident.after",
                Headers::new().with_msg_id("after-1"),
                Bytes::from_static(b"y"),
            )
            .await
            .is_ok()
        {
            published_after = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = published_after.expect("a publish succeeds after the leader died");
    eprintln!("EVENTS took publishes again {recovered:?} after its leader was killed");
    let client = async_nats::connect(&survivor).await.expect("connect");
    let mut events = jetstream::new(client)
        .get_stream(posbon_bus::subjects::EVENTS_STREAM)
        .await
        .expect("stream");
    let info = events.info().await.expect("info");
    assert_eq!(info.state.messages, 101, "every acknowledged message kept");
    assert_ne!(
        info.cluster.clone().and_then(|c| c.leader),
        Some(held[0].clone()),
        "a new leader"
    );
}
