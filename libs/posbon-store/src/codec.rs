//! The value codec of event records: a version byte, then the
//! [`EnrichedEvent`] as JSON.
//!
//! JSON is the wire format too: the indexer stores the payload of each
//! `EVENTS` message as it came ([`crate::EventStoreExt::put_encoded`]), so a
//! record is that message and can be inspected with any tool. The cost is size
//! (about 500 to 700 bytes for a typical event, field names included) and
//! decode time (strict deserialisation re-checks the event's rules); the
//! `store` benchmark measures the decode cost inside its scan figures. The
//! version byte lets a compact format replace JSON later without rewriting
//! old records.

use posbon_model::EnrichedEvent;

use crate::error::{Result, StoreError};

/// Version byte of records written by this crate: JSON.
pub const EVENT_JSON_V1: u8 = 1;

/// Encodes an event record: [`EVENT_JSON_V1`] then JSON.
pub fn encode_event(event: &EnrichedEvent) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(640);
    out.push(EVENT_JSON_V1);
    serde_json::to_writer(&mut out, event).map_err(|e| {
        StoreError::with_source(
            crate::StoreErrorKind::InvalidRequest,
            "cannot encode event",
            e,
        )
    })?;
    Ok(out)
}

/// The record of an event whose JSON is `json`: [`EVENT_JSON_V1`] then `json`.
pub fn record_of_json(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(EVENT_JSON_V1);
    out.extend_from_slice(json);
    out
}

/// Decodes an event record written by [`encode_event`].
pub fn decode_event(bytes: &[u8]) -> Result<EnrichedEvent> {
    match bytes.split_first() {
        Some((&EVENT_JSON_V1, json)) => serde_json::from_slice(json).map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Corrupt,
                "cannot decode event record",
                e,
            )
        }),
        Some((version, _)) => Err(StoreError::corrupt(format!(
            "unknown event record version {version}"
        ))),
        None => Err(StoreError::corrupt("empty event record")),
    }
}
