//! Posbon indexer: a durable consumer of the EVENTS stream that stores every
//! event by H3 cell.
//!
//! Each fetched batch is decoded and written in one atomic, durable write
//! (the two halves of [`posbon_store::EventStoreExt::put_prepared`]: the id
//! check, then the write); only then are its messages acknowledged. A crash at any point loses nothing
//! (unacknowledged messages are redelivered) and duplicates nothing (the store
//! keeps an id index, so a redelivered event is counted as a duplicate, not
//! written twice). A message that is not an enriched event can never succeed:
//! it goes to the dead-letter queue and is terminated.

pub mod serve;

use posbon_model::Span;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use posbon_bus::headers::{
    CONTENT_TYPE, ORIGINAL_SUBJECT, REDACTED, REJECT_CODE, REJECT_REASON, REJECTED_BY,
};
use posbon_bus::subjects::{EVENTS_STREAM, dlq_subject};
use posbon_bus::{Bus, BusError, ConsumerOptions, Delivery, Headers, default_streams};
use posbon_model::EnrichedEvent;
use posbon_service::{FnCheck, Health};
use posbon_store::{
    BatchIds, EventStoreExt, PreparedEvents, PutSummary, Store, StoreConfig, StoreError,
    StoreErrorKind,
};
use posbon_telemetry::{Counter, CounterVec, Gauge, Histogram, Metrics, TelemetryError};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Defaults embedded in the binary.
pub const DEFAULTS: &str = include_str!("default.toml");

/// How long a started batch waits for more events before it is written.
const LINGER: Duration = Duration::from_millis(20);

/// The durable consumer name of the indexer on EVENTS.
pub const DURABLE: &str = posbon_bus::subjects::INDEXER_DURABLE;

/// The whole configuration file of `posbon-indexer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The indexer.
    pub indexer: IndexerConfig,
    /// The event store.
    pub store: StoreConfig,
    /// Who may read `/metrics` (the metrics token, or an admin).
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// How to connect to NATS: credentials, TLS, inbox prefix, whether to
    /// manage the streams.
    #[serde(default)]
    pub nats: posbon_bus::NatsConfig,
    /// Logs, traces and metrics.
    #[serde(default)]
    pub telemetry: posbon_telemetry::TelemetryConfig,
}

/// How the indexer runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs; several for a cluster.
    pub nats_urls: Vec<String>,
    /// Events fetched and written per batch.
    pub fetch_batch: usize,
    /// How long a fetch waits for a full batch before writing what it has.
    pub fetch_wait: Span,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Span,
}

impl IndexerConfig {
    /// The options the indexer binds its durable consumer with (anything
    /// else binding it, e.g. to read its lag, must use the same ones).
    pub fn consumer_options(&self) -> ConsumerOptions {
        ConsumerOptions {
            ack_wait: self.ack_wait.to_std(),
            max_ack_pending: self.fetch_batch.saturating_mul(4).max(1000),
            ..ConsumerOptions::default()
        }
    }
}

struct IndexerMetrics {
    events: CounterVec,
    batches: Counter,
    batch_seconds: Histogram,
    lag: Gauge,
}

impl IndexerMetrics {
    fn new(metrics: &Metrics) -> Result<Self, TelemetryError> {
        Ok(IndexerMetrics {
            events: metrics.counter_vec(
                "posbon_indexer_events_total",
                "events handled by the indexer, by result (written, duplicate, poison)",
                &["result"],
            )?,
            batches: metrics.counter(
                "posbon_indexer_batches_total",
                "batches written to the store",
            )?,
            batch_seconds: metrics.histogram(
                "posbon_indexer_batch_seconds",
                "time to decode, write durably and acknowledge one batch",
                posbon_telemetry::DEFAULT_LATENCY_BUCKETS,
            )?,
            lag: metrics.gauge(
                "posbon_indexer_consumer_lag_messages",
                "EVENTS messages not yet acknowledged by the indexer",
            )?,
        })
    }
}

