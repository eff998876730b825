//! The bus on NATS JetStream (async-nats).
//!
//! One file (1091 lines) because it is one adapter: the `Bus` impl uses private fields and
//! helpers of `NatsBus` (`send`, `check_stream`, `violations`); moving out the type and error
//! conversions (about 200 lines) would still leave about 850 lines of that one adapter.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_nats::connection::State;
use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, pull},
    context::{PublishAckFuture, PublishErrorKind},
    message::PublishMessage,
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
};
use async_nats::{HeaderMap, HeaderName, HeaderValue, Subject};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use std::future::IntoFuture as _;
use tokio::time::Instant;

use crate::nats_auth::Violations;
use crate::subjects::{
    Discard, Retention, Storage, validate_name, validate_pattern, validate_subject,
};
use crate::{
    AckReply, Bus, BusError, BusErrorKind, BusResult, Consumer, ConsumerLag, ConsumerOptions,
    DeliverPolicy, Delivery, Headers, Message, OutgoingMessage, PublishAck, StreamConfig,
    StreamInfo, StreamMessage, StreamReader, Subscription,
};

/// Settings of a [`NatsBus`] connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// The client name the server shows in its monitoring (e.g. `posbon-ingest`).
    pub name: Option<String>,
    /// How long one connection attempt may take. Default 5 s.
    pub connection_timeout: Duration,
    /// The wait for a JetStream API answer or a publish ack. Default 10 s.
    pub request_timeout: Duration,
    /// Messages buffered per subscription (core subscriptions and fetch inboxes) before the
    /// client drops them as a slow consumer. Default 262 144.
    pub subscription_capacity: usize,
    /// Publish acks awaited in flight by one [`Bus::publish_many`] call. Default 4096.
    pub publish_window: usize,
    /// Publish acks in flight for the whole connection; publishes wait above it.
    /// Default 16 384.
    pub max_ack_inflight: usize,
    /// The longest pause between reconnect attempts (the delay doubles from 50 ms up to
    /// it). Reconnects never stop. Default 2 s.
    pub max_reconnect_delay: Duration,
    /// Keep trying when no server answers at start instead of failing `connect`.
    /// Default false: a wrong URL fails fast.
    pub retry_on_initial_connect: bool,
    /// Who the connection is. Default anonymous.
    pub credentials: crate::NatsCredentials,
    /// TLS towards the servers.
    pub tls: crate::NatsTls,
    /// Prefix of reply subjects (`_INBOX` when unset); a least-privilege user
    /// may subscribe only to its own.
    pub inbox_prefix: Option<String>,
    /// Whether [`Bus::ensure_streams`] creates and updates streams (true), or
    /// only checks that they exist with the subjects expected (false: for users
    /// that may not manage streams).
    pub manage_streams: bool,
    /// Replicas of every stream this bus creates or updates (1..=5). `None`:
    /// 3 when the cluster it is connected to has three or more servers, else
    /// 1 ([`NatsBus::stream_replicas`]).
    pub replicas: Option<usize>,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            name: None,
            connection_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            subscription_capacity: 262_144,
            publish_window: 4096,
            max_ack_inflight: 16_384,
            max_reconnect_delay: Duration::from_secs(2),
            retry_on_initial_connect: false,
            credentials: crate::NatsCredentials::None,
            tls: crate::NatsTls::default(),
            inbox_prefix: None,
            manage_streams: true,
            replicas: None,
        }
    }
}

/// A [`Bus`] on NATS JetStream.
///
/// Cheap to clone (one connection). Reconnects forever with backoff; while disconnected,
/// publishes and fetches fail with retryable errors ([`BusError::is_retryable`]) or time
/// out, and resume after the reconnect.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    options: NatsOptions,
    /// Streams ensured through this bus, checked by [`Bus::health`].
    streams: Arc<Mutex<Vec<String>>>,
    /// The server's recent permission refusals.
    violations: Violations,
}

