//! Silences and maintenance windows over HTTP.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `GET /v1/silences` | `read_escalations` | the silences that can touch the caller's scope, newest first (`?all=true` keeps those ended) |
//! | `POST /v1/silences` | `manage_silences` | a new silence ([`SilenceRequest`]), 201 |
//! | `DELETE /v1/silences/{id}` | `manage_silences` | ends it now |
//!
//! A caller limited to part of the country may only silence inside it: the
//! silence must name places (region, district or mahalla), each covered by
//! the caller's scope. Every place named must exist in the registry. Every
//! change is in the audit log. A silenced escalation is recorded and shown as
//! always; only its pages are held back ([`crate::notify`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{TimeDelta, Utc};
use posbon_auth::{Caller, ScopeItem};
use posbon_model::{EscalationMatchers, Silence, SilenceRequest};
use posbon_store::EscalationStoreExt as _;
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, ApiState};

/// Most silences not ended at once.
pub(crate) const MAX_ACTIVE_SILENCES: usize = 1000;
/// Ended silences are deleted this long after they ended.
pub(crate) const KEEP_ENDED_DAYS: i64 = 30;

/// Query of `GET /v1/silences`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Keep ended silences too.
    #[serde(default)]
    pub(crate) all: bool,
}

/// Whether a silence can touch what `caller` sees: every place list it
/// gives has an entry inside the caller's scope (the lists are ANDed).
fn visible(caller: &Caller, m: &EscalationMatchers) -> bool {
    let scope = &caller.scope;
    if scope.is_national() {
        return true;
    }
    let within = |list: &[String], inside: &dyn Fn(&str) -> bool| {
        list.is_empty() || list.iter().any(|id| inside(id))
    };
    within(&m.mahalla, &|id| scope.contains_mahalla(id))
        && within(&m.district, &|id| {
            scope.districts().is_some_and(|d| d.contains(id))
        })
        && within(&m.region, &|id| {
            scope.regions().is_some_and(|r| r.contains(id))
        })
}

/// Every place named exists (when `exist` is set: not for ending a silence
/// whose place left the registry); a scoped caller names only places inside
/// their scope, and at least one.
fn check_places(
    state: &ApiState,
    caller: &Caller,
    m: &EscalationMatchers,
    exist: bool,
) -> Result<(), ApiError> {
    let registry = &state.registry;
    let items = m
        .region
        .iter()
        .map(|id| {
            (
                "region",
                ScopeItem::Region(id.clone()),
                registry.region(id).is_some(),
            )
        })
        .chain(m.district.iter().map(|id| {
            (
                "district",
                ScopeItem::District(id.clone()),
                registry.district(id).is_some(),
            )
        }))
        .chain(m.mahalla.iter().map(|id| {
            (
                "mahalla",
                ScopeItem::Mahalla(id.clone()),
                registry.mahalla_by_id(id).is_some(),
            )
        }));
    for (what, item, exists) in items {
        if exist && !exists {
            return Err(ApiError::bad_request(
                "invalid_silence",
                format!("{what}: no {item} in the registry"),
            ));
        }
        if !caller.scope.is_national() && !caller.scope.covers(&item, registry) {
            return Err(ApiError::out_of_scope(item));
        }
    }
    if !caller.scope.is_national() && !m.names_a_place() {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "out_of_scope",
            message: "a silence of the whole country is outside your scope: name the regions, districts or mahallas".to_owned(),
            retry_after_secs: None,
        });
    }
    Ok(())
}

/// Deletes the silences that ended more than [`KEEP_ENDED_DAYS`] ago;
/// returns how many.
pub(crate) async fn prune(
    store: &posbon_store::Store,
    now: chrono::DateTime<Utc>,
) -> Result<usize, ApiError> {
    let stale: Vec<String> = store
        .silences()
        .await?
        .into_iter()
        .filter(|s| s.ends_at + TimeDelta::days(KEEP_ENDED_DAYS) < now)
        .map(|s| s.id)
        .collect();
    store.delete_silences(&stale).await?;
    Ok(stale.len())
}

/// `GET /v1/silences`.
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Silence>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let now = Utc::now();
    let mut silences: Vec<Silence> = state
        .store
        .silences()
        .await?
        .into_iter()
        .filter(|s| (query.all || !s.has_ended(now)) && visible(&caller, &s.matchers))
        .collect();
    silences.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(silences))
}

/// `POST /v1/silences` with a [`SilenceRequest`].
pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let request: SilenceRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_silence",
            format!(
                "body: {e}; expected {{\"district\": [...], \"ends_at\": \"<RFC 3339>\", \"reason\": \"...\"}}"
            ),
        )
    })?;
    check_places(&state, &caller, &request.matchers, true)?;
    let now = Utc::now();
    let id = format!("sil-{}", posbon_auth::secret::random_hex(8));
    let silence = request
        .into_silence(id, &caller.actor(), now)
        .map_err(|m| ApiError::bad_request("invalid_silence", m))?;
    prune(&state.store, now).await?;
    let existing = state.store.silences().await?;
    let active = existing.iter().filter(|s| !s.has_ended(now)).count();
    if active >= MAX_ACTIVE_SILENCES {
        return Err(ApiError::at_limit(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_silences",
            format!(
                "{active} silences are in force, at most {MAX_ACTIVE_SILENCES}: end some first"
            ),
            60,
        ));
    }
    state.store.put_silence(&silence).await?;
    state
        .auth
        .audit()
        .record(caller.audit(
            "silence_create",
            Some(silence.id.clone()),
            "ok",
            json!({
                "matchers": silence.matchers,
                "starts_at": silence.starts_at,
                "ends_at": silence.ends_at,
                "reason": silence.reason,
            }),
        ))
        .await;
    tracing::info!(silence = %silence.id, by = %silence.created_by, until = %silence.ends_at, "silence created");
    Ok((StatusCode::CREATED, Json(silence)))
}

/// `DELETE /v1/silences/{id}`: ends the silence now.
pub(crate) async fn expire(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    let mut silence = state
        .store
        .get_silence(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no silence with id {id:?}")))?;
    if !visible(&caller, &silence.matchers) {
        return Err(ApiError::not_found(format!("no silence with id {id:?}")));
    }
    check_places(&state, &caller, &silence.matchers, false)?;
    if !silence.expire(&caller.actor(), Utc::now()) {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "silence_ended",
            message: format!("silence {id} ended at {}", silence.ends_at.to_rfc3339()),
            retry_after_secs: None,
        });
    }
    state.store.put_silence(&silence).await?;
    state
        .auth
        .audit()
        .record(caller.audit("silence_expire", Some(id), "ok", json!({})))
        .await;
    Ok(Json(silence))
}
