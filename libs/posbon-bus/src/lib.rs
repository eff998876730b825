//! Posbon message bus: the subjects and streams every service agrees on, a small [`Bus`]
//! trait over them, and two implementations that pass one [`conformance`] suite:
//!
//! * [`NatsBus`]: NATS JetStream through `async-nats`, for deployments;
//! * [`MemoryBus`]: in-process with the same semantics (streams capturing wildcard subjects,
//!   de-duplication by `Nats-Msg-Id`, durable pull consumers with explicit acks,
//!   redelivery, `max_deliver`), for `posbon standalone` and unit tests.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use posbon_bus::{subjects, Bus, ConsumerOptions, Headers, MemoryBus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), posbon_bus::BusError> {
//! let bus = MemoryBus::new();
//! bus.ensure_streams(&subjects::default_streams()).await?;
//!
//! // ingest: publish an enriched event, de-duplicated by its id, with the trace context.
//! let subject = subjects::event_subject(None, "incident")?;
//! let headers = Headers::new().with_msg_id("evt-1").with_trace_context();
//! let ack = bus.publish(&subject, headers, Bytes::from_static(b"{}")).await?;
//! assert_eq!((ack.stream.as_str(), ack.sequence, ack.duplicate), ("EVENTS", 1, false));
//!
//! // indexer: a durable pull consumer; ack after the write.
//! let consumer = bus
//!     .consumer(subjects::EVENTS_STREAM, "indexer", vec![], ConsumerOptions::default())
//!     .await?;
//! for delivery in consumer.fetch(1000, Duration::from_millis(100)).await? {
//!     assert_eq!(delivery.headers.msg_id(), Some("evt-1"));
//!     delivery.ack().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics worth knowing
//!
//! * Delivery is at least once: a consumer must tolerate redelivery (writes are
//!   idempotent, ids are deterministic).
//! * [`Delivery::ack`], [`Delivery::nak`] and [`Delivery::term`] are fire-and-forget on
//!   NATS, as in every NATS client: the server does not confirm them, and an ack lost in a
//!   crash only causes a redelivery after the ack wait.
//! * [`Consumer::fetch`] returns as soon as any message is available (up to `max`), and
//!   waits up to `expires` only when none is: batch sizes follow the load.
//! * A publish is acknowledged only once the stream stored it (on a file stream: written to
//!   the OS, so it survives a server crash). Publishing to a subject no stream captures is
//!   [`BusErrorKind::NoStream`], which counts as retryable because after start-up it means
//!   the server is restarting. Resending with the same `Nats-Msg-Id` is always safe.
//! * [`Bus::publish_many`] is the fast path: it keeps up to
//!   [`NatsOptions::publish_window`] acks in flight. Awaiting each publish is about ten
//!   times slower on NATS.
//! * Core subscriptions ([`Bus::subscribe`]) drop messages when the subscriber falls
//!   behind its buffer; use a stream for anything that must not be lost.
//! * Nothing is logged per message; connection changes and slow consumers are logged.
//!
//! [`MemoryBus`] differs from NATS only where a process cannot imitate a server: nothing
//! survives the process, storage and replicas are ignored, `bytes` in [`StreamInfo`]
//! counts subject, headers and payload only, and header order is preserved (NATS groups
//! values by name).

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod error;
pub mod headers;
mod memory;
mod nats;
mod nats_auth;
pub mod nats_permissions;
pub mod subjects;

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

pub use error::{BusError, BusErrorKind, BusResult};
pub use headers::Headers;
pub use memory::{MemoryBus, MemoryOptions};
pub use nats::{NatsBus, NatsOptions};
pub use nats_auth::{NatsConfig, NatsCredentials, NatsTls, seed_file_text};
pub use subjects::{Discard, Retention, Storage, StreamConfig, default_streams};

