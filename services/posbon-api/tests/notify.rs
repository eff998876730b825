//! Paging end to end over the in-memory bus and store: an escalation that
//! opens pages its routes' receivers (a webhook server on loopback checks the
//! signature), the re-notification pages the district tier, each outcome is
//! in the escalation's history, a failed receiver is dead-lettered, a
//! silenced escalation is recorded but not paged, a step is never paged
//! twice, and the silence routes refuse whoever may not use them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{TimeDelta, Utc};
use posbon_api::ApiState;
use posbon_auth::{Role, ScopeItem};
use posbon_bus::subjects::DLQ_STREAM;
use posbon_bus::{Bus, ConsumerOptions, MemoryBus, default_streams};
use posbon_model::{
    AuditKind, Escalation, EscalationRecord, EscalationStatus, NotifyTier, RiskLevel,
};
use posbon_notify::{NotifyConfig, signature};
use posbon_store::{EscalationStoreExt as _, MemoryStore, Store};
use posbon_telemetry::Metrics;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

mod common;
use common::{config, escalation, publish_escalation, registry};

type Received = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A webhook endpoint: `/ok/...` answers 200, `/down/...` 500.
async fn hooks() -> (Received, String) {
    async fn hook(
        State(received): State<Received>,
        Path((answer, name)): Path<(String, String)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        received.lock().expect("lock").push((name, headers, body));
        if answer == "ok" {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route("/{answer}/{name}", axum::routing::post(hook))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (received, base)
}

struct Paging {
    state: Arc<ApiState>,
    bus: Arc<dyn Bus>,
    store: Store,
    app: axum::Router,
    shutdown: CancellationToken,
}

impl Drop for Paging {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn paging(base: &str, renotify_after: i64) -> Paging {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let store: Store = Arc::new(MemoryStore::new());
    let metrics = Metrics::new();
    let auth = posbon_auth::Auth::new(store.clone(), registry(), Default::default()).expect("auth");
    let notify: NotifyConfig = toml::from_str(&format!(
        r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/ok/ops"
        secret = "ops-key-0123456789abcdef0123456789abcdef"
        [[receivers]]
        name = "district"
        type = "webhook"
        url = "{base}/ok/district"
        secret = "district-key-0123456789abcdef0123456789abcdef"
        [[receivers]]
        name = "broken"
        type = "webhook"
        url = "{base}/down/broken"
        secret = "0123456789abcdef0123456789abcdef"
        [[routes]]
        receivers = ["ops"]
        [[routes]]
        receivers = ["district"]
        tier = ["district"]
        [[routes]]
        receivers = ["broken"]
        min_level = "critical"
        [retry]
        attempts = 2
        initial_backoff = "10ms"
        max_backoff = "10ms"
        timeout = "2s"
        "#
    ))
    .expect("notify config");
    let config = config(renotify_after);
    let state = ApiState::with_notify(
        config,
        bus.clone(),
        store.clone(),
        registry(),
        auth.clone(),
        &metrics,
        &notify,
    )
    .expect("state");
    let shutdown = CancellationToken::new();
    tokio::spawn(posbon_api::run_lifecycle(state.clone(), shutdown.clone()));
    // The paging consumer starts with what is published after it exists.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = posbon_api::routes(state.clone()).into_router(auth);
    Paging {
        state,
        bus,
        store,
        app,
        shutdown,
    }
}

impl Paging {
    async fn publish(&self, e: &Escalation) {
        publish_escalation(&*self.bus, e).await;
    }

    /// Waits until `done` holds for the escalation's record.
    async fn wait(&self, id: &str, done: impl Fn(&EscalationRecord) -> bool) -> EscalationRecord {
        for _ in 0..400 {
            if let Some(r) = self.store.get_escalation(id).await.expect("get")
                && done(&r)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let r = self.store.get_escalation(id).await.expect("get");
        panic!("escalation {id} never got there: {r:#?}");
    }

    async fn call(
        &self,
        role: Role,
        scope: Vec<ScopeItem>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (_, token) = self
            .state
            .auth
            .identities()
            .create_token(
                &format!("t-{}", posbon_auth::secret::random_hex(4)),
                role,
                scope,
                None,
                "test",
            )
            .await
            .expect("token");
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn deliveries(r: &EscalationRecord, kind: AuditKind) -> Vec<(String, u32)> {
    r.history
        .iter()
        .filter(|s| s.kind == kind)
        .map(|s| (s.receiver.clone().unwrap_or_default(), s.step.unwrap_or(0)))
        .collect()
}

#[tokio::test]
async fn openings_and_renotifications_page_their_routes_once() {
    let (received, base) = hooks().await;
    let p = paging(&base, 2).await;
    let e = escalation(5, 1, RiskLevel::High, vec![]);
    p.publish(&e).await;
    let r = p
        .wait(&e.id, |r| !deliveries(r, AuditKind::Notified).is_empty())
        .await;
    assert_eq!(deliveries(&r, AuditKind::Notified), [("ops".to_owned(), 1)]);
    let step = r.history.last().expect("step");
    assert_eq!(step.tier, Some(NotifyTier::MahallaInspector));
    assert_eq!(step.note.as_deref(), Some("delivered (webhook)"));
    {
        let received = received.lock().expect("lock");
        assert_eq!(received.len(), 1);
        let (name, headers, body) = &received[0];
        assert_eq!(name, "ops");
        assert_eq!(
            headers["x-posbon-signature"].to_str().expect("ascii"),
            signature(b"ops-key-0123456789abcdef0123456789abcdef", body)
        );
        let json: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(json["alerts"][0]["labels"]["escalation_id"], e.id.as_str());
        assert_eq!(json["alerts"][0]["labels"]["tier"], "mahalla_inspector");
    }

    // Nobody acknowledges: the district tier is paged, and ops again.
    let r = p
        .wait(&e.id, |r| {
            deliveries(r, AuditKind::Notified)
                .iter()
                .any(|(n, _)| n == "district")
        })
        .await;
    let renotify = r
        .history
        .iter()
        .position(|s| s.kind == AuditKind::Renotify)
        .expect("renotified") as u32
        + 1;
    let r = p
        .wait(&e.id, |r| {
            deliveries(r, AuditKind::Notified).contains(&("ops".to_owned(), renotify))
        })
        .await;
    let notified = deliveries(&r, AuditKind::Notified);
    assert!(
        notified.contains(&("district".to_owned(), renotify)),
        "{notified:?}"
    );
    {
        let received = received.lock().expect("lock");
        let district: Vec<_> = received
            .iter()
            .filter(|(n, _, _)| n == "district")
            .collect();
        assert_eq!(district.len(), 1);
        let (_, headers, body) = district[0];
        assert_eq!(
            headers["x-posbon-signature"].to_str().expect("ascii"),
            signature(b"district-key-0123456789abcdef0123456789abcdef", body)
        );
        let json: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(json["alerts"][0]["labels"]["tier"], "district");
    }

    // Paging the same step again (a redelivery) sends nothing.
    let before = received.lock().expect("lock").len();
    let notifier = p.state.notifier.clone().expect("notifier");
    posbon_api::notify::page(&p.state.lifecycle, &notifier, &registry(), &e.id, 1)
        .await
        .expect("page");
    posbon_api::notify::page(&p.state.lifecycle, &notifier, &registry(), &e.id, renotify)
        .await
        .expect("page");
    assert_eq!(
        received.lock().expect("lock").len(),
        before,
        "nothing paged twice"
    );
}

#[tokio::test]
async fn a_failed_receiver_is_recorded_and_dead_lettered() {
    let (received, base) = hooks().await;
    let p = paging(&base, 3600).await;
    let e = escalation(7, 1, RiskLevel::Critical, vec![]);
    p.publish(&e).await;
    let r = p
        .wait(&e.id, |r| {
            !deliveries(r, AuditKind::NotifyFailed).is_empty()
        })
        .await;
    assert_eq!(
        deliveries(&r, AuditKind::NotifyFailed),
        [("broken".to_owned(), 1)]
    );
    let failed = r
        .history
        .iter()
        .find(|s| s.kind == AuditKind::NotifyFailed)
        .expect("failed");
    let note = failed.note.as_deref().expect("note");
    assert!(
        note.contains("after 2 attempts") && note.contains("500"),
        "{note}"
    );
    let r = p
        .wait(&e.id, |r| !deliveries(r, AuditKind::Notified).is_empty())
        .await;
    assert_eq!(deliveries(&r, AuditKind::Notified), [("ops".to_owned(), 1)]);
    let attempts = received
        .lock()
        .expect("lock")
        .iter()
        .filter(|(n, _, _)| n == "broken")
        .count();
    assert_eq!(attempts, 2, "the retry policy's attempts");
    let dlq = p
        .bus
        .consumer(DLQ_STREAM, "t", vec![], ConsumerOptions::default())
        .await
        .expect("dlq");
    let dead = dlq.fetch(10, Duration::from_secs(2)).await.expect("fetch");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subject, "posbon.dlq.notify");
    let letter: Value = serde_json::from_slice(&dead[0].payload).expect("json");
    assert_eq!(letter["receiver"], "broken");
    assert_eq!(letter["escalation_id"], e.id.as_str());
}

#[tokio::test]
async fn a_silenced_escalation_is_recorded_but_not_paged() {
    let (received, base) = hooks().await;
    let p = paging(&base, 3600).await;
    let e = escalation(9, 1, RiskLevel::High, vec![]);
    let (status, silence) = p
        .call(
            Role::Supervisor,
            vec![],
            "POST",
            "/v1/silences",
            Some(json!({
                "mahalla": [e.mahalla_id],
                "ends_at": (Utc::now() + TimeDelta::hours(2)).to_rfc3339(),
                "reason": "camera maintenance",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{silence}");
    let id = silence["id"].as_str().expect("id").to_owned();
    p.publish(&e).await;
    let r = p
        .wait(&e.id, |r| !deliveries(r, AuditKind::Silenced).is_empty())
        .await;
    assert_eq!(
        r.status(),
        EscalationStatus::Open,
        "recorded and shown as always"
    );
    assert_eq!(deliveries(&r, AuditKind::Silenced), [("ops".to_owned(), 1)]);
    let note = r.history.last().and_then(|s| s.note.clone()).expect("note");
    assert!(
        note.contains(&id) && note.contains("camera maintenance"),
        "{note}"
    );
    assert!(received.lock().expect("lock").is_empty(), "nobody paged");

    // Listed, then ended; an ended silence cannot end again.
    let (status, list) = p
        .call(Role::Operator, vec![], "GET", "/v1/silences", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["id"], id.as_str());
    let (status, ended) = p
        .call(
            Role::Supervisor,
            vec![],
            "DELETE",
            &format!("/v1/silences/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert!(ended["expired_by"].is_string());
    let (status, again) = p
        .call(
            Role::Supervisor,
            vec![],
            "DELETE",
            &format!("/v1/silences/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (_, list) = p
        .call(Role::Operator, vec![], "GET", "/v1/silences", None)
        .await;
    assert_eq!(list, json!([]), "ended silences are left out");
    let (_, list) = p
        .call(Role::Operator, vec![], "GET", "/v1/silences?all=true", None)
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn silence_routes_refuse_whoever_may_not() {
    let (_, base) = hooks().await;
    let p = paging(&base, 3600).await;
    let reg = registry();
    let m = &reg.mahallas()[0];
    let other = reg
        .mahallas()
        .iter()
        .find(|o| o.district_id != m.district_id)
        .expect("another district");
    let ends_at = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
    let body = |matchers: Value| {
        let mut b = matchers;
        b["ends_at"] = json!(ends_at);
        b["reason"] = json!("works");
        Some(b)
    };
    let district = vec![ScopeItem::District(m.district_id.clone())];
    // Roles without manage_silences.
    for role in [Role::Operator, Role::Analyst, Role::Producer] {
        let (status, answer) = p
            .call(
                role,
                vec![],
                "POST",
                "/v1/silences",
                body(json!({"mahalla": [m.id]})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {answer}");
        let (status, _) = p
            .call(role, vec![], "DELETE", "/v1/silences/sil-0", None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    let (status, _) = p
        .call(Role::Producer, vec![], "GET", "/v1/silences", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A district supervisor: inside the district only, never the country.
    let (status, answer) = p
        .call(
            Role::Supervisor,
            district.clone(),
            "POST",
            "/v1/silences",
            body(json!({"mahalla": [other.id]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["code"], "out_of_scope");
    let (status, answer) = p
        .call(
            Role::Supervisor,
            district.clone(),
            "POST",
            "/v1/silences",
            body(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = p
        .call(
            Role::Supervisor,
            district.clone(),
            "POST",
            "/v1/silences",
            body(json!({"mahalla": [m.id], "level": ["high"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // What does not exist, and what is malformed, is named.
    let (status, answer) = p
        .call(
            Role::Supervisor,
            vec![],
            "POST",
            "/v1/silences",
            body(json!({"mahalla": ["nowhere"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .expect("error")
            .contains("mahalla:nowhere"),
        "{answer}"
    );
    let (status, answer) = p
        .call(
            Role::Supervisor,
            vec![],
            "POST",
            "/v1/silences",
            Some(json!({"ends_at": "yesterday", "reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"].as_str().expect("error").contains("ends_at"),
        "{answer}"
    );
    // Another district's supervisor neither sees nor ends it.
    let elsewhere = vec![ScopeItem::District(other.district_id.clone())];
    let (_, list) = p
        .call(
            Role::Supervisor,
            elsewhere.clone(),
            "GET",
            "/v1/silences",
            None,
        )
        .await;
    assert_eq!(list, json!([]));
    let (status, _) = p
        .call(
            Role::Supervisor,
            elsewhere,
            "DELETE",
            &format!("/v1/silences/{}", answer_id(&p, &district).await),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn answer_id(p: &Paging, scope: &[ScopeItem]) -> String {
    let (_, list) = p
        .call(
            Role::Supervisor,
            scope.to_vec(),
            "GET",
            "/v1/silences",
            None,
        )
        .await;
    list[0]["id"].as_str().expect("id").to_owned()
}

/// A re-notification stored but never published on ALERTS (the lifecycle
/// gave up, or died between storing and publishing) is paged by the sweep.
#[tokio::test]
async fn a_step_never_published_is_paged_by_the_sweep() {
    let (received, base) = hooks().await;
    let p = paging(&base, 3600).await;
    let e = escalation(9, 1, RiskLevel::High, vec![]);
    p.publish(&e).await;
    let mut r = p
        .wait(&e.id, |r| !deliveries(r, AuditKind::Notified).is_empty())
        .await;
    // The district tier's step, written straight to the store: no message.
    assert!(r.renotify_if_due(Utc::now(), chrono::TimeDelta::zero()));
    // Made ten minutes ago, long enough for its message to have been paged.
    if let Some(last) = r.history.last_mut() {
        last.at = Utc::now() - chrono::TimeDelta::minutes(10);
    }
    p.store.put_escalation(&r).await.expect("put");
    let step = u32::try_from(r.history.len()).expect("steps");
    let notifier = p.state.notifier.clone().expect("notifier");
    let lifecycle = &p.state.lifecycle;
    // Too recent for the sweep: the message may still be on its way.
    let paged =
        posbon_api::notify::sweep(lifecycle, &notifier, &registry(), Duration::from_secs(3600))
            .await
            .expect("sweep");
    assert_eq!(paged, 0);
    let paged =
        posbon_api::notify::sweep(lifecycle, &notifier, &registry(), Duration::from_secs(60))
            .await
            .expect("sweep");
    assert_eq!(paged, 1);
    let r = p
        .wait(&e.id, |r| {
            deliveries(r, AuditKind::Notified).contains(&("district".to_owned(), step))
        })
        .await;
    assert!(deliveries(&r, AuditKind::Notified).contains(&("ops".to_owned(), step)));
    // Swept again: every receiver has its outcome, nothing is paged twice.
    let before = received.lock().expect("lock").len();
    let paged =
        posbon_api::notify::sweep(lifecycle, &notifier, &registry(), Duration::from_secs(60))
            .await
            .expect("sweep");
    assert_eq!(paged, 0);
    assert_eq!(received.lock().expect("lock").len(), before);
}
