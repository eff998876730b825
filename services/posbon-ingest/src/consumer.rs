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
            ack_wait: config.ack_wait.to_std(),
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
    let fill = StreamFill::new(metrics).map_err(|e| BusError::invalid(e.to_string()))?;
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
            fill.update(ingest.bus().as_ref()).await;
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
            fill.update(ingest.bus().as_ref()).await;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        finish(Some(done));
    }
    Ok(())
}

/// Judges and publishes one fetched batch, then acknowledges each message,
/// or offers it again when the bus did not take all it produced.
///
/// When judging the batch fails inside ingest (a panic: a bug that some
/// message triggers), each message is tried again alone, and one that fails
/// alone is a poison message: it goes to the dead-letter queue as
/// `processing_failed` and is not offered again, so it can neither block
/// INGEST nor be redelivered forever.
async fn handle(ingest: Arc<Ingest>, deliveries: Vec<Delivery>) {
    let bodies: Vec<Body> = deliveries.iter().map(body).collect();
    let judged = {
        let ingest = Arc::clone(&ingest);
        tokio::spawn(async move { ingest.process(&bodies).await }).await
    };
    let results = match judged {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, messages = deliveries.len(), "an INGEST batch failed: trying its messages one by one");
            for delivery in &deliveries {
                handle_alone(&ingest, delivery).await;
            }
            return;
        }
    };
    for (delivery, result) in deliveries.iter().zip(results) {
        settle(delivery, result.map(|_| ())).await;
    }
}

/// One message of a batch that failed: judged alone, dead-lettered when it
/// fails alone.
async fn handle_alone(ingest: &Arc<Ingest>, delivery: &Delivery) {
    let alone = {
        let ingest = Arc::clone(ingest);
        let bodies = vec![body(delivery)];
        tokio::spawn(async move { ingest.process(&bodies).await.pop() }).await
    };
    match alone {
        Ok(Some(result)) => settle(delivery, result.map(|_| ())).await,
        Ok(None) => settle(delivery, Ok(())).await,
        Err(e) => {
            tracing::error!(error = %e, subject = %delivery.subject, sequence = delivery.stream_sequence, "an INGEST message makes ingest fail: dead-lettered as processing_failed");
            match ingest.dead_letter_failed(&body(delivery)).await {
                Ok(()) => {
                    if let Err(e) = delivery.term().await {
                        tracing::warn!(error = %e, "cannot terminate a poison INGEST message");
                    }
                }
                Err(e) => settle(delivery, Err(e)).await,
            }
        }
    }
}

fn body(delivery: &Delivery) -> Body {
    Body {
        bytes: delivery.payload.clone(),
        format: BodyFormat::Auto,
        source: Source::Nats {
            subject: delivery.subject.clone(),
            sequence: delivery.stream_sequence,
        },
        span: delivery.span("ingest"),
    }
}

