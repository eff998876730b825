//! The conformance suite every [`Bus`] implementation must pass.
//!
//! Each `test_*` function takes a bus, creates its own uniquely named stream (so the tests
//! can share one bus or run in parallel on several), and panics with a message when the
//! bus behaves differently from JetStream. [`run_all`] runs them one after another.
//!
//! ```no_run
//! # async fn demo() {
//! let bus = posbon_bus::MemoryBus::new();
//! posbon_bus::conformance::run_all(&bus).await;
//! # }
//! ```
//!
//! Some tests wait for ack-wait timeouts (1 s each): the whole suite takes about 10 s.
//! [`test_headers_round_trip`] installs the test tracing subscriber
//! ([`posbon_telemetry::init_for_tests`]) to get a trace context.
//!
//! One file (1305 lines) because it is one list of 29 independent tests that share the
//! private fixture and fetch helpers; split by topic, those helpers would become
//! `pub(super)` and the list in `bus_conformance_names!` would point into several files.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{
    Bus, BusErrorKind, Consumer, ConsumerOptions, DeliverPolicy, Delivery, Headers,
    OutgoingMessage, StreamConfig, StreamReader, default_streams, headers,
};

/// The ack wait used by tests that wait for a redelivery.
const SHORT_ACK_WAIT: Duration = Duration::from_secs(1);
/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);

/// A test's own stream, capturing `<prefix>.>`.
struct Fixture {
    stream: String,
    prefix: String,
}

impl Fixture {
    fn subject(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    fn config(&self) -> StreamConfig {
        StreamConfig::new(&self.stream, vec![format!("{}.>", self.prefix)])
    }
}

fn unique(test: &str) -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}_{n}", std::process::id());
    (
        format!("CT_{}_{id}", test.to_ascii_uppercase()),
        format!("ct.{test}.{id}"),
    )
}

async fn fixture(bus: &dyn Bus, test: &str) -> Fixture {
    let (stream, prefix) = unique(test);
    let fixture = Fixture { stream, prefix };
    bus.ensure_streams(&[fixture.config()])
        .await
        .unwrap_or_else(|err| panic!("[{test}] ensure stream {}: {err}", fixture.stream));
    fixture
}

fn options(ack_wait: Duration) -> ConsumerOptions {
    ConsumerOptions {
        ack_wait,
        ..ConsumerOptions::default()
    }
}

async fn publish(bus: &dyn Bus, subject: &str, payload: &str) -> u64 {
    bus.publish(
        subject,
        Headers::new(),
        Bytes::copy_from_slice(payload.as_bytes()),
    )
    .await
    .unwrap_or_else(|err| panic!("publish to {subject}: {err}"))
    .sequence
}

async fn consumer(
    bus: &dyn Bus,
    fixture: &Fixture,
    durable: &str,
    filters: Vec<String>,
    options: ConsumerOptions,
) -> Box<dyn Consumer> {
    bus.consumer(&fixture.stream, durable, filters, options)
        .await
        .unwrap_or_else(|err| panic!("create consumer {durable}: {err}"))
}

/// Fetches until `count` deliveries arrived (or [`PATIENCE`] ran out, which panics).
async fn fetch_exactly(consumer: &dyn Consumer, count: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "expected {count} deliveries, got {}: {:?}",
            got.len(),
            payloads(&got)
        );
        let batch = consumer
            .fetch(count - got.len(), left.min(Duration::from_secs(2)))
            .await
            .unwrap_or_else(|err| panic!("fetch: {err}"));
        got.extend(batch);
    }
    got
}

/// Asserts that nothing is delivered within `wait`.
async fn expect_nothing(consumer: &dyn Consumer, wait: Duration, why: &str) {
    let got = consumer
        .fetch(10, wait)
        .await
        .unwrap_or_else(|err| panic!("fetch: {err}"));
    assert!(
        got.is_empty(),
        "{why}: unexpected deliveries {:?}",
        got.iter()
            .map(|d| (d.stream_sequence, d.delivered))
            .collect::<Vec<_>>()
    );
}

fn payloads(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(&d.payload).into_owned())
        .collect()
}

async fn ack_all(deliveries: &[Delivery]) {
    for delivery in deliveries {
        delivery
            .ack()
            .await
            .unwrap_or_else(|err| panic!("ack: {err}"));
    }
}

/// Polls `check` until it returns true or [`PATIENCE`] runs out (then panics with `what`).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the macro `$callback` with the name of every test of the suite, so
/// the list lives in one place: `run_all` and the per-test wrappers of each
/// implementation (`tests/*_conformance.rs`) are generated from it.
#[macro_export]
macro_rules! bus_conformance_names {
    ($callback:ident) => {
        $callback!(
            test_publish_sequence,
            test_duplicate_msg_id,
            test_wildcard_capture,
            test_consumer_in_order,
            test_fetch_bounded,
            test_fetch_returns_early,
            test_ack_removes,
            test_work_queue_full,
            test_redelivery_after_ack_wait,
            test_nak_redelivers,
            test_term_stops_redelivery,
            test_max_deliver,
            test_max_ack_pending,
            test_two_durables,
            test_shared_durable,
            test_durable_resumes,
            test_restart_from_sequence,
            test_deliver_new,
            test_filter_subjects,
            test_read_stream,
            test_consumer_lag,
            test_headers_round_trip,
            test_publish_many_in_order,
            test_core_subscribe,
            test_pending,
            test_ensure_streams,
            test_not_found,
            test_invalid_input,
            test_health,
        );
    };
}

/// Runs every test of the suite, one after another.
pub async fn run_all(bus: &dyn Bus) {
    macro_rules! run_each {
        ($($name:ident),* $(,)?) => {
            $($name(bus).await;)*
        };
    }
    bus_conformance_names!(run_each);
}

