//! The conformance suite against the in-memory bus.

use posbon_bus::MemoryBus;
use posbon_bus::conformance;

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let bus = MemoryBus::new();
                conformance::$name(&bus).await;
            }
        )*
    };
}

posbon_bus::bus_conformance_names!(conformance_tests);

/// The whole suite on one shared bus: the tests do not disturb each other.
#[tokio::test]
async fn run_all_on_one_bus() {
    let bus = MemoryBus::new();
    conformance::run_all(&bus).await;
}

/// Clones share streams and consumers: a consumer re-opened through another handle resumes.
#[tokio::test]
async fn clones_share_state() {
    use bytes::Bytes;
    use posbon_bus::{Bus, ConsumerOptions, Headers, StreamConfig};
    use std::time::Duration;

    let bus = MemoryBus::new();
    bus.ensure_streams(&[StreamConfig::new("S", vec!["s.>".into()])])
        .await
        .unwrap();
    for i in 0..4 {
        bus.publish("s.x", Headers::new(), Bytes::from(format!("{i}")))
            .await
            .unwrap();
    }
    let consumer = bus
        .consumer("S", "c", vec![], ConsumerOptions::default())
        .await
        .unwrap();
    for delivery in consumer.fetch(2, Duration::ZERO).await.unwrap() {
        delivery.ack().await.unwrap();
    }
    drop(consumer);
    let other = bus.clone();
    drop(bus);
    let consumer = other
        .consumer("S", "c", vec![], ConsumerOptions::default())
        .await
        .unwrap();
    let got = consumer.fetch(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
        [3, 4]
    );
}
