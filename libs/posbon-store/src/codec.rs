//! The value codec of event records: a version byte, then the event.
//!
//! | version | record |
//! |---|---|
//! | [`EVENT_COMPACT_V2`] (written) | the compact binary form of the [`EnrichedEvent`] ([`posbon_model::compact`]) |
//! | [`EVENT_JSON_V1`] (read) | the event as JSON, as on the wire |
//!
//! Records were JSON at first: the indexer stored each `EVENTS` payload as
//! it came. The compact form is about a third of the bytes (a typical
//! simulated event: 180 instead of 520), which is a third of what the
//! journal, the memtable, flushes and compactions move per event, and it is
//! read without parsing text. Records of both versions can sit side by side
//! in one store; every reader goes through [`decode_event`] or, for the
//! SQL engine, checks the version byte itself.

use posbon_model::{EnrichedEvent, compact};

use crate::error::{Result, StoreError};

/// Version byte of JSON records, the first format (still read).
pub const EVENT_JSON_V1: u8 = 1;

/// Version byte of compact records ([`posbon_model::compact`]), the format
/// written.
pub const EVENT_COMPACT_V2: u8 = 2;

/// Encodes an event record: [`EVENT_COMPACT_V2`] then the compact form.
pub fn encode_event(event: &EnrichedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_event_into(event, &mut out);
    out
}

/// [`encode_event`] appending to `out`.
pub fn encode_event_into(event: &EnrichedEvent, out: &mut Vec<u8>) {
    out.push(EVENT_COMPACT_V2);
    compact::encode(event, out);
}

/// Decodes an event record of any version.
pub fn decode_event(bytes: &[u8]) -> Result<EnrichedEvent> {
    match bytes.split_first() {
        Some((&EVENT_COMPACT_V2, rest)) => compact::decode(rest).map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Corrupt,
                "cannot decode event record",
                e,
            )
        }),
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

/// Version byte of the JSON documents written through [`encode_json`].
pub const JSON_V1: u8 = 1;

/// Encodes a JSON document record (escalation records, identities, audit
/// records): [`JSON_V1`], then the JSON. `what` names it in the error.
pub fn encode_json<T: serde::Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    let mut out = vec![JSON_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| {
        StoreError::with_source(
            crate::StoreErrorKind::InvalidRequest,
            format!("cannot encode {what}"),
            e,
        )
    })?;
    Ok(out)
}

/// Decodes what [`encode_json`] wrote.
pub fn decode_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&JSON_V1, json)) => serde_json::from_slice(json).map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Corrupt,
                format!("cannot decode {what}"),
                e,
            )
        }),
        Some((version, _)) => Err(StoreError::corrupt(format!(
            "unknown {what} version {version}"
        ))),
        None => Err(StoreError::corrupt(format!("empty {what}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_decode_and_others_are_refused() {
        let event = crate::conformance::enriched_in_cell(
            "codec-1",
            chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("time"),
            posbon_geo::LatLng::new(41.3, 69.25)
                .expect("point")
                .to_cell(posbon_geo::Resolution::Ten),
            Some("m-1"),
        );
        let compact = encode_event(&event);
        assert_eq!(compact[0], EVENT_COMPACT_V2);
        assert_eq!(decode_event(&compact).expect("compact"), event);
        let mut json = vec![EVENT_JSON_V1];
        serde_json::to_writer(&mut json, &event).expect("json");
        assert_eq!(decode_event(&json).expect("json"), event);
        assert!(
            compact.len() * 2 < json.len(),
            "{} vs {}",
            compact.len(),
            json.len()
        );

        let err = decode_event(&compact[..compact.len() - 3]).expect_err("cut");
        assert_eq!(err.kind(), crate::StoreErrorKind::Corrupt);
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.starts_with("invalid compact event record")),
            "{cause:?}"
        );
        let err = decode_event(b"\x07abc").expect_err("version");
        assert!(
            err.to_string().contains("unknown event record version 7"),
            "{err}"
        );
        assert!(decode_event(b"").is_err());
    }
}