/// Publishes are acknowledged with the stream name and consecutive sequences.
pub async fn test_publish_sequence(bus: &dyn Bus) {
    let f = fixture(bus, "sequence").await;
    for (i, suffix) in ["a", "b", "a.c"].iter().enumerate() {
        let ack = bus
            .publish(&f.subject(suffix), Headers::new(), Bytes::from_static(b"x"))
            .await
            .expect("publish");
        assert_eq!(ack.stream, f.stream);
        assert_eq!(ack.sequence, i as u64 + 1);
        assert!(!ack.duplicate);
    }
    let info = bus.stream_info(&f.stream).await.expect("stream info");
    assert_eq!(info.name, f.stream);
    assert_eq!(info.messages, 3);
    assert_eq!((info.first_sequence, info.last_sequence), (1, 3));
    assert!(info.bytes > 0);
}

/// A repeated `Nats-Msg-Id` is acknowledged as a duplicate of the original and not stored.
pub async fn test_duplicate_msg_id(bus: &dyn Bus) {
    let f = fixture(bus, "dedup").await;
    let subject = f.subject("e");
    let send = |id: &'static str| {
        bus.publish(
            &subject,
            Headers::new().with_msg_id(id),
            Bytes::from_static(b"{}"),
        )
    };
    let first = send("evt-1").await.expect("publish");
    assert!(!first.duplicate);
    let again = send("evt-1").await.expect("publish duplicate");
    assert!(again.duplicate, "same id within the window is a duplicate");
    assert_eq!(
        again.sequence, first.sequence,
        "a duplicate names the original"
    );
    let other = send("evt-2").await.expect("publish");
    assert!(!other.duplicate);
    assert_eq!(other.sequence, first.sequence + 1);
    // Without an id nothing is de-duplicated.
    publish(bus, &subject, "same").await;
    publish(bus, &subject, "same").await;
    let info = bus.stream_info(&f.stream).await.expect("stream info");
    assert_eq!(info.messages, 4);
}

/// Streams capture subjects with `*` and `>`; other subjects have no stream.
pub async fn test_wildcard_capture(bus: &dyn Bus) {
    let (stream, prefix) = unique("wildcard");
    bus.ensure_streams(&[StreamConfig::new(
        &stream,
        vec![format!("{prefix}.x.*"), format!("{prefix}.y.>")],
    )])
    .await
    .expect("ensure stream");
    assert_eq!(publish(bus, &format!("{prefix}.x.a"), "1").await, 1);
    assert_eq!(publish(bus, &format!("{prefix}.y.b.c"), "2").await, 2);
    assert_eq!(publish(bus, &format!("{prefix}.y.x"), "3").await, 3);
    for uncaptured in [
        format!("{prefix}.x"),
        format!("{prefix}.x.a.more"),
        format!("{prefix}.y"),
        format!("{prefix}.z.a"),
    ] {
        let err = bus
            .publish(&uncaptured, Headers::new(), Bytes::new())
            .await
            .expect_err("no stream captures it");
        assert_eq!(err.kind(), BusErrorKind::NoStream, "{uncaptured}: {err}");
        assert!(err.is_retryable());
    }
    let info = bus.stream_info(&stream).await.expect("stream info");
    assert_eq!(info.messages, 3);

    // One stream's own subjects may not overlap either.
    let (stream, prefix) = unique("selfoverlap");
    let err = bus
        .ensure_streams(&[StreamConfig::new(
            stream,
            vec![format!("{prefix}.*.x"), format!("{prefix}.y.>")],
        )])
        .await
        .expect_err("overlapping subjects in one stream");
    assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{err}");
}

/// A consumer receives every message once, in stream order, across several fetches.
pub async fn test_consumer_in_order(bus: &dyn Bus) {
    let f = fixture(bus, "order").await;
    for i in 0..20 {
        publish(bus, &f.subject(&format!("s{}", i % 3)), &i.to_string()).await;
    }
    let c = consumer(bus, &f, "reader", vec![], options(Duration::from_secs(30))).await;
    assert_eq!(c.stream(), f.stream);
    assert_eq!(c.name(), "reader");
    let mut all = Vec::new();
    while all.len() < 20 {
        let batch = c.fetch(7, Duration::from_secs(2)).await.expect("fetch");
        assert!(
            !batch.is_empty(),
            "fetch returned nothing after {}",
            all.len()
        );
        assert!(batch.len() <= 7, "fetch returned more than asked");
        ack_all(&batch).await;
        all.extend(batch);
    }
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(payloads(&all), expected);
    for (i, delivery) in all.iter().enumerate() {
        assert_eq!(delivery.stream_sequence, i as u64 + 1);
        assert_eq!(delivery.delivered, 1);
        assert_eq!(delivery.subject, f.subject(&format!("s{}", i % 3)));
    }
    expect_nothing(&*c, Duration::from_millis(200), "everything was acked").await;
}

/// A fetch bounded in bytes ends before the message that would take it past the bound,
/// still delivers a message larger than the bound (alone), and loses nothing.
pub async fn test_fetch_bounded(bus: &dyn Bus) {
    let f = fixture(bus, "bounded").await;
    // 300 KiB each: three fit in 1 MiB with their subjects, a fourth does not.
    let filler = "x".repeat(300 << 10);
    for i in 0..10 {
        publish(bus, &f.subject("a"), &format!("{i:02}{filler}")).await;
    }
    let c = consumer(bus, &f, "bounded", vec![], options(Duration::from_secs(30))).await;
    let mut all = Vec::new();
    while all.len() < 10 {
        let batch = c
            .fetch_bounded(100, 1 << 20, Duration::from_secs(2))
            .await
            .expect("fetch");
        assert!(
            !batch.is_empty(),
            "fetch returned nothing after {}",
            all.len()
        );
        assert!(
            batch.len() <= 3,
            "{} messages of 300 KiB in a batch bounded to 1 MiB",
            batch.len()
        );
        ack_all(&batch).await;
        all.extend(batch);
    }
    let firsts: Vec<String> = payloads(&all).iter().map(|p| p[..2].to_owned()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("{i:02}")).collect();
    assert_eq!(firsts, expected, "every message once, in order");
    publish(bus, &f.subject("a"), &filler).await;
    let one = c
        .fetch_bounded(100, 10, Duration::from_secs(2))
        .await
        .expect("fetch");
    assert_eq!(one.len(), 1, "a message larger than the bound comes alone");
    ack_all(&one).await;
}

