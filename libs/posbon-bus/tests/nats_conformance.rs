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

posbon_bus::bus_conformance_names!(conformance_tests);

/// The whole suite on one server and connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_bus() {
    let (_server, bus) = start().await;
    conformance::run_all(&bus).await;
}
