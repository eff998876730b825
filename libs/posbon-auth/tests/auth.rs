//! Identities, the audit chain and the guard's browser protections, over the
//! in-memory store and the simulated registry.

use posbon_model::Span;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::get;
use chrono::{TimeDelta, Utc};
use posbon_auth::{
    Access, Auth, AuthConfig, Caller, Guarded, Permission, Role, ScopeItem, TokenCheck,
};
use posbon_store::{MemoryStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn registry() -> Arc<posbon_geo::Registry> {
    static REGISTRY: std::sync::OnceLock<Arc<posbon_geo::Registry>> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| Arc::new(posbon_sim::load_registry(None).expect("registry")))
        .clone()
}

fn auth_over(store: Store, config: AuthConfig) -> Arc<Auth> {
    Auth::new(store, registry(), config).expect("auth")
}

fn auth() -> (Arc<Auth>, Store) {
    let store: Store = Arc::new(MemoryStore::new());
    (auth_over(store.clone(), AuthConfig::default()), store)
}

#[tokio::test]
async fn tokens_are_checked_expire_and_are_revoked() {
    let (auth, store) = auth();
    let ids = auth.identities();
    assert!(ids.is_empty().await.expect("empty"));
    let (record, token) = ids
        .create_token("grafana", Role::Analyst, vec![], None, "admin")
        .await
        .expect("token");
    assert!(token.starts_with("psb_"));
    let now = Utc::now();
    assert_eq!(
        ids.check_token(&token, now).await.expect("check"),
        TokenCheck::Valid(record.clone())
    );
    // The store holds the hash only.
    let (start, end) = posbon_store::keys::prefix_range(&[posbon_store::keys::IDENTITY]);
    let raw = store.scan(&start, &end, 100).await.expect("scan");
    let secret = token.rsplit('_').next().expect("secret");
    assert!(
        raw.iter()
            .all(|(_, v)| !String::from_utf8_lossy(v).contains(secret))
    );
    // A changed secret, a made-up id, and garbage are invalid.
    let mut wrong = token.clone();
    wrong.pop();
    wrong.push(if token.ends_with('0') { '1' } else { '0' });
    for bad in [wrong.as_str(), "psb_000000000000_00", "Bearer", ""] {
        assert_eq!(
            ids.check_token(bad, now).await.expect("check"),
            TokenCheck::Invalid,
            "{bad}"
        );
    }
    // Expiry.
    let (_, short) = ids
        .create_token(
            "temp",
            Role::Operator,
            vec![],
            Some(TimeDelta::days(1)),
            "admin",
        )
        .await
        .expect("token");
    assert!(matches!(
        ids.check_token(&short, now).await.expect("check"),
        TokenCheck::Valid(_)
    ));
    assert_eq!(
        ids.check_token(&short, now + TimeDelta::days(2))
            .await
            .expect("check"),
        TokenCheck::Expired
    );
    // Listing shows no hashes; revoking ends it.
    let listed = ids.tokens().await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| t.secret_sha256.is_empty()));
    assert!(ids.revoke_token(&record.id).await.expect("revoke"));
    assert!(!ids.revoke_token(&record.id).await.expect("again"));
    assert_eq!(
        ids.check_token(&token, now).await.expect("check"),
        TokenCheck::Invalid
    );
    assert!(
        ids.create_token("bad name!", Role::Admin, vec![], None, "admin")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn passwords_sessions_throttling_and_links() {
    let (auth, _) = auth();
    let ids = auth.identities();
    assert!(
        ids.add_user("short", Role::Operator, vec![], "too-short")
            .await
            .is_err(),
        "passwords have 12 characters at least"
    );
    let user = ids
        .add_user("aziza", Role::Supervisor, vec![], "correct horse battery")
        .await
        .expect("user");
    assert!(user.password_hash.is_empty(), "never returned");
    assert!(
        ids.add_user("aziza", Role::Operator, vec![], "another password")
            .await
            .is_err()
    );
    let stored = ids.user("aziza").await.expect("get").expect("exists");
    assert!(stored.password_hash.starts_with("$argon2id$"));
    let now = Utc::now();
    assert!(
        ids.login("aziza", "correct horse battery", now)
            .await
            .expect("login")
            .is_ok()
    );
    assert!(
        ids.login("nobody", "whatever at all", now)
            .await
            .expect("login")
            .is_err()
    );
    // Five failures lock the user; even the right password waits.
    for _ in 0..5 {
        assert_eq!(
            ids.login("aziza", "wrong password!", now)
                .await
                .expect("login"),
            Err(posbon_auth::identities::LoginFailure::Invalid)
        );
    }
    match ids
        .login("aziza", "correct horse battery", now)
        .await
        .expect("login")
    {
        Err(posbon_auth::identities::LoginFailure::Throttled(wait)) => {
            assert!(wait >= Duration::from_secs(1), "{wait:?}");
        }
        other => panic!("not throttled: {other:?}"),
    }
    // A name that is nobody's is locked the same way: the answers do not
    // tell who exists.
    for _ in 0..5 {
        assert_eq!(
            ids.login("ghost", "whatever at all", now)
                .await
                .expect("login"),
            Err(posbon_auth::identities::LoginFailure::Invalid)
        );
    }
    assert!(matches!(
        ids.login("ghost", "whatever at all", now)
            .await
            .expect("login"),
        Err(posbon_auth::identities::LoginFailure::Throttled(_))
    ));
    // Parallel guesses take turns: ten at once count ten failures.
    let (auth2, _) = self::auth();
    let ids2 = auth2.identities().clone();
    ids2.add_user("bek", Role::Operator, vec![], "a good password")
        .await
        .expect("user");
    let guesses: Vec<_> = (0..10)
        .map(|_| {
            let ids2 = ids2.clone();
            tokio::spawn(async move { ids2.login("bek", "wrong password!", now).await })
        })
        .collect();
    let mut throttled = 0;
    for g in guesses {
        if let Err(posbon_auth::identities::LoginFailure::Throttled(_)) =
            g.await.expect("join").expect("login")
        {
            throttled += 1;
        }
    }
    assert_eq!(throttled, 5, "the first five are checked, the rest wait");
    let later = now + TimeDelta::minutes(20);
    assert!(
        ids.login("aziza", "correct horse battery", later)
            .await
            .expect("login")
            .is_ok(),
        "the lock ends, and success resets the count"
    );
    // Sessions.
    let (sid, session) = ids.create_session("aziza").await.expect("session");
    assert_eq!(session.csrf.len(), 64);
    assert!(ids.session(&sid, now).await.expect("get").is_some());
    assert!(
        ids.session(&sid, now + TimeDelta::hours(13))
            .await
            .expect("get")
            .is_none(),
        "sessions end after 12 hours"
    );
    ids.end_session(&sid).await.expect("end");
    assert!(ids.session(&sid, now).await.expect("get").is_none());
    // A login link works once.
    let code = ids
        .create_login_link("aziza", Duration::from_secs(60))
        .await
        .expect("link");
    assert_eq!(
        ids.redeem_login_link(&code, now).await.expect("redeem"),
        Some("aziza".to_owned())
    );
    assert_eq!(
        ids.redeem_login_link(&code, now).await.expect("again"),
        None
    );
    // A link made for a user that was then removed and made again (another
    // role, another password) logs nobody in.
    ids.add_user("bobur", Role::Operator, vec![], "bobur's first password")
        .await
        .expect("bobur");
    let stale = ids
        .create_login_link("bobur", Duration::from_secs(60))
        .await
        .expect("link");
    assert!(ids.remove_user("bobur").await.expect("remove"));
    ids.add_user("bobur", Role::Supervisor, vec![], "bobur's new password")
        .await
        .expect("bobur again");
    assert_eq!(
        ids.redeem_login_link(&stale, Utc::now())
            .await
            .expect("redeem"),
        None
    );
    let fresh = ids
        .create_login_link("bobur", Duration::from_secs(60))
        .await
        .expect("link");
    assert_eq!(
        ids.redeem_login_link(&fresh, Utc::now())
            .await
            .expect("redeem"),
        Some("bobur".to_owned())
    );
    // Expired sessions and links are deleted by the daily job; live ones stay.
    let (live, _) = ids.create_session("aziza").await.expect("session");
    let unused = ids
        .create_login_link("aziza", Duration::from_secs(3600))
        .await
        .expect("link");
    assert_eq!(
        auth.prune_identities(Utc::now()).await.expect("prune"),
        (0, 0),
        "nothing has expired yet"
    );
    let later = Utc::now() + TimeDelta::hours(13);
    assert_eq!(auth.prune_identities(later).await.expect("prune"), (1, 1));
    assert!(ids.session(&live, Utc::now()).await.expect("get").is_none());
    assert_eq!(
        ids.redeem_login_link(&unused, Utc::now())
            .await
            .expect("redeem"),
        None
    );
}

#[tokio::test]
async fn the_audit_chain_shows_a_changed_or_removed_record() {
    let (auth, store) = auth();
    let log = auth.audit();
    let caller = Caller::system("tester");
    for i in 0..5 {
        log.append(caller.audit("sql", None, "ok", json!({ "query": format!("SELECT {i}") })))
            .await
            .expect("append");
    }
    let v = log.verify().await.expect("verify");
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records, 5);
    let records = log.list(0, 100).await.expect("list");
    assert_eq!(records.len(), 5);
    assert_eq!(records[1].prev, records[0].hash);

    // Change record 3's detail in the store.
    let key = |seq: u64| {
        let mut k = vec![posbon_store::keys::AUDIT, b'r'];
        k.extend_from_slice(&seq.to_be_bytes());
        k
    };
    let original = store.get(&key(3)).await.expect("get").expect("record 3");
    let tampered = String::from_utf8_lossy(&original).replace("SELECT 2", "SELECT 9");
    store
        .put_batch(vec![(key(3), tampered.into_bytes())])
        .await
        .expect("tamper");
    let v = log.verify().await.expect("verify");
    assert!(!v.ok);
    assert!(
        v.problem
            .as_deref()
            .is_some_and(|p| p.contains("record 3 was changed")),
        "{v:?}"
    );
    store
        .put_batch(vec![(key(3), original)])
        .await
        .expect("restore");
    assert!(log.verify().await.expect("verify").ok);

    // Remove record 2: the chain has a hole.
    store.delete_range(&key(2), &key(3)).await.expect("remove");
    let v = log.verify().await.expect("verify");
    assert!(!v.ok);
    assert!(
        v.problem
            .as_deref()
            .is_some_and(|p| p.contains("record 2 is missing")),
        "{v:?}"
    );

    // Remove the tail (records 4 and 5) of a fresh log: the head disagrees.
    let (auth, store) = auth_fresh_with(4).await;
    store
        .delete_range(&key(3), &key(99))
        .await
        .expect("truncate");
    let v = auth.audit().verify().await.expect("verify");
    assert!(!v.ok);
    assert!(
        v.problem
            .as_deref()
            .is_some_and(|p| p.contains("removed from the end")),
        "{v:?}"
    );

    // A new log object (a restarted process) continues the chain.
    let (_, store) = auth_fresh_with(2).await;
    let again = auth_over(store, AuthConfig::default());
    again
        .audit()
        .append(caller.audit("logout", None, "ok", json!({})))
        .await
        .expect("append");
    let v = again.audit().verify().await.expect("verify");
    assert!(v.ok && v.records == 3, "{v:?}");
}

