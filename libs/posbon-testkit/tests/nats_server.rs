//! The test kit against a real nats-server: start, connect, JetStream survives a crash.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use posbon_testkit::NatsServer;

async fn connect(server: &NatsServer) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(server.url())
        .await
        .expect("connect to the test server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_data_survives_kill9_and_restart() {
    posbon_testkit::init_test_logging();
    let mut server = NatsServer::start();
    assert!(server.url().ends_with(&server.port().to_string()));
    assert!(server.is_running());

    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: "KIT".to_owned(),
        subjects: vec!["kit.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    for i in 0..10u32 {
        js.publish(format!("kit.{i}"), i.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("publish ack");
    }
    assert!(
        server.store_dir().join("jetstream").is_dir(),
        "the store is under store_dir"
    );
    drop(js);
    drop(client);

    let port = server.port();
    server.kill9();
    assert!(!server.is_running());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "nothing listens after kill9"
    );
    server.restart();
    assert_eq!(server.port(), port, "restart keeps the port");

    let client = connect(&server).await;
    let js = jetstream::new(client);
    let mut stream = js.get_stream("KIT").await.expect("stream survived");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.state.messages, 10);
    assert_eq!(info.state.last_sequence, 10);

    // The messages themselves are readable.
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config::default())
        .await
        .expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut payloads = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.expect("message");
        payloads.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected);
}

#[test]
fn graceful_stop_and_drop_cleans_up() {
    let mut server = NatsServer::start();
    let dir = server.dir().to_path_buf();
    assert!(dir.is_dir());
    server.stop();
    assert!(!server.is_running());
    assert!(server.pid().is_none());
    // A second stop is a no-op.
    server.stop();
    server.restart();
    assert!(server.is_running());
    drop(server);
    assert!(!dir.exists(), "drop removes the directory");
}

#[test]
fn servers_run_side_by_side() {
    let servers: Vec<NatsServer> = (0..3).map(|_| NatsServer::start()).collect();
    let mut ports: Vec<u16> = servers.iter().map(NatsServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "every server has its own port");
}

#[test]
fn temp_dir_is_removed_on_drop() {
    let dir = posbon_testkit::temp_dir();
    let path = dir.path().to_path_buf();
    std::fs::write(path.join("x"), b"x").expect("write");
    drop(dir);
    assert!(!path.exists());
}