/// Runs the indexer until `shutdown`, serving `/healthz`, `/readyz` and
/// `/metrics` on `config.listen`. The batch in hand when shutdown comes is
/// written and acknowledged first.
pub(crate) async fn run(
    config: IndexerConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    metrics: Metrics,
    auth: Arc<posbon_auth::Auth>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    bus.ensure_streams(&default_streams()).await?;
    let (ready_bus, ready_store) = (bus.clone(), store.clone());
    let health = Health::new(metrics.clone())
        .with_check(FnCheck::new("nats", move || {
            let bus = ready_bus.clone();
            async move { bus.health().await.map_err(|e| e.to_string()) }
        }))
        .with_check(FnCheck::new("store", move || {
            let store = ready_store.clone();
            async move {
                store
                    .checkpoint("indexer-ready-probe")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }));
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "indexer serving health");
    let app = health.guarded().into_router(auth);
    let server_shutdown = shutdown.clone();
    let http = config.http.clone();
    let server_metrics = metrics.clone();
    let server = tokio::spawn(async move {
        posbon_service::http::serve(listener, app, &http, &server_metrics, server_shutdown).await
    });
    let consumed = consume(&config, bus, store, &metrics, shutdown.clone()).await;
    shutdown.cancel();
    server.await??;
    consumed
}

/// The consumer loop alone (the standalone process serves health itself).
///
/// Two stages: this task fetches, decodes and prepares a batch (keys and
/// records built, [`PreparedEvents`]) while a writer task
/// writes the previous ones durably and acknowledges them, with at most one
/// decoded batch waiting between them. There is one writer: it checks the
/// ids of a batch while the one before is being written, and sets aside the
/// ids that one stores, so no id is stored twice by this indexer.
pub async fn consume(
    config: &IndexerConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let m = Arc::new(IndexerMetrics::new(metrics)?);
    let consumer = bus
        .consumer(
            EVENTS_STREAM,
            DURABLE,
            Vec::new(),
            config.consumer_options(),
        )
        .await?;
    let (batches_tx, batches_rx) = mpsc::channel::<Decoded>(1);
    let writer = tokio::spawn(write_batches(
        batches_rx,
        store,
        Arc::clone(&m),
        shutdown.clone(),
    ));
    let wait = config.fetch_wait.to_std();
    let mut backoff = Duration::from_millis(100);
    let mut batches = 0u64;
    loop {
        let fetched = tokio::select! {
            _ = shutdown.cancelled() => break,
            fetched = consumer.fetch(config.fetch_batch, wait) => fetched,
        };
        let mut deliveries = match fetched {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "fetch from EVENTS failed, retrying");
                sleep_or_stop(&shutdown, &mut backoff).await;
                continue;
            }
        };
        // A fetch returns as soon as anything is there. Under load, linger a
        // little to fill the batch: one durable write per full batch instead of
        // one per trickle is what makes the store keep up.
        let linger = Instant::now() + LINGER;
        while !deliveries.is_empty() && deliveries.len() < config.fetch_batch {
            let left = linger.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer
                .fetch(config.fetch_batch - deliveries.len(), left)
                .await
            {
                Ok(more) if !more.is_empty() => deliveries.extend(more),
                _ => break,
            }
        }
        if deliveries.is_empty() {
            if let Ok(lag) = consumer.pending().await {
                m.lag.set(i64::try_from(lag.total()).unwrap_or(i64::MAX));
            }
            continue;
        }
        match decode_batch(&bus, deliveries, &m).await {
            Ok(decoded) => {
                backoff = Duration::from_millis(100);
                if batches_tx.send(decoded).await.is_err() {
                    // The writer ended: it failed, its error is returned below.
                    break;
                }
            }
            Err((e, deliveries)) => {
                tracing::warn!(error = %e, events = deliveries.len(), "dead-lettering failed, batch offered again");
                let all: Vec<&Delivery> = deliveries.iter().collect();
                acknowledge(&all, Ack::Nak(backoff)).await;
                sleep_or_stop(&shutdown, &mut backoff).await;
            }
        }
        batches += 1;
        if batches.is_multiple_of(16)
            && let Ok(lag) = consumer.pending().await
        {
            m.lag.set(i64::try_from(lag.total()).unwrap_or(i64::MAX));
        }
    }
    // The batches already handed over are written and acknowledged first.
    drop(batches_tx);
    writer.await?;
    Ok(())
}

/// A fetched batch, decoded: the events to store and the deliveries to
/// acknowledge once they are (poison ones were dead-lettered and terminated
/// already).
struct Decoded {
    deliveries: Vec<Delivery>,
    /// The events, prepared for the store here rather than by the writer,
    /// so that the writer's turn is only the id check and the write.
    events: posbon_store::Result<PreparedEvents>,
    started: Instant,
    /// A span per delivery, continuing its publisher's trace; they end when
    /// the batch is settled and this is dropped.
    _spans: Vec<tracing::Span>,
}

