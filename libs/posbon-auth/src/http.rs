//! The HTTP side of identities: the guard every service's routes pass
//! through, and the identity routes.
//!
//! # The guard
//!
//! A service builds its routes as a [`Guarded`]: an axum router plus one
//! [`Access`] rule per method and path. [`Guarded::into_router`] puts the
//! guard in front of every route:
//!
//! 1. `Host` must be an IP address, `localhost` or a name in
//!    `auth.allowed_hosts` (DNS rebinding), else 421.
//! 2. A matched route without a rule for its method is refused (403): deny
//!    by default.
//! 3. Unless the rule is [`Access::Public`], the caller is authenticated:
//!    `Authorization: Bearer <token>` (an API token, or the metrics token on
//!    `/metrics`) or the page's session cookie. Missing or invalid: 401 with
//!    `WWW-Authenticate`.
//! 4. A cookie-authenticated `POST`, `PUT`, `PATCH` or `DELETE` must carry
//!    `X-CSRF-Token` equal to the session's, else 403 (`csrf`).
//! 5. A request with an `Origin` that is a write or a WebSocket upgrade must
//!    come from the server's own origin or `auth.allowed_origins`, else 403
//!    (`origin`).
//! 6. A write with a body must be JSON or NDJSON, else 415: a cross-site
//!    form can send neither.
//! 7. The role must have the rule's permission, else 403 (`forbidden`).
//!
//! Handlers read the [`Caller`] as an extractor. Every answer gets
//! `X-Content-Type-Options`, `Referrer-Policy`, `X-Frame-Options`, a
//! `Content-Security-Policy` (unless the handler set its own) and, under
//! `/v1/`, `Cache-Control: no-store`.
//!
//! Errors are RFC 9457 problem documents ([`problem`]) and never say
//! anything about a secret. Every Posbon HTTP service answers its errors
//! with [`problem`] (this guard is the lowest HTTP layer they share, so the
//! one shape lives here).

// Helpers here return the refusal itself as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::Auth;
use crate::audit::AuditEntry;
use crate::credentials::Refused;
use crate::identities::{IdentityError, LoginFailure};
use crate::role::{Permission, Role};
use crate::scope::{ResolvedScope, Scope};
use crate::secret::same;

/// Name of the page's session cookie.
pub const SESSION_COOKIE: &str = "posbon_session";
/// Header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anybody (`/healthz`, `/readyz`, the login form, the page's files).
    Public,
    /// Any authenticated caller (`/v1/me`, log-out).
    Authenticated,
    /// `/metrics`: the metrics token, or a role with [`Permission::ReadMetrics`].
    Metrics,
    /// A role with this permission.
    Permission(Permission),
}

/// One rule: a method and a route path (as written in the router).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The method (`GET` rules cover `HEAD` too).
    pub method: Method,
    /// The path pattern, e.g. `/v1/escalations/{id}`.
    pub path: String,
    /// Who may use it.
    pub access: Access,
}

/// A router whose every route has a rule.
#[derive(Debug, Default)]
pub struct Guarded {
    router: Router,
    rules: Vec<Rule>,
}

impl Guarded {
    /// `router` with the rules of its routes.
    pub fn new<'a>(
        router: Router,
        rules: impl IntoIterator<Item = (Method, &'a str, Access)>,
    ) -> Self {
        Self {
            router,
            rules: rules
                .into_iter()
                .map(|(method, path, access)| Rule {
                    method,
                    path: path.to_owned(),
                    access,
                })
                .collect(),
        }
    }

    /// Both routers and their rules.
    pub fn merge(mut self, other: Guarded) -> Self {
        self.router = self.router.merge(other.router);
        self.rules.extend(other.rules);
        self
    }

    /// The rules, for tests that go over every route.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The router with the guard in front of every route.
    pub fn into_router(self, auth: Arc<Auth>) -> Router {
        let mut rules = HashMap::new();
        for rule in self.rules {
            rules.insert((rule.method, rule.path), rule.access);
        }
        let state = Arc::new(GuardState { auth, rules });
        self.router
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .layer(axum::middleware::from_fn_with_state(state, outer))
    }
}

struct GuardState {
    auth: Arc<Auth>,
    rules: HashMap<(Method, String), Access>,
}

