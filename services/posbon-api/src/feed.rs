//! The live escalation feed: `GET /v1/feed` (Server-Sent Events) and
//! `GET /v1/feed/ws` (WebSocket).
//!
//! Each message is an escalation record ([`EscalationRecord`], the same JSON as
//! `GET /v1/escalations`) with its ALERTS stream sequence as the event id:
//! `event: opened` when an escalation opens, `event: updated` after a lifecycle
//! step or a re-notification. A client that reconnects with `Last-Event-ID`
//! (SSE does it by itself) or `?last_event_id=` gets exactly the messages after
//! that sequence, from the stream, then the live ones. Without either it gets
//! only what comes next, or everything after `?since=<sequence>`.
//!
//! Filters: `region`, `district`, `mahalla` (ids; they become the NATS subject
//! filter, so the server does the routing) and `min_level`.
//!
//! Limits: at most `api.max_feed_clients` clients at once (one more gets 503
//! `feed_full`) and `api.max_feed_clients_per_caller` per identity (429
//! `too_many_feeds`), both with `Retry-After`; a replay covers at most
//! `api.max_feed_replay` messages: a client further behind starts there and
//! gets a `gap` message first (`{"requested_after": n, "resumed_after": m}`).
//! The WebSocket takes frames of at most [`WS_MAX_MESSAGE_BYTES`] from the
//! client (it has nothing to send but pings and the close).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt as _};
use posbon_auth::{Caller, ScopeItem};
use posbon_bus::StreamMessage;
use posbon_bus::headers::ALERT_TYPE;
use posbon_bus::subjects::{ALERTS_STREAM, UNASSIGNED};
use posbon_model::{Escalation, EscalationRecord, RiskLevel};
use serde::{Deserialize, Serialize};

use crate::ApiState;
use crate::error::ApiError;
use crate::lifecycle::UPDATED;

/// Query of the feed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedQuery {
    /// Only this region.
    pub(crate) region: Option<String>,
    /// Only this district.
    pub(crate) district: Option<String>,
    /// Only this mahalla.
    pub(crate) mahalla: Option<String>,
    /// Only escalations at this level or above.
    pub(crate) min_level: Option<String>,
    /// Resume after this sequence (for clients that cannot set `Last-Event-ID`).
    pub(crate) last_event_id: Option<String>,
    /// Start after this sequence (0: from the oldest message kept).
    pub(crate) since: Option<String>,
}

/// A validated feed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedFilter {
    /// The NATS subject filter on ALERTS that the query asks for.
    pub(crate) subject: String,
    /// The query's place filters, to check against a caller's scope.
    pub(crate) place: (Option<String>, Option<String>, Option<String>),
    /// Minimum level.
    pub(crate) min_level: RiskLevel,
    /// Resume after this sequence; `None`: from the next message.
    pub(crate) after: Option<u64>,
}

/// A filter's subject token: `*` without one; a place id, or the bus's
/// `_unassigned` (events outside every mahalla).
fn token(what: &str, value: Option<&String>) -> Result<String, ApiError> {
    match value {
        None => Ok("*".to_owned()),
        Some(v) if v == UNASSIGNED => Ok(v.clone()),
        Some(v) => {
            posbon_geo::check_place_id(v)
                .map_err(|e| ApiError::bad_request("invalid_filter", format!("{what} {e}")))?;
            Ok(v.clone())
        }
    }
}

fn sequence(what: &str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse::<u64>().map_err(|_| {
        ApiError::bad_request(
            "invalid_sequence",
            format!("{what}: {value:?} is not a stream sequence (a whole number)"),
        )
    })
}

/// Parses a level name.
pub(crate) fn parse_level(what: &str, value: &str) -> Result<RiskLevel, ApiError> {
    RiskLevel::from_wire(value).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_level",
            format!("{what}: {value:?} is not one of normal, elevated, high, critical"),
        )
    })
}

