//! From raw bytes to enriched events: split a body into items, validate each,
//! pseudonymise fraud account references, and tag each event with its H3 cell,
//! mahalla, district and region. Pure: no I/O, so it is tested without a bus.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use posbon_geo::Registry;
use posbon_model::{
    CellId, EnrichedEvent, ErrorCode, Event, EventKind, Limits, PseudonymKeys, ValidationErrors,
    parse_event,
};
use serde_json::value::RawValue;

/// How a body holds its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON event, or a JSON array of events.
    Json,
    /// One JSON event per line.
    Ndjson,
    /// Decided by the first byte: `[` or `{` means JSON, anything else NDJSON.
    Auto,
}

/// One item of a body, judged.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// 0-based position of the item in its body.
    pub(crate) index: usize,
    /// 1-based line where the item starts.
    pub(crate) line: usize,
    /// The item's bytes exactly as received (what the dead-letter queue keeps).
    pub(crate) raw: Bytes,
    /// The enriched event, or every problem found in the item.
    pub(crate) outcome: Result<EnrichedEvent, ValidationErrors>,
}

impl Prepared {
    /// The item's `kind` when it can be read (for the dead-letter subject).
    pub(crate) fn kind_hint(&self) -> Option<EventKind> {
        match &self.outcome {
            Ok(e) => Some(e.event.kind()),
            Err(_) => {
                // Borrowed when it can be, so that an escaped `kind` is read too.
                #[derive(serde::Deserialize)]
                struct KindOnly<'a> {
                    #[serde(borrow)]
                    kind: Option<posbon_model::CowStr<'a>>,
                }
                serde_json::from_slice::<KindOnly<'_>>(&self.raw)
                    .ok()
                    .and_then(|k| k.kind)
                    .and_then(|k| EventKind::from_wire(k.as_str()))
            }
        }
    }
}

/// What the dead-letter queue keeps of a rejected item
/// ([`Enricher::dead_letter_payload`]).
#[derive(Debug)]
pub struct DeadLetterPayload {
    /// The bytes kept.
    pub payload: Bytes,
    /// What was taken out, if anything (the `Posbon-Redacted` header).
    pub note: Option<&'static str>,
    /// The account reference that was pseudonymised: a reason must not
    /// repeat it.
    pub account_ref: Option<String>,
}

/// Validates and enriches events against a mahalla registry.
#[derive(Clone)]
pub struct Enricher {
    registry: Arc<Registry>,
    limits: Limits,
    pseudonym_keys: Arc<PseudonymKeys>,
}