impl NatsBus {
    /// Deletes durable consumer `durable` of `stream`; one that does not exist is fine.
    async fn delete_consumer(&self, stream: &str, durable: &str) -> BusResult<()> {
        let started = Instant::now();
        match self
            .jetstream
            .delete_consumer_from_stream(durable, stream)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = consumer_error(stream, durable, &err);
                if err.kind() == BusErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(self.violations.explain(
                        BusError::new(err.kind(), format!("restart (delete) {err}")),
                        started,
                        None,
                    ))
                }
            }
        }
    }

    /// The replicas streams get: [`NatsOptions::replicas`], or 3 when the
    /// server says its cluster has three or more servers (the client URLs
    /// it announces), else 1.
    pub fn stream_replicas(&self) -> usize {
        self.options.replicas.unwrap_or_else(|| {
            let servers = self.client.server_info().connect_urls.len().max(1);
            if servers >= 3 { 3 } else { 1 }
        })
    }

    /// Connects to any of `urls` (e.g. `["nats://n1:4222", "nats://n2:4222"]`; each URL a
    /// separate entry, not comma-joined). Servers the cluster announces are added.
    pub async fn connect(urls: Vec<String>, options: NatsOptions) -> BusResult<Self> {
        if urls.is_empty() {
            return Err(BusError::invalid("no nats server url given"));
        }
        let max_delay = options.max_reconnect_delay;
        let violations = Violations::default();
        let seen = violations.clone();
        let mut connect = async_nats::ConnectOptions::new()
            .connection_timeout(options.connection_timeout)
            .request_timeout(Some(options.request_timeout))
            .subscription_capacity(options.subscription_capacity.max(1))
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
            .event_callback(move |event| {
                let seen = seen.clone();
                async move { log_event(event, &seen) }
            });
        connect = crate::nats_auth::apply(connect, &options).await?;
        if let Some(name) = &options.name {
            connect = connect.name(name);
        }
        if options.retry_on_initial_connect {
            connect = connect.retry_on_initial_connect();
        }
        let client = connect.connect(&urls).await.map_err(|err| {
            BusError::new(
                BusErrorKind::Unavailable,
                format!("connect to nats {}: {err}", urls.join(",")),
            )
        })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .max_ack_inflight(options.max_ack_inflight.max(1))
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self {
            client,
            jetstream,
            options,
            streams: Arc::default(),
            violations,
        })
    }

    /// The underlying NATS client, for what the trait does not cover.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The underlying JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Checks that `config`'s stream exists and captures its subjects, for a
    /// user that may not create streams.
    async fn check_stream(&self, config: &StreamConfig) -> BusResult<()> {
        let mut stream = match self.jetstream.get_stream(&config.name).await {
            Ok(stream) => stream,
            Err(err) => {
                let err = get_stream_error(&config.name, &err);
                return Err(if err.kind() == BusErrorKind::NotFound {
                    BusError::new(
                        BusErrorKind::NotFound,
                        format!(
                            "stream {} does not exist, and this connection does not create \
                             streams (nats.manage_streams is off, the default with \
                             credentials): create them as the admin user with \
                             `posbon nats-streams`",
                            config.name
                        ),
                    )
                } else {
                    err
                });
            }
        };
        let info = stream.info().await.map_err(|err| {
            BusError::new(
                BusErrorKind::Unavailable,
                format!("stream {} info: {err}", config.name),
            )
        })?;
        let mut have = info.config.subjects.clone();
        let mut want = config.subjects.clone();
        have.sort();
        want.sort();
        if have != want {
            return Err(BusError::new(
                BusErrorKind::Rejected,
                format!(
                    "stream {} captures {:?}, not {:?}: update it as the admin user with \
                     `posbon nats-streams`",
                    config.name, have, want
                ),
            ));
        }
        let want = stream_config(config);
        if info.config.retention != want.retention || info.config.discard != want.discard {
            return Err(BusError::new(
                BusErrorKind::Rejected,
                format!(
                    "stream {} has retention {:?} and discard {:?}, not {:?} and {:?}: \
                     update it as the admin user with `posbon nats-streams`",
                    config.name,
                    info.config.retention,
                    info.config.discard,
                    want.retention,
                    want.discard
                ),
            ));
        }
        Ok(())
    }

    /// Checks the message and sends it; the returned future resolves to the stream's ack.
    async fn send(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
    ) -> BusResult<PublishAckFuture> {
        validate_subject(subject)?;
        let mut publish = PublishMessage::build().payload(payload);
        if !headers.is_empty() {
            publish = publish.headers(header_map(headers)?);
        }
        self.jetstream
            .send_publish(Subject::from(subject), publish)
            .await
            .map_err(|err| publish_error(subject, &err))
    }
}