impl FeedFilter {
    /// Validates a query and the `Last-Event-ID` header.
    pub(crate) fn parse(query: &FeedQuery, last_event_id: Option<&str>) -> Result<Self, ApiError> {
        let subject = format!(
            "posbon.alerts.{}.{}.{}",
            token("region", query.region.as_ref())?,
            token("district", query.district.as_ref())?,
            token("mahalla", query.mahalla.as_ref())?
        );
        let min_level = match &query.min_level {
            Some(level) => parse_level("min_level", level)?,
            None => RiskLevel::Normal,
        };
        let after = match (last_event_id, &query.last_event_id, &query.since) {
            (Some(header), _, _) => Some(sequence("Last-Event-ID", header)?),
            (None, Some(q), _) => Some(sequence("last_event_id", q)?),
            (None, None, Some(since)) => Some(sequence("since", since)?),
            (None, None, None) => None,
        };
        Ok(Self {
            subject,
            place: (
                query.region.clone(),
                query.district.clone(),
                query.mahalla.clone(),
            ),
            min_level,
            after,
        })
    }

    /// The subject filters that deliver what the query asks for inside
    /// `caller`'s scope: the query's own subject when the scope covers it,
    /// otherwise the scope's subjects that the query's place allows. Empty:
    /// nothing of the query is inside the scope.
    pub(crate) fn subjects_for(
        &self,
        caller: &Caller,
        registry: &posbon_geo::Registry,
    ) -> Vec<String> {
        let (region, district, mahalla) = &self.place;
        let asked = if let Some(m) = mahalla {
            Some(ScopeItem::Mahalla(m.clone()))
        } else if let Some(d) = district {
            Some(ScopeItem::District(d.clone()))
        } else {
            region.as_ref().map(|r| ScopeItem::Region(r.clone()))
        };
        let covered = match &asked {
            None => caller.scope.is_national(),
            Some(item) => caller.scope.covers(item, registry),
        };
        if covered {
            return vec![self.subject.clone()];
        }
        let matches = |pattern: &str| {
            let parts: Vec<&str> = pattern.split('.').skip(2).collect();
            let ok = |asked: &Option<String>, got: Option<&&str>| {
                asked
                    .as_ref()
                    .is_none_or(|a| got.is_some_and(|g| *g == "*" || *g == a))
            };
            ok(region, parts.first()) && ok(district, parts.get(1)) && ok(mahalla, parts.get(2))
        };
        caller
            .scope
            .alert_subjects(registry)
            .into_iter()
            .filter(|s| matches(s))
            .collect()
    }
}

/// One feed message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FeedItem {
    /// ALERTS sequence.
    pub(crate) id: u64,
    /// `opened` or `updated`.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// The escalation record, with what the client may do to it.
    pub(crate) data: crate::escalations::CallerRecord,
}

/// Turns an ALERTS message into a feed item for `caller`; `None` for what is
/// not an escalation (logged).
pub(crate) fn feed_item(message: &StreamMessage, caller: &Caller) -> Option<FeedItem> {
    let updated = message.headers.get(ALERT_TYPE) == Some(UPDATED);
    let parsed = if updated {
        serde_json::from_slice::<EscalationRecord>(&message.payload)
    } else {
        serde_json::from_slice::<Escalation>(&message.payload).map(|e| {
            let at = e.opened_at;
            EscalationRecord::opened(e, message.sequence, at)
        })
    };
    match parsed {
        Ok(data) => Some(FeedItem {
            id: message.sequence,
            kind: if updated { "updated" } else { "opened" },
            data: crate::escalations::CallerRecord::new(data, caller),
        }),
        Err(err) => {
            tracing::warn!(sequence = message.sequence, error = %err, "ALERTS message skipped by the feed");
            None
        }
    }
}

/// Where a replay that asked for too much started instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Gap {
    /// The sequence the client asked to resume after.
    pub(crate) requested_after: u64,
    /// The sequence the feed resumes after.
    pub(crate) resumed_after: u64,
}

