//! The identity routes of an admin: API tokens (`/v1/tokens`), local users
//! (`/v1/users`) and the audit log (`/v1/audit`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::json;

use crate::Auth;
use crate::identities::IdentityError;
use crate::role::Role;
use crate::scope::Scope;

use super::Caller;
use super::identity::json_body;
use super::problem::{error, unavailable};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
    role: Role,
    #[serde(default)]
    scope: Scope,
    expires_in_days: Option<u32>,
}

pub(super) async fn create_token(
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

pub(super) async fn list_tokens(State(auth): State<Arc<Auth>>) -> Response {
    match auth.identities.tokens().await {
        Ok(tokens) => Json(json!({ "tokens": tokens })).into_response(),
        Err(e) => identity_error(&e),
    }
}

pub(super) async fn revoke_token(
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

pub(super) async fn add_user(
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

pub(super) async fn list_users(State(auth): State<Arc<Auth>>) -> Response {
    match auth.identities.users().await {
        Ok(users) => Json(json!({ "users": users })).into_response(),
        Err(e) => identity_error(&e),
    }
}

pub(super) async fn remove_user(
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
pub(super) struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn audit(State(auth): State<Arc<Auth>>, Query(q): Query<AuditQuery>) -> Response {
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

pub(super) async fn audit_verify(State(auth): State<Arc<Auth>>) -> Response {
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