/// How a caller proved who they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Via {
    /// An API token with this id.
    Token {
        /// The token's public id.
        id: String,
    },
    /// A bearer JWT of the identity provider (`[auth.oidc]`).
    Oidc,
    /// A local user's name and password, on a protocol other than the
    /// page's (PostgreSQL).
    Password,
    /// A page session, with its CSRF token.
    Session {
        /// The session's CSRF token.
        csrf: String,
        /// The session id (to end it on log-out).
        id: String,
    },
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Token { id } => f.debug_struct("Token").field("id", id).finish(),
            Via::Oidc => f.write_str("Oidc"),
            Via::Password => f.write_str("Password"),
            Via::Session { .. } => f.write_str("Session { <secret> }"),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's or token's name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Scope, resolved.
    pub scope: ResolvedScope,
    /// How they authenticated.
    pub via: Via,
}

impl Caller {
    /// The name recorded for what they do: `alice`, or `token:<name>` for an
    /// API token.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } | Via::Password => self.name.clone(),
            Via::Oidc => format!("oidc:{}", self.name),
            Via::Token { .. } => format!("token:{}", self.name),
        }
    }

    /// Whether the role has `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.may(permission)
    }

    /// A caller with every permission over the whole country, for callers
    /// inside the process (tests, the CLI on a local store).
    pub fn system(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: Role::Admin,
            scope: ResolvedScope::national(),
            via: Via::Token { id: String::new() },
        }
    }

    /// An audit entry of this caller.
    pub fn audit(
        &self,
        action: &'static str,
        target: Option<String>,
        outcome: &'static str,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor(),
            role: Some(self.role.as_str().to_owned()),
            action,
            target,
            outcome,
            detail,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Caller>>()
            .map(|c| Caller::clone(c))
            .ok_or_else(|| unauthorized("authentication required", None))
    }
}

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer: [`problem`] without `Retry-After`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    problem(status, code, message, None)
}

/// The one error answer of every Posbon HTTP service, an RFC 9457 problem
/// document (`application/problem+json`):
///
/// ```json
/// {"type": "about:blank", "title": "Forbidden", "status": 403,
///  "detail": "escalation \"x\" is outside your scope", "code": "out_of_scope",
///  "error": "escalation \"x\" is outside your scope"}
/// ```
///
/// `detail` says what is wrong in words for people; `code` is the stable
/// machine-readable reason (`not_found`, `out_of_scope`, `invalid_query`,
/// `timeout`, ...); `error` repeats `detail` for clients written against the
/// earlier `{"error", "code"}` shape. With `retry_after_secs`, the answer
/// carries `Retry-After`.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: &str,
    retry_after_secs: Option<u64>,
) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
        "error": detail,
    });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body.to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

fn unauthorized(message: &str, error_code: Option<&str>) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let challenge = match error_code {
        Some(code) => format!("Bearer realm=\"posbon\", error=\"{code}\""),
        None => "Bearer realm=\"posbon\"".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// 403 for a caller whose scope does not include what they asked for.
pub fn out_of_scope(what: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        "out_of_scope",
        &format!("{what} is outside your scope"),
    )
}

/// The answer for a credential that gave no caller.
fn refusal(refused: &Refused) -> Response {
    match refused {
        Refused::Invalid(_) | Refused::Expired => {
            unauthorized(&refused.to_string(), Some("invalid_token"))
        }
        Refused::Claims(m) => error(StatusCode::FORBIDDEN, "invalid_claims", m),
        Refused::Scope(_) => error(StatusCode::FORBIDDEN, "invalid_scope", &refused.to_string()),
        Refused::Throttled(_) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            &refused.to_string(),
        ),
        Refused::Unavailable(e) => unavailable(e),
    }
}

fn unavailable(e: &IdentityError) -> Response {
    tracing::error!(error = %e, "identity store failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the identity store is not available; retry",
    )
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        let (scheme, rest) = t.split_once(' ').ok_or(())?;
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            Ok(rest.trim())
        } else {
            Err(())
        }
    }))
}

/// The host part of a `Host` value or an origin's authority, lowercased,
/// without the port (IPv6 without brackets).
fn host_of(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    a.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(a.clone(), |(h, _)| h.to_owned())
}

fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

fn host_allowed(auth: &Auth, authority: &str) -> bool {
    let host = host_of(authority);
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok()
        || auth
            .config
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
}