/// Where a feed starts: after `after` (or after the newest message), but at
/// most `max_replay` messages back from the newest (`last`).
pub(crate) fn start_after(after: Option<u64>, last: u64, max_replay: u64) -> (u64, Option<Gap>) {
    let Some(after) = after else {
        return (last, None);
    };
    let earliest = last.saturating_sub(max_replay);
    if after < earliest {
        (
            earliest,
            Some(Gap {
                requested_after: after,
                resumed_after: earliest,
            }),
        )
    } else {
        (after, None)
    }
}

async fn open(
    state: &ApiState,
    caller: &Caller,
    filter: &FeedFilter,
) -> Result<
    (
        impl Stream<Item = StreamMessage> + Send + use<>,
        Option<Gap>,
    ),
    ApiError,
> {
    let subjects = filter.subjects_for(caller, &state.registry);
    if subjects.is_empty() {
        return Err(ApiError::out_of_scope("the place this feed asks for"));
    }
    let (after, gap) = match filter.after {
        None => (None, None),
        Some(_) => {
            let last = state.bus.stream_info(ALERTS_STREAM).await?.last_sequence;
            let (after, gap) = start_after(filter.after, last, state.config.max_feed_replay);
            (Some(after), gap)
        }
    };
    let messages = state.live.subscribe(subjects, after).await?;
    Ok((messages, gap))
}

/// Largest WebSocket message (and frame) a feed client may send.
pub(crate) const WS_MAX_MESSAGE_BYTES: usize = 4096;

/// Counts feed clients against the limits: in all and per identity.
#[derive(Debug)]
pub struct FeedAdmission {
    gauge: posbon_telemetry::Gauge,
    max: usize,
    max_per_caller: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

impl FeedAdmission {
    /// Admission with these limits, reporting the count to `gauge`.
    pub(crate) fn new(gauge: posbon_telemetry::Gauge, max: usize, max_per_caller: usize) -> Self {
        Self {
            gauge,
            max,
            max_per_caller,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// A place for one more client of `actor`, or the error that refuses it.
    pub(crate) fn admit(self: &Arc<Self>, actor: String) -> Result<FeedTicket, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.0 >= self.max {
            return Err(ApiError::at_limit(
                StatusCode::SERVICE_UNAVAILABLE,
                "feed_full",
                format!(
                    "the live feed has its maximum of {} clients; try again shortly",
                    self.max
                ),
                5,
            ));
        }
        let mine = open.1.entry(actor.clone()).or_insert(0);
        if *mine >= self.max_per_caller {
            return Err(ApiError::at_limit(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_feeds",
                format!(
                    "{actor} already has {} live feeds open, the most one identity may: close one",
                    self.max_per_caller
                ),
                5,
            ));
        }
        *mine += 1;
        open.0 += 1;
        self.gauge.inc();
        Ok(FeedTicket {
            admission: Arc::clone(self),
            actor,
        })
    }

    /// Clients connected now.
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

/// One admitted feed client; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct FeedTicket {
    admission: Arc<FeedAdmission>,
    actor: String,
}

impl Drop for FeedTicket {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(mine) = open.1.get_mut(&self.actor) {
            *mine -= 1;
            if *mine == 0 {
                open.1.remove(&self.actor);
            }
        }
        self.admission.gauge.dec();
    }
}

/// The feed items of the messages, filtered by level and (again, whatever
/// the subjects) by the caller's scope; ends with the messages (the client
/// reconnects and resumes).
fn items(
    messages: impl Stream<Item = StreamMessage> + Send,
    min_level: RiskLevel,
    caller: Caller,
) -> impl Stream<Item = FeedItem> + Send {
    messages.filter_map(move |message| {
        futures::future::ready(feed_item(&message, &caller).filter(|i| {
            let e = &i.data.record.escalation;
            e.level >= min_level && caller.scope.contains_mahalla(&e.mahalla_id)
        }))
    })
}

/// `GET /v1/feed`: Server-Sent Events.
pub(crate) async fn sse(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("not ascii"));
    let filter = FeedFilter::parse(&query, last)?;
    let ticket = state.feed_clients.admit(caller.actor())?;
    let (reader, gap) = open(&state, &caller, &filter).await?;
    let hello = futures::stream::once(async {
        Ok(Event::default()
            .retry(Duration::from_secs(2))
            .comment("posbon escalation feed"))
    });
    let gap = futures::stream::iter(gap.map(|gap| {
        Ok(Event::default()
            .event("gap")
            .data(serde_json::to_string(&gap).unwrap_or_default()))
    }));
    let events = items(reader, filter.min_level, caller).map(move |item| {
        let _alive = &ticket;
        let data = serde_json::to_string(&item.data).unwrap_or_else(|_| "{}".to_owned());
        Ok(Event::default()
            .id(item.id.to_string())
            .event(item.kind)
            .data(data))
    });
    Ok(Sse::new(hello.chain(gap).chain(events))
        .keep_alive(KeepAlive::new().interval(state.config.feed_keepalive())))
}

