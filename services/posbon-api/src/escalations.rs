//! `GET /v1/escalations`, `GET /v1/escalations/{id}` and
//! `POST /v1/escalations/{id}/{action}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse as _;
use chrono::{DateTime, Utc};
use posbon_auth::Caller;
use posbon_model::{
    ActionRequest, EscalationAction, EscalationRecord, EscalationStatus, RiskLevel,
};
use posbon_store::{EscalationIndex, EscalationStoreExt as _};
use serde::Deserialize;
use serde_json::json;

use crate::ApiState;
use crate::error::ApiError;
use crate::feed::parse_level;

/// An escalation as one caller sees it: the record, and the actions
/// (`allowed_actions`) its status allows and the caller may take (their
/// role acts on escalations and the mahalla is in their scope), so that
/// clients never re-implement the lifecycle's rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct CallerRecord {
    /// The record.
    #[serde(flatten)]
    pub(crate) record: EscalationRecord,
    /// What the caller may do to it now.
    pub(crate) allowed_actions: Vec<EscalationAction>,
}

impl CallerRecord {
    /// `record` with what `caller` may do to it.
    pub(crate) fn new(record: EscalationRecord, caller: &Caller) -> Self {
        let may = caller.may(posbon_auth::Permission::ActEscalations)
            && caller.scope.contains_mahalla(&record.escalation.mahalla_id);
        let allowed_actions = if may {
            record.allowed_actions()
        } else {
            Vec::new()
        };
        Self {
            record,
            allowed_actions,
        }
    }
}

/// Filters of `GET /v1/escalations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Region id.
    pub(crate) region: Option<String>,
    /// District id.
    pub(crate) district: Option<String>,
    /// Mahalla id.
    pub(crate) mahalla: Option<String>,
    /// Exactly this level.
    pub(crate) level: Option<String>,
    /// This level or above.
    pub(crate) min_level: Option<String>,
    /// Statuses, comma-separated (`open,acknowledged`).
    pub(crate) status: Option<String>,
    /// Rule name.
    pub(crate) rule: Option<String>,
    /// Opened at or after (RFC 3339).
    pub(crate) since: Option<String>,
    /// Opened before (RFC 3339).
    pub(crate) until: Option<String>,
    /// At most this many (default 200, capped by the configuration).
    pub(crate) limit: Option<usize>,
    /// Continue after the previous page: the `x-next-cursor` header of its
    /// answer.
    pub(crate) cursor: Option<String>,
    /// `json` (the records, the default) or `geojson`: a FeatureCollection
    /// with a feature per escalation (its mahalla's shape) and one per hot
    /// cell (its hexagon).
    pub(crate) format: Option<String>,
}

/// A validated [`ListQuery`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ListFilter {
    region: Option<String>,
    district: Option<String>,
    mahalla: Option<String>,
    level: Option<RiskLevel>,
    min_level: Option<RiskLevel>,
    statuses: Option<Vec<EscalationStatus>>,
    rule: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<Vec<u8>>,
    /// How many to return.
    pub(crate) limit: usize,
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
    pub(crate) fn parse(q: ListQuery, max: usize) -> Result<Self, ApiError> {
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
            cursor: q
                .cursor
                .as_deref()
                .map(|c| {
                    hex::decode(c).map_err(|_| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            format!("cursor: {c:?} is not a cursor this server gave"),
                        )
                    })
                })
                .transpose()?,
            limit,
        })
    }

    /// The index to read: the open one when only open statuses are asked for.
    fn index(&self) -> EscalationIndex {
        match &self.statuses {
            Some(statuses)
                if statuses.iter().all(|s| {
                    !matches!(s, EscalationStatus::Resolved | EscalationStatus::FalseAlarm)
                }) =>
            {
                EscalationIndex::Open
            }
            _ => EscalationIndex::All,
        }
    }

    /// Whether `record` passes.
    pub(crate) fn matches(&self, record: &EscalationRecord) -> bool {
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

/// Most index entries one list request examines; a list whose filter
/// matches few records answers with what it found in them and a cursor to
/// continue.
pub(crate) const MAX_EXAMINED: usize = 20_000;

/// Records read from the store per page of a list.
const LIST_PAGE: usize = 256;

/// One answer of a list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listed {
    /// The records, newest opening first.
    pub(crate) records: Vec<EscalationRecord>,
    /// Where the next page starts (hex), when there may be more.
    pub(crate) cursor: Option<String>,
}