fn origin_allowed(auth: &Auth, origin: &str, host: Option<&str>) -> bool {
    if auth
        .config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    host.is_some_and(|h| {
        h.trim()
            .eq_ignore_ascii_case(authority.trim_end_matches('/'))
    })
}

/// Security headers on every answer, and the Host check before anything.
async fn outer(State(state): State<Arc<GuardState>>, request: Request, next: Next) -> Response {
    if let Some(host) = request_host(&request)
        && !host_allowed(&state.auth, &host)
    {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "host",
            "this server does not answer for that host name (auth.allowed_hosts)",
        );
    }
    let api = request.uri().path().starts_with("/v1/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        if html {
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        } else {
            "default-src 'none'; frame-ancestors 'none'"
        },
    );
    if api {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// The media type of a request's `Content-Type`, lowercased, without its
/// parameters (`application/json; charset=utf-8` is `application/json`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

const BODY_TYPES: [&str; 4] = [
    "application/json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
];

/// The route template a response answered (`/v1/escalations/{id}`), set on
/// every response the guard passes or refuses, for metrics and logs that
/// must not carry the ids in the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRoute(pub String);

async fn guard(state: State<Arc<GuardState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut response = guard_route(state, request, next).await;
    response.extensions_mut().insert(MatchedRoute(route));
    response
}

async fn guard_route(
    State(state): State<Arc<GuardState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = if request.method() == Method::HEAD {
        Method::GET
    } else {
        request.method().clone()
    };
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(access) = state.rules.get(&(method.clone(), path.clone())).copied() else {
        // Methods with a rule on this path: the others are 405, and never
        // reach a handler (one added without a rule stays unreachable).
        let mut allowed: Vec<&str> = state
            .rules
            .keys()
            .filter(|(_, p)| *p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        if !allowed.is_empty() {
            allowed.sort_unstable();
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{path} takes {}", allowed.join(", ")),
            );
            if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, v);
            }
            return response;
        }
        tracing::warn!(%method, path, "a route without an access rule was refused");
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("{method} {path} has no access rule: refused"),
        );
    };
    let headers = request.headers();
    // Writes and WebSocket upgrades from a browser must come from our origin.
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if (is_write(&method) || upgrade)
        && let Some(origin) = headers.get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("null");
        let host = request_host(&request);
        if !origin_allowed(&state.auth, origin, host.as_deref()) {
            return error(
                StatusCode::FORBIDDEN,
                "origin",
                &format!("requests from origin {origin:?} are not accepted (auth.allowed_origins)"),
            );
        }
    }
    if is_write(&method) {
        let empty = axum::body::HttpBody::is_end_stream(request.body())
            || headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0");
        let has_body = !empty;
        if has_body {
            let content_type = media_type(headers);
            match content_type.as_deref() {
                Some(t) if BODY_TYPES.contains(&t) => {}
                other => {
                    return error(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        &format!(
                            "content type {}: send application/json (or application/x-ndjson where a route takes it)",
                            other.map_or_else(
                                || "missing".to_owned(),
                                |t| format!("{t:?} is not accepted")
                            )
                        ),
                    );
                }
            }
        }
    }
    if access == Access::Public {
        return next.run(request).await;
    }
    let caller = match authenticate(&state, request.headers(), &method, access).await {
        Ok(Some(caller)) => caller,
        // The metrics token: no caller, only /metrics.
        Ok(None) => return next.run(request).await,
        Err(response) => return response,
    };
    let allowed = match access {
        Access::Public | Access::Authenticated => true,
        Access::Metrics => caller.may(Permission::ReadMetrics),
        Access::Permission(p) => caller.may(p),
    };
    if !allowed {
        let needed = match access {
            Access::Permission(p) => p.as_str(),
            _ => Permission::ReadMetrics.as_str(),
        };
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "role {} may not use {method} {path} (it needs {needed})",
                caller.role
            ),
        );
    }
    request.extensions_mut().insert(Arc::new(caller));
    next.run(request).await
}

