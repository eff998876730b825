//! The guard in front of every route: the access rules ([`Access`],
//! [`Guarded`]), the Host check and security headers, and the
//! authentication of the caller.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;

use crate::Auth;
use crate::role::Permission;
use crate::scope::{ResolvedScope, Scope};
use crate::secret::same;

use super::headers::{
    bearer, cookie, host_allowed, is_write, media_type, origin_allowed, request_host,
};
use super::problem::{error, refusal, unauthorized, unavailable};
use super::{CSRF_HEADER, Caller, SESSION_COOKIE, Via};

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

pub(super) fn resolve(auth: &Auth, scope: &Scope) -> Result<ResolvedScope, Response> {
    auth.resolve(scope).map_err(|e| {
        error(
            StatusCode::FORBIDDEN,
            "invalid_scope",
            &format!("your scope no longer matches the registry ({e}); ask an admin"),
        )
    })
}