impl Enricher {
    /// What the dead-letter queue may keep of a rejected item: its bytes,
    /// except that an `account_ref` (a card or account number) never rests
    /// in clear. A JSON object's top-level `account_ref` is replaced by its
    /// keyed pseudonym; an item that is not a JSON object yet mentions
    /// `account_ref` is kept without a payload. The note says which; the
    /// reference found, if any, is returned so that no reason text repeats it.
    pub fn dead_letter_payload(&self, raw: &Bytes) -> DeadLetterPayload {
        const FIELD: &[u8] = b"account_ref";
        let removed = |note| DeadLetterPayload {
            payload: Bytes::new(),
            note: Some(note),
            account_ref: None,
        };
        if !raw.windows(FIELD.len()).any(|w| w == FIELD) {
            return DeadLetterPayload {
                payload: raw.clone(),
                note: None,
                account_ref: None,
            };
        }
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(mut object)) => {
                let Some(value) = object.get("account_ref") else {
                    // Mentioned elsewhere (nested, or in a string): the
                    // schema has it at the top only, so keep nothing.
                    return removed("payload removed: account_ref not at the top");
                };
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                object.insert(
                    "account_ref".to_owned(),
                    serde_json::Value::String(self.pseudonym_keys.pseudonymise(&text)),
                );
                match serde_json::to_vec(&object) {
                    Ok(bytes) => DeadLetterPayload {
                        payload: Bytes::from(bytes),
                        note: Some("account_ref pseudonymised"),
                        account_ref: Some(text).filter(|t| !t.is_empty()),
                    },
                    Err(_) => removed("payload removed: account_ref"),
                }
            }
            _ => removed("payload removed: mentions account_ref but is not a JSON object"),
        }
    }

    /// An enricher for `registry`, with `limits` for validation and the keys
    /// of the keyed hash that pseudonymises fraud account references.
    pub fn new(registry: Arc<Registry>, limits: Limits, pseudonym_keys: PseudonymKeys) -> Self {
        Enricher {
            registry,
            limits,
            pseudonym_keys: Arc::new(pseudonym_keys),
        }
    }

    /// Judges every item of `body`. One bad item never affects the others.
    pub(crate) fn prepare(
        &self,
        body: &Bytes,
        format: BodyFormat,
        now: DateTime<Utc>,
    ) -> Vec<Prepared> {
        let mut items = split(body, format);
        if let Some(errors) = self.limits.check_batch_items(items.len()) {
            items = vec![(1, Err((body.clone(), errors)))];
        }
        let mut parsed: Vec<(usize, usize, Bytes, Result<Event, ValidationErrors>)> = items
            .into_iter()
            .enumerate()
            .map(|(index, (line, raw))| {
                let result = match raw {
                    Ok(raw) => {
                        let r = parse_event(&raw, &self.limits, now);
                        (raw, r)
                    }
                    Err((raw, errors)) => (raw, Err(errors)),
                };
                (index, line, result.0, result.1)
            })
            .collect();
        // Locate every valid event of the body in one batch.
        let points: Vec<(f64, f64)> = parsed
            .iter()
            .filter_map(|p| p.3.as_ref().ok())
            .map(|e| (e.location().lat, e.location().lng))
            .collect();
        let mut located = Vec::with_capacity(points.len());
        self.registry.locate_many(&points, &mut located);
        let mut located = located.into_iter();
        parsed
            .drain(..)
            .map(|(index, line, raw, result)| {
                let outcome = match result {
                    Ok(event) => {
                        let place = located.next();
                        self.enrich(event, place, now)
                    }
                    Err(errors) => Err(errors),
                };
                Prepared {
                    index,
                    line,
                    raw,
                    outcome,
                }
            })
            .collect()
    }

    fn enrich(
        &self,
        mut event: Event,
        place: Option<Result<posbon_geo::Located, posbon_geo::GeoError>>,
        now: DateTime<Utc>,
    ) -> Result<EnrichedEvent, ValidationErrors> {
        let place = match place {
            Some(Ok(place)) => place,
            // Validation bounds lat/lng, so this is unreachable for parsed events;
            // still an error for the item, never a panic.
            Some(Err(e)) => return Err(single("location", ErrorCode::OutOfRange, e.to_string())),
            None => {
                return Err(single(
                    "",
                    ErrorCode::MalformedJson,
                    "internal: event was not located".into(),
                ));
            }
        };
        if let Event::FraudFlag(f) = &mut event {
            // Always hash what the producer sent: a raw reference that happens to
            // look like a pseudonym must not be stored in clear.
            let hashed = self.pseudonym_keys.pseudonymise(&f.account_ref);
            f.replace_account_ref(hashed);
        }
        let cell = CellId::new(u64::from(place.cell)).ok_or_else(|| {
            single(
                "location",
                ErrorCode::OutOfRange,
                "no h3 cell for this location".into(),
            )
        })?;
        let (mahalla_id, district_id, region_id) = match place.mahalla {
            Some(idx) => {
                let m = self.registry.mahalla(idx);
                (
                    Some(m.id.clone()),
                    Some(m.district_id.clone()),
                    Some(m.region_id.clone()),
                )
            }
            None => (None, None, None),
        };
        Ok(EnrichedEvent {
            event,
            cell,
            mahalla_id,
            district_id,
            region_id,
            ingested_at: now,
        })
    }
}

fn single(path: &str, code: ErrorCode, message: String) -> ValidationErrors {
    ValidationErrors::single(path, code, message)
}