async fn authenticate(
    state: &GuardState,
    headers: &HeaderMap,
    method: &Method,
    access: Access,
) -> Result<Option<Caller>, Response> {
    let auth = &state.auth;
    let now = Utc::now();
    if let Some(presented) = bearer(headers) {
        let Ok(token) = presented else {
            return Err(unauthorized(
                "the Authorization header is not \"Bearer <token>\"",
                Some("invalid_request"),
            ));
        };
        if access == Access::Metrics
            && auth
                .metrics_token
                .as_deref()
                .is_some_and(|t| same(t, token))
        {
            return Ok(None);
        }
        return auth
            .caller_of_token(token, now)
            .await
            .map(Some)
            .map_err(|refused| refusal(&refused));
    }
    let Some(session_id) = cookie(headers, SESSION_COOKIE) else {
        return Err(unauthorized(
            "authentication required: send Authorization: Bearer <token>, or log in",
            None,
        ));
    };
    let session = match auth.identities.session(&session_id, now).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(unauthorized("the session has ended: log in again", None)),
        Err(e) => return Err(unavailable(&e)),
    };
    let user = match auth.identities.user(&session.user).await {
        // A user removed and added again (a new password) starts afresh.
        Ok(Some(u)) if u.created_at <= session.created_at => u,
        Ok(_) => return Err(unauthorized("the session's user no longer exists", None)),
        Err(e) => return Err(unavailable(&e)),
    };
    if is_write(method) {
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !presented.is_some_and(|p| same(p, &session.csrf)) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "csrf",
                "a write from the page needs the X-CSRF-Token header of its session",
            ));
        }
    }
    let scope = resolve(auth, &user.scope)?;
    Ok(Some(Caller {
        name: user.name,
        role: user.role,
        scope,
        via: Via::Session {
            csrf: session.csrf,
            id: session_id,
        },
    }))
}

fn resolve(auth: &Auth, scope: &Scope) -> Result<ResolvedScope, Response> {
    auth.resolve(scope).map_err(|e| {
        error(
            StatusCode::FORBIDDEN,
            "invalid_scope",
            &format!("your scope no longer matches the registry ({e}); ask an admin"),
        )
    })
}

// ---------------------------------------------------------------------------
// The identity routes.

/// `/v1/login`, `/login`, `/v1/me`, `/v1/logout`, `/v1/tokens`, `/v1/users`,
/// `/v1/audit`.
pub fn identity_routes(auth: Arc<Auth>) -> Guarded {
    use Access::{Authenticated, Permission as P, Public};
    let router = Router::new()
        .route("/v1/login", post(login))
        .route("/login", get(login_link))
        .route("/v1/me", get(me))
        .route("/v1/logout", post(logout))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/users", post(add_user).get(list_users))
        .route("/v1/users/{name}", delete(remove_user))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(auth);
    Guarded::new(
        router,
        [
            (Method::POST, "/v1/login", Public),
            (Method::GET, "/login", Public),
            (Method::GET, "/v1/me", Authenticated),
            (Method::POST, "/v1/logout", Authenticated),
            (Method::POST, "/v1/tokens", P(Permission::Admin)),
            (Method::GET, "/v1/tokens", P(Permission::Admin)),
            (Method::DELETE, "/v1/tokens/{id}", P(Permission::Admin)),
            (Method::POST, "/v1/users", P(Permission::Admin)),
            (Method::GET, "/v1/users", P(Permission::Admin)),
            (Method::DELETE, "/v1/users/{name}", P(Permission::Admin)),
            (Method::GET, "/v1/audit", P(Permission::Admin)),
            (Method::GET, "/v1/audit/verify", P(Permission::Admin)),
        ],
    )
}

/// A new identity's scope must exist; an admin has the whole country (an
/// admin limited to a district could still make national admins).
fn check_scope(auth: &Auth, role: Role, scope: &Scope) -> Result<(), Response> {
    if role == Role::Admin && !scope.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "an admin has the whole country: give no scope",
        ));
    }
    auth.resolve(scope)
        .map(drop)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_scope", &e))
}

fn identity_error(e: &IdentityError) -> Response {
    match e {
        IdentityError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_request", m),
        IdentityError::Exists(m) => error(StatusCode::CONFLICT, "exists", m),
        IdentityError::Store(_) => unavailable(e),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("body: {e}; expected {expected}"),
        )
    })
}

fn me_json(caller: &Caller) -> serde_json::Value {
    let permissions: Vec<&str> = caller
        .role
        .permissions()
        .iter()
        .map(|p| p.as_str())
        .collect();
    let scope: Vec<String> = caller
        .scope
        .items()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut body = json!({
        "name": caller.name,
        "role": caller.role,
        "scope": scope,
        "permissions": permissions,
    });
    if let Via::Session { csrf, .. } = &caller.via {
        body["csrf"] = json!(csrf);
    }
    body
}

