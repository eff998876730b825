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

mod admin;
mod caller;
mod guard;
mod headers;
mod identity;
mod problem;

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::routing::{delete, get, post};

use crate::Auth;
use crate::role::Permission;

use admin::{
    add_user, audit, audit_verify, create_token, list_tokens, list_users, remove_user, revoke_token,
};
use identity::{login, login_link, logout, me};

pub use caller::{Caller, Via};
pub use guard::{Access, Guarded, MatchedRoute, Rule};
pub use headers::media_type;
pub use identity::DEMO_LINK_TTL;
pub use problem::{PROBLEM_JSON, error, out_of_scope, problem};

/// Name of the page's session cookie.
pub const SESSION_COOKIE: &str = "posbon_session";
/// Header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";

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