type Item = (usize, Result<Bytes, (Bytes, ValidationErrors)>);

/// Splits a body into items with their line numbers and exact bytes.
fn split(body: &Bytes, format: BodyFormat) -> Vec<Item> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let format = match format {
        BodyFormat::Auto => match first.map(|i| body[i]) {
            Some(b'[') => BodyFormat::Json,
            Some(b'{') if !has_more_than_one_line(body) => BodyFormat::Json,
            _ => BodyFormat::Ndjson,
        },
        other => other,
    };
    match (format, first) {
        (_, None) => vec![(
            1,
            Err((
                body.clone(),
                single(
                    "",
                    ErrorCode::MalformedJson,
                    "empty body: no event in it".into(),
                ),
            )),
        )],
        (BodyFormat::Json, Some(i)) if body[i] == b'[' => split_array(body),
        (BodyFormat::Json, _) => vec![(1, Ok(body.clone()))],
        _ => split_lines(body),
    }
}

fn has_more_than_one_line(body: &[u8]) -> bool {
    body.split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .nth(1)
        .is_some()
}

fn split_lines(body: &Bytes) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start = 0usize;
    for (n, chunk) in body.split(|&b| b == b'\n').enumerate() {
        let end = start + chunk.len();
        if chunk.iter().any(|b| !b.is_ascii_whitespace()) {
            out.push((n + 1, Ok(body.slice(start..end))));
        }
        start = end + 1;
    }
    out
}