fn session_cookie(auth: &Auth, id: &str, max_age: u64) -> HeaderValue {
    let secure = if auth.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("posbon_session=; Max-Age=0"))
}

async fn start_session(
    auth: &Auth,
    user: crate::identities::UserRecord,
) -> Result<(HeaderValue, Caller), Response> {
    let (id, session) = auth
        .identities
        .create_session(&user.name)
        .await
        .map_err(|e| unavailable(&e))?;
    let scope = resolve(auth, &user.scope)?;
    let caller = Caller {
        name: user.name,
        role: user.role,
        scope,
        via: Via::Session {
            csrf: session.csrf,
            id: id.clone(),
        },
    };
    let max_age = auth.identities.limits().session.as_secs();
    Ok((session_cookie(auth, &id, max_age), caller))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    name: String,
    password: String,
}

/// A refused login that may be tried again after `wait`: 429
/// `too_many_attempts` with `Retry-After`.
fn throttled(what: &str, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    problem(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        &format!("{what}: try again in {secs} s"),
        Some(secs),
    )
}

async fn login(
    State(auth): State<Arc<Auth>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: LoginRequest = match json_body(&body, "{\"name\": \"...\", \"password\": \"...\"}")
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let client = crate::throttle::client_address(
        peer.map(|p| (p.0).0),
        &headers,
        &auth.config.trusted_proxies,
    );
    // Anybody can fail a login: the name typed is detail, never the actor.
    let failed = |detail: &'static str| AuditEntry {
        actor: "anonymous".to_owned(),
        role: None,
        action: "login_failed",
        target: None,
        outcome: "refused",
        detail: json!({ "reason": detail, "name": request.name.chars().take(64).collect::<String>() }),
    };
    match auth
        .login_from(&request.name, &request.password, client, Utc::now())
        .await
    {
        Err(e) => unavailable(&e),
        Ok(Err(LoginFailure::AddressThrottled(wait))) => {
            auth.audit.record(failed("throttled address")).await;
            throttled("too many failed logins from your address", wait)
        }
        Ok(Err(LoginFailure::Invalid)) => {
            auth.audit.record(failed("wrong name or password")).await;
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong name or password",
            )
        }
        Ok(Err(LoginFailure::Throttled(wait))) => {
            auth.audit.record(failed("throttled")).await;
            throttled("too many failed logins", wait)
        }
        Ok(Ok(user)) => match start_session(&auth, user).await {
            Err(r) => r,
            Ok((cookie, caller)) => {
                auth.audit
                    .record(caller.audit("login", None, "ok", json!({ "via": "password" })))
                    .await;
                let mut response = Json(me_json(&caller)).into_response();
                response.headers_mut().insert(header::SET_COOKIE, cookie);
                response
            }
        },
    }
}

#[derive(Deserialize)]
struct LinkQuery {
    code: Option<String>,
}

async fn login_link(State(auth): State<Arc<Auth>>, Query(q): Query<LinkQuery>) -> Response {
    let code = q.code.unwrap_or_default();
    let user = match auth.identities.redeem_login_link(&code, Utc::now()).await {
        Err(e) => return unavailable(&e),
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_link",
                "this login link is not valid: it was used already, has expired or is wrong",
            );
        }
        Ok(Some(name)) => match auth.identities.user(&name).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_link",
                    "the link's user no longer exists",
                );
            }
            Err(e) => return unavailable(&e),
        },
    };
    match start_session(&auth, user).await {
        Err(r) => r,
        Ok((cookie, caller)) => {
            auth.audit
                .record(caller.audit("login", None, "ok", json!({ "via": "link" })))
                .await;
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
    }
}

async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(me_json(&caller))
}

async fn logout(State(auth): State<Arc<Auth>>, caller: Caller) -> Response {
    if let Via::Session { id, .. } = &caller.via
        && let Err(e) = auth.identities.end_session(id).await
    {
        return unavailable(&e);
    }
    auth.audit
        .record(caller.audit("logout", None, "ok", json!({})))
        .await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&auth, "", 0));
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
    role: Role,
    #[serde(default)]
    scope: Scope,
    expires_in_days: Option<u32>,
}