/// `GET /v1/feed/ws`: the same feed over a WebSocket, one JSON text message
/// per item: `{"id": <sequence>, "type": "opened"|"updated", "data": {...}}`.
pub(crate) async fn websocket(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<FeedQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("not ascii"));
    let filter = FeedFilter::parse(&query, last)?;
    let ticket = state.feed_clients.admit(caller.actor())?;
    let (reader, gap) = open(&state, &caller, &filter).await?;
    Ok(upgrade
        .max_message_size(WS_MAX_MESSAGE_BYTES)
        .max_frame_size(WS_MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let _alive = ticket;
            pump(socket, gap, items(reader, filter.min_level, caller)).await;
        })
        .into_response())
}

async fn pump(mut socket: WebSocket, gap: Option<Gap>, items: impl Stream<Item = FeedItem> + Send) {
    if let Some(gap) = gap {
        let text = serde_json::json!({ "type": "gap", "data": gap }).to_string();
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    let mut items = std::pin::pin!(items);
    loop {
        tokio::select! {
            item = items.next() => {
                let Some(item) = item else { break };
                let Ok(text) = serde_json::to_string(&item) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let q = FeedQuery {
            region: Some("tashkent".into()),
            mahalla: Some("m-1".into()),
            min_level: Some("high".into()),
            ..FeedQuery::default()
        };
        let f = FeedFilter::parse(&q, Some("41")).expect("valid");
        assert_eq!(f.subject, "posbon.alerts.tashkent.*.m-1");
        assert_eq!((f.min_level, f.after), (RiskLevel::High, Some(41)));
        let err = FeedFilter::parse(&q, Some("x")).expect_err("bad id");
        assert!(err.message.contains("Last-Event-ID"), "{err}");
        let bad = FeedQuery {
            min_level: Some("severe".into()),
            ..FeedQuery::default()
        };
        let err = FeedFilter::parse(&bad, None).expect_err("bad level");
        assert_eq!(
            err.message,
            "min_level: \"severe\" is not one of normal, elevated, high, critical"
        );
        let bad = FeedQuery {
            district: Some("a.b".into()),
            ..FeedQuery::default()
        };
        let err = FeedFilter::parse(&bad, None).expect_err("a dot");
        assert!(
            err.message.starts_with("district \"a.b\" may only hold"),
            "{err}"
        );
        let bad = FeedQuery {
            region: Some("Tashkent".into()),
            ..FeedQuery::default()
        };
        assert!(FeedFilter::parse(&bad, None).is_err());
        let unassigned = FeedQuery {
            region: Some("_unassigned".into()),
            ..FeedQuery::default()
        };
        let f = FeedFilter::parse(&unassigned, None).expect("events outside every mahalla");
        assert_eq!(f.subject, "posbon.alerts._unassigned.*.*");
    }
}