/// A fetch returns as soon as messages are available rather than waiting for `max` or
/// `expires`, and a waiting fetch wakes up for a new message.
pub async fn test_fetch_returns_early(bus: &dyn Bus) {
    let f = fixture(bus, "early").await;
    publish(bus, &f.subject("a"), "0").await;
    let c = consumer(bus, &f, "early", vec![], options(Duration::from_secs(30))).await;
    let started = Instant::now();
    let got = c.fetch(100, Duration::from_secs(5)).await.expect("fetch");
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fetch with a message available took {:?}",
        started.elapsed()
    );
    ack_all(&got).await;

    let started = Instant::now();
    let (got, ()) = tokio::join!(c.fetch(100, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        publish(bus, &f.subject("b"), "1").await;
    });
    let got = got.expect("fetch");
    assert_eq!(
        payloads(&got),
        ["1"],
        "a waiting fetch gets the new message"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waiting fetch took {:?}",
        started.elapsed()
    );
    ack_all(&got).await;

    let started = Instant::now();
    let got = c.fetch(10, Duration::ZERO).await.expect("fetch");
    assert!(got.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Acknowledged messages are not delivered again, even after the ack wait.
pub async fn test_ack_removes(bus: &dyn Bus) {
    let f = fixture(bus, "ack").await;
    for i in 0..3 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let c = consumer(bus, &f, "acker", vec![], options(SHORT_ACK_WAIT)).await;
    let got = fetch_exactly(&*c, 3).await;
    ack_all(&got).await;
    expect_nothing(
        &*c,
        SHORT_ACK_WAIT + Duration::from_millis(700),
        "acked messages stay acked",
    )
    .await;
    eventually("no lag after acks", || async {
        c.pending().await.expect("pending").total() == 0
    })
    .await;
}

/// A work-queue stream with discard-new: an acknowledged message is gone, a
/// full stream refuses a new message with [`BusErrorKind::Full`] (keeping
/// every message it holds) and takes messages again once some were
/// acknowledged.
pub async fn test_work_queue_full(bus: &dyn Bus) {
    let (stream, prefix) = unique("workqueue");
    let f = Fixture { stream, prefix };
    let payload = Bytes::from(vec![b'x'; 200]);
    let config = f
        .config()
        .with_retention(crate::Retention::WorkQueue)
        .with_discard(crate::Discard::New)
        .with_max_messages(3);
    bus.ensure_streams(&[config]).await.expect("work queue");
    for _ in 0..3 {
        bus.publish(&f.subject("a"), Headers::new(), payload.clone())
            .await
            .expect("room for three");
    }
    let refused = bus
        .publish(&f.subject("a"), Headers::new(), payload.clone())
        .await
        .expect_err("a fourth message is refused");
    assert_eq!(refused.kind(), BusErrorKind::Full, "{refused}");
    assert!(refused.kind().is_retryable());
    let info = bus.stream_info(&f.stream).await.expect("info");
    assert_eq!((info.messages, info.first_sequence), (3, 1));

    let c = consumer(bus, &f, "worker", vec![], options(SHORT_ACK_WAIT)).await;
    let got = fetch_exactly(&*c, 3).await;
    ack_all(&got[..2]).await;
    eventually("acknowledged messages removed", || async {
        bus.stream_info(&f.stream)
            .await
            .is_ok_and(|info| info.messages == 1)
    })
    .await;
    for _ in 0..2 {
        bus.publish(&f.subject("a"), Headers::new(), payload.clone())
            .await
            .expect("room again");
    }
    let refused = bus
        .publish(&f.subject("a"), Headers::new(), payload.clone())
        .await
        .expect_err("full again");
    assert_eq!(refused.kind(), BusErrorKind::Full, "{refused}");
    // The unacknowledged message is still delivered after its ack wait.
    let again = fetch_exactly(&*c, 3).await;
    let sequences: BTreeSet<u64> = again.iter().map(|d| d.stream_sequence).collect();
    assert_eq!(sequences, BTreeSet::from([3, 4, 5]));
    ack_all(&again).await;
    eventually("work queue empty", || async {
        bus.stream_info(&f.stream)
            .await
            .is_ok_and(|info| info.messages == 0)
    })
    .await;
}

/// A message not acknowledged within the ack wait is delivered again, with `delivered`
/// counting the attempts.
pub async fn test_redelivery_after_ack_wait(bus: &dyn Bus) {
    let f = fixture(bus, "redeliver").await;
    let sequence = publish(bus, &f.subject("a"), "once").await;
    let c = consumer(bus, &f, "slow", vec![], options(SHORT_ACK_WAIT)).await;
    let first = fetch_exactly(&*c, 1).await;
    let first_at = Instant::now();
    assert_eq!(first[0].delivered, 1);
    expect_nothing(
        &*c,
        Duration::from_millis(300),
        "no redelivery before the ack wait",
    )
    .await;
    let second = fetch_exactly(&*c, 1).await;
    assert!(
        first_at.elapsed() >= SHORT_ACK_WAIT - Duration::from_millis(100),
        "redelivered after {:?}, before the ack wait",
        first_at.elapsed()
    );
    assert_eq!(second[0].stream_sequence, sequence);
    assert_eq!(second[0].delivered, 2);
    assert_eq!(payloads(&second), ["once"]);
    ack_all(&second).await;
    // The stale first delivery acks nothing new and does not fail.
    first[0].ack().await.expect("late ack of an acked message");
    expect_nothing(&*c, SHORT_ACK_WAIT + Duration::from_millis(500), "acked").await;
}

/// A nak redelivers at once, or after its delay.
pub async fn test_nak_redelivers(bus: &dyn Bus) {
    let f = fixture(bus, "nak").await;
    publish(bus, &f.subject("a"), "n").await;
    // A long ack wait: any redelivery here comes from the nak.
    let c = consumer(bus, &f, "naker", vec![], options(Duration::from_secs(30))).await;
    let got = fetch_exactly(&*c, 1).await;
    got[0].nak(Duration::ZERO).await.expect("nak");
    let again = fetch_exactly(&*c, 1).await;
    assert_eq!(again[0].delivered, 2);
    assert_eq!(again[0].stream_sequence, got[0].stream_sequence);

    let delay = Duration::from_millis(800);
    let nak_at = Instant::now();
    again[0].nak(delay).await.expect("nak with delay");
    expect_nothing(&*c, Duration::from_millis(300), "nak delay not over").await;
    let third = fetch_exactly(&*c, 1).await;
    assert!(
        nak_at.elapsed() >= delay - Duration::from_millis(100),
        "redelivered {:?} after a nak with delay {delay:?}",
        nak_at.elapsed()
    );
    assert_eq!(third[0].delivered, 3);
    ack_all(&third).await;
}

/// A terminated message is never delivered again.
pub async fn test_term_stops_redelivery(bus: &dyn Bus) {
    let f = fixture(bus, "term").await;
    publish(bus, &f.subject("a"), "poison").await;
    publish(bus, &f.subject("a"), "fine").await;
    let c = consumer(bus, &f, "termer", vec![], options(SHORT_ACK_WAIT)).await;
    let got = fetch_exactly(&*c, 2).await;
    got[0].term().await.expect("term");
    got[1].ack().await.expect("ack");
    expect_nothing(
        &*c,
        SHORT_ACK_WAIT + Duration::from_millis(700),
        "terminated and acked messages stay done",
    )
    .await;
    eventually("no lag after term", || async {
        c.pending().await.expect("pending").total() == 0
    })
    .await;
}

/// After `max_deliver` attempts a message is not delivered again; later messages still are.
pub async fn test_max_deliver(bus: &dyn Bus) {
    let f = fixture(bus, "maxdeliver").await;
    publish(bus, &f.subject("a"), "bad").await;
    let c = consumer(
        bus,
        &f,
        "limited",
        vec![],
        ConsumerOptions {
            ack_wait: SHORT_ACK_WAIT,
            max_deliver: Some(2),
            ..ConsumerOptions::default()
        },
    )
    .await;
    let first = fetch_exactly(&*c, 1).await;
    first[0].nak(Duration::ZERO).await.expect("nak");
    let second = fetch_exactly(&*c, 1).await;
    assert_eq!(second[0].delivered, 2);
    second[0].nak(Duration::ZERO).await.expect("nak");
    expect_nothing(
        &*c,
        SHORT_ACK_WAIT + Duration::from_millis(500),
        "max deliver reached",
    )
    .await;
    publish(bus, &f.subject("a"), "next").await;
    let next = fetch_exactly(&*c, 1).await;
    assert_eq!(payloads(&next), ["next"]);
    assert_eq!(next[0].delivered, 1);
    ack_all(&next).await;
}

/// No more than `max_ack_pending` deliveries await an ack at a time.
pub async fn test_max_ack_pending(bus: &dyn Bus) {
    let f = fixture(bus, "maxpending").await;
    for i in 0..5 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let c = consumer(
        bus,
        &f,
        "bounded",
        vec![],
        ConsumerOptions {
            max_ack_pending: 2,
            ..ConsumerOptions::default()
        },
    )
    .await;
    let first = c.fetch(10, Duration::from_secs(1)).await.expect("fetch");
    assert_eq!(payloads(&first), ["0", "1"]);
    expect_nothing(&*c, Duration::from_millis(300), "two awaiting ack").await;
    ack_all(&first).await;
    let mut rest = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while rest.len() < 3 && Instant::now() < deadline {
        let batch = c.fetch(10, Duration::from_secs(1)).await.expect("fetch");
        assert!(
            batch.len() <= 2,
            "more than max ack pending: {}",
            batch.len()
        );
        ack_all(&batch).await;
        rest.extend(batch);
    }
    assert_eq!(payloads(&rest), ["2", "3", "4"]);
}

/// Two durable consumers on one stream each receive every message.
pub async fn test_two_durables(bus: &dyn Bus) {
    let f = fixture(bus, "twodurables").await;
    for i in 0..5 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let a = consumer(bus, &f, "indexer", vec![], options(Duration::from_secs(30))).await;
    let b = consumer(
        bus,
        &f,
        "escalator",
        vec![],
        options(Duration::from_secs(30)),
    )
    .await;
    let got_a = fetch_exactly(&*a, 5).await;
    ack_all(&got_a).await;
    let got_b = fetch_exactly(&*b, 5).await;
    ack_all(&got_b).await;
    assert_eq!(payloads(&got_a), payloads(&got_b));
    assert_eq!(payloads(&got_a), ["0", "1", "2", "3", "4"]);
    let info = bus.stream_info(&f.stream).await.expect("stream info");
    assert_eq!(info.consumers, 2);
    assert_eq!(info.messages, 5, "limits retention keeps consumed messages");
}

/// Two handles of one durable consumer (two instances of a service) share its
/// messages: each message goes to one of them, and together they get all.
pub async fn test_shared_durable(bus: &dyn Bus) {
    let f = fixture(bus, "shareddurable").await;
    for i in 0..40 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let opts = options(Duration::from_secs(30));
    let a = consumer(bus, &f, "shared", vec![], opts).await;
    let b = consumer(bus, &f, "shared", vec![], opts).await;
    let mut got: Vec<(char, u64)> = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while got.len() < 40 && Instant::now() < deadline {
        for (name, c) in [('a', &a), ('b', &b)] {
            let batch = c.fetch(7, Duration::from_millis(200)).await.expect("fetch");
            ack_all(&batch).await;
            got.extend(batch.iter().map(|d| (name, d.stream_sequence)));
        }
    }
    let mut sequences: Vec<u64> = got.iter().map(|(_, s)| *s).collect();
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (1..=40).collect::<Vec<u64>>(),
        "each message once: {got:?}"
    );
    assert!(
        got.iter().any(|(n, _)| *n == 'a') && got.iter().any(|(n, _)| *n == 'b'),
        "both handles got work: {got:?}"
    );
    expect_nothing(&*a, Duration::from_millis(300), "all acknowledged").await;
}

