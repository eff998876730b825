//! Judging, publishing and acknowledging: the part of ingest that talks to the
//! bus, shared by the NATS consumer and the HTTP endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use posbon_bus::headers::{
    BATCH_INDEX, CONTENT_TYPE, ORIGINAL_SUBJECT, REDACTED, REJECT_CODE, REJECT_REASON, REJECTED_BY,
    TRUNCATED,
};
use posbon_bus::subjects::{Place, dlq_subject, event_subject};
use posbon_bus::{Bus, BusError, Headers, OutgoingMessage};
use posbon_model::{
    EnrichedEvent, ErrorCode, EventEncoding, EventKind, FieldError, ValidationErrors,
};
use posbon_telemetry::{Counter, CounterVec, Histogram, Metrics, TelemetryError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::enrich::{BodyFormat, Enricher, Prepared};

/// Where a body came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `POST /v1/events`.
    Http,
    /// A message of the INGEST stream.
    Nats {
        /// Its subject (`posbon.ingest.<kind>`).
        subject: String,
        /// Its sequence in INGEST: with the item index, the id of its DLQ entries,
        /// so a redelivered message does not fill the DLQ twice.
        sequence: u64,
    },
}

/// A body to judge.
#[derive(Debug, Clone)]
pub struct Body {
    /// The bytes as received.
    pub bytes: Bytes,
    /// How they hold events.
    pub format: BodyFormat,
    /// Where they came from.
    pub source: Source,
    /// The span its events are published under: their EVENTS messages
    /// carry its trace context, so a producer's trace continues through
    /// ingest (a NATS body's consume span, an HTTP body's request span).
    pub span: tracing::Span,
}

/// What happened to one item.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemStatus {
    /// Published to EVENTS.
    Accepted {
        /// Its sequence in EVENTS.
        sequence: u64,
    },
    /// Its id was seen within the duplicate window: not published again.
    Duplicate {
        /// The sequence of the event first published with this id.
        sequence: u64,
    },
    /// Invalid: sent to the dead-letter queue with these reasons.
    Rejected {
        /// Every problem, with its JSON path.
        errors: Vec<FieldError>,
    },
}

/// The verdict on one item of a body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ItemReport {
    /// 0-based position in the body.
    pub index: usize,
    /// 1-based line where the item starts.
    pub line: usize,
    /// The event id, when the item was valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub status: ItemStatus,
}

struct IngestMetrics {
    events: CounterVec,
    rejections: CounterVec,
    published: Counter,
    dead_lettered: Counter,
    batch_seconds: Histogram,
}

impl IngestMetrics {
    fn new(metrics: &Metrics) -> Result<Self, TelemetryError> {
        Ok(IngestMetrics {
            events: metrics.counter_vec(
                "posbon_ingest_events_total",
                "items judged by ingest, by result (accepted, duplicate, rejected)",
                &["result"],
            )?,
            rejections: metrics.counter_vec(
                "posbon_ingest_rejections_total",
                "validation problems of rejected items, by error code",
                &["code"],
            )?,
            published: metrics.counter(
                "posbon_ingest_published_total",
                "events published to the EVENTS stream",
            )?,
            dead_lettered: metrics.counter(
                "posbon_ingest_dead_lettered_total",
                "rejected items published to the dead-letter queue",
            )?,
            batch_seconds: metrics.histogram(
                "posbon_ingest_batch_seconds",
                "time to judge and publish one batch of bodies",
                posbon_telemetry::DEFAULT_LATENCY_BUCKETS,
            )?,
        })
    }
}

/// The ingest service's core: judges bodies and publishes their items.
pub struct Ingest {
    enricher: Enricher,
    bus: Arc<dyn Bus>,
    metrics: IngestMetrics,
    encoding: EventEncoding,
    /// Unit tests only: a body that makes [`Ingest::process`] panic, as a
    /// bug would.
    #[cfg(test)]
    pub(crate) poison: Option<&'static [u8]>,
}

impl Ingest {
    /// Ingest through `enricher` onto `bus`, counting into `metrics`.
    pub(crate) fn new(
        enricher: Enricher,
        bus: Arc<dyn Bus>,
        metrics: &Metrics,
    ) -> Result<Self, TelemetryError> {
        Ok(Ingest {
            enricher,
            bus,
            metrics: IngestMetrics::new(metrics)?,
            encoding: EventEncoding::default(),
            #[cfg(test)]
            poison: None,
        })
    }