/// A message bus: JetStream streams with durable pull consumers, plus core publish/subscribe.
///
/// Use it as `Arc<dyn Bus>`. Every implementation passes [`conformance::run_all`].
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    /// Creates each stream, or updates it to match when it exists. Idempotent.
    async fn ensure_streams(&self, streams: &[StreamConfig]) -> BusResult<()>;

    /// Publishes to the stream that captures `subject` and waits for the stream's ack.
    /// A `Nats-Msg-Id` header seen within the duplicate window is acknowledged with
    /// `duplicate: true` and the original sequence, and not stored again.
    async fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BusResult<PublishAck>;

    /// Publishes many messages with their acks awaited in a window (pipelined), and returns
    /// one result per message, in order. Much faster than awaiting each publish.
    async fn publish_many(&self, messages: Vec<OutgoingMessage>) -> Vec<BusResult<PublishAck>>;

    /// Creates or updates the durable pull consumer `durable` on `stream` and returns a
    /// handle to it. An existing consumer keeps its position: it resumes after its last
    /// acknowledged message. An empty `filter_subjects` means the whole stream.
    async fn consumer(
        &self,
        stream: &str,
        durable: &str,
        filter_subjects: Vec<String>,
        options: ConsumerOptions,
    ) -> BusResult<Box<dyn Consumer>>;

    /// Subscribes to a subject pattern without a stream (core NATS): receives what is
    /// published from now on, at most once, and drops messages when it falls behind.
    async fn subscribe(&self, subject: &str) -> BusResult<Box<dyn Subscription>>;

    /// The lag of an existing durable consumer, without opening (or changing) it: how a
    /// process waits until another part has caught up. [`BusErrorKind::NotFound`] when
    /// there is no such consumer.
    async fn consumer_lag(&self, stream: &str, durable: &str) -> BusResult<ConsumerLag>;

    /// Reads `stream` in order from `start_sequence` (1 reads everything the stream still
    /// holds; `last_sequence + 1` only what comes next), keeping only subjects that match
    /// one of `filter_subjects` (all when empty), and then follows new messages as they
    /// are stored. Nothing is acknowledged and no server state outlives the reader: this is
    /// how a live feed resumes from the last sequence a client saw.
    async fn read_stream(
        &self,
        stream: &str,
        filter_subjects: Vec<String>,
        start_sequence: u64,
    ) -> BusResult<Box<dyn StreamReader>>;

    /// Publishes without waiting for anything (core NATS). A stream that captures the
    /// subject still stores it.
    async fn core_publish(&self, subject: &str, headers: Headers, payload: Bytes) -> BusResult<()>;

    /// The state of a stream: message count and sequences.
    async fn stream_info(&self, stream: &str) -> BusResult<StreamInfo>;

    /// Ok when the bus is connected and the streams ensured so far answer (for `/readyz`).
    async fn health(&self) -> BusResult<()>;
}

/// A durable pull consumer on one stream.
#[async_trait]
pub trait Consumer: Send + Sync + fmt::Debug {
    /// Waits up to `expires` for messages and returns as soon as some are available, at
    /// most `max`; an empty vector when none arrived in time. Each delivery must be
    /// acknowledged ([`Delivery::ack`]) or it is redelivered after the ack wait.
    async fn fetch(&self, max: usize, expires: Duration) -> BusResult<Vec<Delivery>> {
        self.fetch_bounded(max, usize::MAX, expires).await
    }

    /// [`Consumer::fetch`] with the batch's size bounded in bytes as well: it ends before a
    /// message that would take it past `max_bytes` (subjects, headers and payloads), which
    /// bounds the memory a batch holds whatever the messages' sizes. A single message larger
    /// than `max_bytes` still comes alone: on NATS the bound is raised to the server's
    /// `max_payload` plus room for the subject, so no message ever waits for a batch it
    /// cannot fit in.
    async fn fetch_bounded(
        &self,
        max: usize,
        max_bytes: usize,
        expires: Duration,
    ) -> BusResult<Vec<Delivery>>;

    /// How far behind the consumer is, for metrics.
    async fn pending(&self) -> BusResult<ConsumerLag>;

    /// The stream name.
    fn stream(&self) -> &str;

    /// The durable consumer name.
    fn name(&self) -> &str;
}

/// A core (non-stream) subscription.
#[async_trait]
pub trait Subscription: Send + fmt::Debug {
    /// The next message; `None` when the subscription or the bus closed.
    async fn next(&mut self) -> Option<Message>;
}

/// The stream's answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    /// The stream that stored the message.
    pub stream: String,
    /// Its sequence in the stream (for a duplicate, the sequence of the original).
    pub sequence: u64,
    /// Whether the `Nats-Msg-Id` was seen within the duplicate window (nothing was stored).
    pub duplicate: bool,
}

/// One message for [`Bus::publish_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The subject to publish to.
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
}

impl OutgoingMessage {
    /// A message from its parts.
    pub fn new(subject: impl Into<String>, headers: Headers, payload: Bytes) -> Self {
        Self {
            subject: subject.into(),
            headers,
            payload,
        }
    }
}

/// A message received by a core subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
}

/// Where a new durable consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliverPolicy {
    /// From the first message still in the stream.
    #[default]
    All,
    /// From the next message published after the consumer was created.
    New,
    /// From this stream sequence (or the first message still in the stream, when that is
    /// later): a consumer that resumes from a checkpoint it keeps itself.
    FromSequence(u64),
}

/// Settings of a durable pull consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// A delivery not acknowledged within this time is redelivered. Default 30 s.
    pub ack_wait: Duration,
    /// Stop redelivering a message after this many deliveries; `None` (the default) never
    /// gives up.
    pub max_deliver: Option<u64>,
    /// At most this many deliveries awaiting an ack; fetch returns nothing more until some
    /// are acknowledged. Default 20 000.
    pub max_ack_pending: usize,
    /// Where a new consumer starts (ignored when it exists, unless `restart`). Default
    /// [`DeliverPolicy::All`].
    pub deliver_policy: DeliverPolicy,
    /// Delete an existing consumer of this name first, so that delivery starts at
    /// `deliver_policy` whatever it delivered before: for a consumer whose position
    /// lives elsewhere (the escalator's checkpoint), taken over from a holder that died
    /// with deliveries in flight. Their acknowledgements then go nowhere. Only one
    /// process may hold such a consumer at a time (the escalator's shard lease).
    /// Default `false`.
    pub restart: bool,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: None,
            max_ack_pending: 20_000,
            deliver_policy: DeliverPolicy::All,
            restart: false,
        }
    }
}