/// Exponential backoff from 50 ms, doubling, capped at `max`; the first retry is immediate.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    Duration::from_millis(50u64 << exponent).min(max)
}

fn log_event(event: async_nats::Event, violations: &Violations) {
    use async_nats::Event;
    if let Event::ServerError(async_nats::ServerError::Other(text)) = &event
        && violations.record(text)
    {
        tracing::error!(refusal = %text, "nats refused an operation: this user lacks the permission");
        return;
    }
    match event {
        Event::Connected => tracing::info!("nats connected"),
        Event::Disconnected => tracing::warn!("nats disconnected, reconnecting"),
        Event::SlowConsumer(sid) => {
            tracing::warn!(
                sid,
                "nats slow consumer: subscription buffer full, messages dropped"
            );
        }
        Event::LameDuckMode => tracing::warn!("nats server entered lame duck mode"),
        Event::ServerError(err) => tracing::warn!(error = %err, "nats server error"),
        Event::ClientError(err) => tracing::warn!(error = %err, "nats client error"),
        Event::Draining | Event::Closed => tracing::info!(event = %event, "nats connection"),
    }
}

fn header_map(headers: &Headers) -> BusResult<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        let header_name = HeaderName::try_from(name)
            .map_err(|_| BusError::invalid(format!("invalid header name {name:?}")))?;
        let header_value = value.parse::<HeaderValue>().map_err(|_| {
            BusError::invalid(format!(
                "invalid value of header {name}: contains a line break"
            ))
        })?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

fn headers_from(map: Option<&HeaderMap>) -> Headers {
    let Some(map) = map else {
        return Headers::new();
    };
    let mut headers = Headers::with_capacity(map.len());
    for (name, values) in map.iter() {
        for value in values {
            headers.append(name.to_string(), value.as_str());
        }
    }
    headers
}

/// The kind of a JetStream API error, from its HTTP-like code.
fn api_kind(err: &jetstream::Error) -> BusErrorKind {
    match err.code() {
        404 => BusErrorKind::NotFound,
        408 => BusErrorKind::Timeout,
        413 => BusErrorKind::PayloadTooLarge,
        503 => BusErrorKind::Unavailable,
        400 | 409 => BusErrorKind::Rejected,
        _ => BusErrorKind::Other,
    }
}

/// The kind of the JetStream API error somewhere in `err`'s sources, if any.
fn source_api_kind(err: &(dyn std::error::Error + 'static)) -> Option<BusErrorKind> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(api) = err.downcast_ref::<jetstream::Error>() {
            return Some(api_kind(api));
        }
        current = err.source();
    }
    None
}

/// Whether a publish was refused because a discard-new stream is full
/// (`maximum bytes exceeded`, `maximum messages exceeded`).
fn stream_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        // Error code 10077 (stream store failed) covers other storage
        // failures too: the description says which.
        let text = err.to_string();
        if text.contains("maximum bytes exceeded") || text.contains("maximum messages exceeded") {
            return true;
        }
        current = err.source();
    }
    false
}

fn publish_error(subject: &str, err: &jetstream::context::PublishError) -> BusError {
    let kind = match err.kind() {
        PublishErrorKind::StreamNotFound => {
            return BusError::new(
                BusErrorKind::NoStream,
                format!("no stream captures subject {subject}"),
            );
        }
        PublishErrorKind::TimedOut => BusErrorKind::Timeout,
        PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending => BusErrorKind::Unavailable,
        PublishErrorKind::MaxPayloadExceeded => BusErrorKind::PayloadTooLarge,
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            BusErrorKind::Rejected
        }
        PublishErrorKind::Other if stream_full(err) => BusErrorKind::Full,
        PublishErrorKind::Other => source_api_kind(err).unwrap_or(BusErrorKind::Other),
    };
    BusError::new(kind, format!("publish to {subject}: {err}"))
}

fn to_ack(ack: jetstream::publish::PublishAck) -> PublishAck {
    PublishAck {
        stream: ack.stream,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    }
}