    /// Publishes events in `encoding` (compact by default).
    pub(crate) fn with_encoding(mut self, encoding: EventEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The bus events are published on.
    pub(crate) fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Judges every body, publishes valid events to EVENTS and invalid items to
    /// the DLQ in one pipelined batch, and returns per body either the verdict on
    /// each of its items, or the bus error that kept some of its items from being
    /// published (the body must then be retried: event ids are the
    /// de-duplication ids, so a retry never duplicates what did get through).
    #[tracing::instrument(name = "ingest_batch", skip_all, fields(bodies = bodies.len()))]
    pub async fn process(&self, bodies: &[Body]) -> Vec<Result<Vec<ItemReport>, BusError>> {
        let started = Instant::now();
        let now = Utc::now();
        #[cfg(test)]
        if let Some(poison) = self.poison {
            assert!(
                !bodies.iter().any(|b| b.bytes.as_ref() == poison),
                "a poison message (unit test)"
            );
        }
        let prepared: Vec<Vec<Prepared>> = bodies
            .iter()
            .map(|b| {
                let mut items = self.enricher.prepare(&b.bytes, b.format, now);
                if let Source::Nats { subject, .. } = &b.source {
                    keep_to_subject_kind(subject, &mut items);
                }
                items
            })
            .collect();
        let count = prepared.iter().map(Vec::len).sum();
        let mut messages = Vec::with_capacity(count);
        // (body, item) of each outgoing message, in order.
        let mut owners: Vec<(usize, usize)> = Vec::with_capacity(count);
        let mut payloads = Payloads::default();
        for (b, (body, items)) in bodies.iter().zip(&prepared).enumerate() {
            for (i, item) in items.iter().enumerate() {
                let message = match &item.outcome {
                    Ok(event) => event_message(event, self.encoding, &body.span, &mut payloads),
                    Err(errors) => Ok(dead_letter(&self.enricher, body, item, errors)),
                };
                match message {
                    Ok(m) => {
                        messages.push(m);
                        owners.push((b, i));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot build a subject for a valid event")
                    }
                }
            }
        }
        let acks = self.bus.publish_many(messages).await;
        let mut results: Vec<Result<Vec<ItemReport>, BusError>> = prepared
            .iter()
            .map(|items| Ok(Vec::with_capacity(items.len())))
            .collect();
        let mut acks = acks.into_iter();
        let mut owner = owners.into_iter().peekable();
        for (b, items) in prepared.into_iter().enumerate() {
            for (i, item) in items.into_iter().enumerate() {
                let ack = if owner.peek() == Some(&(b, i)) {
                    owner.next();
                    acks.next()
                } else {
                    None
                };
                let report = match (item.outcome, ack) {
                    (_, Some(Err(e))) => {
                        results[b] = Err(e);
                        continue;
                    }
                    (Ok(event), Some(Ok(ack))) => {
                        let status = if ack.duplicate {
                            self.metrics.events.with_labels(&["duplicate"]).inc();
                            ItemStatus::Duplicate {
                                sequence: ack.sequence,
                            }
                        } else {
                            self.metrics.events.with_labels(&["accepted"]).inc();
                            self.metrics.published.inc();
                            ItemStatus::Accepted {
                                sequence: ack.sequence,
                            }
                        };
                        ItemReport {
                            index: item.index,
                            line: item.line,
                            id: Some(event.event.id().to_owned()),
                            status,
                        }
                    }
                    (Err(errors), Some(Ok(ack))) => {
                        self.metrics.events.with_labels(&["rejected"]).inc();
                        if !ack.duplicate {
                            self.metrics.dead_lettered.inc();
                        }
                        for e in errors.iter() {
                            self.metrics
                                .rejections
                                .with_labels(&[e.code.as_str()])
                                .inc();
                        }
                        ItemReport {
                            index: item.index,
                            line: item.line,
                            id: None,
                            status: ItemStatus::Rejected {
                                errors: errors.errors().to_vec(),
                            },
                        }
                    }
                    // No message was built (an invalid subject token): not published.
                    (_, None) => {
                        results[b] = Err(BusError::invalid("event subject could not be built"));
                        continue;
                    }
                };
                if let Ok(reports) = &mut results[b] {
                    reports.push(report);
                }
            }
        }
        self.metrics
            .batch_seconds
            .observe_duration(started.elapsed());
        results
    }
}

impl Ingest {
    /// Sends `body` to the dead-letter queue whole, as `processing_failed`:
    /// for a message that made ingest fail (a poison message), so that it is
    /// kept for inspection instead of being offered again forever.
    pub(crate) async fn dead_letter_failed(&self, body: &Body) -> Result<(), BusError> {
        let errors = ValidationErrors::single(
            "",
            ErrorCode::ProcessingFailed,
            "ingest failed while processing this message (an internal error, reported in its \
             logs); it is kept here instead of being offered again",
        );
        let item = Prepared {
            index: 0,
            line: 1,
            raw: body.bytes.clone(),
            outcome: Err(errors.clone()),
        };
        let message = dead_letter(&self.enricher, body, &item, &errors);
        self.bus
            .publish(&message.subject, message.headers, message.payload)
            .await?;
        self.metrics.dead_lettered.inc();
        self.metrics
            .rejections
            .with_labels(&[ErrorCode::ProcessingFailed.as_str()])
            .inc();
        Ok(())
    }
}

/// The payloads of one batch's events, written one after another into
/// shared buffers of [`Payloads::CHUNK`] bytes: one allocation per chunk
/// instead of one (and its regrowths) per event.
#[derive(Default)]
struct Payloads {
    buf: BytesMut,
    scratch: Vec<u8>,
}

impl Payloads {
    const CHUNK: usize = 64 << 10;

