//! The conformance suite against NatsBus on a real nats-server (one server per test).

use posbon_bus::conformance;
use posbon_bus::{NatsBus, NatsOptions};
use posbon_testkit::NatsServer;

async fn start() -> (NatsServer, NatsBus) {
    posbon_testkit::init_test_logging();
    let server = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("start nats-server");
    let bus = NatsBus::connect(vec![server.url()], NatsOptions::default())
        .await
        .expect("connect");
    (server, bus)
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_server, bus) = start().await;
                conformance::$name(&bus).await;
            }
        )*
    };
}

conformance_tests!(
    test_publish_sequence,
    test_duplicate_msg_id,
    test_wildcard_capture,
    test_consumer_in_order,
    test_fetch_returns_early,
    test_ack_removes,
    test_redelivery_after_ack_wait,
    test_nak_redelivers,
    test_term_stops_redelivery,
    test_max_deliver,
    test_max_ack_pending,
    test_two_durables,
    test_durable_resumes,
    test_deliver_new,
    test_filter_subjects,
    test_headers_round_trip,
    test_publish_many_in_order,
    test_core_subscribe,
    test_pending,
    test_ensure_streams,
    test_not_found,
    test_invalid_input,
    test_health,
);

/// The whole suite on one server and connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_bus() {
    let (_server, bus) = start().await;
    conformance::run_all(&bus).await;
}
