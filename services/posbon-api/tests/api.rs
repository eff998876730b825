//! The API over the in-memory bus and store, and the feed over a real
//! nats-server: lifecycle over HTTP and NATS, refusals, re-notification,
//! precision feedback, and a feed that resumes exactly after a reconnect;
//! two API replicas on one nats-server and one TiKV (the in-repo test
//! server) that keep every step.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use posbon_api::{ApiConfig, ApiState};
use posbon_bus::subjects::{ALERTS_STREAM, DLQ_STREAM, ESCALATION_ACTIONS};
use posbon_bus::{Bus, ConsumerOptions, Headers, MemoryBus, NatsBus, NatsOptions, default_streams};
use posbon_model::{
    CameraAlert, CellId, Detection, EnrichedEvent, EscalationRecord, EscalationStatus, Event,
    EventHeader, Location, NotifyTier, RiskLevel,
};
use posbon_store::{EscalationStoreExt as _, EventStoreExt as _, MemoryStore, Store};
use posbon_telemetry::Metrics;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

mod common;
use common::{config, escalation, publish_escalation, registry};

struct Api {
    state: Arc<ApiState>,
    bus: Arc<dyn Bus>,
    store: Store,
    app: axum::Router,
    shutdown: CancellationToken,
    auth: Arc<posbon_auth::Auth>,
    metrics: Metrics,
    /// Supervisor tokens by name, made on first use.
    tokens: tokio::sync::Mutex<std::collections::HashMap<String, String>>,
}

async fn api(bus: Arc<dyn Bus>, renotify_after_secs: i64) -> Api {
    api_with(bus, config(renotify_after_secs)).await
}

async fn api_with(bus: Arc<dyn Bus>, config: ApiConfig) -> Api {
    api_on(bus, Arc::new(MemoryStore::new()), config).await
}

/// An API replica on `bus` and `store` (which other replicas may share).
async fn api_on(bus: Arc<dyn Bus>, store: Store, config: ApiConfig) -> Api {
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let metrics = Metrics::new();
    let auth = posbon_auth::Auth::new(store.clone(), registry(), Default::default()).expect("auth");
    let state = ApiState::new(
        config,
        bus.clone(),
        store.clone(),
        registry(),
        auth.clone(),
        &metrics,
    )
    .expect("state");
    let shutdown = CancellationToken::new();
    tokio::spawn(posbon_api::run_lifecycle(state.clone(), shutdown.clone()));
    let app = posbon_api::routes(state.clone()).into_router(auth.clone());
    Api {
        state,
        bus,
        store,
        app,
        shutdown,
        auth,
        metrics,
        tokens: Default::default(),
    }
}

/// A new national token of `role` named `name`.
async fn token_of(auth: &posbon_auth::Auth, name: &str, role: posbon_auth::Role) -> String {
    let (_, token) = auth
        .identities()
        .create_token(name, role, vec![], None, "test")
        .await
        .expect("token");
    token
}

impl Api {
    /// A supervisor token named `name` (made once).
    async fn token(&self, name: &str) -> String {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(name) {
            return t.clone();
        }
        let token = token_of(&self.auth, name, posbon_auth::Role::Supervisor).await;
        tokens.insert(name.to_owned(), token.clone());
        token
    }

    /// Calls the API as the supervisor named by the body's `by` (taken out
    /// of the body: the actor is the caller), or as `tester`.
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut body = body;
        let actor = body
            .as_mut()
            .and_then(|b| b.as_object_mut())
            .and_then(|o| o.remove("by"))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "tester".to_owned());
        let token = self.token(&actor).await;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn wait_recorded(&self, id: &str) -> EscalationRecord {
        for _ in 0..200 {
            if let Some(r) = self.store.get_escalation(id).await.expect("get") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("escalation {id} was never recorded");
    }
}