/// [`ConsumerOptions::restart`] replaces a durable consumer: delivery starts at
/// its deliver policy although later messages were delivered (and not
/// acknowledged) before, and acknowledgements of the replaced one's
/// deliveries change nothing.
pub async fn test_restart_from_sequence(bus: &dyn Bus) {
    let f = fixture(bus, "restart").await;
    for i in 0..6 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let long = options(Duration::from_secs(30));
    let old = consumer(bus, &f, "taken", vec![], long).await;
    let first = fetch_exactly(&*old, 3).await;
    ack_all(&first[..1]).await;
    let in_flight = fetch_exactly(&*old, 3).await;
    assert_eq!(payloads(&in_flight), ["3", "4", "5"]);
    // Taken over from sequence 3 (its checkpoint covers 1 and 2).
    let new = consumer(
        bus,
        &f,
        "taken",
        vec![],
        ConsumerOptions {
            deliver_policy: DeliverPolicy::FromSequence(3),
            restart: true,
            ..long
        },
    )
    .await;
    let got = fetch_exactly(&*new, 2).await;
    assert_eq!(payloads(&got), ["2", "3"]);
    // The old holder acknowledges what it had: the new consumer still
    // delivers the rest.
    ack_all(&in_flight).await;
    ack_all(&first).await;
    let rest = fetch_exactly(&*new, 2).await;
    assert_eq!(payloads(&rest), ["4", "5"]);
    ack_all(&got).await;
    ack_all(&rest).await;
    expect_nothing(&*new, Duration::from_millis(300), "all acknowledged").await;
}