async fn await_ack_until(
    subject: &str,
    future: PublishAckFuture,
    deadline: Instant,
) -> BusResult<PublishAck> {
    match tokio::time::timeout_at(deadline, future.into_future()).await {
        Ok(result) => result
            .map(to_ack)
            .map_err(|err| publish_error(subject, &err)),
        Err(_) => Err(BusError::new(
            BusErrorKind::Timeout,
            format!("publish to {subject}: no ack before the deadline"),
        )),
    }
}

async fn await_ack(subject: &str, future: PublishAckFuture) -> BusResult<PublishAck> {
    future
        .await
        .map(to_ack)
        .map_err(|err| publish_error(subject, &err))
}

fn stream_config(config: &StreamConfig) -> jetstream::stream::Config {
    let limit = |value: Option<u64>| value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    jetstream::stream::Config {
        name: config.name.clone(),
        subjects: config.subjects.clone(),
        retention: match config.retention {
            Retention::Limits => RetentionPolicy::Limits,
            Retention::WorkQueue => RetentionPolicy::WorkQueue,
        },
        discard: match config.discard {
            Discard::Old => DiscardPolicy::Old,
            Discard::New => DiscardPolicy::New,
        },
        max_age: config.max_age.unwrap_or(Duration::ZERO),
        max_bytes: limit(config.max_bytes),
        max_messages: limit(config.max_messages),
        duplicate_window: config.duplicate_window,
        storage: match config.storage {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        },
        num_replicas: config.replicas,
        ..Default::default()
    }
}

fn stream_error(
    action: &str,
    stream: &str,
    err: &jetstream::context::CreateStreamError,
) -> BusError {
    use jetstream::context::CreateStreamErrorKind as K;
    let kind = match err.kind() {
        K::EmptyStreamName | K::InvalidStreamName | K::DomainAndExternalSet => {
            BusErrorKind::InvalidInput
        }
        K::JetStreamUnavailable => BusErrorKind::Unavailable,
        K::JetStream(api) => api_kind(&api),
        K::TimedOut => BusErrorKind::Timeout,
        K::NotFound => BusErrorKind::NotFound,
        K::Response | K::ResponseParse => BusErrorKind::Other,
    };
    BusError::new(kind, format!("{action} stream {stream}: {err}"))
}

fn get_stream_error(stream: &str, err: &jetstream::context::GetStreamError) -> BusError {
    use jetstream::context::GetStreamErrorKind as K;
    let kind = match err.kind() {
        K::EmptyName | K::InvalidStreamName => BusErrorKind::InvalidInput,
        K::Request => BusErrorKind::Unavailable,
        K::JetStream(api) => api_kind(&api),
    };
    BusError::new(kind, format!("get stream {stream}: {err}"))
}

fn consumer_error(stream: &str, durable: &str, err: &jetstream::stream::ConsumerError) -> BusError {
    use jetstream::stream::ConsumerErrorKind as K;
    let kind = match err.kind() {
        K::TimedOut => BusErrorKind::Timeout,
        K::Request => BusErrorKind::Unavailable,
        K::InvalidConsumerType | K::InvalidName => BusErrorKind::InvalidInput,
        K::JetStream(api) => api_kind(&api),
        K::Other => BusErrorKind::Other,
    };
    BusError::new(
        kind,
        format!("create consumer {durable} on stream {stream}: {err}"),
    )
}

/// Room for a message's subject and reply subject beyond its headers and payload in
/// the server's count of a batch's bytes.
const MESSAGE_OVERHEAD: usize = 4096;

/// What a NATS delivery needs to be acknowledged: the connection (shared by all deliveries
/// of a consumer) and the message's reply subject.
pub(crate) struct NatsAck {
    client: Arc<async_nats::Client>,
    reply: Subject,
}

impl NatsAck {
    /// Publishes the reply (`+ACK`, `-NAK`, `+TERM`, `+WPI`) without waiting for the server.
    pub(crate) async fn respond(&self, reply: AckReply) -> BusResult<()> {
        let kind = match reply {
            AckReply::Ack => AckKind::Ack,
            AckReply::Nak(delay) if delay.is_zero() => AckKind::Nak(None),
            AckReply::Nak(delay) => AckKind::Nak(Some(delay)),
            AckReply::Term => AckKind::Term,
            AckReply::Progress => AckKind::Progress,
        };
        self.client
            .publish(self.reply.clone(), Bytes::from(kind))
            .await
            .map_err(|err| BusError::new(BusErrorKind::Unavailable, format!("ack: {err}")))
    }
}

