//! `GET /v1/escalations`, `GET /v1/escalations/{id}` and
//! `POST /v1/escalations/{id}/{action}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use posbon_auth::Caller;
use posbon_model::{
    ActionRequest, EscalationAction, EscalationRecord, EscalationStatus, RiskLevel,
};
use posbon_store::EscalationStoreExt as _;
use serde::Deserialize;
use serde_json::json;

use crate::ApiState;
use crate::error::ApiError;
use crate::feed::parse_level;

/// Filters of `GET /v1/escalations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Region id.
    pub region: Option<String>,
    /// District id.
    pub district: Option<String>,
    /// Mahalla id.
    pub mahalla: Option<String>,
    /// Exactly this level.
    pub level: Option<String>,
    /// This level or above.
    pub min_level: Option<String>,
    /// Statuses, comma-separated (`open,acknowledged`).
    pub status: Option<String>,
    /// Rule name.
    pub rule: Option<String>,
    /// Opened at or after (RFC 3339).
    pub since: Option<String>,
    /// Opened before (RFC 3339).
    pub until: Option<String>,
    /// At most this many (default 200, capped by the configuration).
    pub limit: Option<usize>,
}

/// A validated [`ListQuery`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    region: Option<String>,
    district: Option<String>,
    mahalla: Option<String>,
    level: Option<RiskLevel>,
    min_level: Option<RiskLevel>,
    statuses: Option<Vec<EscalationStatus>>,
    rule: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// How many to return.
    pub limit: usize,
}

fn time(what: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_time",
                format!("{what}: {value:?} is not an RFC 3339 time ({e})"),
            )
        })
}

impl ListFilter {
    /// Validates a query; `max` caps the limit.
    pub fn parse(q: ListQuery, max: usize) -> Result<Self, ApiError> {
        let statuses = match &q.status {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|s| {
                        EscalationStatus::from_wire(s.trim()).ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_status",
                                format!(
                                    "status: {s:?} is not one of open, acknowledged, assigned, resolved, false_alarm"
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let limit = q.limit.unwrap_or(200);
        if limit == 0 || limit > max {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit: {limit} is not in 1..={max}"),
            ));
        }
        Ok(Self {
            level: q
                .level
                .as_deref()
                .map(|l| parse_level("level", l))
                .transpose()?,
            min_level: q
                .min_level
                .as_deref()
                .map(|l| parse_level("min_level", l))
                .transpose()?,
            since: q.since.as_deref().map(|t| time("since", t)).transpose()?,
            until: q.until.as_deref().map(|t| time("until", t)).transpose()?,
            region: q.region,
            district: q.district,
            mahalla: q.mahalla,
            statuses,
            rule: q.rule,
            limit,
        })
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &EscalationRecord) -> bool {
        let e = &record.escalation;
        self.region.as_ref().is_none_or(|r| *r == e.region_id)
            && self.district.as_ref().is_none_or(|d| *d == e.district_id)
            && self.mahalla.as_ref().is_none_or(|m| *m == e.mahalla_id)
            && self.level.is_none_or(|l| l == e.level)
            && self.min_level.is_none_or(|l| e.level >= l)
            && self.statuses.as_ref().is_none_or(|s| s.contains(&e.status))
            && self.rule.as_ref().is_none_or(|r| *r == e.rule)
            && self.since.is_none_or(|t| e.opened_at >= t)
            && self.until.is_none_or(|t| e.opened_at < t)
    }
}

/// The records that pass `filter` inside `caller`'s scope, newest opening
/// first.
pub async fn list_records(
    state: &ApiState,
    caller: &Caller,
    filter: &ListFilter,
) -> Result<Vec<EscalationRecord>, ApiError> {
    let mut out: Vec<EscalationRecord> = state
        .store
        .escalations_stream()
        .try_filter(|r| {
            futures::future::ready(
                filter.matches(r) && caller.scope.contains_mahalla(&r.escalation.mahalla_id),
            )
        })
        .try_collect()
        .await?;
    out.sort_by(|a, b| {
        (b.escalation.opened_at, b.alert_sequence).cmp(&(a.escalation.opened_at, a.alert_sequence))
    });
    out.truncate(filter.limit);
    Ok(out)
}

/// Response header of `GET /v1/escalations`: the last ALERTS sequence before
/// the listing was read. A client that lists and then opens the feed with
/// `?since=<this>` misses nothing in between and sees at most a few updates
/// twice (records are idempotent to apply).
pub const ALERTS_SEQUENCE_HEADER: &str = "x-alerts-sequence";

/// `GET /v1/escalations`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let filter = ListFilter::parse(query, state.config.max_list)?;
    let sequence = state
        .bus
        .stream_info(posbon_bus::subjects::ALERTS_STREAM)
        .await?
        .last_sequence;
    let records = list_records(&state, &caller, &filter).await?;
    Ok((
        [(ALERTS_SEQUENCE_HEADER, sequence.to_string())],
        Json(records),
    ))
}