/// A durable consumer opened again continues after its acknowledged messages.
pub async fn test_durable_resumes(bus: &dyn Bus) {
    let f = fixture(bus, "resume").await;
    for i in 0..6 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let opts = options(SHORT_ACK_WAIT);
    {
        let c = consumer(bus, &f, "durable", vec![], opts).await;
        let got = fetch_exactly(&*c, 3).await;
        assert_eq!(payloads(&got), ["0", "1", "2"]);
        ack_all(&got).await;
        eventually("acks recorded", || async {
            c.pending().await.expect("pending").ack_pending == 0
        })
        .await;
    }
    let c = consumer(bus, &f, "durable", vec![], opts).await;
    let got = fetch_exactly(&*c, 3).await;
    assert_eq!(payloads(&got), ["3", "4", "5"]);
    assert!(got.iter().all(|d| d.delivered == 1));
    ack_all(&got).await;
    expect_nothing(
        &*c,
        SHORT_ACK_WAIT + Duration::from_millis(500),
        "nothing acked is redelivered",
    )
    .await;
}

/// [`DeliverPolicy::New`] skips what the stream held before the consumer was created.
pub async fn test_deliver_new(bus: &dyn Bus) {
    let f = fixture(bus, "delivernew").await;
    for i in 0..3 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let c = consumer(
        bus,
        &f,
        "latest",
        vec![],
        ConsumerOptions {
            deliver_policy: DeliverPolicy::New,
            ..ConsumerOptions::default()
        },
    )
    .await;
    expect_nothing(&*c, Duration::from_millis(300), "only new messages").await;
    publish(bus, &f.subject("a"), "new").await;
    let got = fetch_exactly(&*c, 1).await;
    assert_eq!(payloads(&got), ["new"]);
    assert_eq!(got[0].stream_sequence, 4);
    ack_all(&got).await;
    // From a sequence: 3 and 4.
    let c = consumer(
        bus,
        &f,
        "fromthree",
        vec![],
        ConsumerOptions {
            deliver_policy: DeliverPolicy::FromSequence(3),
            ..ConsumerOptions::default()
        },
    )
    .await;
    let got = fetch_exactly(&*c, 2).await;
    assert_eq!(payloads(&got), ["2", "new"]);
    ack_all(&got).await;
    // Opening an existing consumer with another start changes nothing.
    publish(bus, &f.subject("a"), "later").await;
    let c = consumer(
        bus,
        &f,
        "fromthree",
        vec![],
        ConsumerOptions {
            deliver_policy: DeliverPolicy::FromSequence(1),
            ..ConsumerOptions::default()
        },
    )
    .await;
    let got = fetch_exactly(&*c, 1).await;
    assert_eq!(payloads(&got), ["later"]);
    ack_all(&got).await;
}