#[derive(Debug)]
struct NatsConsumer {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    client: Arc<async_nats::Client>,
    stream: String,
    name: String,
}

impl NatsConsumer {
    fn delivery(&self, message: jetstream::Message) -> BusResult<Delivery> {
        let (stream_sequence, delivered, published) = {
            let info = message.info().map_err(|err| {
                BusError::new(
                    BusErrorKind::Other,
                    format!("delivery without jetstream metadata: {err}"),
                )
            })?;
            (
                info.stream_sequence,
                u64::try_from(info.delivered).unwrap_or(1),
                SystemTime::from(info.published),
            )
        };
        let message = message.message;
        let reply = message.reply.ok_or_else(|| {
            BusError::new(BusErrorKind::Other, "delivery without a reply subject")
        })?;
        Ok(Delivery {
            subject: message.subject.as_str().to_owned(),
            headers: headers_from(message.headers.as_ref()),
            payload: message.payload,
            stream_sequence,
            delivered,
            published,
            acker: crate::Acker::Nats(NatsAck {
                client: Arc::clone(&self.client),
                reply,
            }),
        })
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn fetch_bounded(
        &self,
        max: usize,
        max_bytes: usize,
        expires: Duration,
    ) -> BusResult<Vec<Delivery>> {
        use jetstream::consumer::pull::BatchErrorKind as K;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut request = self.consumer.fetch().max_messages(max);
        if max_bytes != usize::MAX {
            // The server answers a request whose bound is smaller than its next message
            // with an error status and keeps the message back: the bound never goes
            // below the largest message the server accepts (with room for the subject
            // and the reply).
            let largest = self
                .client
                .server_info()
                .max_payload
                .saturating_add(MESSAGE_OVERHEAD);
            request = request.max_bytes(max_bytes.max(largest));
        }
        // With `expires` the server waits for the first message and returns as soon as
        // any are available; without, it answers at once.
        if expires >= Duration::from_millis(1) {
            request = request.expires(expires);
        }
        let mut batch = request.messages().await.map_err(|err| {
            let kind = match err.kind() {
                K::Subscribe | K::Pull | K::Flush => BusErrorKind::Unavailable,
                _ => BusErrorKind::Other,
            };
            BusError::new(kind, format!("fetch from {}: {err}", self.name))
        })?;
        let mut deliveries = Vec::with_capacity(max.min(1024));
        // The server ends the batch; this bounds a request lost during a disconnect.
        let guard = tokio::time::sleep(expires.saturating_add(Duration::from_secs(2)));
        tokio::pin!(guard);
        loop {
            tokio::select! {
                item = batch.next() => match item {
                    Some(Ok(message)) => deliveries.push(self.delivery(message)?),
                    Some(Err(err)) => {
                        if deliveries.is_empty() {
                            return Err(fetch_status_error(&self.name, &*err));
                        }
                        break;
                    }
                    None => break,
                },
                () = &mut guard => break,
            }
        }
        Ok(deliveries)
    }

    async fn pending(&self) -> BusResult<ConsumerLag> {
        use jetstream::context::ConsumerInfoErrorKind as K;
        let info = self.consumer.get_info().await.map_err(|err| {
            let kind = match err.kind() {
                K::NotFound | K::StreamNotFound => BusErrorKind::NotFound,
                K::InvalidName => BusErrorKind::InvalidInput,
                K::TimedOut => BusErrorKind::Timeout,
                K::JetStream(api) => api_kind(&api),
                _ => BusErrorKind::Unavailable,
            };
            BusError::new(kind, format!("consumer {} info: {err}", self.name))
        })?;
        Ok(ConsumerLag {
            undelivered: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
        })
    }

    fn stream(&self) -> &str {
        &self.stream
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A pull request answered with a status other than "no messages" or "timeout".
fn fetch_status_error(consumer: &str, err: &(dyn std::error::Error + Send + Sync)) -> BusError {
    let text = err.to_string();
    // 409s such as "Exceeded MaxWaiting", "Leadership Change", "Consumer Deleted".
    let kind = if text.contains("Consumer Deleted") {
        BusErrorKind::NotFound
    } else {
        BusErrorKind::Unavailable
    };
    BusError::new(kind, format!("fetch from {consumer}: {text}"))
}

struct NatsReader {
    stream: String,
    messages: pull::Ordered,
}

impl std::fmt::Debug for NatsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsReader")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl StreamReader for NatsReader {
    async fn next(&mut self) -> Option<BusResult<StreamMessage>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(err) => {
                return Some(Err(BusError::new(
                    BusErrorKind::Unavailable,
                    format!("read stream {}: {err}", self.stream),
                )));
            }
        };
        let info = match message.info() {
            Ok(info) => (info.stream_sequence, SystemTime::from(info.published)),
            Err(err) => {
                return Some(Err(BusError::new(
                    BusErrorKind::Other,
                    format!(
                        "message of {} without jetstream metadata: {err}",
                        self.stream
                    ),
                )));
            }
        };
        let message = message.message;
        Some(Ok(StreamMessage {
            subject: message.subject.as_str().to_owned(),
            headers: headers_from(message.headers.as_ref()),
            payload: message.payload,
            sequence: info.0,
            published: info.1,
        }))
    }
}

