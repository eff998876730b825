//! Ingest over HTTP on the in-memory bus: per-item verdicts, duplicates, the
//! dead-letter queue with original bytes and reasons, 413 and 415.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use posbon_bus::subjects::{DLQ_STREAM, EVENTS_STREAM};
use posbon_bus::{Bus, ConsumerOptions, MemoryBus, default_streams};
use posbon_geo::{Registry, RegistryOptions};
use posbon_ingest::{FileConfig, IngestConfig};
use posbon_model::{COMPACT_CONTENT_TYPE, EnrichedEvent, EventEncoding, JSON_CONTENT_TYPE};
use posbon_telemetry::Metrics;
use serde_json::Value;
use tower::ServiceExt;

const REGISTRY: &[u8] = br#"{"type": "FeatureCollection", "features": [{
  "type": "Feature",
  "properties": {"id": "chilonzor-001", "name": "Qatortol", "district": "chilonzor", "region": "tashkent"},
  "geometry": {"type": "Polygon", "coordinates": [[[69.20, 41.28], [69.21, 41.28], [69.21, 41.29], [69.20, 41.29], [69.20, 41.28]]]}}]}"#;

fn event(id: &str, lat: f64) -> String {
    format!(
        r#"{{"kind":"incident","id":"{id}","occurred_at":"2026-05-01T14:30:00+05:00","location":{{"lat":{lat},"lng":69.205}},"source":"iiv","category":"theft","severity":2}}"#
    )
}

fn config(max_body: usize) -> IngestConfig {
    let mut c: FileConfig = posbon_ingest::serve::load_config(None).expect("defaults load");
    c.ingest.max_body_bytes = max_body;
    c.ingest.pseudonym_key = Some("a test pseudonym key of 32 characters or more".into());
    c.ingest
}

async fn setup(max_body: usize) -> (axum::Router, Arc<dyn Bus>) {
    setup_with(config(max_body)).await
}

async fn setup_with(config: IngestConfig) -> (axum::Router, Arc<dyn Bus>) {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let registry =
        Arc::new(Registry::from_geojson(REGISTRY, &RegistryOptions::default()).expect("registry"));
    let ingest = posbon_ingest::build(&config, bus.clone(), registry.clone(), &Metrics::new())
        .expect("ingest");
    let store: posbon_store::Store = Arc::new(posbon_store::MemoryStore::new());
    let auth = posbon_auth::Auth::new(store, registry, Default::default()).expect("auth");
    let (_, token) = auth
        .identities()
        .create_token(
            "camera-gateway",
            posbon_auth::Role::Producer,
            vec![],
            None,
            "test",
        )
        .await
        .expect("token");
    // Every request of these tests comes from the producer.
    let app = posbon_testkit::http::as_bearer(
        posbon_ingest::routes(ingest, &config).into_router(auth),
        &token,
    );
    (app, bus)
}

async fn post(app: &axum::Router, content_type: Option<&str>, body: String) -> (StatusCode, Value) {
    let mut request = Request::post("/v1/events");
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("json answer"))
}

async fn drain(bus: &Arc<dyn Bus>, stream: &str) -> Vec<posbon_bus::Delivery> {
    let consumer = bus
        .consumer(
            stream,
            "test-reader",
            Vec::new(),
            ConsumerOptions::default(),
        )
        .await
        .expect("consumer");
    consumer
        .fetch(10_000, Duration::from_millis(200))
        .await
        .expect("fetch")
}

#[tokio::test]
async fn ndjson_batch_gets_a_verdict_per_item_and_bad_items_reach_the_dlq() {
    let (app, bus) = setup(1 << 20).await;
    let body = format!(
        "{}\n{}\n{{\"kind\":\"incident\",\"id\":\"bad 1\"}}\n{}\n",
        event("e-1", 41.285),
        event("e-2", 41.5),
        event("e-1", 41.285)
    );
    let (status, answer) = post(&app, Some("application/x-ndjson"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["duplicates"], 1);
    assert_eq!(answer["rejected"], 1);
    let items = answer["items"].as_array().expect("items");
    assert_eq!(items[0]["status"], "accepted");
    assert_eq!(items[0]["id"], "e-1");
    assert_eq!(items[2]["status"], "rejected");
    assert_eq!(items[2]["line"], 3);
    let paths: Vec<&str> = items[2]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"id") && paths.contains(&"occurred_at"),
        "{paths:?}"
    );
    assert_eq!(items[3]["status"], "duplicate");

    let events = drain(&bus, EVENTS_STREAM).await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].subject,
        "posbon.events.tashkent.chilonzor.chilonzor-001.incident"
    );
    assert_eq!(
        events[1].subject,
        "posbon.events._unassigned._unassigned._unassigned.incident"
    );
    assert_eq!(events[0].headers.get("Nats-Msg-Id"), Some("e-1"));
    // Compact by default, said so in the header.
    let content_type = events[0].headers.get("Content-Type");
    assert_eq!(content_type, Some(COMPACT_CONTENT_TYPE));
    assert!(serde_json::from_slice::<Value>(&events[0].payload).is_err());
    let enriched = EnrichedEvent::from_message(content_type, &events[0].payload).expect("enriched");
    assert_eq!(enriched.mahalla_id.as_deref(), Some("chilonzor-001"));
    assert_eq!(enriched.event.id(), "e-1");

    let dead = drain(&bus, DLQ_STREAM).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subject, "posbon.dlq.incident");
    assert_eq!(&dead[0].payload[..], br#"{"kind":"incident","id":"bad 1"}"#);
    let codes = dead[0].headers.get("Posbon-Reject-Code").expect("codes");
    assert!(
        codes.contains("invalid_id") && codes.contains("missing_field"),
        "{codes}"
    );
    let reason = dead[0].headers.get("Posbon-Reject-Reason").expect("reason");
    assert!(reason.contains("id:"), "{reason}");
}

