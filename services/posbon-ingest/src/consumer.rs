//! The INGEST consumer: raw events that producers published with JetStream.

use std::sync::Arc;
use std::time::Duration;

use posbon_bus::subjects::INGEST_STREAM;
use posbon_bus::{BusError, ConsumerOptions, Delivery};
use posbon_telemetry::{Gauge, Metrics};
use tokio_util::sync::CancellationToken;

use crate::enrich::BodyFormat;
use crate::service::{Body, Ingest, RETRY_DELAY, Source};

/// How long a started batch waits for more messages before it is processed.
const LINGER: Duration = Duration::from_millis(10);

/// Fetched batches judged and published at the same time.
const IN_FLIGHT: usize = 2;

/// The durable consumer name of ingest on INGEST.
pub const DURABLE: &str = posbon_bus::subjects::INGEST_DURABLE;

/// Settings of the consumer loop.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings {
    /// Messages per fetch.
    pub fetch_batch: usize,
    /// Bytes per fetched batch, at most (see
    /// [`IngestConfig::fetch_max_bytes`](crate::IngestConfig::fetch_max_bytes)).
    pub fetch_max_bytes: usize,
    /// Redelivery after this long without an ack.
    pub ack_wait: Duration,
}

impl From<&crate::IngestConfig> for ConsumerSettings {
    fn from(config: &crate::IngestConfig) -> Self {
        Self {
            fetch_batch: config.fetch_batch,
            fetch_max_bytes: config.fetch_max_bytes,
            ack_wait: Duration::from_secs(config.ack_wait_secs),
        }
    }
}

/// Consumes INGEST until `shutdown`: each fetched batch is judged and published,
/// then each message is acknowledged, or offered again when the bus did not take
/// all it produced. Up to [`IN_FLIGHT`] batches are handled at once (ids make
/// their order on EVENTS irrelevant to de-duplication). The batches in hand
/// when shutdown comes are finished first.
pub async fn run(
    ingest: Arc<Ingest>,
    settings: ConsumerSettings,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let lag: Gauge = metrics
        .gauge(
            "posbon_ingest_consumer_lag_messages",
            "INGEST messages not yet acknowledged by ingest",
        )
        .map_err(|e| BusError::invalid(e.to_string()))?;
    let consumer = ingest
        .bus()
        .consumer(
            INGEST_STREAM,
            DURABLE,
            Vec::new(),
            ConsumerOptions {
                ack_wait: settings.ack_wait,
                ..ConsumerOptions::default()
            },
        )
        .await?;
    let mut backoff = Duration::from_millis(100);
    let mut batches = 0u64;
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let fetched = tokio::select! {
            _ = shutdown.cancelled() => break,
            fetched = consumer.fetch_bounded(
                settings.fetch_batch,
                settings.fetch_max_bytes,
                Duration::from_secs(1),
            ) => fetched,
        };
        let deliveries = match fetched {
            Ok(d) => {
                backoff = Duration::from_millis(100);
                d
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetch from INGEST failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if deliveries.is_empty() {
            update_lag(&*consumer, &lag).await;
            continue;
        }
        // Linger a little to fill the batch: one pipelined publish per full
        // batch instead of one per trickle.
        let mut deliveries = deliveries;
        let mut bytes: usize = deliveries.iter().map(Delivery::size).sum();
        let linger = tokio::time::Instant::now() + LINGER;
        while deliveries.len() < settings.fetch_batch && bytes < settings.fetch_max_bytes {
            let left = linger.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer
                .fetch_bounded(
                    settings.fetch_batch - deliveries.len(),
                    settings.fetch_max_bytes - bytes,
                    left,
                )
                .await
            {
                Ok(more) if !more.is_empty() => {
                    bytes += more.iter().map(Delivery::size).sum::<usize>();
                    deliveries.extend(more);
                }
                _ => break,
            }
        }
        // Up to IN_FLIGHT batches are judged and published at once: the next
        // one is fetched and parsed while the acks of the last are awaited.
        while in_flight.len() >= IN_FLIGHT {
            finish(in_flight.join_next().await);
        }
        in_flight.spawn(handle(Arc::clone(&ingest), deliveries));
        batches += 1;
        if batches.is_multiple_of(16) {
            update_lag(&*consumer, &lag).await;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        finish(Some(done));
    }
    Ok(())
}

/// Judges and publishes one fetched batch, then acknowledges each message,
/// or offers it again when the bus did not take all it produced.
async fn handle(ingest: Arc<Ingest>, deliveries: Vec<Delivery>) {
    let bodies: Vec<Body> = deliveries
        .iter()
        .map(|d| Body {
            bytes: d.payload.clone(),
            format: BodyFormat::Auto,
            source: Source::Nats {
                subject: d.subject.clone(),
                sequence: d.stream_sequence,
            },
        })
        .collect();
    let results = ingest.process(&bodies).await;
    for (delivery, result) in deliveries.iter().zip(results) {
        let outcome = match result {
            Ok(_) => delivery.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, sequence = delivery.stream_sequence, "publishing failed, message offered again");
                delivery.nak(RETRY_DELAY).await
            }
        };
        if let Err(e) = outcome {
            // The message is redelivered after the ack wait; its events are
            // de-duplicated by id.
            tracing::warn!(error = %e, "cannot acknowledge an INGEST message");
        }
    }
}

/// Reports a batch task that panicked (its messages are redelivered after
/// the ack wait).
fn finish(done: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = done {
        tracing::error!(error = %e, "an INGEST batch task failed");
    }
}

async fn update_lag(consumer: &dyn posbon_bus::Consumer, lag: &Gauge) {
    if let Ok(pending) = consumer.pending().await {
        lag.set(i64::try_from(pending.total()).unwrap_or(i64::MAX));
    }
}