#[derive(Debug)]
struct NatsSubscription {
    subscriber: async_nats::Subscriber,
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Option<Message> {
        let message = self.subscriber.next().await?;
        Some(Message {
            subject: message.subject.as_str().to_owned(),
            headers: headers_from(message.headers.as_ref()),
            payload: message.payload,
        })
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn ensure_streams(&self, streams: &[StreamConfig]) -> BusResult<()> {
        for config in streams {
            config.validate()?;
        }
        let replicas = self.stream_replicas();
        for config in streams {
            let started = Instant::now();
            if self.options.manage_streams {
                let config = &config.clone().with_replicas(replicas);
                config.validate()?;
                self.jetstream
                    .create_or_update_stream(stream_config(config))
                    .await
                    .map_err(|err| {
                        let mut error = stream_error("ensure", &config.name, &err);
                        if error.message().contains("retention") {
                            // NATS cannot turn a stream into a work queue in place.
                            error = BusError::new(
                                error.kind(),
                                format!(
                                    "{error}: this release keeps {} with another retention \
                                     policy; let its consumers catch up, delete the stream \
                                     (`nats stream rm {}`) and start again to create it anew",
                                    config.name, config.name
                                ),
                            );
                        }
                        self.violations.explain(error, started, None)
                    })?;
            } else {
                self.check_stream(config)
                    .await
                    .map_err(|err| self.violations.explain(err, started, None))?;
            }
            let mut known = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            if !known.contains(&config.name) {
                known.push(config.name.clone());
            }
        }
        Ok(())
    }

    async fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BusResult<PublishAck> {
        let started = Instant::now();
        let future = self.send(subject, &headers, payload).await?;
        await_ack(subject, future)
            .await
            .map_err(|err| self.violations.explain(err, started, Some(subject)))
    }

    async fn publish_many(&self, messages: Vec<OutgoingMessage>) -> Vec<BusResult<PublishAck>> {
        let started = Instant::now();
        let subjects: Vec<String> = messages.iter().map(|m| m.subject.clone()).collect();
        let window = self.options.publish_window.max(1);
        let mut results: Vec<Option<BusResult<PublishAck>>> = Vec::with_capacity(messages.len());
        results.resize_with(messages.len(), || None);
        // Each ack is awaited until its own deadline, counted from its send: the
        // client's timeout starts only when an ack is awaited, so acks lost in a
        // disconnect would otherwise cost a full timeout each, one after another.
        let timeout = self.options.request_timeout;
        let mut in_flight: VecDeque<(usize, String, PublishAckFuture, Instant)> =
            VecDeque::with_capacity(window.min(messages.len()));
        for (index, message) in messages.into_iter().enumerate() {
            match self
                .send(&message.subject, &message.headers, message.payload)
                .await
            {
                Ok(future) => {
                    in_flight.push_back((index, message.subject, future, Instant::now() + timeout))
                }
                Err(err) => results[index] = Some(Err(err)),
            }
            if in_flight.len() >= window
                && let Some((index, subject, future, deadline)) = in_flight.pop_front()
            {
                results[index] = Some(await_ack_until(&subject, future, deadline).await);
            }
        }
        while let Some((index, subject, future, deadline)) = in_flight.pop_front() {
            results[index] = Some(await_ack_until(&subject, future, deadline).await);
        }
        results
            .into_iter()
            .zip(subjects)
            .map(|(result, subject)| {
                result
                    .unwrap_or_else(|| {
                        Err(BusError::new(BusErrorKind::Other, "publish result missing"))
                    })
                    .map_err(|err| self.violations.explain(err, started, Some(&subject)))
            })
            .collect()
    }

    async fn consumer(
        &self,
        stream: &str,
        durable: &str,
        filter_subjects: Vec<String>,
        options: ConsumerOptions,
    ) -> BusResult<Box<dyn Consumer>> {
        validate_name(stream)?;
        validate_name(durable)
            .map_err(|err| BusError::invalid(format!("invalid consumer name: {err}")))?;
        options.validate()?;
        for filter in &filter_subjects {
            validate_pattern(filter)?;
        }
        let mut config = pull::Config {
            durable_name: Some(durable.to_owned()),
            deliver_policy: match options.deliver_policy {
                DeliverPolicy::All => jetstream::consumer::DeliverPolicy::All,
                DeliverPolicy::New => jetstream::consumer::DeliverPolicy::New,
                DeliverPolicy::FromSequence(sequence) => {
                    jetstream::consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: sequence.max(1),
                    }
                }
            },
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: options
                .max_deliver
                .map_or(-1, |max| i64::try_from(max).unwrap_or(i64::MAX)),
            max_ack_pending: i64::try_from(options.max_ack_pending).unwrap_or(i64::MAX),
            ..Default::default()
        };
        // One filter uses the field that servers before 2.10 understand too.
        match <[String; 1]>::try_from(filter_subjects) {
            Ok([filter]) => config.filter_subject = filter,
            Err(filters) => config.filter_subjects = filters,
        }
        if options.restart {
            self.delete_consumer(stream, durable).await?;
        } else if let Ok(handle) = self.jetstream.get_stream(stream).await
            && let Ok(info) = handle.consumer_info(durable).await
        {
            // The deliver policy only says where a new consumer starts: an existing one
            // keeps its own (the server refuses to change it).
            config.deliver_policy = info.config.deliver_policy;
        }
        let started = Instant::now();
        let consumer = self
            .jetstream
            .create_consumer_on_stream(config, stream)
            .await
            .map_err(|err| {
                self.violations
                    .explain(consumer_error(stream, durable, &err), started, None)
            })?;
        Ok(Box::new(NatsConsumer {
            consumer,
            client: Arc::new(self.client.clone()),
            stream: stream.to_owned(),
            name: durable.to_owned(),
        }))
    }