#[tokio::test]
async fn single_events_arrays_and_http_errors() {
    let (app, _bus) = setup(4096).await;
    let (status, answer) = post(&app, Some("application/json"), event("s-1", 41.285)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let array = format!("[{}, {}]", event("s-2", 41.285), event("s-3", 91.0));
    let (status, answer) = post(&app, Some("application/json; charset=utf-8"), array).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["rejected"], 1);
    let error = &answer["items"][1]["errors"][0];
    assert_eq!(error["path"], "location.lat", "{error}");
    assert!(
        error["message"].as_str().expect("message").contains("91"),
        "{error}"
    );
    let (status, answer) = post(&app, Some("application/json"), "{oops".into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["items"][0]["errors"][0]["code"], "malformed_json");
    let (status, answer) = post(&app, Some("text/plain"), event("s-4", 41.285)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        answer["error"]
            .as_str()
            .expect("error")
            .contains("text/plain")
    );
    let (status, _) = post(&app, None, event("s-5", 41.285)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{}\n", event("s-6", 41.285)).repeat(40);
    let (status, answer) = post(&app, Some("application/x-ndjson"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
}

/// With `events_encoding = "json"`, EVENTS carries the enriched event's JSON.
#[tokio::test]
async fn events_can_be_published_as_json() {
    let mut config = config(1 << 20);
    config.events_encoding = EventEncoding::Json;
    let (app, bus) = setup_with(config).await;
    let (status, _) = post(&app, Some("application/json"), event("j-1", 41.285)).await;
    assert_eq!(status, StatusCode::OK);
    let events = drain(&bus, EVENTS_STREAM).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].headers.get("Content-Type"),
        Some(JSON_CONTENT_TYPE)
    );
    let enriched: EnrichedEvent = serde_json::from_slice(&events[0].payload).expect("json");
    assert_eq!(enriched.event.id(), "j-1");
    assert_eq!(
        EnrichedEvent::from_message(Some(JSON_CONTENT_TYPE), &events[0].payload),
        Ok(enriched)
    );
}

/// A rejected fraud flag never rests in clear on the DLQ: its account
/// reference is pseudonymised, and an unreadable item that mentions one is
/// kept without a payload.
#[tokio::test]
async fn rejected_fraud_flags_reach_the_dlq_without_their_account_number() {
    let (app, bus) = setup(1 << 20).await;
    let card = "8600123456789012";
    let bad_flag = format!(
        r#"{{"kind":"fraud_flag","id":"f 1","occurred_at":"2026-05-01T14:30:00+05:00","location":{{"lat":41.285,"lng":69.205}},"source":"bank","scheme":"scam_call","channel":"phone_call","amount_uzs":1000,"payment_system":"humo","account_ref":"{card}","detector_score":0.9}}"#
    );
    let broken = format!(r#"{{"kind":"fraud_flag","account_ref":"{card}""#);
    let number = bad_flag
        .replace(&format!("\"{card}\""), card)
        .replace("f 1", "f-2");
    let body = format!("{bad_flag}\n{broken}\n{number}\n");
    let (status, answer) = post(&app, Some("application/x-ndjson"), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["rejected"], 3, "{answer}");
    let dead = drain(&bus, DLQ_STREAM).await;
    assert_eq!(dead.len(), 3);
    for d in &dead {
        let text = String::from_utf8_lossy(&d.payload);
        assert!(
            !text.contains(card),
            "the card number rests in clear: {text}"
        );
        for (name, value) in d.headers.iter() {
            assert!(!value.contains(card), "{name}: {value}");
        }
    }
    let kept: Value = serde_json::from_slice(&dead[0].payload).expect("json kept");
    assert!(
        kept["account_ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("hmac2:k1:")),
        "{kept}"
    );
    assert_eq!(
        kept["id"], "f 1",
        "the rest is kept for the producer to fix"
    );
    assert_eq!(
        dead[0].headers.get("Posbon-Redacted"),
        Some("account_ref pseudonymised")
    );
    assert!(dead[1].payload.is_empty());
    assert!(
        dead[1]
            .headers
            .get("Posbon-Redacted")
            .is_some_and(|n| n.starts_with("payload removed")),
    );
}

/// Over NATS, `posbon.ingest.<kind>` carries only that kind (each producer
/// class is permitted its own subject); other subjects take any kind.
#[tokio::test]
async fn a_subject_that_names_a_kind_carries_only_that_kind() {
    use posbon_ingest::{BodyFormat, ItemStatus, Source};
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let registry =
        Arc::new(Registry::from_geojson(REGISTRY, &RegistryOptions::default()).expect("registry"));
    let ingest = posbon_ingest::build(&config(1 << 20), bus.clone(), registry, &Metrics::new())
        .expect("ingest");
    let camera = r#"{"kind":"camera_alert","id":"c-1","occurred_at":"2026-05-01T14:30:00+05:00","location":{"lat":41.285,"lng":69.205},"source":"cam","camera_id":"cam-1","detection":"drug_handoff","confidence":0.9,"model":"va/1"}"#;
    let body = |subject: &str, sequence: u64| posbon_ingest::Body {
        bytes: bytes::Bytes::from(format!("{}\n{camera}\n", event("i-1", 41.285))),
        format: BodyFormat::Ndjson,
        source: Source::Nats {
            subject: subject.to_owned(),
            sequence,
        },
        span: tracing::Span::none(),
    };
    let results = ingest
        .process(&[
            body("posbon.ingest.incident", 1),
            body("posbon.ingest.demo", 2),
        ])
        .await;
    let on_incident = results[0].as_ref().expect("published");
    assert!(matches!(on_incident[0].status, ItemStatus::Accepted { .. }));
    match &on_incident[1].status {
        ItemStatus::Rejected { errors } => {
            assert_eq!(
                errors.iter().next().map(|e| e.code.as_str()),
                Some("kind_not_allowed_on_subject"),
                "{errors:?}"
            );
        }
        other => panic!("a camera alert on posbon.ingest.incident: {other:?}"),
    }
    let on_demo = results[1].as_ref().expect("published");
    assert!(
        on_demo
            .iter()
            .all(|r| !matches!(r.status, ItemStatus::Rejected { .. })),
        "{on_demo:?}"
    );
}

/// A batch of more items than `max_batch_items` is refused whole with 413
/// `batch_too_large` (none of its events is published), however small its
/// items: 16 MiB of `[0,0,…]` (8 million items) gets one short answer, not
/// eight million verdicts.
#[tokio::test]
async fn a_batch_over_the_item_limit_is_refused_whole() {
    let mut config = config(16 << 20);
    config.max_batch_items = 3;
    let (app, bus) = setup_with(config).await;
    let four = (1..=4)
        .map(|i| event(&format!("b-{i}"), 41.285))
        .collect::<Vec<_>>();
    for (content_type, body) in [
        ("application/x-ndjson", four.join("\n")),
        ("application/json", format!("[{}]", four.join(","))),
    ] {
        let (status, answer) = post(&app, Some(content_type), body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        let error = &answer["items"][0]["errors"][0];
        assert_eq!(error["code"], "batch_too_large", "{answer}");
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("limit of 3 items"),
            "{error}"
        );
    }
    // Three items are within the limit.
    let (status, answer) = post(&app, Some("application/x-ndjson"), four[..3].join("\n")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(drain(&bus, EVENTS_STREAM).await.len(), 3);

    let (app, bus) = setup(16 << 20).await;
    let mut zeros = "0,".repeat((8 << 20) - 1);
    zeros.pop();
    let body = format!("[{zeros}]");
    let length = body.len();
    assert!(length <= 16 << 20);
    let (status, answer) = post(&app, Some("application/json"), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["items"].as_array().map(Vec::len), Some(1));
    assert!(drain(&bus, EVENTS_STREAM).await.is_empty());
    // Its dead letter keeps the start of the body and says how long it was:
    // 16 MiB would not fit in one bus message.
    let dead = drain(&bus, DLQ_STREAM).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].payload.len(),
        posbon_ingest::MAX_DEAD_LETTER_PAYLOAD
    );
    assert_eq!(
        dead[0].headers.get("Posbon-Truncated"),
        Some(length.to_string().as_str())
    );
}
