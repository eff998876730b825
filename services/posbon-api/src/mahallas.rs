//! The map's data: `GET /v1/mahallas` (GeoJSON coloured by current risk),
//! `GET /v1/mahallas/{id}` (its recent events, hot cells and escalations),
//! `GET /v1/registry` (regions and districts for filters) and
//! `GET /v1/sources/precision` (per-camera and per-detector precision).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{TimeDelta, Utc};
use futures::TryStreamExt as _;
use posbon_auth::Caller;
use posbon_model::{EnrichedEvent, MahallaRisk, RISK_SNAPSHOT_PREFIX, RiskLevel, RiskSnapshot};
use posbon_store::keys::prefix_range;
use posbon_store::{EscalationStoreExt as _, EventStoreExt as _, SourcePrecision, checkpoint_key};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiError;
use crate::escalations::{ListFilter, list_records};

/// The current risk of every mahalla that is not plainly normal, merged from
/// the escalator shards' snapshots ([`RiskSnapshot::merge`]: those of an
/// earlier shard count are ignored).
pub(crate) async fn current_risk(
    state: &ApiState,
) -> Result<HashMap<String, MahallaRisk>, ApiError> {
    let (start, end) = prefix_range(&checkpoint_key(RISK_SNAPSHOT_PREFIX));
    let snapshots: Vec<_> = state
        .store
        .scan_stream(start, end, 64)
        .try_collect()
        .await?;
    let mut read = Vec::with_capacity(snapshots.len());
    for (key, value) in snapshots {
        match serde_json::from_slice::<RiskSnapshot>(&value) {
            Ok(snapshot) => read.push(snapshot),
            Err(err) => tracing::warn!(
                key = %String::from_utf8_lossy(&key),
                error = %err,
                "unreadable risk snapshot skipped"
            ),
        }
    }
    Ok(RiskSnapshot::merge(read))
}

/// How many escalations are open in each mahalla (read through the store's
/// open index: as many records as are open, not every one ever kept).
pub(crate) async fn open_per_mahalla(
    state: &ApiState,
) -> Result<std::collections::BTreeMap<String, u64>, ApiError> {
    let mut open = std::collections::BTreeMap::new();
    for r in state.store.open_escalations().await? {
        *open.entry(r.escalation.mahalla_id).or_default() += 1;
    }
    Ok(open)
}

/// `GET /v1/mahallas`: every mahalla as a GeoJSON feature with `id`, `name`,
/// `district_id`, `region_id`, `population`, `level`, `score` and
/// `open_escalations`.
pub(crate) async fn geojson(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let risk = current_risk(&state).await?;
    let open = open_per_mahalla(&state).await?;
    let features: Vec<Value> = state
        .registry
        .mahallas()
        .iter()
        .filter(|m| caller.scope.contains_mahalla(&m.id))
        .map(|m| {
            let r = risk.get(&m.id);
            json!({
                "type": "Feature",
                "id": m.id,
                "properties": {
                    "id": m.id,
                    "name": m.name,
                    "district_id": m.district_id,
                    "region_id": m.region_id,
                    "population": m.population,
                    "level": r.map_or(RiskLevel::Normal, |r| r.level),
                    "score": r.map_or(0.0, |r| r.score),
                    "open_escalations": open.get(&m.id).copied().unwrap_or(0),
                },
                "geometry": posbon_geo::features::multipolygon(&m.geometry),
            })
        })
        .collect();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            posbon_geo::features::GEOJSON_MEDIA_TYPE,
        )],
        Json(json!({ "type": "FeatureCollection", "features": features })),
    ))
}

/// Query of `GET /v1/mahallas/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetailQuery {
    /// Events of the last this many hours (default 24, at most 720).
    pub(crate) hours: Option<u32>,
    /// At most this many events, newest first (default 100, at most 1000).
    pub(crate) events: Option<usize>,
}