/// The record of escalation `id`, if it is inside `caller`'s scope (403
/// otherwise, 404 when there is none).
async fn record_in_scope(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<EscalationRecord, ApiError> {
    let record = state
        .store
        .get_escalation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no escalation with id {id:?}")))?;
    if !caller.scope.contains_mahalla(&record.escalation.mahalla_id) {
        return Err(ApiError::out_of_scope(format!("escalation {id:?}")));
    }
    Ok(record)
}

/// `GET /v1/escalations/{id}`.
pub async fn get(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EscalationRecord>, ApiError> {
    record_in_scope(&state, &caller, &id).await.map(Json)
}

/// The body of an action over HTTP: who acts is the caller, never the body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpAction {
    escalation_id: Option<String>,
    action: Option<EscalationAction>,
    /// Accepted only when it names the caller (older clients send it).
    by: Option<String>,
    note: Option<String>,
    assignee: Option<String>,
}

/// `POST /v1/escalations/{id}/{action}` with `{"note": ..., "assignee": ...}`
/// (or no body). The step is recorded under the caller's name.
pub async fn act(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<EscalationRecord>, ApiError> {
    let action = EscalationAction::from_wire(&action).ok_or_else(|| {
        ApiError::not_found(format!(
            "no action {action:?}: use acknowledge, assign, resolve or false_alarm"
        ))
    })?;
    let body: HttpAction = if body.iter().all(u8::is_ascii_whitespace) {
        HttpAction::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_action",
                format!(
                    "body: not an action request ({e}); expected {{\"note\": \"...\", \"assignee\": \"...\"}}"
                ),
            )
        })?
    };
    let actor = caller.actor();
    if body.by.as_ref().is_some_and(|b| *b != actor) {
        return Err(ApiError::bad_request(
            "invalid_action",
            format!("by: the step is recorded under your own name ({actor}); leave `by` out"),
        ));
    }
    let request = ActionRequest {
        escalation_id: body.escalation_id,
        action: body.action,
        by: actor,
        note: body.note,
        assignee: body.assignee,
    };
    if request.escalation_id.as_ref().is_some_and(|i| *i != id) {
        return Err(ApiError::bad_request(
            "invalid_action",
            "escalation_id: differs from the id in the path",
        ));
    }
    if request.action.is_some_and(|a| a != action) {
        return Err(ApiError::bad_request(
            "invalid_action",
            "action: differs from the action in the path",
        ));
    }
    record_in_scope(&state, &caller, &id).await?;
    let result = state.lifecycle.act(&id, action, &request).await;
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    let detail = match &result {
        Ok(_) => {
            json!({ "action": action.as_str(), "note": request.note, "assignee": request.assignee })
        }
        Err(e) => json!({ "action": action.as_str(), "error": e.message }),
    };
    state
        .auth
        .audit()
        .record(caller.audit("escalation_action", Some(id), outcome, detail))
        .await;
    Ok(Json(result?))
}