/// The writer stage: writes each batch durably, then acknowledges it; a
/// batch the store refuses is offered again (nak) after a growing pause.
///
/// Two batches overlap: while one is written (a task of its own), the
/// writer looks up the ids of the next in the store and, once that one's
/// write has started, acknowledges the last. The lookup cannot see the ids
/// the batch being written stores, so those are set aside as duplicates
/// ([`posbon_store::CheckedEvents::exclude`]): if that write fails, its
/// batch is redelivered and its version still wins.
async fn write_batches(
    mut batches: mpsc::Receiver<Decoded>,
    store: Store,
    m: Arc<IndexerMetrics>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut writing: Option<Writing> = None;
    loop {
        // The next batch, or, when the write in hand ends first, its acks.
        let batch = match writing.as_mut() {
            Some(last) => tokio::select! {
                biased;
                batch = batches.recv() => batch,
                written = &mut last.write => {
                    let last = writing.take().expect("a write in hand");
                    settle(joined(written), &last.deliveries, last.started, &m, &shutdown, &mut backoff).await;
                    continue;
                }
            },
            None => batches.recv().await,
        };
        let Some(batch) = batch else { break };
        let checked = match batch.events {
            Ok(prepared) => store.check_prepared(prepared).await,
            Err(e) => Err(e),
        };
        let mut checked = match checked {
            Ok(checked) => checked,
            Err(e) => {
                if let Some(last) = writing.take() {
                    finish(last, &m, &shutdown, &mut backoff).await;
                }
                settle(
                    Err(e),
                    &batch.deliveries,
                    batch.started,
                    &m,
                    &shutdown,
                    &mut backoff,
                )
                .await;
                continue;
            }
        };
        if let Some(last) = &writing {
            checked.exclude(&last.ids);
        }
        let next = Writing {
            ids: checked.ids(),
            write: tokio::spawn({
                let store = Arc::clone(&store);
                async move { store.put_checked(checked).await }
            }),
            deliveries: batch.deliveries,
            started: batch.started,
        };
        if let Some(last) = writing.replace(next) {
            finish(last, &m, &shutdown, &mut backoff).await;
        }
    }
    if let Some(last) = writing.take() {
        finish(last, &m, &shutdown, &mut backoff).await;
    }
}

/// A batch whose write has started.
struct Writing {
    write: tokio::task::JoinHandle<posbon_store::Result<PutSummary>>,
    /// The ids the write stores.
    ids: BatchIds,
    deliveries: Vec<Delivery>,
    started: Instant,
}

/// Waits for a batch's write, then settles its deliveries.
async fn finish(
    batch: Writing,
    m: &IndexerMetrics,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) {
    let written = joined(batch.write.await);
    settle(
        written,
        &batch.deliveries,
        batch.started,
        m,
        shutdown,
        backoff,
    )
    .await;
}

/// The outcome of a write task.
fn joined(
    result: Result<posbon_store::Result<PutSummary>, tokio::task::JoinError>,
) -> posbon_store::Result<PutSummary> {
    result.unwrap_or_else(|_| {
        Err(StoreError::new(
            StoreErrorKind::Fatal,
            "the store write task panicked",
        ))
    })
}

