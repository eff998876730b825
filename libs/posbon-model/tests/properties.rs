//! Property tests: round trips, robustness against arbitrary input, and
//! agreement between the Rust validator and the JSON Schema.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use posbon_model::*;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema = posbon_model::generate_schemas()
        .into_iter()
        .find(|(n, _)| *n == "event.schema.json")
        .unwrap()
        .1;
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
});

/// Decimal values with few digits, which `serde_json` parses back exactly.
fn decimal(lo: i64, hi: i64, scale: f64) -> impl Strategy<Value = f64> {
    (lo..=hi).prop_map(move |i| i as f64 / scale)
}

fn text(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{1,{max_chars}}}")).unwrap()
}

fn header() -> impl Strategy<Value = EventHeader> {
    let occurred_at = (
        946_684_800i64..1_793_000_000,
        0u32..1_000_000_000,
        -12 * 60..=14 * 60i32,
    )
        .prop_map(|(secs, nanos, off_min)| {
            let offset = FixedOffset::east_opt(off_min * 60).unwrap();
            DateTime::from_timestamp(secs, nanos)
                .unwrap()
                .with_timezone(&offset)
        });
    let location = (
        decimal(-90_000_000, 90_000_000, 1e6),
        decimal(-180_000_000, 180_000_000, 1e6),
        proptest::option::of(decimal(0, 1_000_000, 10.0)),
    )
        .prop_map(|(lat, lng, accuracy_m)| Location {
            lat,
            lng,
            accuracy_m,
        });
    let attributes = proptest::collection::btree_map(
        text(16),
        proptest::string::string_regex("\\PC{0,40}").unwrap(),
        0..4,
    );
    ("[!-~]{1,128}", occurred_at, location, text(32), attributes).prop_map(
        |(id, occurred_at, location, source, attributes)| EventHeader {
            id,
            occurred_at,
            location,
            source,
            attributes,
        },
    )
}

fn incident() -> impl Strategy<Value = Event> {
    (
        header(),
        select(IncidentCategory::ALL),
        1u8..=5,
        proptest::array::uniform6(any::<bool>()),
        select(IncidentStatus::ALL),
        proptest::option::of(proptest::string::string_regex("\\PC{0,100}").unwrap()),
    )
        .prop_map(|(header, category, severity, f, status, description)| {
            Event::Incident(Incident {
                header,
                category,
                severity,
                flags: IncidentFlags {
                    victim_minor: f[0],
                    victim_youth: f[1],
                    victim_woman: f[2],
                    offender_minor: f[3],
                    offender_youth: f[4],
                    domestic: f[5],
                },
                status,
                description,
            })
        })
}

fn camera_alert() -> impl Strategy<Value = Event> {
    (
        header(),
        text(32),
        select(Detection::ALL),
        decimal(0, 1000, 1000.0),
        text(32),
        proptest::option::of(proptest::string::string_regex("[ -~]{0,200}").unwrap()),
    )
        .prop_map(
            |(header, camera_id, detection, confidence, model, snapshot_uri)| {
                Event::CameraAlert(CameraAlert {
                    header,
                    camera_id,
                    detection,
                    confidence,
                    model,
                    snapshot_uri,
                })
            },
        )
}