    /// `event` in `encoding`, as its own `Bytes`.
    fn encode(
        &mut self,
        event: &EnrichedEvent,
        encoding: EventEncoding,
    ) -> Result<Bytes, BusError> {
        self.scratch.clear();
        encoding
            .encode(event, &mut self.scratch)
            .map_err(BusError::invalid)?;
        if self.buf.capacity() - self.buf.len() < self.scratch.len() {
            self.buf.reserve(self.scratch.len().max(Self::CHUNK));
        }
        self.buf.extend_from_slice(&self.scratch);
        Ok(self.buf.split().freeze())
    }
}

fn event_message(
    event: &EnrichedEvent,
    encoding: EventEncoding,
    span: &tracing::Span,
    payloads: &mut Payloads,
) -> Result<OutgoingMessage, BusError> {
    let place = match (&event.region_id, &event.district_id, &event.mahalla_id) {
        (Some(r), Some(d), Some(m)) => Some(Place::new(r, d, m)),
        _ => None,
    };
    let subject = event_subject(place, event.event.kind().as_str())?;
    let payload = payloads.encode(event, encoding)?;
    let headers = Headers::with_capacity(4)
        .with_msg_id(event.event.id())
        .with(CONTENT_TYPE, encoding.content_type())
        .with_trace_context_of(span);
    Ok(OutgoingMessage::new(subject, headers, payload))
}

/// On `posbon.ingest.<kind>` for a known kind, only events of that kind:
/// NATS permits each producer class its own subject, and this makes the
/// permission mean "its own kind" (other subjects, such as the demo's, take
/// any kind).
fn keep_to_subject_kind(subject: &str, items: &mut [Prepared]) {
    let Some(kind) = subject
        .strip_prefix("posbon.ingest.")
        .and_then(EventKind::from_wire)
    else {
        return;
    };
    for item in items {
        if let Ok(event) = &item.outcome
            && event.event.kind() != kind
        {
            item.outcome = Err(ValidationErrors::single(
                "kind",
                ErrorCode::KindNotAllowedOnSubject,
                format!(
                    "a {} arrived on {subject}: publish each kind on posbon.ingest.<its kind>",
                    event.event.kind().as_str()
                ),
            ));
        }
    }
}

/// Longest reason kept in a DLQ header; the full list is in the codes header
/// and can be recomputed from the original bytes.
const MAX_REASON: usize = 2048;

/// Most bytes of a rejected item a dead letter keeps (the largest event
/// ingest accepts by default; nats-server's default message limit is 1 MiB).
pub const MAX_DEAD_LETTER_PAYLOAD: usize = 64 << 10;

fn dead_letter(
    enricher: &Enricher,
    body: &Body,
    item: &Prepared,
    errors: &ValidationErrors,
) -> OutgoingMessage {
    let kept = enricher.dead_letter_payload(&item.raw);
    let mut payload = kept.payload;
    // Over HTTP, the dead letter's de-duplication id is the digest of the
    // whole (redacted) item, taken before any truncation.
    let http_id = matches!(body.source, Source::Http)
        .then(|| format!("dlq:http:{}", hex::encode(&Sha256::digest(&payload)[..16])));
    // A rejected body can be as large as the body limit (16 MiB), more than
    // the bus takes in one message: keep its start, say how long it was.
    let truncated = (payload.len() > MAX_DEAD_LETTER_PAYLOAD).then(|| {
        let full = payload.len();
        payload.truncate(MAX_DEAD_LETTER_PAYLOAD);
        full
    });
    let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    let mut reason: String = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some(account_ref) = &kept.account_ref {
        reason = reason.replace(account_ref.as_str(), "<account_ref>");
    }
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    let (origin, msg_id) = match &body.source {
        Source::Nats { subject, sequence } => {
            (subject.clone(), format!("dlq:{sequence}:{}", item.index))
        }
        Source::Http => ("http".to_owned(), http_id.unwrap_or_default()),
    };
    let mut headers = Headers::with_capacity(7)
        .with_msg_id(msg_id)
        .with(REJECT_CODE, codes.join(","))
        .with(REJECT_REASON, reason)
        .with(ORIGINAL_SUBJECT, origin)
        .with(BATCH_INDEX, item.index.to_string())
        .with(REJECTED_BY, "posbon-ingest");
    if let Some(note) = kept.note {
        headers = headers.with(REDACTED, note);
    }
    if let Some(full) = truncated {
        headers = headers.with(TRUNCATED, full.to_string());
    }
    let kind = item.kind_hint();
    OutgoingMessage::new(dlq_subject(kind.map(|k| k.as_str())), headers, payload)
}

/// How long to wait before a failed body is offered again.
pub(crate) const RETRY_DELAY: Duration = Duration::from_secs(1);