/// Acknowledges the deliveries of a written batch, or offers them again
/// after a growing pause when it was not written.
async fn settle(
    written: posbon_store::Result<PutSummary>,
    deliveries: &[Delivery],
    started: Instant,
    m: &IndexerMetrics,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) {
    let done: Vec<&Delivery> = deliveries.iter().collect();
    match written {
        Ok(summary) => {
            *backoff = Duration::from_millis(100);
            m.events
                .with_labels(&["written"])
                .inc_by(summary.written as u64);
            m.events
                .with_labels(&["duplicate"])
                .inc_by(summary.duplicates as u64);
            acknowledge(&done, Ack::Ack).await;
            m.batches.inc();
            m.batch_seconds.observe_duration(started.elapsed());
        }
        Err(e) => {
            tracing::warn!(error = %e, events = done.len(), "store write failed, batch offered again");
            acknowledge(&done, Ack::Nak(*backoff)).await;
            sleep_or_stop(shutdown, backoff).await;
        }
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, backoff: &mut Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

#[derive(Clone, Copy)]
enum Ack {
    Ack,
    Nak(Duration),
}

/// Acknowledges (or offers again) each delivery, one after the other: an
/// ack only queues a message on the connection, so awaiting them together
/// would gain nothing and cost a task node per delivery.
async fn acknowledge(deliveries: &[&Delivery], how: Ack) {
    let mut failed = 0usize;
    for d in deliveries {
        let result = match how {
            Ack::Ack => d.ack().await,
            Ack::Nak(delay) => d.nak(delay).await,
        };
        failed += usize::from(result.is_err());
    }
    if failed > 0 {
        // Redelivered after the ack wait; the store's id index absorbs the repeat.
        tracing::warn!(failed, "some acknowledgements were not sent");
    }
}

/// Decodes one batch. Poison deliveries (not an enriched event) are
/// dead-lettered and terminated here and left out of the result; when the
/// dead-letter queue cannot take one, the whole batch is handed back.
async fn decode_batch(
    bus: &Arc<dyn Bus>,
    deliveries: Vec<Delivery>,
    m: &IndexerMetrics,
) -> Result<Decoded, (BusError, Vec<Delivery>)> {
    let started = Instant::now();
    let mut events = Vec::with_capacity(deliveries.len());
    let mut kept = Vec::with_capacity(deliveries.len());
    let mut failed = None;
    for (n, d) in deliveries.iter().enumerate() {
        let refused = match EnrichedEvent::from_message(d.headers.get(CONTENT_TYPE), &d.payload) {
            Ok(event) if in_clear(&event) => Some(Poison::InClear),
            Ok(event) => {
                events.push(event);
                kept.push(n);
                None
            }
            Err(e) => Some(Poison::Undecodable(e)),
        };
        if let Some(why) = refused {
            if let Err(e) = poison(bus, d, why).await {
                failed = Some(e);
                break;
            }
            m.events.with_labels(&["poison"]).inc();
        }
    }
    if let Some(e) = failed {
        return Err((e, deliveries));
    }
    let deliveries = if kept.len() == deliveries.len() {
        deliveries
    } else {
        let mut keep = kept.into_iter().peekable();
        deliveries
            .into_iter()
            .enumerate()
            .filter(|(n, _)| keep.next_if_eq(n).is_some())
            .map(|(_, d)| d)
            .collect()
    };
    Ok(Decoded {
        _spans: deliveries.iter().map(|d| d.span("index")).collect(),
        deliveries,
        events: PreparedEvents::new(&events),
        started,
    })
}

/// Why a delivery of EVENTS is not stored.
enum Poison {
    /// Not an enriched event.
    Undecodable(String),
    /// A fraud flag whose account reference is not a pseudonym: only ingest
    /// may publish EVENTS, and ingest always pseudonymises, so this came from
    /// elsewhere. Never stored, and its payload is not kept.
    InClear,
}

/// Whether `event` carries an account reference in clear.
fn in_clear(event: &EnrichedEvent) -> bool {
    matches!(&event.event, posbon_model::Event::FraudFlag(f)
        if !posbon_model::is_pseudonymised(&f.account_ref))
}

async fn poison(bus: &Arc<dyn Bus>, d: &Delivery, why: Poison) -> Result<(), BusError> {
    let (code, reason, payload) = match why {
        Poison::Undecodable(reason) => (
            "undecodable_event",
            reason.replace(['\r', '\n'], " "),
            Bytes::clone(&d.payload),
        ),
        Poison::InClear => (
            "not_pseudonymised",
            "a fraud flag on EVENTS with its account_ref in clear: not stored, payload not kept"
                .to_owned(),
            Bytes::new(),
        ),
    };
    tracing::warn!(sequence = d.stream_sequence, subject = %d.subject, code, error = %reason, "event sent to the dlq instead of the store");
    let mut headers = Headers::with_capacity(6)
        .with_msg_id(format!("dlq:indexer:{}", d.stream_sequence))
        .with(REJECT_CODE, code)
        .with(REJECT_REASON, reason)
        .with(ORIGINAL_SUBJECT, d.subject.clone())
        .with(REJECTED_BY, "posbon-indexer");
    if payload.is_empty() {
        headers = headers.with(REDACTED, "payload removed: account_ref in clear");
    }
    bus.publish(&dlq_subject(None), headers, payload).await?;
    // Terminated only after the DLQ has it.
    d.term().await
}