/// Serves the API's routes on a loopback port (for the feed's raw clients).
async fn serve(api: &Api) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = api.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A bus on a real nats-server.
async fn nats_bus(nats: &posbon_testkit::NatsServer) -> Arc<dyn Bus> {
    Arc::new(
        NatsBus::connect(vec![nats.url()], NatsOptions::default())
            .await
            .expect("connect"),
    )
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn lifecycle_over_http_with_refusals_and_precision() {
    let api = api(Arc::new(MemoryBus::new()), 3600).await;
    // A camera alert that is evidence for the escalation.
    let reg = registry();
    let m = &reg.mahallas()[3];
    let at = Utc
        .with_ymd_and_hms(2026, 11, 28, 8, 0, 0)
        .single()
        .expect("time");
    let cam = EnrichedEvent {
        event: Event::CameraAlert(CameraAlert {
            header: EventHeader {
                id: "cam-evt-1".into(),
                occurred_at: at.fixed_offset(),
                location: Location {
                    lat: 41.3,
                    lng: 69.25,
                    accuracy_m: None,
                },
                source: "vision".into(),
                attributes: Default::default(),
            },
            camera_id: "cam-42".into(),
            detection: Detection::DrugHandoff,
            confidence: 0.9,
            model: "m".into(),
            snapshot_uri: None,
        }),
        cell: CellId::try_from(0x8a2a1072b59ffff_u64).expect("cell"),
        mahalla_id: Some(m.id.clone()),
        district_id: Some(m.district_id.clone()),
        region_id: Some(m.region_id.clone()),
        ingested_at: at,
    };
    api.store.put_events(&[cam]).await.expect("put");
    let e = escalation(3, 1, RiskLevel::High, vec!["cam-evt-1".into()]);
    let seq = publish_escalation(&*api.bus, &e).await;
    let record = api.wait_recorded(&e.id).await;
    assert_eq!(
        (record.alert_sequence, record.status()),
        (seq, EscalationStatus::Open)
    );
    // A replayed opening changes nothing.
    publish_escalation(&*api.bus, &e).await;

    let (status, list) = api.call("GET", "/v1/escalations?status=open", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], e.id.as_str());
    assert_eq!(list[0]["mahalla_id"], m.id.as_str());
    assert_eq!(list[0]["level"], "high");
    assert_eq!(list[0]["status"], "open");
    // What the caller may do now, so that no client re-implements the rule.
    assert_eq!(
        list[0]["allowed_actions"],
        json!(["acknowledge", "assign", "false_alarm"])
    );
    // An analyst reads the escalation but is offered nothing to do.
    let analyst = token_of(&api.auth, "analyst-1", posbon_auth::Role::Analyst).await;
    let request = Request::builder()
        .uri(format!("/v1/escalations/{}", e.id))
        .header("authorization", format!("Bearer {analyst}"))
        .body(Body::empty())
        .expect("request");
    let response = api.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let seen: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(seen["allowed_actions"], json!([]), "{seen}");
    // The same list as GeoJSON: the escalation on its mahalla's shape.
    let (status, fc) = api
        .call("GET", "/v1/escalations?status=open&format=geojson", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{fc}");
    assert_eq!(fc["type"], "FeatureCollection");
    assert_eq!(fc["features"][0]["id"], e.id.as_str());
    assert_eq!(fc["features"][0]["geometry"]["type"], "MultiPolygon");
    assert_eq!(fc["features"][0]["properties"]["feature"], "escalation");
    assert_eq!(fc["features"][0]["properties"]["status"], "open");
    let (status, body) = api.call("GET", "/v1/escalations?format=kml", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let path = |action: &str| format!("/v1/escalations/{}/{action}", e.id);
    let (status, body) = api
        .call("POST", &path("resolve"), Some(json!({"by": "op-1"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("acknowledge or assign it first")),
        "{body}"
    );
    let (status, body) = api
        .call(
            "POST",
            &path("acknowledge"),
            Some(json!({"by": "op-1", "note": "seen"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(
        body["allowed_actions"],
        json!(["assign", "resolve", "false_alarm"])
    );
    // Measured: the time it took, and the escalations not closed by level
    // and status.
    api.state.lifecycle.measure().await.expect("measure");
    let text = api.metrics.render();
    assert!(
        text.contains("posbon_escalation_time_to_acknowledge_seconds_count 1"),
        "{text}"
    );
    assert!(
        text.contains("posbon_escalations{level=\"high\",status=\"acknowledged\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("posbon_escalations{level=\"high\",status=\"open\"} 0"),
        "{text}"
    );
    let (status, _) = api
        .call("POST", &path("acknowledge"), Some(json!({"by": "op-2"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = api
        .call("POST", &path("promote"), Some(json!({"by": "x"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .call("POST", &path("assign"), Some(json!({"who": "x"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|m| m.contains("who")),
        "{body}"
    );
    let (status, body) = api
        .call(
            "POST",
            &path("assign"),
            Some(json!({"by": "op-1", "assignee": "inspector-9"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee"], "inspector-9");
    let (status, body) = api
        .call(
            "POST",
            &path("false_alarm"),
            Some(json!({"by": "inspector-9", "note": "a delivery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "false_alarm");
    let kinds: Vec<&str> = body["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["opened", "acknowledge", "assign", "false_alarm"]);
    let (status, _) = api
        .call("POST", &path("resolve"), Some(json!({"by": "op"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api
        .call(
            "POST",
            "/v1/escalations/esc:nope/acknowledge",
            Some(json!({"by": "op"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The false alarm counted against the camera.
    let (status, precision) = api.call("GET", "/v1/sources/precision", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        precision,
        json!([{"kind": "camera", "id": "cam-42", "confirmed": 0, "false_alarms": 1, "precision": 0.0}])
    );
    // Filters and their errors.
    let (status, list) = api.call("GET", "/v1/escalations?status=open", None).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    let (status, body) = api
        .call("GET", "/v1/escalations?min_level=severe", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("min_level")),
        "{body}"
    );
    let (status, _) = api.call("GET", "/v1/escalations?status=closed", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Map data.
    let (status, map) = api.call("GET", "/v1/mahallas", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        map["features"].as_array().map(Vec::len),
        Some(reg.mahallas().len())
    );
    let (status, detail) = api
        .call("GET", &format!("/v1/mahallas/{}?hours=720", m.id), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["escalations"][0]["id"], e.id.as_str());
    let (status, _) = api.call("GET", "/v1/mahallas/no-such", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = &api.state;
}

#[tokio::test]
async fn actions_over_nats_and_refusals_to_the_dlq() {
    let api = api(Arc::new(MemoryBus::new()), 3600).await;
    let e = escalation(5, 1, RiskLevel::Elevated, vec![]);
    publish_escalation(&*api.bus, &e).await;
    api.wait_recorded(&e.id).await;
    let send = |body: Value| {
        let bus = api.bus.clone();
        async move {
            bus.publish(
                ESCALATION_ACTIONS,
                Headers::new(),
                Bytes::from(body.to_string()),
            )
            .await
            .expect("publish action");
        }
    };
    send(json!({"escalation_id": e.id, "action": "acknowledge", "by": "radio-7"})).await;
    // Refused: acknowledged twice; and not an action at all.
    send(json!({"escalation_id": e.id, "action": "acknowledge", "by": "radio-8"})).await;
    send(json!({"escalation_id": e.id, "by": "radio-8"})).await;
    let dlq = api
        .bus
        .consumer(DLQ_STREAM, "t", vec![], ConsumerOptions::default())
        .await
        .expect("dlq consumer");
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead.extend(
            dlq.fetch(10, Duration::from_millis(100))
                .await
                .expect("fetch"),
        );
        if dead.len() >= 2 {
            break;
        }
    }
    let seen: Vec<_> = dead
        .iter()
        .map(|d| {
            (
                d.headers.get("Posbon-Reject-Reason").map(str::to_owned),
                String::from_utf8_lossy(&d.payload).into_owned(),
            )
        })
        .collect();
    assert_eq!(dead.len(), 2, "{seen:?}");
    assert_eq!(dead[0].subject, "posbon.dlq.action");
    assert_eq!(
        dead[0].headers.get("Posbon-Reject-Code"),
        Some("invalid_transition")
    );
    assert!(
        dead[0]
            .headers
            .get("Posbon-Reject-Reason")
            .is_some_and(|r| r.contains("acknowledged already"))
    );
    assert_eq!(
        dead[1].headers.get("Posbon-Reject-Code"),
        Some("invalid_action")
    );
    assert_eq!(
        dead[1].headers.get("Posbon-Reject-Reason"),
        Some("action: missing")
    );
    let r = api
        .store
        .get_escalation(&e.id)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(r.status(), EscalationStatus::Acknowledged);
    assert_eq!(r.history.len(), 2);
    assert_eq!(r.history[1].by, "radio-7");
}

#[tokio::test]
async fn unacknowledged_escalations_climb_tiers() {
    let api = api(Arc::new(MemoryBus::new()), 1).await;
    let e = escalation(7, 1, RiskLevel::Critical, vec![]);
    publish_escalation(&*api.bus, &e).await;
    api.wait_recorded(&e.id).await;
    let mut tier = NotifyTier::MahallaInspector;
    for _ in 0..100 {
        tier = api
            .store
            .get_escalation(&e.id)
            .await
            .expect("get")
            .expect("record")
            .tier;
        if tier == NotifyTier::City {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tier, NotifyTier::City);
    // The updates are on the feed's stream.
    let info = api.bus.stream_info(ALERTS_STREAM).await.expect("info");
    assert_eq!(info.messages, 3, "opening and two re-notifications");
}

/// Reads an SSE response from a raw connection until `count` events arrived;
/// returns their `(id, event, data)`.
async fn read_sse(
    addr: std::net::SocketAddr,
    token: &str,
    query: &str,
    last: Option<u64>,
    count: usize,
) -> Vec<(u64, String, Value)> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let last = last
        .map(|l| format!("Last-Event-ID: {l}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /v1/feed{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n{last}\r\n"
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while out.len() < count {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
            .await
            .expect("events in time")
            .expect("read");
        assert!(n > 0, "connection closed early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        out.clear();
        for block in text.split("\n\n") {
            let mut id = None;
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line
                    .strip_prefix("id: ")
                    .or_else(|| line.strip_prefix("id:"))
                {
                    id = v.trim().parse::<u64>().ok();
                } else if let Some(v) = line
                    .strip_prefix("event: ")
                    .or_else(|| line.strip_prefix("event:"))
                {
                    event = v.trim().to_owned();
                } else if let Some(v) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    data.push_str(v);
                }
            }
            if let (Some(id), Ok(value)) = (id, serde_json::from_str::<Value>(&data)) {
                out.push((id, event, value));
            }
        }
    }
    out
}

/// Reads `count` text messages from the WebSocket feed (a minimal client:
/// the upgrade, then unmasked server frames).
async fn read_ws(addr: std::net::SocketAddr, token: &str, query: &str, count: usize) -> Vec<Value> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /v1/feed/ws{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.expect("read head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut out = Vec::new();
    while out.len() < count {
        let mut h = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(15), conn.read_exact(&mut h))
            .await
            .expect("frame in time")
            .expect("frame");
        let opcode = h[0] & 0x0f;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            conn.read_exact(&mut l).await.expect("len");
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            conn.read_exact(&mut l).await.expect("len");
            len = u64::from_be_bytes(l);
        }
        let mut payload = vec![0u8; usize::try_from(len).expect("len")];
        conn.read_exact(&mut payload).await.expect("payload");
        if opcode == 1 {
            out.push(serde_json::from_slice(&payload).expect("json"));
        }
    }
    out
}

#[tokio::test]
async fn feed_resumes_exactly_over_nats() {
    let nats = posbon_testkit::NatsServer::start();
    let bus = nats_bus(&nats).await;
    let api = api(bus, 3600).await;
    let addr = serve(&api).await;
    let feed_token = api.token("tester").await;

    let reg = registry();
    let district = reg.mahallas()[0].district_id.clone();
    let mut sequences = Vec::new();
    for (i, level) in [
        RiskLevel::High,
        RiskLevel::Elevated,
        RiskLevel::Critical,
        RiskLevel::High,
    ]
    .into_iter()
    .enumerate()
    {
        let e = escalation(i, 1, level, vec![]);
        sequences.push((publish_escalation(&*api.bus, &e).await, e));
    }
    // From the start, only high and above.
    let got = read_sse(addr, &feed_token, "?since=0&min_level=high", None, 3).await;
    let ids: Vec<u64> = got.iter().map(|g| g.0).collect();
    let want: Vec<u64> = sequences
        .iter()
        .filter(|(_, e)| e.level >= RiskLevel::High)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(ids, want);
    assert!(got.iter().all(|g| g.1 == "opened"));
    // Reconnect with Last-Event-ID = the first: exactly the ones after it, in order.
    let got = read_sse(addr, &feed_token, "?min_level=high", Some(want[0]), 2).await;
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want[1..]);
    // A lifecycle step arrives as an update.
    let first = &sequences[0].1;
    api.wait_recorded(&first.id).await;
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/escalations/{}/acknowledge", first.id),
            Some(json!({"by": "op"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last = sequences.last().map(|s| s.0).expect("last");
    let got = read_sse(addr, &feed_token, "", Some(last), 1).await;
    assert_eq!(got[0].1, "updated");
    assert_eq!(got[0].2["id"], first.id.as_str());
    assert_eq!(got[0].2["status"], "acknowledged");
    // Each item says what this (supervisor) client may do to it now.
    assert_eq!(
        got[0].2["allowed_actions"],
        json!(["assign", "resolve", "false_alarm"]),
        "{}",
        got[0].2
    );
    // The WebSocket twin: the same items from the same sequence.
    let got = read_ws(addr, &feed_token, "?since=0&min_level=high", 3).await;
    let ids: Vec<u64> = got.iter().filter_map(|v| v["id"].as_u64()).collect();
    assert_eq!(ids, want);
    assert!(
        got.iter()
            .all(|v| v["type"] == "opened" && v["data"]["id"].is_string())
    );
    // District filter goes to the subject.
    let got = read_sse(
        addr,
        &feed_token,
        &format!("?district={district}&since=0"),
        None,
        1,
    )
    .await;
    assert!(got.iter().all(|g| g.2["district_id"] == district.as_str()));
    // Bad input is a 400 naming the problem.
    let (status, body) = api.call("GET", "/v1/feed?min_level=loud", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("min_level"))
    );
}

/// Opens a raw SSE feed and reads until `until` appears in what came; the
/// connection stays open (and holds its place) while the caller keeps it.
async fn open_sse(
    addr: std::net::SocketAddr,
    token: &str,
    query: &str,
    until: &str,
) -> (tokio::net::TcpStream, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /v1/feed{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    while !text.contains(until) {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{until:?} in time; got {text}"))
            .expect("read");
        assert!(n > 0, "closed before {until:?}: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    (conn, text)
}

/// The feed's limits: clients in all and per identity (refused with
/// `Retry-After`, freed when a client leaves), the replay window (a `gap`
/// message says where the feed resumed), and the size of what a WebSocket
/// client may send.
#[tokio::test]
async fn feed_limits_clients_replay_and_frames() {
    let bus: Arc<dyn Bus> = Arc::new(posbon_bus::MemoryBus::new());
    let api = api_with(
        bus,
        ApiConfig {
            max_feed_clients: 2,
            max_feed_clients_per_caller: 1,
            max_feed_replay: 2,
            ..config(3600)
        },
    )
    .await;
    let addr = serve(&api).await;
    let mut sequences = Vec::new();
    for i in 0..4 {
        let e = escalation(i, 1, RiskLevel::High, vec![]);
        sequences.push(publish_escalation(&*api.bus, &e).await);
    }

    // since=0 asks for four messages; the feed replays two and says so.
    let tester = api.token("tester").await;
    let last = sequences[3];
    let (held, text) = open_sse(addr, &tester, "?since=0", &format!("id: {last}")).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let gap = format!(
        "event: gap\ndata: {{\"requested_after\":0,\"resumed_after\":{}}}",
        last - 2
    );
    assert!(text.contains(&gap), "{text}");
    assert!(!text.contains(&format!("id: {}\n", sequences[1])), "{text}");
    assert!(text.contains(&format!("id: {}\n", sequences[2])), "{text}");

    // One feed per identity: the tester's second is refused.
    let (status, body) = api.call("GET", "/v1/feed", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "too_many_feeds");
    let request = |token: &str| {
        Request::get("/v1/feed")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let refused = api
        .app
        .clone()
        .oneshot(request(&tester))
        .await
        .expect("response");
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    // Two in all: another identity gets the second place, a third none.
    let other = api.token("other").await;
    let (held_too, _) = open_sse(addr, &other, "", "posbon escalation feed").await;
    let third = api.token("third").await;
    let refused = api
        .app
        .clone()
        .oneshot(request(&third))
        .await
        .expect("response");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&body).contains("feed_full"));
    assert_eq!(api.state.feed_clients.count(), 2);
    // A client that leaves frees its place.
    drop(held);
    for _ in 0..200 {
        if api.state.feed_clients.count() < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.state.feed_clients.count(), 1);
    drop(held_too);

    // A WebSocket client may send small frames only: 8 KiB closes it.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let upgrade = format!(
        "GET /v1/feed/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {third}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    conn.write_all(upgrade.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A masked text frame of 8 KiB (the mask is zero: the payload as is).
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&8192u16.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend(std::iter::repeat_n(b'x', 8192));
    conn.write_all(&frame).await.expect("send");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server closes the connection");
    for _ in 0..200 {
        if api.state.feed_clients.count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.state.feed_clients.count(), 0);
}

/// `GET /v1/escalations` pages through the store's index, newest first: a
/// page ends with a cursor (`x-next-cursor`) that continues it, the last
/// page has none, open-only lists read the open index, and a cursor that
/// is not one is refused.
#[tokio::test]
async fn escalation_lists_page_with_a_cursor() {
    let api = api(Arc::new(posbon_bus::MemoryBus::new()), 3600).await;
    for episode in 0..5u64 {
        let mut record = EscalationRecord::opened(
            escalation(0, episode, RiskLevel::High, vec![]),
            episode + 1,
            Utc::now(),
        );
        if episode == 3 {
            record.escalation.status = EscalationStatus::Resolved;
            record.closed_at = Some(Utc::now());
        }
        api.store.put_escalation(&record).await.expect("put");
    }
    let token = api.token("tester").await;
    let get = |uri: String| {
        let app = api.app.clone();
        let token = token.clone();
        async move {
            let response = app
                .oneshot(
                    Request::get(uri)
                        .header("authorization", format!("Bearer {token}"))
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("response");
            let status = response.status();
            let cursor = response
                .headers()
                .get("x-next-cursor")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let body = axum::body::to_bytes(response.into_body(), 1 << 24)
                .await
                .expect("body");
            let value: Value = serde_json::from_slice(&body).expect("json");
            (status, value, cursor)
        }
    };
    let episodes = |v: &Value| -> Vec<u64> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|r| r["alert_sequence"].as_u64().expect("sequence") - 1)
            .collect()
    };
    let (status, first, cursor) = get("/v1/escalations?limit=2".into()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(episodes(&first), [4, 3]);
    let cursor = cursor.expect("more to come");
    let (_, second, cursor) = get(format!("/v1/escalations?limit=2&cursor={cursor}")).await;
    assert_eq!(episodes(&second), [2, 1]);
    let (_, last, cursor) = get(format!(
        "/v1/escalations?limit=2&cursor={}",
        cursor.expect("more")
    ))
    .await;
    assert_eq!(episodes(&last), [0]);
    assert!(cursor.is_none(), "the end has no cursor");
    // Open only (the resolved episode 3 is not listed), from the open index.
    let (_, open, _) = get("/v1/escalations?status=open,acknowledged,assigned".into()).await;
    assert_eq!(episodes(&open), [4, 2, 1, 0]);
    // A cursor of the open index does not continue a list of everything.
    let (_, _, open_cursor) = get("/v1/escalations?status=open&limit=1".into()).await;
    let (status, body, _) = get(format!(
        "/v1/escalations?cursor={}",
        open_cursor.expect("cursor")
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_cursor");
    let (status, body, _) = get("/v1/escalations?cursor=zz".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_cursor");
}

/// Feed clients share one reader of ALERTS per API process: thirty live
/// clients add one JetStream consumer, not thirty (a stream admits 1,000 by
/// default), and every one of them gets every escalation.
#[tokio::test]
async fn feed_clients_share_one_stream_reader() {
    let nats = posbon_testkit::NatsServer::start();
    let bus = nats_bus(&nats).await;
    let api = api(bus, 3600).await;
    let addr = serve(&api).await;
    // The lifecycle worker's durable consumer is there before any client.
    let mut before = 0;
    for _ in 0..100 {
        before = api
            .bus
            .stream_info(ALERTS_STREAM)
            .await
            .expect("info")
            .consumers;
        if before > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut clients = Vec::new();
    for i in 0..30 {
        let token = api.token(&format!("desk-{}", i % 3)).await;
        clients.push(open_sse(addr, &token, "", "posbon escalation feed").await);
    }
    let during = api
        .bus
        .stream_info(ALERTS_STREAM)
        .await
        .expect("info")
        .consumers;
    assert!(
        during <= before + 1,
        "30 clients made {} consumers (before: {before})",
        during - before
    );
    let e = escalation(0, 1, RiskLevel::High, vec![]);
    let sequence = publish_escalation(&*api.bus, &e).await;
    for (mut conn, mut text) in clients {
        let mut buf = vec![0u8; 65536];
        while !text.contains(&format!("id: {sequence}")) {
            let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0, "closed: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(text.contains(&e.id), "{text}");
    }
}

/// The page's messages: public (the login form is translated too), in the
/// language of `?lang=`, else of `Accept-Language`, else English.
#[tokio::test]
async fn the_pages_messages_in_each_language() {
    let api = api(Arc::new(MemoryBus::new()), 3600).await;
    let get = |uri: &str, accept_language: Option<&str>| {
        let mut request = Request::builder().uri(uri);
        if let Some(value) = accept_language {
            request = request.header("accept-language", value);
        }
        let request = request.body(Body::empty()).expect("request");
        let app = api.app.clone();
        async move {
            let response = app.oneshot(request).await.expect("response");
            let status = response.status();
            let language = response
                .headers()
                .get("content-language")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
                .await
                .expect("body");
            let body: Value = serde_json::from_slice(&bytes).expect("json");
            (status, language, body)
        }
    };
    let (status, language, en) = get("/i18n.json", None).await;
    assert_eq!(status, StatusCode::OK, "{en}");
    assert_eq!(
        (language.as_deref(), en["lang"].as_str()),
        (Some("en"), Some("en"))
    );
    // The page's clock is the local day's zone, named by the server.
    assert_eq!(en["time_zone"], "Asia/Tashkent");
    assert_eq!(
        en["languages"],
        json!([
            {"code": "en", "name": "English"},
            {"code": "uz", "name": "Oʻzbekcha"},
            {"code": "ru", "name": "Русский"},
        ])
    );
    let keys = |body: &Value| -> Vec<String> {
        body["messages"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert!(keys(&en).len() > 100, "{}", keys(&en).len());
    assert!(
        keys(&en)
            .iter()
            .all(|k| !k.starts_with("report.") && !k.starts_with("cli."))
    );
    for (uri, accept, want) in [
        ("/i18n.json?lang=ru", Some("uz"), "ru"),
        ("/i18n.json", Some("uz-Latn-UZ,ru;q=0.8"), "uz"),
        ("/i18n.json", Some("de-DE"), "en"),
    ] {
        let (status, language, body) = get(uri, accept).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(body["lang"], want, "{uri} {accept:?}");
        assert_eq!(language.as_deref(), Some(want));
        assert_eq!(keys(&body), keys(&en), "{want} has the keys of en");
        if want != "en" {
            assert_ne!(body["messages"], en["messages"], "{want} is translated");
            assert_eq!(body["numbers"]["decimal"], ",", "{want}");
        } else {
            assert_eq!(
                body["numbers"],
                json!({"decimal": ".", "group": ",", "percent": "%"})
            );
        }
    }
    let (status, _, body) = get("/i18n.json?lang=de", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("uz, ru or en")),
        "{body}"
    );
}

/// The API alone serves what the page's report and SQL views need: the
/// separate-services deployment has no other address for them.
#[tokio::test]
async fn the_api_serves_sql_and_reports() {
    let config = posbon_api::serve::load_config(None).expect("defaults");
    assert_eq!(
        config.reporter.small_count_min, 3,
        "the reporter's defaults"
    );
    let store: Store = Arc::new(MemoryStore::new());
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let auth = posbon_auth::Auth::new(store.clone(), registry(), Default::default()).expect("auth");
    let sql = Arc::new(
        posbon_sql::SqlEngine::new(store.clone(), registry(), config.sql.clone()).expect("sql"),
    );
    let reporter = Arc::new(
        config
            .reporter
            .reporter(store.clone(), registry())
            .expect("reporter"),
    );
    let app = posbon_api::serve::analyst_routes(sql, reporter, bus, auth.clone())
        .into_router(auth.clone());
    let call = |role: posbon_auth::Role, method: &str, uri: &str, body: Option<Value>| {
        let (app, auth) = (app.clone(), auth.clone());
        let (method, uri) = (method.to_owned(), uri.to_owned());
        async move {
            let token = token_of(&auth, &format!("{role:?}").to_lowercase(), role).await;
            let request = Request::builder()
                .method(method.as_str())
                .uri(uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
                .expect("request");
            let response = app.oneshot(request).await.expect("response");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = call(
        posbon_auth::Role::Analyst,
        "GET",
        "/v1/reports/daily/dates",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"dates": []}));
    let (status, body) = call(
        posbon_auth::Role::Analyst,
        "POST",
        "/v1/sql",
        Some(json!({"query": "SELECT 1 AS one"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An operator reads neither.
    let (status, _) = call(
        posbon_auth::Role::Operator,
        "GET",
        "/v1/reports/daily/dates",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Two API replicas sharing one nats-server and one TiKV store: an opening
/// is recorded once, steps taken at the same time on both replicas are all
/// kept (compare-and-swap on the record, applied again on a conflict), a
/// step that no longer applies after the other replica's is refused with
/// 409, and the feed of each replica delivers every update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_replicas_keep_every_step_and_refuse_a_conflicting_one() {
    let nats = posbon_testkit::NatsServer::start();
    let tikv = posbon_tikv_testserver::TestServer::start(Default::default())
        .await
        .expect("tikv test server");
    let replica = |name: &'static str| {
        let (nats, pd) = (&nats, tikv.pd_endpoint());
        async move {
            let store: Store = Arc::new(
                posbon_store::TikvStore::connect(&posbon_store::TikvConfig::new([pd]), None)
                    .await
                    .expect("tikv"),
            );
            let api = api_on(nats_bus(nats).await, store, config(3600)).await;
            let _ = api.token(name).await;
            api
        }
    };
    let a = replica("op-a").await;
    let b = replica("op-b").await;
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    let (feed_a, feed_b) = (a.token("op-a").await, b.token("op-b").await);

    let e = escalation(0, 1, RiskLevel::High, vec![]);
    let opened = publish_escalation(&*a.bus, &e).await;
    let recorded = a.wait_recorded(&e.id).await;
    assert_eq!(recorded.history.len(), 1, "recorded once: {recorded:?}");
    assert_eq!(b.wait_recorded(&e.id).await, recorded);

    // Both acknowledge at once: one is kept, the other is refused.
    let ack = |api: &'static str| {
        let (a, b, id) = (&a, &b, e.id.clone());
        async move {
            let replica = if api == "op-a" { a } else { b };
            replica
                .call(
                    "POST",
                    &format!("/v1/escalations/{id}/acknowledge"),
                    Some(json!({"by": api})),
                )
                .await
        }
    };
    let (ra, rb) = tokio::join!(ack("op-a"), ack("op-b"));
    let mut statuses = [ra.0, rb.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{ra:?} / {rb:?}"
    );
    let refused = if ra.0 == StatusCode::CONFLICT {
        &ra.1
    } else {
        &rb.1
    };
    assert!(
        refused["detail"]
            .as_str()
            .or(refused["error"].as_str())
            .is_some_and(|m| m.contains("acknowledged already")),
        "{refused}"
    );

    // Twelve assignments, six on each replica, all at once: all kept.
    let assign = |i: usize| {
        let (a, b, id) = (&a, &b, e.id.clone());
        async move {
            let (replica, by) = if i.is_multiple_of(2) {
                (a, "op-a")
            } else {
                (b, "op-b")
            };
            replica
                .call(
                    "POST",
                    &format!("/v1/escalations/{id}/assign"),
                    Some(json!({"by": by, "assignee": format!("officer-{i}")})),
                )
                .await
        }
    };
    let answers = futures::future::join_all((0..12).map(assign)).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let record = a
        .store
        .get_escalation(&e.id)
        .await
        .expect("get")
        .expect("record");
    let assignees: Vec<&str> = record
        .history
        .iter()
        .filter(|s| s.kind == posbon_model::AuditKind::Assign)
        .filter_map(|s| s.assignee.as_deref())
        .collect();
    assert_eq!(
        assignees.len(),
        12,
        "every assignment kept: {:?}",
        record.history
    );
    let mut distinct = assignees.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 12, "each once: {assignees:?}");
    // The record's assignee is the last step's, and the steps are in time order.
    assert_eq!(record.assignee.as_deref(), assignees.last().copied());
    assert!(record.history.windows(2).all(|w| w[0].at <= w[1].at));

    // Each replica's feed delivers the thirteen updates, in history order.
    for (addr, token) in [(addr_a, &feed_a), (addr_b, &feed_b)] {
        let got = read_sse(addr, token, "", Some(opened), 13).await;
        assert!(got.iter().all(|g| g.1 == "updated"), "{got:?}");
        let steps: Vec<usize> = got
            .iter()
            .map(|g| g.2["history"].as_array().map_or(0, Vec::len))
            .collect();
        let mut sorted = steps.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, (2..=14).collect::<Vec<_>>(), "{steps:?}");
    }
}