async fn next(reader: &mut Box<dyn StreamReader>) -> crate::StreamMessage {
    tokio::time::timeout(PATIENCE, reader.next())
        .await
        .expect("a message within the patience")
        .expect("reader open")
        .expect("message read")
}

/// The lag of a durable consumer is readable by name, without changing it.
pub async fn test_consumer_lag(bus: &dyn Bus) {
    let f = fixture(bus, "consumerlag").await;
    for i in 0..3 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let c = consumer(bus, &f, "lagging", vec![], ConsumerOptions::default()).await;
    let got = fetch_exactly(&*c, 1).await;
    let lag = bus.consumer_lag(&f.stream, "lagging").await.expect("lag");
    assert_eq!((lag.undelivered, lag.ack_pending), (2, 1));
    ack_all(&got).await;
    let err = bus
        .consumer_lag(&f.stream, "nobody")
        .await
        .expect_err("no such consumer");
    assert_eq!(err.kind(), BusErrorKind::NotFound, "{err}");
}

/// A stream reader starts at a sequence, keeps only matching subjects, follows new
/// messages, and leaves no consumer behind for the others.
pub async fn test_read_stream(bus: &dyn Bus) {
    let f = fixture(bus, "readstream").await;
    for (i, suffix) in ["a.x", "b.x", "a.y", "a.x"].iter().enumerate() {
        publish(bus, &f.subject(suffix), &i.to_string()).await;
    }
    // Everything from 2 on under `a.>`.
    let mut reader = bus
        .read_stream(&f.stream, vec![f.subject("a.>")], 2)
        .await
        .expect("read stream");
    let m = next(&mut reader).await;
    assert_eq!((m.sequence, &m.payload[..]), (3, &b"2"[..]));
    assert_eq!(m.subject, f.subject("a.y"));
    let m = next(&mut reader).await;
    assert_eq!((m.sequence, &m.payload[..]), (4, &b"3"[..]));
    // Follows what is published next, skipping what does not match.
    publish(bus, &f.subject("b.z"), "skip").await;
    publish(bus, &f.subject("a.z"), "live").await;
    let m = next(&mut reader).await;
    assert_eq!((m.sequence, &m.payload[..]), (6, &b"live"[..]));
    // From the start, no filter; headers travel.
    let mut all = bus
        .read_stream(&f.stream, vec![], 0)
        .await
        .expect("read stream");
    let sequences = [next(&mut all).await.sequence, next(&mut all).await.sequence];
    assert_eq!(sequences, [1, 2]);
    // Past the end: waits for the next message.
    let info = bus.stream_info(&f.stream).await.expect("stream info");
    let mut tail = bus
        .read_stream(&f.stream, vec![], info.last_sequence + 1)
        .await
        .expect("read stream");
    let waited = tokio::time::timeout(Duration::from_millis(300), tail.next()).await;
    assert!(waited.is_err(), "nothing past the end yet");
    bus.publish(
        &f.subject("c"),
        Headers::new().with("X-Test", "1"),
        Bytes::from_static(b"tail"),
    )
    .await
    .expect("publish");
    let m = next(&mut tail).await;
    assert_eq!((m.sequence, &m.payload[..]), (7, &b"tail"[..]));
    assert_eq!(m.headers.get("X-Test"), Some("1"));
    // Readers are not durable consumers: the stream has none.
    drop((reader, all, tail));
    let c = consumer(bus, &f, "after", vec![], ConsumerOptions::default()).await;
    let got = fetch_exactly(&*c, 7).await;
    ack_all(&got).await;
    // Unknown stream.
    let err = bus
        .read_stream("NO_SUCH_STREAM_RS", vec![], 1)
        .await
        .expect_err("unknown stream");
    assert_eq!(err.kind(), BusErrorKind::NotFound, "{err}");
}

/// Filter subjects select what a consumer receives (several filters, with wildcards).
pub async fn test_filter_subjects(bus: &dyn Bus) {
    let f = fixture(bus, "filter").await;
    for (suffix, payload) in [
        ("a.1", "a1"),
        ("b.1", "b1"),
        ("c.x.y", "cxy"),
        ("a.2", "a2"),
        ("b.2", "b2"),
    ] {
        publish(bus, &f.subject(suffix), payload).await;
    }
    let ac = consumer(
        bus,
        &f,
        "ac",
        vec![f.subject("a.*"), f.subject("c.>")],
        options(Duration::from_secs(30)),
    )
    .await;
    let lag = ac.pending().await.expect("pending");
    assert_eq!(lag.undelivered, 3, "lag counts only filtered messages");
    let got = fetch_exactly(&*ac, 3).await;
    assert_eq!(payloads(&got), ["a1", "cxy", "a2"]);
    ack_all(&got).await;
    expect_nothing(&*ac, Duration::from_millis(200), "filtered out").await;

    let b = consumer(
        bus,
        &f,
        "b",
        vec![f.subject("b.*")],
        options(Duration::from_secs(30)),
    )
    .await;
    let got = fetch_exactly(&*b, 2).await;
    assert_eq!(payloads(&got), ["b1", "b2"]);
    assert_eq!(
        got.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
        [2, 5]
    );
    ack_all(&got).await;
}

