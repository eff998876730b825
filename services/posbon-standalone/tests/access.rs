//! Who may do what over HTTP, on every route `posbon standalone` serves
//! (the separate services serve subsets of the same routes with the same
//! rules), and what a caller limited to one district sees.
//!
//! The role × route matrix is generated from the routes' own rules
//! ([`posbon_standalone::Served::routes`]): a route added without a rule is
//! refused by the guard, and one added with a rule is called here by every
//! identity.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use chrono::{FixedOffset, TimeDelta, TimeZone as _, Utc};
use futures::StreamExt as _;
use posbon_auth::{Access, Auth, Permission, Role, ScopeItem};
use posbon_bus::subjects::{Place, alert_subject};
use posbon_bus::{Bus, Headers, MemoryBus, default_streams};
use posbon_geo::Registry;
use posbon_model::{Escalation, EscalationRecord, EscalationStatus, Event, RiskLevel};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimBody, SimRegistry, city_registry};
use posbon_store::{EscalationStoreExt as _, EventStoreExt as _, MemoryStore, Store};
use posbon_telemetry::Metrics;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const DATE: &str = "2026-05-01";

struct World {
    app: Router,
    rules: Vec<posbon_auth::http::Rule>,
    registry: Arc<Registry>,
    auth: Arc<Auth>,
    /// The district of the limited identities.
    district: String,
    /// One escalation per mahalla.
    escalations: Vec<Escalation>,
}

fn escalation(registry: &Registry, n: usize) -> Escalation {
    let m = &registry.mahallas()[n];
    let t = Utc
        .with_ymd_and_hms(2026, 5, 1, 9, 0, 0)
        .single()
        .expect("time")
        + TimeDelta::minutes(n as i64);
    Escalation {
        id: Escalation::deterministic_id(&m.id, "intensity", 1),
        mahalla_id: m.id.clone(),
        district_id: m.district_id.clone(),
        region_id: m.region_id.clone(),
        level: RiskLevel::High,
        previous_level: RiskLevel::Normal,
        score: 5.0,
        rule: "intensity".into(),
        measure: None,
        counts: Default::default(),
        hot_cells: vec![],
        evidence: vec![],
        window_start: t,
        window_end: t,
        opened_at: t,
        status: EscalationStatus::Open,
    }
}

async fn world() -> World {
    let city = city_registry(&CityOptions {
        seed: 11,
        mahallas: 60,
    })
    .expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let store: Store = Arc::new(MemoryStore::new());
    // A day of simulated events.
    let sim = Arc::new(SimRegistry::from_generated(&city).expect("sim"));
    let start = FixedOffset::east_opt(5 * 3600)
        .expect("offset")
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("time");
    let stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 3,
            rate_per_hour: 200.0,
            duration: TimeDelta::days(1),
            start,
            bad_fraction: 0.0,
            situations: Default::default(),
        },
    )
    .expect("stream");
    let mut events = Vec::new();
    for item in stream {
        if let SimBody::Valid { event, .. } = item.body {
            let mut event = *event;
            if let Event::FraudFlag(f) = &mut event {
                f.pseudonymise(
                    &posbon_model::PseudonymKeys::single("k1", b"test key").expect("key"),
                );
            }
            let at = event.occurred_at().with_timezone(&Utc) + TimeDelta::seconds(2);
            events.push(posbon_sim::enrich(&registry, event, at).expect("enriched"));
        }
    }
    for chunk in events.chunks(1000) {
        store.put_events(chunk).await.expect("events");
    }
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    bus.ensure_streams(&default_streams())
        .await
        .expect("streams");
    let escalations: Vec<Escalation> = (0..registry.mahallas().len())
        .map(|n| escalation(&registry, n))
        .collect();
    for e in &escalations {
        store
            .put_escalation(&EscalationRecord::opened(e.clone(), 1, e.opened_at))
            .await
            .expect("record");
        let subject = alert_subject(Place::new(&e.region_id, &e.district_id, &e.mahalla_id))
            .expect("subject");
        bus.publish(
            &subject,
            Headers::new().with_msg_id(&e.id),
            Bytes::from(serde_json::to_vec(e).expect("json")),
        )
        .await
        .expect("alert");
    }

    let mut config = posbon_standalone::load_config(None, &Default::default()).expect("config");
    config.ingest.pseudonym_key_file = None;
    config.ingest.pseudonym_key = Some(posbon_auth::secret::random_hex(32));
    let metrics = Metrics::new();
    let auth = Auth::new(store.clone(), registry.clone(), config.auth.clone()).expect("auth");
    let ingest = posbon_ingest::build(&config.ingest, bus.clone(), registry.clone(), &metrics)
        .expect("ingest");
    let api = posbon_api::ApiState::new(
        config.api.clone(),
        bus.clone(),
        store.clone(),
        registry.clone(),
        auth.clone(),
        &metrics,
    )
    .expect("api");
    let sql = Arc::new(
        posbon_sql::SqlEngine::new(store.clone(), registry.clone(), Default::default())
            .expect("sql"),
    );
    let reporter = Arc::new(
        posbon_reporter::Reporter::new(
            store.clone(),
            registry.clone(),
            config.reporter.sql.clone(),
        )
        .expect("reporter"),
    );
    reporter
        .generate(DATE.parse().expect("date"))
        .await
        .expect("report");
    let guarded = posbon_standalone::Served {
        health: posbon_api::health(&metrics, bus.clone(), store.clone(), &registry),
        auth: auth.clone(),
        ingest,
        ingest_config: config.ingest.clone(),
        api,
        sql,
        reporter,
        bus,
    }
    .routes();
    let rules = guarded.rules().to_vec();
    let district = registry
        .districts()
        .iter()
        .max_by_key(|d| d.mahallas.len())
        .expect("a district")
        .id
        .clone();
    World {
        app: guarded.into_router(auth.clone()),
        rules,
        registry,
        auth,
        district,
        escalations,
    }
}

