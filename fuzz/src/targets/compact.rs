//! The `compact` target: a stored event record in the compact encoding, as
//! the store and the `EVENTS` stream hold it.

use posbon_model::compact;
use posbon_model::{COMPACT_CONTENT_TYPE, EnrichedEvent, JSON_CONTENT_TYPE};

use super::Sig;
use crate::Features;

/// Largest input [`compact()`] reads.
pub const COMPACT_MAX_BYTES: usize = 1 << 20;

/// Fuzz target: a compact event record ([`compact::peek_kind`],
/// [`compact::view`], [`compact::decode`]).
///
/// Checks that `view` and `decode` agree, that `peek_kind` names the kind
/// `view` finds, that a view's attributes iterate to their count, that a
/// decoded record encodes and decodes again to the same bytes, and that the
/// decoded event serialises to JSON (as the API and reports do with stored
/// events). The bytes are also read as an `EVENTS` message
/// ([`EnrichedEvent::from_message`]) in both encodings: a compact message
/// that keeps the event rules must read back the same from its JSON form.
pub fn compact(data: &[u8]) {
    compact_features(data);
}

pub(crate) fn compact_features(data: &[u8]) -> Features {
    if data.len() > COMPACT_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("compact");
    let peeked = compact::peek_kind(data);
    sig.add(&peeked.map(|k| k.as_str()));
    let view = compact::view(data);
    let decoded = compact::decode(data);
    match (&view, &decoded) {
        (Ok(v), Ok(event)) => {
            sig.add(v.kind().as_str());
            assert_eq!(peeked, Some(v.kind()), "peek_kind disagrees with view");
            assert_eq!(
                v.attributes.iter().count(),
                v.attributes.len(),
                "a view's attributes iterate to fewer than their count"
            );
            check_compact_round_trip(event);
            check_from_message(data, event);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "view and decode fail differently");
            sig.text(&a.to_string());
        }
        (v, d) => panic!("view and decode disagree: {v:?} / {d:?}"),
    }
    // The same bytes as the JSON form of an EVENTS message.
    if let Ok(event) = EnrichedEvent::from_message(None, data) {
        sig.add("json");
        check_compact_round_trip(&event);
    }
    sig.finish()
}

/// An `EVENTS` message in the compact encoding is the decoded record when it
/// keeps the event rules, and then reads back the same from its JSON form.
fn check_from_message(data: &[u8], decoded: &EnrichedEvent) {
    let Ok(event) = EnrichedEvent::from_message(Some(COMPACT_CONTENT_TYPE), data) else {
        return;
    };
    assert_eq!(&event, decoded, "from_message and decode disagree");
    let json = serde_json::to_vec(&event).expect("an event serialises");
    let back = EnrichedEvent::from_message(Some(JSON_CONTENT_TYPE), &json);
    assert_eq!(
        back.as_ref(),
        Ok(&event),
        "a compact event changes through its JSON form: {}",
        String::from_utf8_lossy(&json)
    );
}

/// `encode(decode(x))` is a fixed point of decode-then-encode (compared as
/// bytes: a record may hold NaN, which is not equal to itself).
fn check_compact_round_trip(event: &EnrichedEvent) {
    let mut once = Vec::new();
    compact::encode(event, &mut once);
    let again = compact::decode(&once).expect("a re-encoded record decodes");
    let mut twice = Vec::new();
    compact::encode(&again, &mut twice);
    assert_eq!(once, twice, "decode then encode is not stable");
    // What the API and the reports do with a stored event.
    let json = serde_json::to_vec(event).expect("a decoded event serialises");
    assert!(!json.is_empty());
}
