//! The identity routes of a person: logging in (with a password or a
//! login link), `/v1/me` and logging out.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::Auth;
use crate::audit::AuditEntry;
use crate::identities::LoginFailure;

use super::guard::resolve;
use super::problem::{error, problem, unavailable};
use super::{Caller, SESSION_COOKIE, Via};

pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    expected: &str,
) -> Result<T, Response> {
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

pub(super) async fn login(
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
pub(super) struct LinkQuery {
    code: Option<String>,
}

pub(super) async fn login_link(
    State(auth): State<Arc<Auth>>,
    Query(q): Query<LinkQuery>,
) -> Response {
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

pub(super) async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(me_json(&caller))
}

pub(super) async fn logout(State(auth): State<Arc<Auth>>, caller: Caller) -> Response {
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

/// How long a login link of `posbon demo` stays valid.
pub const DEMO_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