/// Headers arrive as sent: the message id, W3C trace context, DLQ headers and repeated names.
pub async fn test_headers_round_trip(bus: &dyn Bus) {
    use posbon_telemetry::opentelemetry::trace::TraceContextExt as _;
    use posbon_telemetry::{OpenTelemetrySpanExt as _, init_for_tests};

    init_for_tests();
    let f = fixture(bus, "headers").await;
    let span = tracing::info_span!("conformance_publish");
    let sent_trace = span.context().span().span_context().trace_id();
    let reason = "location.lat: 91.2 is out of range -90..90; kind: unknown kind \"x\"";
    let sent = Headers::new()
        .with_msg_id("hdr-1")
        .with_trace_context_of(&span)
        .with(headers::REJECT_CODE, "out_of_range")
        .with(headers::REJECT_REASON, reason)
        .with("X-Multi", "1")
        .with("X-Multi", "2");
    assert!(
        sent.get(headers::TRACEPARENT).is_some(),
        "telemetry injects a traceparent"
    );
    bus.publish(
        &f.subject("h"),
        sent.clone(),
        Bytes::from_static(b"payload"),
    )
    .await
    .expect("publish");
    publish(bus, &f.subject("plain"), "plain").await;

    let c = consumer(bus, &f, "headers", vec![], options(Duration::from_secs(30))).await;
    let got = fetch_exactly(&*c, 2).await;
    let received = &got[0].headers;
    assert_eq!(received.msg_id(), Some("hdr-1"));
    assert_eq!(
        received.get(headers::TRACEPARENT),
        sent.get(headers::TRACEPARENT)
    );
    assert_eq!(received.get(headers::REJECT_CODE), Some("out_of_range"));
    assert_eq!(received.get(headers::REJECT_REASON), Some(reason));
    let multi: BTreeSet<&str> = received.get_all("x-multi").collect();
    assert_eq!(multi, BTreeSet::from(["1", "2"]));
    assert_eq!(received.len(), sent.len());
    let remote = received.trace_context();
    assert_eq!(remote.span().span_context().trace_id(), sent_trace);
    // The consumer's span continues the publisher's trace; a message without
    // a traceparent starts a trace of its own.
    let consumed = got[0].span("conformance_consume");
    assert_eq!(
        consumed.context().span().span_context().trace_id(),
        sent_trace,
        "the consumer's span is in the publisher's trace"
    );
    let plain = got[1].span("conformance_consume");
    assert_ne!(plain.context().span().span_context().trace_id(), sent_trace);
    assert_eq!(&got[0].payload[..], b"payload");
    assert!(got[1].headers.is_empty(), "no headers sent, none received");
    ack_all(&got).await;
}

/// `publish_many` returns one result per message, in order, including failures.
pub async fn test_publish_many_in_order(bus: &dyn Bus) {
    let f = fixture(bus, "many").await;
    let count = 500;
    let mut messages: Vec<OutgoingMessage> = (0..count)
        .map(|i| {
            OutgoingMessage::new(
                f.subject(&format!("k{}", i % 4)),
                Headers::new().with_msg_id(format!("m-{i}")),
                Bytes::from(i.to_string()),
            )
        })
        .collect();
    // A duplicate of message 10, an invalid subject and a subject no stream captures.
    messages.push(OutgoingMessage::new(
        f.subject("k2"),
        Headers::new().with_msg_id("m-10"),
        Bytes::new(),
    ));
    messages.push(OutgoingMessage::new(
        "bad subject",
        Headers::new(),
        Bytes::new(),
    ));
    messages.push(OutgoingMessage::new(
        format!("{}-elsewhere.x", f.prefix),
        Headers::new(),
        Bytes::new(),
    ));
    messages.push(OutgoingMessage::new(
        f.subject("last"),
        Headers::new(),
        Bytes::from_static(b"last"),
    ));
    let results = bus.publish_many(messages).await;
    assert_eq!(results.len(), count + 4);
    for (i, result) in results[..count].iter().enumerate() {
        let ack = result
            .as_ref()
            .unwrap_or_else(|err| panic!("message {i}: {err}"));
        assert_eq!(ack.sequence, i as u64 + 1, "message {i}");
        assert!(!ack.duplicate);
    }
    let duplicate = results[count].as_ref().expect("duplicate is acked");
    assert!(duplicate.duplicate);
    assert_eq!(duplicate.sequence, 11);
    assert_eq!(
        results[count + 1].as_ref().map_err(|e| e.kind()),
        Err(BusErrorKind::InvalidInput)
    );
    assert_eq!(
        results[count + 2].as_ref().map_err(|e| e.kind()),
        Err(BusErrorKind::NoStream)
    );
    assert_eq!(
        results[count + 3].as_ref().map(|ack| ack.sequence),
        Ok(count as u64 + 1)
    );
    let info = bus.stream_info(&f.stream).await.expect("stream info");
    assert_eq!(info.messages, count as u64 + 1);
    assert_eq!(bus.publish_many(Vec::new()).await.len(), 0);
}

/// A core subscription receives core publishes, with headers, and stream publishes on its
/// subjects; it stops receiving when dropped.
pub async fn test_core_subscribe(bus: &dyn Bus) {
    let (_, prefix) = unique("core");
    let mut subscription = bus
        .subscribe(&format!("{prefix}.*"))
        .await
        .expect("subscribe");
    for i in 0..3 {
        bus.core_publish(
            &format!("{prefix}.t{i}"),
            Headers::new().with("X-I", i.to_string()),
            Bytes::from(i.to_string()),
        )
        .await
        .expect("core publish");
    }
    // Not matched by `*`: must not arrive.
    bus.core_publish(&format!("{prefix}.a.b"), Headers::new(), Bytes::new())
        .await
        .expect("core publish");
    bus.core_publish(&format!("{prefix}.end"), Headers::new(), Bytes::new())
        .await
        .expect("core publish");
    for i in 0..3 {
        let message = tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .expect("message in time")
            .expect("subscription open");
        assert_eq!(message.subject, format!("{prefix}.t{i}"));
        assert_eq!(message.payload, Bytes::from(i.to_string()));
        assert_eq!(message.headers.get("X-I"), Some(i.to_string().as_str()));
    }
    let end = tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("message in time")
        .expect("subscription open");
    assert_eq!(end.subject, format!("{prefix}.end"));
    drop(subscription);

    // A stream publish is also seen by core subscribers of its subject.
    let f = fixture(bus, "corestream").await;
    let mut subscription = bus
        .subscribe(&format!("{}.>", f.prefix))
        .await
        .expect("subscribe");
    publish(bus, &f.subject("x.y"), "stored").await;
    let message = tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("message in time")
        .expect("subscription open");
    assert_eq!(message.subject, f.subject("x.y"));
    // And a core publish on a captured subject is stored.
    bus.core_publish(&f.subject("core"), Headers::new(), Bytes::new())
        .await
        .expect("core publish");
    eventually("core publish stored", || async {
        bus.stream_info(&f.stream)
            .await
            .expect("stream info")
            .messages
            == 2
    })
    .await;
}