/// The records that pass `filter` inside `caller`'s scope, newest opening
/// first, read through the store's indexes a page at a time: at most
/// `filter.limit` records, and at most [`MAX_EXAMINED`] index entries
/// examined.
pub(crate) async fn list_records(
    state: &ApiState,
    caller: &Caller,
    filter: &ListFilter,
) -> Result<Listed, ApiError> {
    let index = filter.index();
    let mut from = match (&filter.cursor, filter.until) {
        (Some(cursor), _) if index.holds(cursor) => Some(cursor.clone()),
        (Some(_), _) => {
            return Err(ApiError::bad_request(
                "invalid_cursor",
                "cursor: it belongs to another listing (its status filter changed)",
            ));
        }
        (None, Some(until)) => Some(index.position_before(until)),
        (None, None) => None,
    };
    let mut out = Vec::new();
    let mut examined = 0usize;
    loop {
        let page = state
            .store
            .escalations_page(index, from.as_deref(), LIST_PAGE)
            .await?;
        for (after, record) in page.records {
            examined += 1;
            if filter
                .since
                .is_some_and(|t| record.escalation.opened_at < t)
            {
                // Newest first: every later entry is older still.
                return Ok(Listed {
                    records: out,
                    cursor: None,
                });
            }
            if filter.matches(&record)
                && caller.scope.contains_mahalla(&record.escalation.mahalla_id)
            {
                out.push(record);
                if out.len() == filter.limit {
                    return Ok(Listed {
                        records: out,
                        cursor: Some(hex::encode(after)),
                    });
                }
            }
            if examined >= MAX_EXAMINED {
                return Ok(Listed {
                    records: out,
                    cursor: Some(hex::encode(after)),
                });
            }
        }
        match page.next {
            Some(next) => from = Some(next),
            None => {
                return Ok(Listed {
                    records: out,
                    cursor: None,
                });
            }
        }
    }
}

/// Response header of `GET /v1/escalations` when there may be more: pass it
/// back as `cursor=` for the next page.
pub(crate) const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// Response header of `GET /v1/escalations`: the last ALERTS sequence before
/// the listing was read. A client that lists and then opens the feed with
/// `?since=<this>` misses nothing in between and sees at most a few updates
/// twice (records are idempotent to apply).
pub(crate) const ALERTS_SEQUENCE_HEADER: &str = "x-alerts-sequence";

/// `GET /v1/escalations`.
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let geojson = match query.format.as_deref() {
        None | Some("json") => false,
        Some("geojson") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format: {other:?} is not json or geojson"),
            ));
        }
    };
    let filter = ListFilter::parse(query, state.config.max_list)?;
    let sequence = state
        .bus
        .stream_info(posbon_bus::subjects::ALERTS_STREAM)
        .await?
        .last_sequence;
    let listed = list_records(&state, &caller, &filter).await?;
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(ALERTS_SEQUENCE_HEADER, sequence.into());
    if let Some(cursor) = listed.cursor
        && let Ok(value) = cursor.parse()
    {
        headers.insert(NEXT_CURSOR_HEADER, value);
    }
    if geojson {
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(posbon_geo::features::GEOJSON_MEDIA_TYPE),
        );
        let body = escalations_geojson(&state.registry, &listed.records);
        return Ok((headers, Json(body)).into_response());
    }
    let shown: Vec<CallerRecord> = listed
        .records
        .into_iter()
        .map(|r| CallerRecord::new(r, &caller))
        .collect();
    Ok((headers, Json(shown)).into_response())
}

