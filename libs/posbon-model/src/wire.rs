//! How an enriched event travels on the `EVENTS` stream: compact binary
//! ([`crate::compact`]) or JSON, told apart by the message's `Content-Type`
//! header.
//!
//! Ingest publishes the compact form by default: it is about a third of the
//! bytes of the JSON, and encoding and decoding it costs a small fraction of
//! what JSON costs, on every hop (ingest, the broker, the indexer, every
//! escalator). A deployment whose own consumers want JSON sets ingest's
//! `events_encoding = "json"`. Every Posbon consumer reads both, and a message
//! without a `Content-Type` is JSON, so events published by other tools in
//! JSON are accepted as before.

use serde::{Deserialize, Serialize};

use crate::compact;
use crate::enriched::EnrichedEvent;

/// `Content-Type` of a compact event.
pub const COMPACT_CONTENT_TYPE: &str = "application/vnd.posbon.event+compact";
/// `Content-Type` of a JSON event (also assumed when the header is absent).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The encoding of the events ingest publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventEncoding {
    /// [`crate::compact`], [`COMPACT_CONTENT_TYPE`].
    #[default]
    Compact,
    /// The event's JSON ([`JSON_CONTENT_TYPE`]).
    Json,
}

impl EventEncoding {
    /// The `Content-Type` header of a message in this encoding.
    pub const fn content_type(self) -> &'static str {
        match self {
            EventEncoding::Compact => COMPACT_CONTENT_TYPE,
            EventEncoding::Json => JSON_CONTENT_TYPE,
        }
    }

    /// Appends `event` in this encoding to `out`. Only JSON can fail, and
    /// only if serde_json refuses a value (it has no reason to: every map of
    /// an event has string keys).
    pub fn encode(self, event: &EnrichedEvent, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            EventEncoding::Compact => {
                compact::encode(event, out);
                Ok(())
            }
            EventEncoding::Json => serde_json::to_writer(&mut *out, event)
                .map_err(|e| format!("cannot encode event as JSON: {e}")),
        }
    }
}

impl EnrichedEvent {
    /// Decodes the payload of an `EVENTS` message whose `Content-Type`
    /// header is `content_type`: compact, or JSON when the header says so or
    /// is absent. Both are checked against the event rules (all but the
    /// payload size and the ones relative to the current time), like the
    /// strict `Deserialize`. The error says what is wrong.
    pub fn from_message(content_type: Option<&str>, payload: &[u8]) -> Result<Self, String> {
        // The media type without parameters (`; charset=...`), any case.
        let media = content_type.map(|c| c.split(';').next().unwrap_or_default().trim());
        let is = |expected: &str| media.is_some_and(|m| m.eq_ignore_ascii_case(expected));
        match media {
            Some(_) if is(COMPACT_CONTENT_TYPE) => {
                let event = compact::decode(payload).map_err(|e| e.to_string())?;
                crate::parse::validate_event_static(&event.event)
                    .map_err(|e| format!("compact event breaks the event rules: {e}"))?;
                Ok(event)
            }
            None => serde_json::from_slice(payload).map_err(|e| format!("invalid event JSON: {e}")),
            Some(_) if is(JSON_CONTENT_TYPE) => Self::from_message(None, payload),
            Some(other) => Err(format!(
                "unsupported Content-Type {other:?}: expected {COMPACT_CONTENT_TYPE} or {JSON_CONTENT_TYPE}"
            )),
        }
    }
}