/// `GET /v1/mahallas/{id}`.
pub(crate) async fn detail(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<Json<Value>, ApiError> {
    let (idx, mahalla) = state
        .registry
        .mahalla_by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("no mahalla with id {id:?}")))?;
    if !caller.scope.contains_mahalla(&id) {
        return Err(ApiError::out_of_scope(format!("mahalla {id:?}")));
    }
    let hours = query.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::bad_request(
            "invalid_hours",
            format!("hours: {hours} is not in 1..=720"),
        ));
    }
    let max_events = query.events.unwrap_or(100);
    if !(1..=1000).contains(&max_events) {
        return Err(ApiError::bad_request(
            "invalid_events",
            format!("events: {max_events} is not in 1..=1000"),
        ));
    }
    let to = Utc::now() + TimeDelta::minutes(5);
    let from = to - TimeDelta::hours(i64::from(hours));
    let mut events: Vec<EnrichedEvent> = state
        .store
        .events_of_mahalla(&state.registry, idx, from, to)
        .await?;
    let total = events.len();
    events.sort_by_key(|e| std::cmp::Reverse(e.event.occurred_at()));
    events.truncate(max_events);
    let risk = current_risk(&state).await?.remove(&id);
    let filter = ListFilter::parse(
        crate::escalations::ListQuery {
            mahalla: Some(id.clone()),
            limit: Some(state.config.max_list),
            ..Default::default()
        },
        state.config.max_list,
    )?;
    let escalations: Vec<crate::escalations::CallerRecord> = list_records(&state, &caller, &filter)
        .await?
        .records
        .into_iter()
        .map(|r| crate::escalations::CallerRecord::new(r, &caller))
        .collect();
    let mut events = serde_json::to_value(&events).unwrap_or_default();
    if !caller.may(posbon_auth::Permission::SensitiveColumns) {
        posbon_auth::redact(&mut events);
    }
    Ok(Json(json!({
        "id": mahalla.id,
        "name": mahalla.name,
        "district_id": mahalla.district_id,
        "region_id": mahalla.region_id,
        "population": mahalla.population,
        "inspector": mahalla.inspector,
        "level": risk.as_ref().map_or(RiskLevel::Normal, |r| r.level),
        "score": risk.as_ref().map_or(0.0, |r| r.score),
        "since": risk.as_ref().and_then(|r| r.since),
        "hot_cells": risk.map(|r| r.hot_cells).unwrap_or_default(),
        "window": { "from": from, "to": to, "events": total },
        "events": events,
        "escalations": escalations,
    })))
}

/// `GET /v1/registry`: regions with their districts (ids and names).
/// Only the regions and districts with a mahalla in the caller's scope.
pub(crate) async fn registry(State(state): State<Arc<ApiState>>, caller: Caller) -> Json<Value> {
    let in_scope = |m: &posbon_geo::MahallaIdx| {
        caller
            .scope
            .contains_mahalla(&state.registry.mahalla(*m).id)
    };
    let regions: Vec<Value> = state
        .registry
        .regions()
        .iter()
        .filter_map(|r| {
            let districts: Vec<Value> = r
                .districts
                .iter()
                .filter_map(|d| state.registry.district(d))
                .filter(|d| d.mahallas.iter().any(in_scope))
                .map(|d| json!({ "id": d.id, "name": d.name, "mahallas": d.mahallas.iter().filter(|m| in_scope(m)).count() }))
                .collect();
            (!districts.is_empty())
                .then(|| json!({ "id": r.id, "name": r.name, "districts": districts }))
        })
        .collect();
    let mahallas = state
        .registry
        .mahallas()
        .iter()
        .filter(|m| caller.scope.contains_mahalla(&m.id))
        .count();
    Json(json!({ "regions": regions, "mahallas": mahallas }))
}

/// `GET /v1/sources/precision`: how often each camera's and detector's
/// evidence was confirmed or a false alarm.
pub(crate) async fn precision(
    State(state): State<Arc<ApiState>>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let all: Vec<SourcePrecision> = state.store.source_precisions().await?;
    Ok(Json(
        all.into_iter()
            .map(|p| {
                let precision = p.precision();
                json!({
                    "kind": p.kind, "id": p.id, "confirmed": p.confirmed,
                    "false_alarms": p.false_alarms, "precision": precision,
                })
            })
            .collect(),
    ))
}