    async fn subscribe(&self, subject: &str) -> BusResult<Box<dyn Subscription>> {
        validate_pattern(subject)?;
        let subscriber = self
            .client
            .subscribe(Subject::from(subject))
            .await
            .map_err(|err| {
                BusError::new(
                    BusErrorKind::Unavailable,
                    format!("subscribe to {subject}: {err}"),
                )
            })?;
        Ok(Box::new(NatsSubscription { subscriber }))
    }

    async fn consumer_lag(&self, stream: &str, durable: &str) -> BusResult<ConsumerLag> {
        use jetstream::context::ConsumerInfoErrorKind as K;
        validate_name(stream)?;
        validate_name(durable)?;
        let handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|err| get_stream_error(stream, &err))?;
        let info = handle.consumer_info(durable).await.map_err(|err| {
            let kind = match err.kind() {
                K::NotFound | K::StreamNotFound => BusErrorKind::NotFound,
                K::InvalidName => BusErrorKind::InvalidInput,
                K::TimedOut => BusErrorKind::Timeout,
                K::JetStream(api) => api_kind(&api),
                _ => BusErrorKind::Unavailable,
            };
            BusError::new(kind, format!("consumer {durable} info: {err}"))
        })?;
        Ok(ConsumerLag {
            undelivered: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        filter_subjects: Vec<String>,
        start_sequence: u64,
    ) -> BusResult<Box<dyn StreamReader>> {
        validate_name(stream)?;
        for filter in &filter_subjects {
            validate_pattern(filter)?;
        }
        let handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|err| get_stream_error(stream, &err))?;
        let mut config = pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start_sequence.max(1),
            },
            ..Default::default()
        };
        match <[String; 1]>::try_from(filter_subjects) {
            Ok([filter]) => config.filter_subject = filter,
            Err(filters) => config.filter_subjects = filters,
        }
        let consumer = handle
            .create_consumer(config)
            .await
            .map_err(|err| consumer_error(stream, "(ordered reader)", &err))?;
        let messages = consumer.messages().await.map_err(|err| {
            BusError::new(
                BusErrorKind::Unavailable,
                format!("read stream {stream}: {err}"),
            )
        })?;
        Ok(Box::new(NatsReader {
            stream: stream.to_owned(),
            messages,
        }))
    }

    async fn core_publish(&self, subject: &str, headers: Headers, payload: Bytes) -> BusResult<()> {
        use async_nats::client::PublishErrorKind as K;
        validate_subject(subject)?;
        let subject_value = Subject::from(subject);
        let sent = if headers.is_empty() {
            self.client.publish(subject_value, payload).await
        } else {
            self.client
                .publish_with_headers(subject_value, header_map(&headers)?, payload)
                .await
        };
        sent.map_err(|err| {
            let kind = match err.kind() {
                K::MaxPayloadExceeded => BusErrorKind::PayloadTooLarge,
                K::InvalidSubject => BusErrorKind::InvalidInput,
                K::Send => BusErrorKind::Unavailable,
            };
            BusError::new(kind, format!("publish to {subject}: {err}"))
        })
    }

    async fn stream_info(&self, stream: &str) -> BusResult<StreamInfo> {
        validate_name(stream)?;
        let handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|err| get_stream_error(stream, &err))?;
        let info = handle.cached_info();
        Ok(StreamInfo {
            name: info.config.name.clone(),
            messages: info.state.messages,
            bytes: info.state.bytes,
            first_sequence: info.state.first_sequence,
            last_sequence: info.state.last_sequence,
            consumers: info.state.consumer_count,
            leader: info.cluster.as_ref().and_then(|c| c.leader.clone()),
            replicas: info.config.num_replicas,
        })
    }

    async fn health(&self) -> BusResult<()> {
        let state = self.client.connection_state();
        if state != State::Connected {
            return Err(BusError::new(
                BusErrorKind::Unavailable,
                format!("nats connection is {state}"),
            ));
        }
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if streams.is_empty() {
            self.jetstream.query_account().await.map_err(|err| {
                BusError::new(
                    BusErrorKind::Unavailable,
                    format!("jetstream not answering: {err}"),
                )
            })?;
        }
        for stream in streams {
            self.jetstream
                .get_stream(&stream)
                .await
                .map_err(|err| get_stream_error(&stream, &err))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let max = Duration::from_secs(2);
        assert_eq!(reconnect_delay(1, max), Duration::ZERO);
        assert_eq!(reconnect_delay(2, max), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3, max), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100, max), max);
    }

    #[test]
    fn headers_convert_both_ways() {
        let headers = Headers::new()
            .with_msg_id("id-1")
            .with("X-A", "1")
            .with("X-A", "2");
        let map = header_map(&headers).unwrap();
        let back = headers_from(Some(&map));
        assert_eq!(back.msg_id(), Some("id-1"));
        assert_eq!(back.get_all("X-A").collect::<Vec<_>>(), ["1", "2"]);
        assert!(header_map(&Headers::new().with("a:b", "x")).is_err());
        assert!(header_map(&Headers::new().with("a", "x\ny")).is_err());
    }

    #[test]
    fn stream_config_maps_limits() {
        let config = stream_config(&StreamConfig::events());
        assert_eq!(config.max_messages, -1);
        assert!(config.max_bytes > 0);
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
        assert_eq!(config.num_replicas, 1);
    }
}
