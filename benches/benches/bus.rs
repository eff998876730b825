//! Throughput of `NatsBus` against raw async-nats on the same nats-server:
//! publish with a message id and acks in a window, then pull-consume with an
//! ack each, printed side by side.
//!
//! Run: `cargo bench -p posbon-benches --bench bus` (needs the pinned
//! nats-server: `eval "$(scripts/install-test-deps.sh)"`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt as _;
use posbon_bus::{
    Bus, ConsumerOptions, Headers, NatsBus, NatsOptions, OutgoingMessage, StreamConfig,
};
use posbon_testkit::NatsServer;

const COUNT: usize = 200_000;
const WINDOW: usize = 4096;
const PAYLOAD: &[u8] =
    br#"{"kind":"incident","id":"evt-000000","lat":41.311,"lng":69.279,"severity":3}"#;

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; this benchmark takes no options.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(publish_and_consume_rates());
}

async fn publish_and_consume_rates() {
    let server = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("start nats-server");
    let bus = NatsBus::connect(vec![server.url()], NatsOptions::default())
        .await
        .expect("connect");
    bus.ensure_streams(&[
        StreamConfig::new("RAW", vec!["raw.>".to_owned()]),
        StreamConfig::new("BUS", vec!["bus.>".to_owned()]),
    ])
    .await
    .expect("streams");

    // Raw async-nats: publish with a message id, acks awaited in a window.
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(16_384)
        .backpressure_on_inflight(true)
        .build(bus.client().clone());
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for i in 0..COUNT {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
        let future = js
            .publish_with_headers("raw.e", headers, Bytes::from_static(PAYLOAD))
            .await
            .expect("publish");
        in_flight.push_back(future);
        if in_flight.len() >= WINDOW
            && let Some(future) = in_flight.pop_front()
        {
            future.await.expect("ack");
        }
    }
    for future in in_flight {
        future.await.expect("ack");
    }
    let raw_publish = rate(COUNT, started.elapsed());

    // The bus: publish_many in batches of 10 000.
    let started = Instant::now();
    let mut next = 0;
    while next < COUNT {
        let batch: Vec<OutgoingMessage> = (next..(next + 10_000).min(COUNT))
            .map(|i| {
                OutgoingMessage::new(
                    "bus.e",
                    Headers::new().with_msg_id(format!("bus-{i}")),
                    Bytes::from_static(PAYLOAD),
                )
            })
            .collect();
        next += batch.len();
        for result in bus.publish_many(batch).await {
            result.expect("publish");
        }
    }
    let bus_publish = rate(COUNT, started.elapsed());

    // Raw pull consumer: fetch 1000, ack each.
    let stream = js.get_stream("RAW").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("raw".to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let started = Instant::now();
    let mut received = 0;
    while received < COUNT {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("fetch");
        while let Some(message) = batch.next().await {
            let message = message.expect("message");
            message.ack().await.expect("ack");
            received += 1;
        }
    }
    let raw_consume = rate(COUNT, started.elapsed());

    // The bus consumer: fetch 1000, ack each.
    let consumer = bus
        .consumer("BUS", "bus", vec![], ConsumerOptions::default())
        .await
        .expect("consumer");
    let started = Instant::now();
    let mut received = 0;
    while received < COUNT {
        for delivery in consumer
            .fetch(1000, Duration::from_secs(1))
            .await
            .expect("fetch")
        {
            delivery.ack().await.expect("ack");
            received += 1;
        }
    }
    let bus_consume = rate(COUNT, started.elapsed());

    println!(
        "{COUNT} messages of {} bytes, window {WINDOW}:\n\
         publish  raw {raw_publish:>9.0}/s  bus {bus_publish:>9.0}/s  ({:.0}%)\n\
         consume  raw {raw_consume:>9.0}/s  bus {bus_consume:>9.0}/s  ({:.0}%)",
        PAYLOAD.len(),
        100.0 * bus_publish / raw_publish,
        100.0 * bus_consume / raw_consume,
    );
}