async fn create_token(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    let request: TokenRequest = match json_body(
        &body,
        "{\"name\": \"...\", \"role\": \"producer|analyst|operator|supervisor|admin\", \"scope\": [\"district:<id>\"], \"expires_in_days\": 90}",
    ) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(e) = check_scope(&auth, request.role, &request.scope) {
        return e;
    }
    if request.expires_in_days == Some(0) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expires_in_days: must be at least 1",
        );
    }
    let expires = request
        .expires_in_days
        .map(|d| TimeDelta::days(i64::from(d)));
    match auth
        .identities
        .create_token(
            &request.name,
            request.role,
            request.scope,
            expires,
            &caller.actor(),
        )
        .await
    {
        Err(e) => identity_error(&e),
        Ok((record, token)) => {
            auth.audit
                .record(caller.audit(
                    "token_create",
                    Some(record.id.clone()),
                    "ok",
                    json!({ "name": record.name, "role": record.role, "scope": record.scope }),
                ))
                .await;
            let mut body = serde_json::to_value(record.public()).unwrap_or_default();
            body["token"] = json!(token);
            (StatusCode::CREATED, Json(body)).into_response()
        }
    }
}

async fn list_tokens(State(auth): State<Arc<Auth>>) -> Response {
    match auth.identities.tokens().await {
        Ok(tokens) => Json(json!({ "tokens": tokens })).into_response(),
        Err(e) => identity_error(&e),
    }
}

async fn revoke_token(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    match auth.identities.revoke_token(&id).await {
        Ok(true) => {
            auth.audit
                .record(caller.audit("token_revoke", Some(id), "ok", json!({})))
                .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no token with id {id:?}"),
        ),
        Err(e) => identity_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    name: String,
    role: Role,
    #[serde(default)]
    scope: Scope,
    password: String,
}

async fn add_user(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    let request: UserRequest = match json_body(
        &body,
        "{\"name\": \"...\", \"role\": \"...\", \"scope\": [...], \"password\": \"...\"}",
    ) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(e) = check_scope(&auth, request.role, &request.scope) {
        return e;
    }
    match auth
        .identities
        .add_user(
            &request.name,
            request.role,
            request.scope,
            &request.password,
        )
        .await
    {
        Err(e) => identity_error(&e),
        Ok(user) => {
            auth.audit
                .record(caller.audit(
                    "user_add",
                    Some(user.name.clone()),
                    "ok",
                    json!({ "role": user.role, "scope": user.scope }),
                ))
                .await;
            (StatusCode::CREATED, Json(user)).into_response()
        }
    }
}

async fn list_users(State(auth): State<Arc<Auth>>) -> Response {
    match auth.identities.users().await {
        Ok(users) => Json(json!({ "users": users })).into_response(),
        Err(e) => identity_error(&e),
    }
}

async fn remove_user(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    match auth.identities.remove_user(&name).await {
        Ok(true) => {
            auth.audit
                .record(caller.audit("user_remove", Some(name), "ok", json!({})))
                .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no user {name:?}"),
        ),
        Err(e) => identity_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn audit(State(auth): State<Arc<Auth>>, Query(q): Query<AuditQuery>) -> Response {
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    match auth.audit.list(q.after.unwrap_or(0), limit).await {
        Ok(records) => {
            let next = records.last().map(|r| r.seq);
            Json(json!({ "records": records, "next_after": next })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "audit log read failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the audit log is not available; retry",
            )
        }
    }
}

async fn audit_verify(State(auth): State<Arc<Auth>>) -> Response {
    match auth.audit.verify().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "audit log read failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the audit log is not available; retry",
            )
        }
    }
}

/// How long a login link of `posbon demo` stays valid.
pub const DEMO_LINK_TTL: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_are_problem_documents() {
        let response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_feeds",
            "32 feeds are open",
            Some(5),
        );
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "32 feeds are open",
                "code": "too_many_feeds",
                "error": "32 feeds are open",
            })
        );
    }

    #[test]
    fn hosts_and_cookies() {
        assert_eq!(host_of("LOCALHOST:8080"), "localhost");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("cc.example.uz:443"), "cc.example.uz");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; posbon_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert_eq!(bearer(&headers), Some(Err(())));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer psb_x"),
        );
        assert_eq!(bearer(&headers), Some(Ok("psb_x")));
    }
}