impl ConsumerOptions {
    pub(crate) fn validate(&self) -> BusResult<()> {
        if self.ack_wait < Duration::from_millis(1) {
            return Err(BusError::invalid("ack wait must be at least 1 ms"));
        }
        if self.max_deliver == Some(0) {
            return Err(BusError::invalid("max deliver must be at least 1"));
        }
        if self.max_ack_pending == 0 {
            return Err(BusError::invalid("max ack pending must be at least 1"));
        }
        Ok(())
    }
}

/// How far a consumer is behind its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsumerLag {
    /// Messages matching the consumer that were never delivered.
    pub undelivered: u64,
    /// Messages delivered and not yet acknowledged (including those waiting for redelivery).
    pub ack_pending: u64,
}

impl ConsumerLag {
    /// Everything not yet acknowledged: `undelivered + ack_pending`.
    pub fn total(&self) -> u64 {
        self.undelivered.saturating_add(self.ack_pending)
    }
}

/// The state of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream name.
    pub name: String,
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored (as the implementation counts them).
    pub bytes: u64,
    /// The sequence of the oldest message (0 for a stream that never had one).
    pub first_sequence: u64,
    /// The sequence of the newest message ever stored (0 when none).
    pub last_sequence: u64,
    /// The number of consumers.
    pub consumers: usize,
    /// The server leading the stream in a cluster (`None` on a single server or the
    /// in-memory bus).
    pub leader: Option<String>,
    /// Copies kept of each message.
    pub replicas: usize,
}

/// Reads a stream in order (see [`Bus::read_stream`]).
#[async_trait]
pub trait StreamReader: Send + fmt::Debug {
    /// The next message, waiting for one to be stored; `None` when the bus is closed.
    async fn next(&mut self) -> Option<BusResult<StreamMessage>>;
}

/// A message read from a stream, with its stream sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// When the stream stored it.
    pub published: SystemTime,
}

/// One message delivered to a [`Consumer`], to be acknowledged.
pub struct Delivery {
    /// The subject it was published to.
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
    /// Its sequence in the stream.
    pub stream_sequence: u64,
    /// How many times it has been delivered, this time included (1 on first delivery).
    pub delivered: u64,
    /// When the stream stored it.
    pub published: SystemTime,
    pub(crate) acker: Acker,
}

pub(crate) enum Acker {
    Nats(nats::NatsAck),
    Memory(memory::AckRef),
}

/// A message's size as streams and bounded fetches count it: subject,
/// headers and payload.
pub(crate) fn message_size(subject: &str, headers: &Headers, payload: &[u8]) -> usize {
    subject.len() + headers.wire_size() + payload.len()
}

impl Delivery {
    /// A span for processing this message (`name`, e.g. `index`), a child
    /// of the publisher's span when the message carries a `traceparent`:
    /// the trace continues across the hop. It has the subject, the stream
    /// sequence and the delivery count; keep it until the message is
    /// settled, so that its length is the time the message was in hand.
    pub fn span(&self, name: &'static str) -> tracing::Span {
        use posbon_telemetry::OpenTelemetrySpanExt as _;
        let span = tracing::info_span!(
            "consume",
            otel.name = name,
            messaging.destination = %self.subject,
            messaging.sequence = self.stream_sequence,
            messaging.delivered = self.delivered,
        );
        let _ = span.set_parent(self.headers.trace_context());
        span
    }

    /// The message's size as a bounded fetch counts it: subject, headers and
    /// payload ([`Consumer::fetch_bounded`]).
    pub fn size(&self) -> usize {
        message_size(&self.subject, &self.headers, &self.payload)
    }

    /// Acknowledges the message: it is done and will not be delivered again to this consumer.
    pub async fn ack(&self) -> BusResult<()> {
        self.respond(AckReply::Ack).await
    }

    /// Rejects the message for now: it is redelivered after `delay` (immediately for zero).
    pub async fn nak(&self, delay: Duration) -> BusResult<()> {
        self.respond(AckReply::Nak(delay)).await
    }

    /// Gives up on the message: it is never redelivered to this consumer. Use it for
    /// messages that can never succeed (after sending them to the DLQ).
    pub async fn term(&self) -> BusResult<()> {
        self.respond(AckReply::Term).await
    }

    /// Tells the stream the message is still being worked on: restarts its ack wait.
    pub async fn in_progress(&self) -> BusResult<()> {
        self.respond(AckReply::Progress).await
    }

    async fn respond(&self, reply: AckReply) -> BusResult<()> {
        match &self.acker {
            Acker::Nats(acker) => acker.respond(reply).await,
            Acker::Memory(acker) => acker.respond(self.stream_sequence, reply),
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("stream_sequence", &self.stream_sequence)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckReply {
    Ack,
    Nak(Duration),
    Term,
    Progress,
}