/// Acknowledges a message whose events the bus took, or offers it again.
async fn settle(delivery: &Delivery, result: Result<(), BusError>) {
    let outcome = match result {
        Ok(()) => delivery.ack().await,
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

/// Reports a batch task that panicked (its messages are redelivered after
/// the ack wait).
fn finish(done: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = done {
        tracing::error!(error = %e, "an INGEST batch task failed");
    }
}

/// How full INGEST is: a work queue that refuses producers' messages when
/// its unprocessed bytes reach the limit (alert on
/// `posbon_ingest_stream_bytes / posbon_ingest_stream_limit_bytes > 0.8`).
struct StreamFill {
    bytes: Gauge,
}

impl StreamFill {
    fn new(metrics: &Metrics) -> Result<Self, posbon_telemetry::TelemetryError> {
        let limit = metrics.gauge(
            "posbon_ingest_stream_limit_bytes",
            "Bytes INGEST holds at most; producers' messages are refused beyond",
        )?;
        let configured = posbon_bus::StreamConfig::ingest().max_bytes.unwrap_or(0);
        limit.set(i64::try_from(configured).unwrap_or(i64::MAX));
        Ok(Self {
            bytes: metrics.gauge(
                "posbon_ingest_stream_bytes",
                "Bytes of INGEST messages not yet processed",
            )?,
        })
    }

    async fn update(&self, bus: &dyn posbon_bus::Bus) {
        if let Ok(info) = bus.stream_info(INGEST_STREAM).await {
            self.bytes
                .set(i64::try_from(info.bytes).unwrap_or(i64::MAX));
        }
    }
}

async fn update_lag(consumer: &dyn posbon_bus::Consumer, lag: &Gauge) {
    if let Ok(pending) = consumer.pending().await {
        lag.set(i64::try_from(pending.total()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbon_bus::subjects::{DLQ_STREAM, EVENTS_STREAM};
    use posbon_bus::{Bus, MemoryBus, default_streams};
    use posbon_geo::{Registry, RegistryOptions};

    const REGISTRY: &[u8] = br#"{"type": "FeatureCollection", "features": [{
      "type": "Feature",
      "properties": {"id": "chilonzor-001", "name": "Qatortol", "district": "chilonzor", "region": "tashkent"},
      "geometry": {"type": "Polygon", "coordinates": [[[69.20, 41.28], [69.21, 41.28], [69.21, 41.29], [69.20, 41.29], [69.20, 41.28]]]}}]}"#;
    const POISON: &[u8] = b"{\"kind\": \"incident\", \"poison\": true}";

    fn event(id: &str) -> String {
        format!(
            r#"{{"kind":"incident","id":"{id}","occurred_at":"2026-05-01T14:30:00+05:00","location":{{"lat":41.285,"lng":69.205}},"source":"iiv","category":"theft","severity":2}}"#
        )
    }

    /// A message that makes ingest fail is dead-lettered as
    /// `processing_failed` and removed from INGEST; the other messages of
    /// its batch are processed as usual.
    #[tokio::test]
    async fn a_poison_message_is_dead_lettered_and_its_batch_still_processed() {
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        bus.ensure_streams(&default_streams())
            .await
            .expect("streams");
        let registry = Arc::new(
            Registry::from_geojson(REGISTRY, &RegistryOptions::default()).expect("registry"),
        );
        let enricher = crate::Enricher::new(
            registry,
            posbon_model::Limits::default(),
            posbon_model::PseudonymKeys::single("k1", b"a test pseudonym key of 32 characters")
                .expect("key"),
        );
        let metrics = Metrics::new();
        let mut ingest = Ingest::new(enricher, Arc::clone(&bus), &metrics).expect("ingest");
        ingest.poison = Some(POISON);
        let ingest = Arc::new(ingest);
        for payload in [
            event("p-1").into_bytes(),
            POISON.to_vec(),
            event("p-2").into_bytes(),
        ] {
            bus.publish(
                "posbon.ingest.incident",
                posbon_bus::Headers::new(),
                payload.into(),
            )
            .await
            .expect("publish");
        }
        let shutdown = CancellationToken::new();
        let settings = ConsumerSettings {
            fetch_batch: 10,
            fetch_max_bytes: 1 << 20,
            ack_wait: Duration::from_secs(30),
        };
        let running = {
            let (ingest, metrics, shutdown) =
                (Arc::clone(&ingest), metrics.clone(), shutdown.clone());
            tokio::spawn(async move { run(ingest, settings, &metrics, shutdown).await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ingest_left = bus.stream_info(INGEST_STREAM).await.expect("info").messages;
            let events = bus.stream_info(EVENTS_STREAM).await.expect("info").messages;
            let dead = bus.stream_info(DLQ_STREAM).await.expect("info").messages;
            if (ingest_left, events, dead) == (0, 2, 1) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "INGEST {ingest_left}, EVENTS {events}, DLQ {dead}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        running.await.expect("join").expect("consumer");
        let mut reader = bus
            .read_stream(DLQ_STREAM, Vec::new(), 1)
            .await
            .expect("reader");
        let dead = reader.next().await.expect("one").expect("message");
        assert_eq!(dead.payload.as_ref(), POISON);
        assert_eq!(
            dead.headers.get("Posbon-Reject-Code"),
            Some("processing_failed")
        );
    }
}