impl World {
    async fn token(&self, name: &str, role: Role, scope: Vec<ScopeItem>) -> String {
        self.auth
            .identities()
            .create_token(name, role, scope, None, "test")
            .await
            .expect("token")
            .1
    }

    fn in_district(&self, e: &Escalation) -> bool {
        e.district_id == self.district
    }
}

/// What came back: status, the body (not read for event streams), and
/// whether a 401 carried its challenge.
struct Answer {
    status: StatusCode,
    body: Value,
    empty: bool,
    challenge: bool,
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let challenge = response.headers().contains_key(header::WWW_AUTHENTICATE);
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    if streaming {
        return Answer {
            status,
            body: Value::Null,
            empty: false,
            challenge,
        };
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
        .await
        .expect("body");
    Answer {
        status,
        empty: bytes.is_empty(),
        body: serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        challenge,
    }
}

impl Answer {
    /// Refused by the guard (not by the handler).
    fn refused_by_guard(&self) -> bool {
        (self.status == StatusCode::UNAUTHORIZED && self.body["code"] == "unauthorized")
            || (self.status == StatusCode::FORBIDDEN && self.body["code"] == "forbidden")
    }

    /// Answered by the route's handler (not the router's 404/405).
    fn handled(&self) -> bool {
        let by_router = self.empty
            && matches!(
                self.status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            );
        !self.refused_by_guard() && !by_router
    }
}

/// A request for `rule` with its path parameters filled in.
fn request_for(world: &World, rule: &posbon_auth::http::Rule) -> (String, Option<String>) {
    let e = world
        .escalations
        .iter()
        .find(|e| world.in_district(e))
        .expect("an escalation in the district");
    let uri = rule
        .path
        .replace("{id}/{action}", &format!("{}/acknowledge", e.id))
        .replace("/v1/escalations/{id}", &format!("/v1/escalations/{}", e.id))
        .replace(
            "/v1/mahallas/{id}",
            &format!("/v1/mahallas/{}", e.mahalla_id),
        )
        .replace("{file}", "app.css")
        .replace("/v1/tokens/{id}", "/v1/tokens/000000000000")
        .replace("/v1/silences/{id}", "/v1/silences/sil-0000000000000000")
        .replace("{name}", "nobody");
    assert!(
        !uri.contains('{'),
        "a path parameter of {} is not filled in",
        rule.path
    );
    let uri = if uri.starts_with("/v1/reports/daily")
        && uri != "/v1/reports/daily/dates"
        && rule.method == Method::GET
    {
        format!("{uri}?date={DATE}&scope=nation")
    } else {
        uri
    };
    let body = (rule.method == Method::POST).then(|| match rule.path.as_str() {
        "/v1/sql" => r#"{"query": "SELECT 1 AS one"}"#.to_owned(),
        "/v1/escalations/{id}/{action}" => r#"{"note": "matrix"}"#.to_owned(),
        _ => "{}".to_owned(),
    });
    (uri, body)
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    BadToken,
    Expired,
    Role(Role),
}

fn allowed(access: Access, who: Who) -> bool {
    match (access, who) {
        (Access::Public, _) => true,
        (_, Who::Nobody | Who::BadToken | Who::Expired) => false,
        (Access::Authenticated, Who::Role(_)) => true,
        (Access::Metrics, Who::Role(r)) => r.may(Permission::ReadMetrics),
        (Access::Permission(p), Who::Role(r)) => r.may(p),
    }
}

#[tokio::test]
async fn every_route_answers_exactly_the_roles_it_grants() {
    let world = world().await;
    let mut identities: Vec<(Who, Option<String>)> = vec![
        (Who::Nobody, None),
        (
            Who::BadToken,
            Some("Bearer psb_000000000000_nothing".to_owned()),
        ),
    ];
    let (expired_record, expired) = world
        .auth
        .identities()
        .create_token(
            "old",
            Role::Admin,
            vec![],
            Some(TimeDelta::seconds(1)),
            "test",
        )
        .await
        .expect("token");
    assert!(expired_record.expires_at.is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    identities.push((Who::Expired, Some(format!("Bearer {expired}"))));
    for role in Role::ALL {
        let token = world.token(&format!("matrix-{role}"), role, vec![]).await;
        identities.push((Who::Role(role), Some(format!("Bearer {token}"))));
    }
    let mut paths = BTreeSet::new();
    let mut checked = 0;
    for rule in &world.rules {
        paths.insert(rule.path.clone());
        let (uri, body) = request_for(&world, rule);
        for (who, header) in &identities {
            let answer = call(
                &world.app,
                rule.method.clone(),
                &uri,
                header.as_deref(),
                body.as_deref(),
            )
            .await;
            let context = format!(
                "{} {uri} as {who:?}: {} {}",
                rule.method, answer.status, answer.body
            );
            if allowed(rule.access, *who) {
                assert!(
                    answer.handled(),
                    "should be answered by the route: {context}"
                );
            } else {
                match who {
                    Who::Nobody | Who::BadToken | Who::Expired => {
                        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{context}");
                        assert!(answer.challenge, "401 without WWW-Authenticate: {context}");
                    }
                    Who::Role(_) => {
                        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{context}");
                        assert_eq!(answer.body["code"], "forbidden", "{context}");
                    }
                }
                // One error shape: an RFC 9457 problem document.
                assert_eq!(answer.body["type"], "about:blank", "{context}");
                assert_eq!(answer.body["status"], answer.status.as_u16(), "{context}");
                assert!(answer.body["detail"].is_string(), "{context}");
            }
            checked += 1;
        }
    }
    // Every route the process serves was in the matrix.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/login",
        "/login",
        "/v1/me",
        "/v1/logout",
        "/v1/tokens",
        "/v1/tokens/{id}",
        "/v1/users",
        "/v1/users/{name}",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/events",
        "/v1/feed",
        "/v1/feed/ws",
        "/v1/escalations",
        "/v1/escalations/{id}",
        "/v1/escalations/{id}/{action}",
        "/v1/mahallas",
        "/v1/mahallas/{id}",
        "/v1/registry",
        "/v1/sources/precision",
        "/v1/silences",
        "/v1/silences/{id}",
        "/",
        "/static/{file}",
        "/v1/risk",
        "/v1/sql",
        "/v1/reports/daily",
        "/v1/reports/daily/dates",
        "/v1/reports/daily/mahallas",
        "/i18n.json",
    ] {
        assert!(paths.contains(path), "{path} has no rule");
    }
    assert_eq!(paths.len(), 33, "a route was added: list it above");
    assert!(checked >= 33 * 8);
    // A method that no rule declares is the router's 405, whoever asks.
    let admin = identities.last().and_then(|(_, h)| h.clone());
    let answer = call(
        &world.app,
        Method::DELETE,
        "/v1/sql",
        admin.as_deref(),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn sql_count(world: &World, token: &str, query: &str) -> i64 {
    let answer = call(
        &world.app,
        Method::POST,
        "/v1/sql",
        Some(&format!("Bearer {token}")),
        Some(&json!({ "query": query }).to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
    answer.body["rows"][0][0].as_i64().expect("a count")
}

#[tokio::test]
async fn a_district_caller_sees_exactly_the_district() {
    let world = world().await;
    let d = world.district.clone();
    let scope = vec![ScopeItem::District(d.clone())];
    let admin = world.token("admin", Role::Admin, vec![]).await;
    let supervisor = world.token("sup-d", Role::Supervisor, scope.clone()).await;
    let operator = world.token("op-d", Role::Operator, scope.clone()).await;
    let analyst = world.token("analyst", Role::Analyst, vec![]).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let in_d: Vec<&Escalation> = world
        .escalations
        .iter()
        .filter(|e| world.in_district(e))
        .collect();
    let out = world
        .escalations
        .iter()
        .find(|e| !world.in_district(e))
        .expect("an escalation elsewhere");
    assert!(!in_d.is_empty() && in_d.len() < world.escalations.len());

    // Escalation list: the national list filtered to the district.
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let list = "/v1/escalations?limit=1000";
    let all = call(&world.app, Method::GET, list, Some(&bearer(&admin)), None).await;
    let mine = call(
        &world.app,
        Method::GET,
        list,
        Some(&bearer(&supervisor)),
        None,
    )
    .await;
    let want: BTreeSet<String> = all
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["district_id"] == d.as_str())
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids(&mine.body), want);
    assert_eq!(want.len(), in_d.len());

    // One escalation outside: 403 to read or act; inside: the step is the caller's.
    for (method, uri) in [
        (Method::GET, format!("/v1/escalations/{}", out.id)),
        (
            Method::POST,
            format!("/v1/escalations/{}/acknowledge", out.id),
        ),
    ] {
        let body = (method == Method::POST).then_some("{}");
        let a = call(&world.app, method, &uri, Some(&bearer(&operator)), body).await;
        assert_eq!(
            (a.status, a.body["code"].clone()),
            (StatusCode::FORBIDDEN, json!("out_of_scope")),
            "{uri}"
        );
    }
    let a = call(
        &world.app,
        Method::POST,
        &format!("/v1/escalations/{}/acknowledge", in_d[0].id),
        Some(&bearer(&operator)),
        Some(r#"{"note": "on my way"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["history"][1]["by"], "token:op-d", "{}", a.body);
    // The body cannot name somebody else.
    let a = call(
        &world.app,
        Method::POST,
        &format!("/v1/escalations/{}/resolve", in_d[0].id),
        Some(&bearer(&operator)),
        Some(r#"{"by": "posbon"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);

    // The map and the registry.
    let map = call(
        &world.app,
        Method::GET,
        "/v1/mahallas",
        Some(&bearer(&operator)),
        None,
    )
    .await;
    let features: BTreeSet<String> = map.body["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    let district = world.registry.district(&d).expect("district");
    let expected: BTreeSet<String> = district
        .mahallas
        .iter()
        .map(|m| world.registry.mahalla(*m).id.clone())
        .collect();
    assert_eq!(features, expected);
    let reg = call(
        &world.app,
        Method::GET,
        "/v1/registry",
        Some(&bearer(&operator)),
        None,
    )
    .await;
    assert_eq!(reg.body["mahallas"], expected.len());
    let other = world
        .registry
        .mahallas()
        .iter()
        .find(|m| m.district_id != d)
        .expect("elsewhere");
    let a = call(
        &world.app,
        Method::GET,
        &format!("/v1/mahallas/{}", other.id),
        Some(&bearer(&operator)),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // SQL: counts are the district's, whatever the text asks for.
    for table in ["events", "incidents", "escalations"] {
        let national = sql_count(
            &world,
            &admin,
            &format!("SELECT count(*) FROM {table} WHERE district_id = '{d}'"),
        )
        .await;
        let scoped = sql_count(
            &world,
            &supervisor,
            &format!("SELECT count(*) FROM {table}"),
        )
        .await;
        let escape = sql_count(
            &world,
            &supervisor,
            &format!("SELECT count(*) FROM {table} WHERE district_id <> '{d}' OR 1 = 1"),
        )
        .await;
        assert!(national > 0, "{table}");
        assert_eq!((scoped, escape), (national, national), "{table}");
    }
    // Sensitive columns: an analyst reads NULLs, a supervisor the values.
    let q = "SELECT count(description) FROM incidents";
    assert_eq!(sql_count(&world, &analyst, q).await, 0);
    assert!(sql_count(&world, &admin, q).await > 0);
    let a = call(
        &world.app,
        Method::POST,
        "/v1/sql",
        Some(&bearer(&operator)),
        Some(r#"{"query": "SELECT 1"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "operators run no SQL");

    // The report: the district's view, never the nation's.
    let a = call(
        &world.app,
        Method::GET,
        &format!("/v1/reports/daily?date={DATE}&scope=nation"),
        Some(&bearer(&supervisor)),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("out_of_scope"))
    );
    let mine = call(
        &world.app,
        Method::GET,
        &format!("/v1/reports/daily?date={DATE}"),
        Some(&bearer(&supervisor)),
        None,
    )
    .await;
    let theirs = call(
        &world.app,
        Method::GET,
        &format!("/v1/reports/daily?date={DATE}&scope=district:{d}"),
        Some(&bearer(&admin)),
        None,
    )
    .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body, theirs.body);

    // The feed from the start: the district's escalations and nothing else.
    let request = Request::get("/v1/feed?since=0")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::AUTHORIZATION, bearer(&operator))
        .body(Body::empty())
        .expect("request");
    let response = world.app.clone().oneshot(request).await.expect("feed");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let seen = |text: &str| text.matches("event: opened").count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen(&text) < in_d.len() {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the district's escalations in time")
            .expect("more")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Anything else would have come among them: wait a little more.
    if let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(500), body.next()).await
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Every escalation delivered (opened, and the update of the one acted
    // on) is the district's, and every one of the district's came.
    let mut delivered: BTreeSet<(String, String)> = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let v: Value = serde_json::from_str(line).expect("json");
        delivered.insert((
            v["district_id"].as_str().expect("district").to_owned(),
            v["id"].as_str().expect("id").to_owned(),
        ));
    }
    let want: BTreeSet<(String, String)> = in_d
        .iter()
        .map(|e| (e.district_id.clone(), e.id.clone()))
        .collect();
    assert_eq!(delivered, want);
    let a = call(
        &world.app,
        Method::GET,
        &format!("/v1/feed?district={}", other.district_id),
        Some(&bearer(&operator)),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // All of it is in the audit log, whole.
    let audit = call(
        &world.app,
        Method::GET,
        "/v1/audit?limit=5000",
        Some(&bearer(&admin)),
        None,
    )
    .await;
    let records = audit.body["records"].as_array().expect("records");
    let acted = records.iter().any(|r| {
        r["action"] == "escalation_action" && r["actor"] == "token:op-d" && r["outcome"] == "ok"
    });
    let escape_logged = records.iter().any(|r| {
        r["action"] == "sql"
            && r["actor"] == "token:sup-d"
            && r["detail"]["query"]
                .as_str()
                .is_some_and(|q| q.contains("OR 1 = 1"))
    });
    let report_refused = records
        .iter()
        .any(|r| r["action"] == "report_read" && r["outcome"] == "refused");
    assert!(acted && escape_logged && report_refused, "{}", audit.body);
    let verify = call(
        &world.app,
        Method::GET,
        "/v1/audit/verify",
        Some(&bearer(&admin)),
        None,
    )
    .await;
    assert_eq!(verify.body["ok"], true, "{}", verify.body);
}

/// The demo's printed link logs in a supervisor of the whole country, so
/// every view of the page can be tried; a demo operator left with another
/// role by an older demo is made again.
#[tokio::test]
async fn the_demo_operator_may_use_every_view() {
    let city = city_registry(&CityOptions {
        seed: 2,
        mahallas: 12,
    })
    .expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let store: Store = Arc::new(MemoryStore::new());
    let auth = Auth::new(store, registry, Default::default()).expect("auth");
    let data = std::env::temp_dir().join(format!("posbon-demo-login-{}", std::process::id()));
    std::fs::create_dir_all(&data).expect("dir");
    auth.identities()
        .add_user(
            posbon_standalone::demo::DEMO_OPERATOR,
            Role::Operator,
            Vec::new(),
            "an older demo's password",
        )
        .await
        .expect("older user");
    let login = posbon_standalone::demo::demo_login(&auth, &data)
        .await
        .expect("login");
    let user = auth
        .identities()
        .user(&login.user)
        .await
        .expect("user")
        .expect("made");
    assert_eq!(user.role, Role::Supervisor);
    assert!(user.scope.is_empty(), "the whole country");
    for p in [
        Permission::ReadFeed,
        Permission::ActEscalations,
        Permission::ReadReports,
        Permission::ReadSql,
    ] {
        assert!(user.role.may(p), "{p:?}");
    }
    let password = std::fs::read_to_string(&login.password_file).expect("password file");
    let logged_in = auth
        .identities()
        .login(&login.user, password.trim(), Utc::now())
        .await
        .expect("login");
    assert!(logged_in.is_ok(), "the new password logs in");
    let _ = std::fs::remove_dir_all(&data);
}

/// Focus-group counts (victims who are minors, domestic cases, ...) can
/// identify a victim in a small area: a caller without sensitive access
/// reads a mahalla's small count as "<3" in the report, and no focus-group
/// figure over SQL; a supervisor reads them all.
#[tokio::test]
async fn small_focus_group_counts_are_withheld_from_callers_without_sensitive_access() {
    let world = world().await;
    let d = world.district.clone();
    let supervisor = world.token("sup-n", Role::Supervisor, vec![]).await;
    let analyst = world.token("analyst", Role::Analyst, vec![]).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let uri = format!("/v1/reports/daily?date={DATE}&scope=district:{d}&format=json");
    let full = call(
        &world.app,
        Method::GET,
        &uri,
        Some(&bearer(&supervisor)),
        None,
    )
    .await;
    let limited = call(&world.app, Method::GET, &uri, Some(&bearer(&analyst)), None).await;
    assert_eq!(
        (full.status, limited.status),
        (StatusCode::OK, StatusCode::OK)
    );
    let rows =
        |v: &Value| -> Vec<Value> { v["focus_groups"].as_array().expect("focus groups").clone() };
    let (full_rows, limited_rows) = (rows(&full.body), rows(&limited.body));
    assert_eq!(full_rows.len(), limited_rows.len());
    assert!(full_rows.len() > 7, "the district and its mahallas");
    let (mut small, mut shown) = (0, 0);
    for (f, l) in full_rows.iter().zip(&limited_rows) {
        assert_eq!(
            (&f["scope_id"], &f["focus_group"]),
            (&l["scope_id"], &l["focus_group"])
        );
        let n = f["offences"]
            .as_i64()
            .expect("a supervisor reads every count");
        if l["scope"] == "mahalla" {
            // a mahalla's baselines and z scores never, its count from 3 on
            assert!(
                l["baseline7"].is_null() && l["z7"].is_null() && l["baseline28"].is_null(),
                "{l}"
            );
            if n < 3 {
                assert!(l["offences"].is_null(), "{l}");
                assert_eq!(l["fewer_than"], 3, "{l}");
                small += 1;
                continue;
            }
        }
        if let Some(shown_n) = l["offences"].as_i64() {
            assert_eq!(shown_n, n);
            shown += 1;
        } else {
            // withheld so that a small count beside it does not follow
            // from the district's total
            assert_eq!(l["withheld"], true, "{l}");
        }
    }
    assert!(small > 0 && shown > 0, "{small} small, {shown} shown");
    let csv = call(
        &world.app,
        Method::GET,
        &uri.replace("format=json", "format=csv"),
        Some(&bearer(&analyst)),
        None,
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    let csv = csv.body.as_str().expect("csv text");
    assert!(csv.contains(",<3,"), "{csv}");

    // Over SQL: the figures of the focus groups are NULL to the analyst.
    for (query, table) in [
        (
            "SELECT count(*) FROM daily_report_focus_groups WHERE offences IS NOT NULL",
            "daily_report_focus_groups",
        ),
        (
            "SELECT count(*) FROM mahalla_days WHERE victim_woman IS NOT NULL",
            "mahalla_days",
        ),
    ] {
        assert!(sql_count(&world, &supervisor, query).await > 0, "{table}");
        assert_eq!(sql_count(&world, &analyst, query).await, 0, "{table}");
    }
    assert!(
        sql_count(
            &world,
            &analyst,
            "SELECT count(*) FROM daily_report_focus_groups"
        )
        .await
            > 0,
        "the rows stay, without their figures"
    );
}
