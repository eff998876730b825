//! `GET /v1/reports/daily`: the stored daily report of one scope, as JSON,
//! CSV or a printable HTML page; `POST` generates it now.
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/reports/daily?date=YYYY-MM-DD&scope=nation` | the [`ScopeView`](crate::ScopeView) |
//! | `GET /v1/reports/daily/dates` | `{"dates": [...]}`: the dates with a report |
//! | `GET /v1/reports/daily/mahallas?date=YYYY-MM-DD&scope=region:<id>[&limit=N]` | `{"date", "scope", "rows": [...], "truncated", "sql"}`: the scope's mahallas, most harm first; `sql` is the same question over the `daily_reports` table, for the SQL console |
//! | `POST /v1/reports/daily?date=YYYY-MM-DD` | generates (or regenerates) the report, stores and publishes it, answers with the nation's view |
//!
//! `scope` is `nation` (the default), `region:<id>`, `district:<id>`,
//! `mahalla:<id>` or `unassigned`. The format follows `format=json|csv|html`
//! or else `Accept` (`text/html`, `text/csv`, otherwise JSON). `POST` takes
//! `refresh_baselines=true` to recompute the 28 days before from the events even where
//! they are current (days with events written since their figures were computed are
//! recomputed anyway).
//! Errors are problem documents (`posbon_auth::http::problem`) whose `code`
//! is the kind: 400 for a bad date,
//! scope or format, 403 for a scope outside the caller's, 404 when the
//! report (or the scope in it) does not exist, 500 when the store or a
//! report query fails.
//!
//! A caller without `sensitive_columns` reads a mahalla's focus-group count
//! below `[reporter] small_count_min` as withheld
//! (`DailyReport::withhold_small_counts`).
//!
//! Reading needs `read_reports`, generating `generate_reports`. A caller
//! limited to part of the country reads only scopes that lie wholly inside
//! theirs (a caller with one region, district or mahalla gets that one when
//! the request names none). Every read and generation is audited.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use posbon_auth::{Access, Auth, Caller, Guarded, Permission, ScopeItem};
use posbon_bus::Bus;
use serde::Deserialize;
use serde_json::json;

use posbon_i18n::Lang;

use crate::error::ReportError;
use crate::publish::publish;
use crate::render::{to_csv, to_html};
use crate::report::{Scope, ScopeKind};
use crate::reporter::Reporter;

/// What the routes share.
#[derive(Clone)]
struct ReportsState {
    reporter: Arc<Reporter>,
    bus: Option<Arc<dyn Bus>>,
    auth: Arc<Auth>,
}

/// The query of the daily report routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DailyQuery {
    date: Option<String>,
    scope: Option<String>,
    format: Option<String>,
    /// The printable page's language: `uz`, `ru` or `en` (default: from
    /// `Accept-Language`).
    lang: Option<String>,
    refresh_baselines: Option<bool>,
}

/// The query of `GET /v1/reports/daily/mahallas`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MahallasQuery {
    date: Option<String>,
    scope: Option<String>,
    /// At most this many rows (default and most: [`MAX_MAHALLA_ROWS`]).
    limit: Option<usize>,
}

/// The most mahalla rows one answer carries (the country has about 9,500
/// mahallas; a region a few hundred to 1,500).
pub(crate) const MAX_MAHALLA_ROWS: usize = 10_000;

/// The columns of a mahalla row, in order: counts and scores of the whole
/// mahalla only. No focus-group count (victims, offenders) belongs here:
/// those are withheld below `small_count_min` for callers without
/// `sensitive_columns`, which this route does not do.
const MAHALLA_COLUMNS: [&str; 17] = [
    "mahalla_id",
    "name",
    "district_id",
    "events",
    "incidents",
    "camera_alerts",
    "fraud_flags",
    "offences",
    "cyber_share",
    "harm",
    "z7",
    "z28",
    "camera_alerts_z7",
    "escalations_opened",
    "escalations_closed",
    "crime_free_days",
    "last_offence",
];

/// A SQL string literal.
fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SELECT over `daily_reports` that gives the rows of `mahallas`.
fn mahallas_sql(date: NaiveDate, scope: &Scope) -> String {
    let mut filter = vec![
        format!("date = DATE {}", sql_text(&date.to_string())),
        "scope = 'mahalla'".to_owned(),
    ];
    match scope.kind {
        ScopeKind::Region => filter.push(format!("region_id = {}", sql_text(&scope.id))),
        ScopeKind::District => filter.push(format!("district_id = {}", sql_text(&scope.id))),
        ScopeKind::Mahalla => filter.push(format!("scope_id = {}", sql_text(&scope.id))),
        ScopeKind::Nation | ScopeKind::Unassigned => {}
    }
    let columns = MAHALLA_COLUMNS
        .iter()
        .map(|c| {
            if *c == "mahalla_id" {
                "scope_id AS mahalla_id"
            } else {
                c
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}\nFROM daily_reports\nWHERE {}\nORDER BY harm DESC, offences DESC, name",
        filter.join(" AND ")
    )
}

/// A response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Html(Lang),
}

fn negotiate(
    param: Option<&str>,
    lang: Option<&str>,
    headers: &HeaderMap,
) -> Result<Format, ReportError> {
    let accept_language = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = Lang::negotiate(lang, accept_language).map_err(ReportError::InvalidRequest)?;
    if let Some(p) = param {
        return match p {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html(lang)),
            other => Err(ReportError::InvalidRequest(format!(
                "unknown format {other:?}, expected json, csv or html"
            ))),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for item in accept.split(',') {
        match item.split(';').next().unwrap_or_default().trim() {
            "text/html" => return Ok(Format::Html(lang)),
            "text/csv" => return Ok(Format::Csv),
            "application/json" => return Ok(Format::Json),
            _ => {}
        }
    }
    Ok(Format::Json)
}

/// The routes of the daily report, with their access rules. With a bus,
/// `POST` publishes what it generates on `posbon.reports.daily`.
pub fn router(reporter: Arc<Reporter>, bus: Option<Arc<dyn Bus>>, auth: Arc<Auth>) -> Guarded {
    use Access::Permission as P;
    let router = Router::new()
        .route("/v1/reports/daily", get(get_daily).post(post_daily))
        .route("/v1/reports/daily/dates", get(dates))
        .route("/v1/reports/daily/mahallas", get(mahallas))
        .with_state(ReportsState {
            reporter,
            bus,
            auth,
        });
    Guarded::new(
        router,
        [
            (Method::GET, "/v1/reports/daily", P(Permission::ReadReports)),
            (
                Method::POST,
                "/v1/reports/daily",
                P(Permission::GenerateReports),
            ),
            (
                Method::GET,
                "/v1/reports/daily/dates",
                P(Permission::ReadReports),
            ),
            (
                Method::GET,
                "/v1/reports/daily/mahallas",
                P(Permission::ReadReports),
            ),
        ],
    )
}

/// The scope a request reads: the one it names, or the caller's own when
/// they have exactly one; refused when it is not wholly inside theirs.
fn scope_for(
    state: &ReportsState,
    caller: &Caller,
    asked: Option<&str>,
) -> Result<Scope, ReportError> {
    let scope: Scope = match asked {
        Some(text) => text.parse()?,
        None => match caller.scope.items() {
            [] => Scope::nation(),
            [only] => only.to_string().parse()?,
            _ => {
                return Err(ReportError::InvalidRequest(
                    "scope is required: name a region, district or mahalla of your scope"
                        .to_owned(),
                ));
            }
        },
    };
    let item = match scope.kind {
        ScopeKind::Nation | ScopeKind::Unassigned => None,
        ScopeKind::Region => Some(ScopeItem::Region(scope.id.clone())),
        ScopeKind::District => Some(ScopeItem::District(scope.id.clone())),
        ScopeKind::Mahalla => Some(ScopeItem::Mahalla(scope.id.clone())),
    };
    let inside = match &item {
        None => caller.scope.is_national(),
        Some(item) => state
            .auth
            .registry()
            .is_some_and(|registry| caller.scope.covers(item, registry)),
    };
    if !inside {
        return Err(ReportError::Forbidden(format!(
            "scope {scope} is outside your scope"
        )));
    }
    Ok(scope)
}

/// The JSON error answer of `e`.
pub(crate) fn error_response(e: &ReportError) -> Response {
    let (status, kind) = match e {
        ReportError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        ReportError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ReportError::Forbidden(_) => (StatusCode::FORBIDDEN, "out_of_scope"),
        ReportError::Query { .. } | ReportError::Internal(_) => {
            tracing::error!(error = %e, "daily report failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    // What failed inside stays in the log.
    let detail = if status.is_server_error() {
        "the report could not be computed; the server's log has the details".to_owned()
    } else {
        e.to_string()
    };
    posbon_auth::http::error(status, kind, &detail)
}

/// The date and scope a daily-report request asked for, as given.
fn asked(
    query: &Result<Query<DailyQuery>, axum::extract::rejection::QueryRejection>,
) -> (Option<String>, Option<String>) {
    match query {
        Ok(Query(q)) => (q.date.clone(), q.scope.clone()),
        Err(_) => (None, None),
    }
}

fn parse_date(date: Option<&str>) -> Result<NaiveDate, ReportError> {
    let text = date
        .ok_or_else(|| ReportError::InvalidRequest("date is required, as YYYY-MM-DD".to_owned()))?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ReportError::InvalidRequest(format!("date {text:?} is not a date as YYYY-MM-DD"))
    })
}

fn respond(view: &crate::report::ScopeView, format: Format) -> Response {
    match format {
        Format::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(view).unwrap_or_default(),
        )
            .into_response(),
        Format::Csv => ([(header::CONTENT_TYPE, "text/csv")], to_csv(view)).into_response(),
        Format::Html(lang) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_LANGUAGE, lang.code()),
                (header::VARY, "Accept, Accept-Language"),
            ],
            to_html(view, lang),
        )
            .into_response(),
    }
}

/// Records a read or a generation of `date` and `scope` (as asked) in the
/// audit log, with the reason when it was refused.
async fn audit(
    state: &ReportsState,
    caller: &Caller,
    action: &'static str,
    (date, scope): (Option<String>, Option<String>),
    refused: Option<String>,
) {
    let (outcome, detail) = match refused {
        None => ("ok", json!({ "date": date, "scope": scope })),
        Some(e) => (
            "refused",
            json!({ "date": date, "scope": scope, "error": e }),
        ),
    };
    state
        .auth
        .audit()
        .record(caller.audit(action, date.clone(), outcome, detail))
        .await;
}

async fn get_daily(
    State(state): State<ReportsState>,
    caller: Caller,
    query: Result<Query<DailyQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let Query(q) = query
            .as_ref()
            .map_err(|e| ReportError::InvalidRequest(e.body_text()))?;
        let format = negotiate(q.format.as_deref(), q.lang.as_deref(), &headers)?;
        let date = parse_date(q.date.as_deref())?;
        let scope = scope_for(&state, &caller, q.scope.as_deref())?;
        let mut report = state.reporter.load(date).await?.ok_or_else(|| {
            ReportError::NotFound(format!(
                "no daily report for {date} yet: POST /v1/reports/daily?date={date} or \
                 `posbon report daily --date {date}` generates it"
            ))
        })?;
        if !caller.may(Permission::SensitiveColumns) {
            report.withhold_small_counts(state.reporter.small_count_min());
        }
        Ok::<_, ReportError>(respond(&report.view(&scope)?, format))
    }
    .await;
    let refused = result.as_ref().err().map(ToString::to_string);
    audit(&state, &caller, "report_read", asked(&query), refused).await;
    result.unwrap_or_else(|e| error_response(&e))
}

async fn post_daily(
    State(state): State<ReportsState>,
    caller: Caller,
    query: Result<Query<DailyQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let Query(q) = query
            .as_ref()
            .map_err(|e| ReportError::InvalidRequest(e.body_text()))?;
        let format = negotiate(q.format.as_deref(), q.lang.as_deref(), &headers)?;
        let date = parse_date(q.date.as_deref())?;
        let scope = scope_for(&state, &caller, q.scope.as_deref())?;
        let mut report = state
            .reporter
            .generate_with(date, q.refresh_baselines.unwrap_or(false))
            .await?;
        if let Some(bus) = &state.bus {
            publish(bus.as_ref(), &report).await?;
        }
        if !caller.may(Permission::SensitiveColumns) {
            report.withhold_small_counts(state.reporter.small_count_min());
        }
        Ok::<_, ReportError>(respond(&report.view(&scope)?, format))
    }
    .await;
    let refused = result.as_ref().err().map(ToString::to_string);
    audit(&state, &caller, "report_generate", asked(&query), refused).await;
    result.unwrap_or_else(|e| error_response(&e))
}

async fn dates(State(state): State<ReportsState>) -> Response {
    match state.reporter.report_dates().await {
        Ok(dates) => (
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "dates": dates }).to_string(),
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /v1/reports/daily/mahallas`: the mahallas of a scope in the day's
/// report, most harm first. Audited like every report read.
async fn mahallas(
    State(state): State<ReportsState>,
    caller: Caller,
    query: Result<Query<MahallasQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let asked = match &query {
        Ok(Query(q)) => (q.date.clone(), q.scope.clone()),
        Err(_) => (None, None),
    };
    let result = async {
        let Query(q) = query.map_err(|e| ReportError::InvalidRequest(e.body_text()))?;
        let date = parse_date(q.date.as_deref())?;
        let scope = scope_for(&state, &caller, q.scope.as_deref())?;
        if scope.kind == ScopeKind::Unassigned {
            return Err(ReportError::InvalidRequest(
                "scope unassigned has no mahallas: name the nation, a region, a district or a mahalla"
                    .to_owned(),
            ));
        }
        let limit = q.limit.unwrap_or(MAX_MAHALLA_ROWS);
        if limit == 0 || limit > MAX_MAHALLA_ROWS {
            return Err(ReportError::InvalidRequest(format!(
                "limit {limit} is not in 1..={MAX_MAHALLA_ROWS}"
            )));
        }
        let report = state
            .reporter
            .load(date)
            .await?
            .ok_or_else(|| ReportError::NotFound(format!("no daily report for {date} yet")))?;
        let all = report.mahallas_of(&scope)?;
        let rows: Vec<serde_json::Value> = all
            .iter()
            .take(limit)
            .map(|r| {
                json!({
                    "mahalla_id": r.scope_id, "name": r.name, "district_id": r.district_id,
                    "events": r.events, "incidents": r.incidents,
                    "camera_alerts": r.camera_alerts, "fraud_flags": r.fraud_flags,
                    "offences": r.offences, "cyber_share": r.cyber_share, "harm": r.harm,
                    "z7": r.z7, "z28": r.z28, "camera_alerts_z7": r.camera_alerts_z7,
                    "escalations_opened": r.escalations_opened,
                    "escalations_closed": r.escalations_closed,
                    "crime_free_days": r.crime_free_days, "last_offence": r.last_offence,
                })
            })
            .collect();
        let body = json!({
            "date": date,
            "scope": scope.to_string(),
            "columns": MAHALLA_COLUMNS,
            "rows": rows,
            "truncated": all.len() > limit,
            "sql": mahallas_sql(date, &scope),
        });
        Ok::<_, ReportError>(
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response(),
        )
    }
    .await;
    let refused = result.as_ref().err().map(ToString::to_string);
    audit(&state, &caller, "report_mahallas", asked, refused).await;
    result.unwrap_or_else(|e| error_response(&e))
}