async fn auth_fresh_with(records: usize) -> (Arc<Auth>, Store) {
    let (auth, store) = auth();
    for _ in 0..records {
        auth.audit()
            .append(Caller::system("t").audit("sql", None, "ok", json!({})))
            .await
            .expect("append");
    }
    (auth, store)
}

#[tokio::test]
async fn scopes_resolve_against_the_registry() {
    let reg = registry();
    let district = &reg.districts()[0];
    let scope =
        posbon_auth::ResolvedScope::resolve(&[ScopeItem::District(district.id.clone())], &reg)
            .expect("resolves");
    assert!(!scope.is_national());
    assert_eq!(
        scope.mahallas().map(|m| m.len()),
        Some(district.mahallas.len())
    );
    let inside = &reg.mahalla(district.mahallas[0]).id;
    assert!(scope.contains_mahalla(inside));
    let outside = reg
        .mahallas()
        .iter()
        .find(|m| m.district_id != district.id)
        .expect("another district");
    assert!(!scope.contains_mahalla(&outside.id));
    assert!(scope.covers(&ScopeItem::District(district.id.clone()), &reg));
    assert!(
        !scope.covers(&ScopeItem::Region(district.region_id.clone()), &reg)
            || reg
                .region(&district.region_id)
                .is_some_and(|r| r.districts.len() == 1)
    );
    assert_eq!(
        scope.alert_subjects(&reg),
        vec![format!(
            "posbon.alerts.{}.{}.*",
            district.region_id, district.id
        )]
    );
    let err = posbon_auth::ResolvedScope::resolve(&[ScopeItem::District("atlantis".into())], &reg)
        .expect_err("unknown");
    assert!(err.contains("atlantis"), "{err}");
}