fn split_array(body: &Bytes) -> Vec<Item> {
    match serde_json::from_slice::<Vec<&RawValue>>(body) {
        Ok(items) => {
            // Items come in body order: count the newlines since the item
            // before, so numbering the lines is linear in the body (counting
            // from the start for each item was quadratic).
            let (mut counted, mut line) = (0usize, 1usize);
            items
                .into_iter()
                .map(|raw| {
                    let text = raw.get();
                    // `raw` borrows from `body`: find its offset to slice without copying.
                    let offset = text.as_ptr() as usize - body.as_ptr() as usize;
                    line += body[counted..offset]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                    counted = offset;
                    (line, Ok(body.slice(offset..offset + text.len())))
                })
                .collect()
        }
        Err(e) => vec![(
            1,
            Err((
                body.clone(),
                single(
                    "",
                    ErrorCode::MalformedJson,
                    format!("malformed json array: {e}"),
                ),
            )),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use posbon_geo::RegistryOptions;

    fn registry() -> Arc<Registry> {
        let geojson = br#"{"type": "FeatureCollection", "features": [{
          "type": "Feature",
          "properties": {"id": "chilonzor-001", "name": "Qatortol", "district": "chilonzor",
                         "region": "tashkent"},
          "geometry": {"type": "Polygon", "coordinates": [[[69.20, 41.28], [69.21, 41.28],
                       [69.21, 41.29], [69.20, 41.29], [69.20, 41.28]]]}}]}"#;
        Arc::new(Registry::from_geojson(geojson, &RegistryOptions::default()).expect("registry"))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .expect("time")
    }

    const INSIDE: &str = r#"{"kind":"incident","id":"a-1","occurred_at":"2026-05-01T14:30:00+05:00","location":{"lat":41.285,"lng":69.205},"source":"iiv","category":"theft","severity":2}"#;
    const OUTSIDE: &str = r#"{"kind":"incident","id":"a-2","occurred_at":"2026-05-01T14:30:00+05:00","location":{"lat":41.385,"lng":69.205},"source":"iiv","category":"theft","severity":2}"#;
    const FRAUD: &str = r#"{"kind":"fraud_flag","id":"f-1","occurred_at":"2026-05-01T14:30:00+05:00","location":{"lat":41.285,"lng":69.205},"source":"bank","scheme":"phishing","channel":"sms","amount_uzs":150000,"payment_system":"humo","account_ref":"8600123412341234","detector_score":0.9}"#;

    #[test]
    fn array_items_are_numbered_by_the_line_they_start_on() {
        let body = Bytes::from(format!(
            "[\n{INSIDE},\n\n  {OUTSIDE}, {FRAUD},\n{{\"kind\":\n\"x\"}},\n0]"
        ));
        let lines: Vec<usize> = split_array(&body).iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 4, 4, 5, 7]);
        let many = Bytes::from(format!("[{}]", vec!["0"; 40_000].join(",\n")));
        let items = split_array(&many);
        assert_eq!(items.len(), 40_000);
        assert_eq!(items.last().map(|(line, _)| *line), Some(40_000));
    }

    #[test]
    fn ndjson_items_keep_their_bytes_lines_and_verdicts() {
        let e = Enricher::new(
            registry(),
            Limits::default(),
            PseudonymKeys::single("k1", b"key").expect("key"),
        );
        let body = Bytes::from(format!("{INSIDE}\n\n{{not json\n{OUTSIDE}\n{FRAUD}\n"));
        let items = e.prepare(&body, BodyFormat::Auto, now());
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].line, 1);
        assert_eq!(&items[0].raw[..], INSIDE.as_bytes());
        let inside = items[0].outcome.as_ref().expect("valid");
        assert_eq!(inside.mahalla_id.as_deref(), Some("chilonzor-001"));
        assert_eq!(inside.district_id.as_deref(), Some("chilonzor"));
        assert_eq!(inside.region_id.as_deref(), Some("tashkent"));
        assert_eq!(items[1].line, 3);
        assert_eq!(&items[1].raw[..], b"{not json");
        assert!(items[1].outcome.is_err());
        let outside = items[2].outcome.as_ref().expect("valid");
        assert!(!outside.is_assigned(), "kept, unassigned");
        let Event::FraudFlag(f) = &items[3].outcome.as_ref().expect("valid").event else {
            panic!("fraud flag expected");
        };
        assert!(f.account_ref.starts_with("hmac2:k1:"), "{}", f.account_ref);
        assert!(!f.account_ref.contains("8600"));
    }

    #[test]
    fn arrays_single_events_and_broken_bodies() {
        let e = Enricher::new(
            registry(),
            Limits::default(),
            PseudonymKeys::single("k1", b"key").expect("key"),
        );
        let body = Bytes::from(format!("[\n{INSIDE},\n{OUTSIDE}\n]"));
        let items = e.prepare(&body, BodyFormat::Json, now());
        assert_eq!(items.len(), 2);
        assert_eq!(&items[1].raw[..], OUTSIDE.as_bytes());
        assert_eq!(items[1].line, 3);
        let single = e.prepare(&Bytes::from(INSIDE), BodyFormat::Auto, now());
        assert_eq!(single.len(), 1);
        assert!(single[0].outcome.is_ok());
        let broken = e.prepare(&Bytes::from(format!("[{INSIDE},")), BodyFormat::Auto, now());
        assert_eq!(broken.len(), 1);
        let errors = broken[0].outcome.as_ref().expect_err("broken array");
        assert!(errors.has_code(ErrorCode::MalformedJson), "{errors}");
        let empty = e.prepare(&Bytes::from_static(b"  \n"), BodyFormat::Auto, now());
        assert!(empty[0].outcome.is_err());
        assert_eq!(broken[0].kind_hint(), None);
        let bad_kind = e.prepare(
            &Bytes::from(INSIDE.replace("\"severity\":2", "\"severity\":9")),
            BodyFormat::Auto,
            now(),
        );
        assert_eq!(bad_kind[0].kind_hint(), Some(EventKind::Incident));
        // An escaped kind is still read for the dead-letter subject.
        let escaped = e.prepare(
            &Bytes::from(
                INSIDE
                    .replace("\"severity\":2", "\"severity\":9")
                    .replace("\"kind\":\"incident\"", "\"kind\":\"inciden\\u0074\""),
            ),
            BodyFormat::Auto,
            now(),
        );
        assert!(escaped[0].outcome.is_err());
        assert_eq!(escaped[0].kind_hint(), Some(EventKind::Incident));
    }
}