fn fraud_flag() -> impl Strategy<Value = Event> {
    (
        header(),
        select(FraudScheme::ALL),
        select(FraudChannel::ALL),
        decimal(0, 100_000_000_000_000, 100.0),
        select(PaymentSystem::ALL),
        text(32),
        decimal(0, 10_000, 10_000.0),
    )
        .prop_map(
            |(header, scheme, channel, amount_uzs, payment_system, account_ref, detector_score)| {
                Event::FraudFlag(FraudFlag {
                    header,
                    scheme,
                    channel,
                    amount_uzs,
                    payment_system,
                    account_ref,
                    detector_score,
                })
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![incident(), camera_alert(), fraud_flag()]
}

/// Small JSON values of every type.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-10i64..10).prop_map(Value::from),
        (-300.0..300.0f64).prop_map(Value::from),
        Just(json!(5.0)),
        Just(json!(u64::MAX)),
        "[a-z_ ]{0,10}".prop_map(Value::String),
        select(
            &[
                "theft",
                "weapon",
                "humo",
                "card",
                "phishing",
                "incident",
                "fraud_flag",
                "reported",
                "2026-10-14T21:40:00+05:00",
                "2026-10-14T21:40:00",
                "x"
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "kind",
    "id",
    "occurred_at",
    "location",
    "location/lat",
    "location/lng",
    "location/accuracy_m",
    "location/alt",
    "source",
    "attributes",
    "attributes/x",
    "category",
    "severity",
    "flags",
    "flags/domestic",
    "status",
    "description",
    "camera_id",
    "detection",
    "confidence",
    "model",
    "snapshot_uri",
    "scheme",
    "channel",
    "amount_uzs",
    "payment_system",
    "account_ref",
    "detector_score",
    "lattitude",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_events_round_trip(ev in event()) {
        let bytes = serde_json::to_vec(&ev).unwrap();
        let parsed = parse_event(&bytes, &Limits::default(), now());
        prop_assert_eq!(parsed.as_ref(), Ok(&ev), "{}", String::from_utf8_lossy(&bytes));
        let parsed = parsed.unwrap();
        prop_assert_eq!(*parsed.occurred_at().offset(), *ev.occurred_at().offset());
        prop_assert!(ev.validate(&Limits::default(), now()).is_ok());
        // The schema agrees.
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let errs: Vec<String> = SCHEMA.iter_errors(&v).map(|e| e.to_string()).collect();
        prop_assert!(errs.is_empty(), "{:?}", errs);
        // As NDJSON and in an array too.
        let line = String::from_utf8(bytes).unwrap();
        let items = parse_events(format!("{line}\n{line}\n").as_bytes(), &Limits::default(), now());
        prop_assert_eq!(items.len(), 2);
        let items = parse_events(format!("[{line},{line}]").as_bytes(), &Limits::default(), now());
        prop_assert_eq!(items.len(), 2);
        prop_assert!(items.iter().all(|i| i.result.as_ref() == Ok(&ev)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_event(&bytes, &Limits::default(), now());
        let _ = parse_events(&bytes, &Limits::default(), now());
    }

    #[test]
    fn mutated_events_never_panic_and_stay_consistent(
        ev in event(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = serde_json::to_vec(&ev).unwrap();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => { bytes.remove(i); }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => {}
            }
        }
        let _ = parse_events(&bytes, &Limits::default(), now());
        match parse_event(&bytes, &Limits::default(), now()) {
            Ok(parsed) => {
                prop_assert!(parsed.validate(&Limits::default(), now()).is_ok());
                let again = serde_json::to_vec(&parsed).unwrap();
                prop_assert_eq!(parse_event(&again, &Limits::default(), now()), Ok(parsed));
            }
            Err(errs) => prop_assert!(!errs.is_empty()),
        }
    }

    /// Replacing one field by an arbitrary JSON value: the JSON Schema and
    /// the Rust validator reach the same verdict.
    #[test]
    fn schema_and_rust_agree(ev in event(), field in select(FIELDS), value in json_value()) {
        let mut doc = serde_json::to_value(&ev).unwrap();
        let (parent, key) = match field.split_once('/') {
            Some((p, k)) => (Some(p), k),
            None => (None, field),
        };
        let target = match parent {
            Some(p) => {
                let obj = doc.as_object_mut().unwrap();
                obj.entry(p).or_insert_with(|| json!({}))
            }
            None => &mut doc,
        };
        if let Some(obj) = target.as_object_mut() {
            obj.insert(key.to_owned(), value);
        }
        let bytes = serde_json::to_vec(&doc).unwrap();
        let rust = parse_event(&bytes, &Limits::default(), now());
        let schema_errors: Vec<String> = SCHEMA.iter_errors(&doc).map(|e| e.to_string()).collect();
        // Runtime-only rules (time window) may reject what the schema accepts.
        let runtime_only = rust.as_ref().err().is_some_and(|e| {
            e.iter().all(|e| matches!(e.code, ErrorCode::InFuture | ErrorCode::TooOld))
        });
        if !runtime_only {
            prop_assert_eq!(
                rust.is_ok(),
                schema_errors.is_empty(),
                "doc {} rust {:?} schema {:?}", doc, rust.as_ref().err().map(|e| e.to_string()), schema_errors
            );
        }
        if let Err(errs) = &rust {
            prop_assert!(!errs.is_empty());
        }
    }
}

/// An event as enrichment leaves it: in a mahalla or unassigned, any cell.
fn enriched() -> impl Strategy<Value = EnrichedEvent> {
    let place = proptest::option::of(("[a-z0-9-]{1,24}", "[a-z0-9-]{1,24}", "[a-z-]{1,12}"));
    (
        event(),
        0..=CellId::MAX_RAW,
        place,
        946_684_800i64..1_793_000_000,
        0u32..1_000_000_000,
    )
        .prop_map(|(event, cell, place, secs, nanos)| {
            let (mahalla_id, district_id, region_id) = match place {
                Some((m, d, r)) => (Some(m), Some(d), Some(r)),
                None => (None, None, None),
            };
            EnrichedEvent {
                event,
                cell: CellId::new(cell).unwrap(),
                mahalla_id,
                district_id,
                region_id,
                ingested_at: DateTime::from_timestamp(secs, nanos).unwrap(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compact_records_round_trip(ev in enriched()) {
        let mut bytes = Vec::new();
        compact::encode(&ev, &mut bytes);
        let view = compact::view(&bytes).unwrap();
        prop_assert_eq!(view.kind(), ev.event.kind());
        prop_assert_eq!(compact::peek_kind(&bytes), Some(ev.event.kind()));
        let back = view.to_event();
        prop_assert_eq!(&back, &ev);
        prop_assert_eq!(*back.event.occurred_at().offset(), *ev.event.occurred_at().offset());
        // Much smaller than the JSON.
        prop_assert!(bytes.len() < serde_json::to_vec(&ev).unwrap().len());
        // Every strict prefix is refused, with a reason, and so is a longer record.
        for n in 0..bytes.len() {
            prop_assert!(compact::view(&bytes[..n]).is_err());
        }
        bytes.push(0);
        let err = compact::view(&bytes).unwrap_err();
        prop_assert!(err.to_string().contains("after the last field"), "{}", err);
    }

    #[test]
    fn arbitrary_compact_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = compact::decode(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Both encodings of EVENTS decode to the event, told apart by the header.
    #[test]
    fn messages_decode_in_both_encodings(ev in enriched()) {
        for encoding in [EventEncoding::Compact, EventEncoding::Json] {
            let mut payload = Vec::new();
            encoding.encode(&ev, &mut payload).unwrap();
            let got = EnrichedEvent::from_message(Some(encoding.content_type()), &payload);
            prop_assert_eq!(got.as_ref(), Ok(&ev));
        }
    }
}

#[test]
fn messages_of_other_types_or_breaking_the_rules_are_refused() {
    let mut ev = enriched()
        .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
        .unwrap()
        .current();
    let mut json = Vec::new();
    EventEncoding::Json.encode(&ev, &mut json).unwrap();
    // No header, or parameters and another case: JSON.
    assert_eq!(EnrichedEvent::from_message(None, &json).as_ref(), Ok(&ev));
    assert_eq!(
        EnrichedEvent::from_message(Some("Application/JSON; charset=utf-8"), &json).as_ref(),
        Ok(&ev)
    );
    let err = EnrichedEvent::from_message(Some("text/plain"), &json).unwrap_err();
    assert!(
        err.contains("unsupported Content-Type \"text/plain\""),
        "{err}"
    );
    let err = EnrichedEvent::from_message(Some(COMPACT_CONTENT_TYPE), &json).unwrap_err();
    assert!(err.starts_with("invalid compact event record"), "{err}");
    // A compact event outside the rules is refused like its JSON would be.
    ev.event.header_mut().location.lat = 91.0;
    let mut compact = Vec::new();
    EventEncoding::Compact.encode(&ev, &mut compact).unwrap();
    let err = EnrichedEvent::from_message(Some(COMPACT_CONTENT_TYPE), &compact).unwrap_err();
    assert!(err.contains("location.lat"), "{err}");
    assert!(
        err.starts_with("compact event breaks the event rules"),
        "{err}"
    );
    let mut json = Vec::new();
    EventEncoding::Json.encode(&ev, &mut json).unwrap();
    assert!(EnrichedEvent::from_message(None, &json).is_err());
}