/// A tiny service behind the guard: a read, a write, a public route and a
/// route with no rule.
fn service(auth: Arc<Auth>) -> Router {
    let router = Router::new()
        .route(
            "/v1/thing",
            get(|c: Caller| async move { c.name }).post(|c: Caller| async move { c.actor() }),
        )
        .route("/open", get(|| async { "open" }))
        .route("/v1/forgotten", get(|| async { "should never answer" }));
    Guarded::new(
        router,
        [
            (
                Method::GET,
                "/v1/thing",
                Access::Permission(Permission::ReadEscalations),
            ),
            (
                Method::POST,
                "/v1/thing",
                Access::Permission(Permission::ActEscalations),
            ),
            (Method::GET, "/open", Access::Public),
        ],
    )
    .merge(posbon_auth::http::identity_routes(auth.clone()))
    .into_router(auth)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, value)
}

#[tokio::test]
async fn the_guard_refuses_what_nobody_granted_and_cross_site_requests() {
    let (auth, _) = auth();
    auth.identities()
        .add_user("op", Role::Operator, vec![], "operator password")
        .await
        .expect("user");
    let (_, analyst) = auth
        .identities()
        .create_token("a", Role::Analyst, vec![], None, "t")
        .await
        .expect("token");
    let app = service(auth.clone());
    let req = |method: Method, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8080")
    };
    // No rule: refused even with a token.
    let (status, _, body) = send(
        &app,
        req(Method::GET, "/v1/forgotten")
            .header(header::AUTHORIZATION, format!("Bearer {analyst}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no access rule"))
    );
    // No caller: 401 with a challenge; security headers on every answer.
    let (status, headers, _) = send(
        &app,
        req(Method::GET, "/v1/thing")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer")
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    let (status, headers, _) = send(
        &app,
        req(Method::GET, "/open")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    // A role without the permission: 403 naming it.
    let (status, _, body) = send(
        &app,
        req(Method::POST, "/v1/thing")
            .header(header::AUTHORIZATION, format!("Bearer {analyst}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("act_escalations")),
        "{body}"
    );

    // DNS rebinding: a name that is not allowed.
    let (status, _, _) = send(
        &app,
        Request::get("/open")
            .header(header::HOST, "evil.example:8080")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    for host in ["localhost:8080", "[::1]:8080", "10.1.2.3"] {
        let (status, _, _) = send(
            &app,
            Request::get("/open")
                .header(header::HOST, host)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }

    // Log in with the page's form: a cookie and a CSRF token.
    let (status, headers, me) = send(
        &app,
        req(Method::POST, "/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"name": "op", "password": "operator password"}).to_string(),
            ))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let set_cookie = headers[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let csrf = me["csrf"].as_str().expect("csrf").to_owned();
    assert_eq!(me["role"], "operator");
    // A read with the cookie works; a write without the CSRF header does not.
    let (status, _, body) = send(
        &app,
        req(Method::GET, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!("op")));
    let (status, _, body) = send(
        &app,
        req(Method::POST, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "csrf");
    let (status, _, body) = send(
        &app,
        req(Method::POST, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!("op")));
    // A cross-site form: text/plain is refused before anything else.
    let (status, _, body) = send(
        &app,
        req(Method::POST, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{}"))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    // Another origin may not write, nor open a WebSocket.
    let (status, _, body) = send(
        &app,
        req(Method::POST, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "origin");
    let (status, _, body) = send(
        &app,
        req(Method::GET, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .header(header::UPGRADE, "websocket")
            .header(header::ORIGIN, "http://evil.example")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("origin"))
    );
    let (status, _, _) = send(
        &app,
        req(Method::POST, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::ORIGIN, "http://127.0.0.1:8080")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the page's own origin");
    // Log out: the cookie no longer works.
    let (status, _, _) = send(
        &app,
        req(Method::POST, "/v1/logout")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(
        &app,
        req(Method::GET, "/v1/thing")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Every login and logout is in the audit log.
    let actions: Vec<String> = auth
        .audit()
        .list(0, 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["login", "logout"]);
}

#[tokio::test]
async fn the_first_start_writes_an_admin_token_and_a_public_bind_needs_identities() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("admin.token");
    let config = AuthConfig {
        admin_token_file: Some(file.clone()),
        ..AuthConfig::default()
    };
    let store: Store = Arc::new(MemoryStore::new());
    let public: std::net::SocketAddr = "0.0.0.0:8080".parse().expect("addr");
    let err = auth_over(store.clone(), config.clone())
        .bootstrap(public)
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("refusing to listen on 0.0.0.0:8080 with no identities"),
        "{err}"
    );
    let auth = auth_over(store.clone(), config);
    let loopback: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    assert_eq!(
        auth.bootstrap(loopback).await.expect("bootstrap"),
        Some(file.clone())
    );
    let token = std::fs::read_to_string(&file).expect("written");
    assert!(matches!(
        auth.identities().check_token(token.trim(), Utc::now()).await.expect("check"),
        TokenCheck::Valid(r) if r.role == Role::Admin
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
    // Once there are identities, nothing more is written, and a public bind is fine.
    assert_eq!(auth.bootstrap(public).await.expect("again"), None);
}

/// An identity provider inside the test: an Ed25519 key, its JWKS file, and
/// tokens it signs.
struct Issuer {
    key: jsonwebtoken::EncodingKey,
    _dir: tempfile::TempDir,
    jwks: std::path::PathBuf,
}

impl Issuer {
    fn new(kid: &str) -> Self {
        use base64::Engine as _;
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("random");
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().expect("pkcs8");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(signing.verifying_key().as_bytes());
        let dir = tempfile::tempdir().expect("dir");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}]})
                .to_string(),
        )
        .expect("jwks");
        Self {
            key: jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
            _dir: dir,
            jwks,
        }
    }

    fn config(&self) -> posbon_auth::oidc::OidcConfig {
        toml::from_str(&format!(
            "issuer = \"https://idp.test/realms/police\"\naudience = \"posbon\"\njwks_file = \"{}\"\n",
            self.jwks.display()
        ))
        .expect("config")
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signed")
    }
}

#[tokio::test]
async fn bearer_tokens_of_the_identity_provider() {
    let issuer = Issuer::new("k1");
    let reg = registry();
    let district = reg.districts()[0].id.clone();
    let store: Store = Arc::new(MemoryStore::new());
    let auth = auth_over(
        store,
        AuthConfig {
            oidc: Some(issuer.config()),
            ..AuthConfig::default()
        },
    );
    let app = service(auth.clone());
    let now = Utc::now().timestamp();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({
            "iss": "https://idp.test/realms/police", "aud": "posbon", "sub": "u-1",
            "preferred_username": "dilnoza", "posbon_role": "operator",
            "posbon_scope": [format!("district:{district}")], "exp": now + 300, "nbf": now - 5,
        });
        f(&mut c);
        c
    };
    let get = |token: String| {
        Request::get("/v1/me")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let (status, _, me) = send(&app, get(issuer.sign("k1", &claims(&|_| {})))).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["name"].clone(), me["role"].clone(), me["scope"].clone()),
        (
            json!("dilnoza"),
            json!("operator"),
            json!([format!("district:{district}")])
        )
    );
    // The role's permissions apply: an operator may act, not more.
    let (status, _, body) = send(
        &app,
        Request::post("/v1/thing")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", issuer.sign("k1", &claims(&|_| {}))),
            )
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!("oidc:dilnoza")),
        "no CSRF for bearer tokens; the step is the provider's user's"
    );
    // Refusals: 401 for a token that is not valid, 403 for claims that give no role.
    let other = Issuer::new("k1");
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "expired",
            issuer.sign("k1", &claims(&|c| c["exp"] = json!(now - 600))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not yet valid",
            issuer.sign("k1", &claims(&|c| c["nbf"] = json!(now + 600))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another audience",
            issuer.sign("k1", &claims(&|c| c["aud"] = json!("grafana"))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another issuer",
            issuer.sign("k1", &claims(&|c| c["iss"] = json!("https://evil.test"))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another key",
            other.sign("k1", &claims(&|_| {})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an unknown kid",
            issuer.sign("k2", &claims(&|_| {})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no role",
            issuer.sign(
                "k1",
                &claims(&|c| {
                    c.as_object_mut().expect("object").remove("posbon_role");
                }),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "an unknown role",
            issuer.sign("k1", &claims(&|c| c["posbon_role"] = json!("root"))),
            StatusCode::FORBIDDEN,
        ),
        (
            "a scope outside the registry",
            issuer.sign(
                "k1",
                &claims(&|c| c["posbon_scope"] = json!(["district:atlantis"])),
            ),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (what, token, want) in cases {
        let (status, _, body) = send(&app, get(token)).await;
        assert_eq!(status, want, "{what}: {body}");
    }
    // HS256 signed with the public key as a secret (algorithm confusion), and "none".
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&|_| {}),
        &jsonwebtoken::EncodingKey::from_secret(b"the public key bytes"),
    )
    .expect("hs256");
    let (status, _, _) = send(&app, get(hs)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none"})),
        b64(&claims(&|_| {}))
    );
    let (status, _, _) = send(&app, get(none)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A symmetric algorithm cannot be configured.
    let mut bad = issuer.config();
    bad.algorithms = vec!["HS256".into()];
    assert!(posbon_auth::oidc::Oidc::load(bad).is_err());
}

/// Keys fetched from the provider's `jwks_uri`: on first use, again when a
/// token names a new key (a rotation), never more than once per few seconds
/// however many unknown keys are named, and kept when the provider is down.
#[tokio::test]
async fn identity_provider_keys_from_its_jwks_url() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let first = Issuer::new("k1");
    let published = Arc::new(std::sync::Mutex::new(
        std::fs::read_to_string(&first.jwks).expect("jwks"),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let provider = Router::new().route(
        "/jwks",
        get({
            let (published, fetches) = (published.clone(), fetches.clone());
            move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                published.lock().expect("lock").clone()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move { axum::serve(listener, provider).await });
    let config: posbon_auth::oidc::OidcConfig = toml::from_str(&format!(
        "issuer = \"https://idp.test/realms/police\"\naudience = \"posbon\"\n\
         jwks_url = \"http://127.0.0.1:{port}/jwks\"\njwks_refresh = \"1s\"\n"
    ))
    .expect("config");
    let auth = auth_over(
        Arc::new(MemoryStore::new()),
        AuthConfig {
            oidc: Some(config),
            ..AuthConfig::default()
        },
    );
    let app = service(auth);
    let now = Utc::now().timestamp();
    let claims = json!({
        "iss": "https://idp.test/realms/police", "aud": "posbon", "sub": "u-1",
        "preferred_username": "dilnoza", "posbon_role": "operator",
        "exp": now + 300, "nbf": now - 5,
    });
    let me = |token: String| {
        Request::get("/v1/me")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "nothing fetched before use"
    );
    let (status, _, body) = send(&app, me(first.sign("k1", &claims))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // A flood of tokens naming unknown keys costs at most one fetch.
    let forger = Issuer::new("k9");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..20 {
        let (status, _, _) = send(&app, me(forger.sign("k9", &claims))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one fetch for the flood");

    // The provider rotates to a new key: the first token that names it
    // (once the last fetch is old enough) fetches the new set.
    let second = Issuer::new("k2");
    *published.lock().expect("lock") = std::fs::read_to_string(&second.jwks).expect("jwks");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = send(&app, me(second.sign("k2", &claims))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The provider goes away: the keys known are kept.
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = send(&app, me(second.sign("k2", &claims))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Keys come over https, or plain http from this machine only; one source.
    for (extra, expect) in [
        ("jwks_url = \"http://idp.example/jwks\"\n", "https only"),
        (
            "jwks_url = \"https://idp.example/jwks\"\njwks_file = \"/x.json\"\n",
            "not both",
        ),
        ("", "give jwks_file"),
    ] {
        let config: posbon_auth::oidc::OidcConfig = toml::from_str(&format!(
            "issuer = \"https://idp.test\"\naudience = \"posbon\"\n{extra}"
        ))
        .expect("config");
        let e = posbon_auth::oidc::Oidc::load(config).expect_err(expect);
        assert!(e.to_string().contains(expect), "{e}");
    }
}

/// Retention of the audit log: records older than the cutoff go, the chain
/// is checked from the first one kept, a change to a kept record is still
/// found, and the newest record always stays.
#[tokio::test]
async fn audit_records_past_retention_go_and_the_rest_still_verifies() {
    use posbon_store::retention::{Pruner as _, RetentionConfig};
    let (auth, store) = auth();
    let log = auth.audit();
    let caller = Caller::system("tester");
    for i in 0..4 {
        log.append(caller.audit("sql", None, "ok", json!({ "query": format!("SELECT {i}") })))
            .await
            .expect("append");
    }
    let records = log.list(0, 100).await.expect("list");
    // Everything written so far is older than a cutoff just after the third.
    let cutoff = records[2].at + TimeDelta::microseconds(1);
    assert_eq!(log.prune_before(cutoff).await.expect("prune"), 3);
    let kept = log.list(0, 100).await.expect("list");
    assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
    let v = log.verify().await.expect("verify");
    assert!(v.ok && v.records == 1, "{v:?}");
    log.append(caller.audit("sql", None, "ok", json!({ "query": "SELECT 9" })))
        .await
        .expect("append");
    assert!(log.verify().await.expect("verify").ok);
    // A kept record changed is still found.
    let mut k = vec![posbon_store::keys::AUDIT, b'r'];
    k.extend_from_slice(&4u64.to_be_bytes());
    let original = store.get(&k).await.expect("get").expect("record 4");
    let tampered = String::from_utf8_lossy(&original).replace("SELECT 3", "SELECT 8");
    store
        .put_batch(vec![(k, tampered.into_bytes())])
        .await
        .expect("tamper");
    assert!(!log.verify().await.expect("verify").ok);
    // The daily job: default retention keeps today's records.
    let counts = auth
        .prune_expired(Utc::now(), &RetentionConfig::default())
        .await
        .expect("prune");
    // (through the daily job's trait)
    assert!(counts.contains(&("audit", 0)), "{counts:?}");
    // The newest record is never pruned, whatever the cutoff.
    let far = Utc::now() + TimeDelta::days(10);
    log.prune_before(far).await.expect("prune");
    assert_eq!(log.list(0, 100).await.expect("list").len(), 1);
}

/// One client address trying many names is refused after its failures,
/// before its passwords are checked; other addresses are not affected, and
/// behind a trusted proxy the forwarded address counts.
#[tokio::test]
async fn failed_logins_are_limited_per_client_address() {
    let config = AuthConfig {
        max_login_failures_per_address: 3,
        login_address_window: Span::from_secs(600),
        trusted_proxies: vec!["10.0.0.2".parse().expect("ip")],
        ..AuthConfig::default()
    };
    let auth = auth_over(Arc::new(MemoryStore::new()), config);
    auth.identities()
        .add_user("op", Role::Operator, vec![], "operator password")
        .await
        .expect("user");
    let app = service(auth.clone());
    let login = |from: &str, name: &str, password: &str, forwarded: Option<&str>| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/login")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(f) = forwarded {
            request = request.header("x-forwarded-for", f);
        }
        let mut request = request
            .body(Body::from(
                json!({"name": name, "password": password}).to_string(),
            ))
            .expect("request");
        let peer: std::net::SocketAddr = format!("{from}:40000").parse().expect("addr");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    };
    // Three names, one wrong password each, from one address.
    for name in ["a", "b", "c"] {
        let (status, _, _) = send(&app, login("203.0.113.7", name, "guess", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is not looked at from there.
    let (status, headers, body) =
        send(&app, login("203.0.113.7", "op", "operator password", None)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "too_many_attempts");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("your address")),
        "{body}"
    );
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((590..=600).contains(&wait), "{wait}");
    // Another address logs in; the user was never locked.
    let (status, _, body) = send(&app, login("203.0.113.8", "op", "operator password", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Behind the trusted proxy, each forwarded client counts for itself...
    for name in ["a", "b", "c"] {
        let (status, _, _) =
            send(&app, login("10.0.0.2", name, "guess", Some("198.51.100.1"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = send(
        &app,
        login("10.0.0.2", "op", "operator password", Some("198.51.100.1")),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, body) = send(
        &app,
        login("10.0.0.2", "op", "operator password", Some("198.51.100.2")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ...and a client that is not a trusted proxy cannot pick its address.
    let (status, _, _) = send(
        &app,
        login(
            "203.0.113.7",
            "op",
            "operator password",
            Some("198.51.100.3"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Every refusal is in the audit log.
    let refused = auth
        .audit()
        .list(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.action == "login_failed" && r.detail["reason"] == "throttled address")
        .count();
    assert_eq!(refused, 3);
}
