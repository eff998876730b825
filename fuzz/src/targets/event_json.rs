//! The `event_json` target: one event and a batch of them, as producers
//! send them over HTTP and NATS.

use chrono::{DateTime, Utc};
use posbon_model::{Event, Limits, parse_event, parse_events};

use super::{Sig, fixed_now};
use crate::Features;

/// Largest input [`event_json`] reads (ingest's own body limit is larger,
/// but the work is linear: 1 MiB shows everything 16 MiB would).
pub const EVENT_JSON_MAX_BYTES: usize = 1 << 20;

/// Fuzz target: one event ([`parse_event`]) and a batch ([`parse_events`]).
///
/// Checks that an error lists at least one problem; that an accepted event
/// passes [`Event::validate`], serialises to JSON that parses to the same
/// event with [`parse_event`] and with the strict `Deserialize`, and goes
/// through a two-item array and NDJSON batch unchanged; that batch items are
/// numbered `0..n` on lines `>= 1` that never decrease and lie within the
/// input; and that a one-line batch is judged exactly like [`parse_event`].
pub fn event_json(data: &[u8]) {
    event_json_features(data);
}

pub(crate) fn event_json_features(data: &[u8]) -> Features {
    if data.len() > EVENT_JSON_MAX_BYTES {
        return Features::new();
    }
    let limits = Limits::default();
    let now = fixed_now();
    let mut sig = Sig::new("event_json");

    let single = parse_event(data, &limits, now);
    match &single {
        Ok(event) => {
            sig.add(event.kind().as_str());
            check_event_round_trip(event, &limits, now);
        }
        Err(errs) => {
            assert!(!errs.is_empty(), "parse_event failed without an error");
            sig.errors([errs]);
        }
    }

    let items = parse_events(data, &limits, now);
    let lines = 1 + data.iter().filter(|&&b| b == b'\n').count();
    let mut last_line = 1;
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.index, i, "batch item indexes must be 0..n in order");
        assert!(item.line >= 1, "batch item {i} on line 0");
        assert!(
            item.line >= last_line,
            "batch item {i} on line {} after an item on line {last_line}",
            item.line
        );
        assert!(
            item.line <= lines,
            "batch item {i} on line {} of a {lines}-line input",
            item.line
        );
        last_line = item.line;
        if let Err(errs) = &item.result {
            assert!(!errs.is_empty(), "batch item {i} failed without an error");
        }
    }
    sig.add(&items.len().min(3));
    let kinds: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|i| i.result.as_ref().ok())
        .map(|e| e.kind().as_str())
        .collect();
    sig.add(&kinds);
    sig.errors(items.iter().filter_map(|i| i.result.as_ref().err()));

    // A single line that is not an array is a one-item NDJSON batch, judged
    // exactly like the event alone.
    let first = data.iter().position(|b| !b.is_ascii_whitespace());
    if !data.contains(&b'\n') && first.is_some_and(|i| data[i] != b'[') {
        assert_eq!(items.len(), 1, "a one-line NDJSON batch holds one item");
        let line = data.strip_suffix(b"\r").unwrap_or(data);
        assert_eq!(
            items[0].result,
            parse_event(line, &limits, now),
            "a one-line batch is judged like the event alone"
        );
    }
    sig.finish()
}

/// An accepted event serialised again is accepted again, unchanged, alone
/// and in batches.
fn check_event_round_trip(event: &Event, limits: &Limits, now: DateTime<Utc>) {
    assert_eq!(
        event.validate(limits, now),
        Ok(()),
        "an accepted event fails Event::validate"
    );
    let json = serde_json::to_vec(event).expect("an accepted event serialises");
    // Numbers may serialise longer than they were written (`5` as `5.0`).
    let unlimited = Limits {
        max_payload_bytes: usize::MAX,
        ..*limits
    };
    let again = parse_event(&json, &unlimited, now);
    assert_eq!(
        again.as_ref(),
        Ok(event),
        "an accepted event, serialised, parses differently: {}",
        String::from_utf8_lossy(&json)
    );
    let strict: Result<Event, _> = serde_json::from_slice(&json);
    assert!(
        strict.as_ref().is_ok_and(|e| e == event),
        "the strict Deserialize disagrees with parse_event: {strict:?}"
    );
    let mut array = b"[".to_vec();
    array.extend_from_slice(&json);
    array.extend_from_slice(b",\n");
    array.extend_from_slice(&json);
    array.push(b']');
    let mut ndjson = json.clone();
    ndjson.extend_from_slice(b"\r\n\n");
    ndjson.extend_from_slice(&json);
    for (what, batch, second_line) in [("array", &array, 2), ("ndjson", &ndjson, 3)] {
        let items = parse_events(batch, &unlimited, now);
        assert_eq!(items.len(), 2, "{what} of two events: {items:?}");
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.index, i);
            assert_eq!(item.line, if i == 0 { 1 } else { second_line }, "{what}");
            assert_eq!(item.result.as_ref(), Ok(event), "{what} item {i}");
        }
    }
}