/// `pending` reports undelivered and unacknowledged messages.
pub async fn test_pending(bus: &dyn Bus) {
    let f = fixture(bus, "pending").await;
    for i in 0..10 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    let c = consumer(bus, &f, "lagging", vec![], options(Duration::from_secs(30))).await;
    let lag = c.pending().await.expect("pending");
    assert_eq!((lag.undelivered, lag.ack_pending, lag.total()), (10, 0, 10));
    let got = fetch_exactly(&*c, 4).await;
    let lag = c.pending().await.expect("pending");
    assert_eq!((lag.undelivered, lag.ack_pending), (6, 4));
    ack_all(&got).await;
    eventually("acks counted", || async {
        c.pending().await.expect("pending")
            == crate::ConsumerLag {
                undelivered: 6,
                ack_pending: 0,
            }
    })
    .await;
}

/// `ensure_streams` is idempotent, updates limits, and refuses overlapping subjects and
/// invalid configurations.
pub async fn test_ensure_streams(bus: &dyn Bus) {
    bus.ensure_streams(&default_streams())
        .await
        .expect("ensure default streams");
    bus.ensure_streams(&default_streams())
        .await
        .expect("ensure default streams again");
    for stream in default_streams() {
        bus.stream_info(&stream.name)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", stream.name));
    }

    let f = fixture(bus, "ensure").await;
    for i in 0..5 {
        publish(bus, &f.subject("a"), &i.to_string()).await;
    }
    bus.ensure_streams(&[f.config()])
        .await
        .expect("ensure again");
    assert_eq!(
        bus.stream_info(&f.stream)
            .await
            .expect("stream info")
            .messages,
        5,
        "ensuring again keeps messages"
    );
    bus.ensure_streams(&[f
        .config()
        .with_max_messages(2)
        .with_duplicate_window(Duration::from_secs(30))])
        .await
        .expect("update limits");
    let info = bus.stream_info(&f.stream).await.expect("stream info");
    assert_eq!(
        (info.messages, info.first_sequence, info.last_sequence),
        (2, 4, 5),
        "a lower limit removes the oldest"
    );

    let (other, _) = unique("overlap");
    let err = bus
        .ensure_streams(&[StreamConfig::new(other, vec![f.subject("a")])])
        .await
        .expect_err("overlapping subjects");
    assert_eq!(err.kind(), BusErrorKind::Rejected, "{err}");

    let err = bus
        .ensure_streams(&[StreamConfig::new("BAD.NAME", vec!["x.y".to_owned()])])
        .await
        .expect_err("invalid name");
    assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{err}");
}

/// Unknown streams are reported as not found.
pub async fn test_not_found(bus: &dyn Bus) {
    let (missing, _) = unique("missing");
    let err = bus.stream_info(&missing).await.expect_err("no such stream");
    assert_eq!(err.kind(), BusErrorKind::NotFound, "{err}");
    assert!(!err.is_retryable());
    let err = bus
        .consumer(&missing, "c", vec![], ConsumerOptions::default())
        .await
        .expect_err("no such stream");
    assert_eq!(err.kind(), BusErrorKind::NotFound, "{err}");
}

/// Invalid subjects, headers and names are the caller's fault and not retryable.
pub async fn test_invalid_input(bus: &dyn Bus) {
    let f = fixture(bus, "invalid").await;
    let cases = [
        ("space", f.subject("a b"), Headers::new()),
        ("wildcard", f.subject("*"), Headers::new()),
        ("empty token", format!("{}..a", f.prefix), Headers::new()),
        (
            "header line break",
            f.subject("a"),
            Headers::new().with("X", "a\r\nb"),
        ),
        (
            "header name",
            f.subject("a"),
            Headers::new().with("X Y", "v"),
        ),
    ];
    for (what, subject, headers) in cases {
        let err = bus
            .publish(&subject, headers.clone(), Bytes::new())
            .await
            .expect_err(what);
        assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{what}: {err}");
        assert!(!err.is_retryable());
        let err = bus
            .core_publish(&subject, headers, Bytes::new())
            .await
            .expect_err(what);
        assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{what}: {err}");
    }
    let err = bus
        .consumer(&f.stream, "a.b", vec![], ConsumerOptions::default())
        .await
        .expect_err("invalid consumer name");
    assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{err}");
    let err = bus
        .consumer(
            &f.stream,
            "c",
            vec![format!("{}.>.x", f.prefix)],
            ConsumerOptions::default(),
        )
        .await
        .expect_err("invalid filter");
    assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{err}");
    let err = bus.subscribe("").await.expect_err("empty subject");
    assert_eq!(err.kind(), BusErrorKind::InvalidInput, "{err}");
    assert_eq!(
        bus.stream_info(&f.stream)
            .await
            .expect("stream info")
            .messages,
        0
    );
}

/// A connected bus is healthy.
pub async fn test_health(bus: &dyn Bus) {
    bus.health().await.expect("healthy");
}