/// Escalations as GeoJSON: a feature per escalation with its mahalla's
/// shape (`"feature": "escalation"`, the record's id, mahalla, level,
/// status, rule, score and times), and one per hot cell
/// (`"feature": "hot_cell"`, its escalation, Gi* z and events).
pub(crate) fn escalations_geojson(
    registry: &posbon_geo::Registry,
    records: &[EscalationRecord],
) -> serde_json::Value {
    use posbon_geo::features::{cell_polygon, multipolygon};
    let mut features = Vec::new();
    for r in records {
        let e = &r.escalation;
        let shape = registry
            .mahalla_by_id(&e.mahalla_id)
            .map(|(_, m)| multipolygon(&m.geometry));
        features.push(serde_json::json!({
            "type": "Feature",
            "id": e.id,
            "geometry": shape,
            "properties": {
                "feature": "escalation",
                "id": e.id,
                "mahalla_id": e.mahalla_id,
                "district_id": e.district_id,
                "region_id": e.region_id,
                "level": e.level,
                "status": r.status(),
                "rule": e.rule,
                "score": e.score,
                "measure": e.measure,
                "opened_at": e.opened_at,
            },
        }));
        for hot in &e.hot_cells {
            let Ok(cell) = posbon_geo::CellIndex::try_from(hot.cell.get()) else {
                continue;
            };
            features.push(serde_json::json!({
                "type": "Feature",
                "geometry": cell_polygon(cell),
                "properties": {
                    "feature": "hot_cell",
                    "escalation_id": e.id,
                    "cell": cell.to_string(),
                    "gi_z": hot.gi_z,
                    "events": hot.events,
                },
            }));
        }
    }
    serde_json::json!({ "type": "FeatureCollection", "features": features })
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
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CallerRecord>, ApiError> {
    let record = record_in_scope(&state, &caller, &id).await?;
    Ok(Json(CallerRecord::new(record, &caller)))
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
pub(crate) async fn act(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<CallerRecord>, ApiError> {
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
    Ok(Json(CallerRecord::new(result?, &caller)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbon_model::{CellId, Escalation, HotCell, RiskLevel};

    #[test]
    fn escalations_are_features_on_their_mahalla_and_hot_cells_on_their_hexagon() {
        let registry = posbon_sim::load_registry(None).expect("registry");
        let m = &registry.mahallas()[0];
        let centre = geo::Centroid::centroid(&m.geometry).expect("centroid");
        let cell = posbon_geo::LatLng::new(centre.y(), centre.x())
            .expect("point")
            .to_cell(posbon_geo::Resolution::Ten);
        let opened = Utc::now();
        let record = EscalationRecord::opened(
            Escalation {
                id: "e-1".into(),
                mahalla_id: m.id.clone(),
                district_id: m.district_id.clone(),
                region_id: m.region_id.clone(),
                level: RiskLevel::High,
                previous_level: RiskLevel::Normal,
                score: 4.0,
                rule: "test".into(),
                measure: None,
                counts: Default::default(),
                hot_cells: vec![HotCell {
                    cell: CellId::new(u64::from(cell)).expect("cell"),
                    gi_z: 3.2,
                    events: 5,
                }],
                evidence: vec![],
                window_start: opened,
                window_end: opened,
                opened_at: opened,
                status: posbon_model::EscalationStatus::Open,
            },
            1,
            opened,
        );
        let fc = escalations_geojson(&registry, &[record]);
        let features = fc["features"].as_array().expect("features");
        assert_eq!(features.len(), 2, "{fc}");
        assert_eq!(features[0]["geometry"]["type"], "MultiPolygon");
        assert_eq!(features[1]["geometry"]["type"], "Polygon");
        assert_eq!(features[1]["properties"]["escalation_id"], "e-1");
        assert_eq!(features[1]["properties"]["cell"], cell.to_string());
        let ring = features[1]["geometry"]["coordinates"][0]
            .as_array()
            .expect("ring");
        assert_eq!(ring.first(), ring.last());
    }
}
