//! Parsing and validation: every error case, batches, round trips.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use chrono::{DateTime, TimeZone, Utc};
use posbon_model::*;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn incident() -> Value {
    json!({
        "kind": "incident",
        "id": "iiv-tsh-2026-0001842",
        "occurred_at": "2026-10-14T21:40:00+05:00",
        "location": { "lat": 41.2856, "lng": 69.2034, "accuracy_m": 25 },
        "source": "iiv-102-dispatch",
        "attributes": { "district_name": "Chilonzor" },
        "category": "robbery",
        "severity": 4,
        "flags": { "victim_woman": true },
        "status": "confirmed",
        "description": "Sumka tortib olingan"
    })
}

fn camera() -> Value {
    json!({
        "kind": "camera_alert",
        "id": "cam-0412-20261015T013205Z",
        "occurred_at": "2026-10-15T06:32:05+05:00",
        "location": { "lat": 41.3662, "lng": 69.2881 },
        "source": "safe-city-va",
        "camera_id": "tsh-yunusobod-0412",
        "detection": "drug_handoff",
        "confidence": 0.87,
        "model": "va-detector/3.4.1",
        "snapshot_uri": "s3://snapshots/0412/013205.jpg"
    })
}

fn fraud() -> Value {
    json!({
        "kind": "fraud_flag",
        "id": "bank-af-7f3c9e21",
        "occurred_at": "2026-10-16T10:05:12.250Z",
        "location": { "lat": 41.3275, "lng": 69.2817 },
        "source": "bank-x-antifraud",
        "scheme": "scam_call",
        "channel": "phone_call",
        "amount_uzs": 12500000.5,
        "payment_system": "humo",
        "account_ref": "9860 **** **** 4417",
        "detector_score": 0.93
    })
}

fn parse(v: &Value) -> Result<Event, ValidationErrors> {
    parse_event(&serde_json::to_vec(v).unwrap(), &Limits::default(), now())
}

fn parse_str(s: &str) -> Result<Event, ValidationErrors> {
    parse_event(s.as_bytes(), &Limits::default(), now())
}

/// Asserts exactly one error, with this path, code and display text.
#[track_caller]
fn one_error(res: Result<Event, ValidationErrors>, path: &str, code: ErrorCode, display: &str) {
    let errs = res.expect_err("expected a validation error");
    assert_eq!(errs.len(), 1, "expected one error, got: {errs}");
    let e = &errs.errors()[0];
    assert_eq!((e.path.as_str(), e.code), (path, code), "got: {e}");
    assert_eq!(e.to_string(), display);
    assert!(!e.message.ends_with('.'));
    assert!(!e.message.starts_with(char::is_uppercase));
}

#[track_caller]
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let obj = base
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    obj.as_object_mut().unwrap().insert(key.to_owned(), value);
    base
}

#[track_caller]
fn insert(mut base: Value, key: &str, value: Value) -> Value {
    base.as_object_mut().unwrap().insert(key.to_owned(), value);
    base
}

#[track_caller]
fn remove(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key).unwrap();
    base
}

#[test]
fn valid_events_of_every_kind_parse() {
    let Event::Incident(i) = parse(&incident()).unwrap() else {
        panic!()
    };
    assert_eq!(i.category, IncidentCategory::Robbery);
    assert_eq!(i.severity, 4);
    assert!(i.flags.victim_woman && !i.flags.domestic);
    assert_eq!(i.status, IncidentStatus::Confirmed);
    assert_eq!(i.header.attributes["district_name"], "Chilonzor");
    assert_eq!(i.header.location.accuracy_m, Some(25.0));
    assert_eq!(i.header.occurred_at.offset().local_minus_utc(), 5 * 3600);

    let Event::CameraAlert(c) = parse(&camera()).unwrap() else {
        panic!()
    };
    assert_eq!(c.detection, Detection::DrugHandoff);
    assert_eq!(c.confidence, 0.87);

    let ev = parse(&fraud()).unwrap();
    assert_eq!(ev.kind(), EventKind::FraudFlag);
    assert_eq!(ev.id(), "bank-af-7f3c9e21");
    assert_eq!(ev.source(), "bank-x-antifraud");
    assert_eq!(ev.location(), Location::new(41.3275, 69.2817));
    let Event::FraudFlag(f) = ev else { panic!() };
    assert_eq!(f.amount_uzs, 12_500_000.5);
    assert_eq!(f.payment_system, PaymentSystem::Humo);
}

#[test]
fn defaults_and_nullable_optionals() {
    let v = remove(remove(remove(incident(), "flags"), "status"), "description");
    let Event::Incident(i) = parse(&v).unwrap() else {
        panic!()
    };
    assert_eq!(i.status, IncidentStatus::Reported);
    assert!(i.flags.is_empty());
    assert_eq!(i.description, None);
    // Optional fields may be null.
    let v = with(
        with(incident(), "/description", Value::Null),
        "/location/accuracy_m",
        Value::Null,
    );
    let Event::Incident(i) = parse(&v).unwrap() else {
        panic!()
    };
    assert_eq!(i.description, None);
    assert_eq!(i.header.location.accuracy_m, None);
    // Integer-valued floats are integers (as in JSON Schema).
    let Event::Incident(i) = parse(&with(incident(), "/severity", json!(5.0))).unwrap() else {
        panic!()
    };
    assert_eq!(i.severity, 5);
    // Integers are fine for floats.
    assert!(parse(&with(fraud(), "/amount_uzs", json!(150000))).is_ok());
    // Escaped strings (not borrowable) are fine.
    let ev = parse_str(
        &serde_json::to_string(&incident())
            .unwrap()
            .replace("iiv-tsh-2026-0001842", "iiv-tsh-2026-\\u0030001842"),
    )
    .unwrap();
    assert_eq!(ev.id(), "iiv-tsh-2026-0001842");
}

#[test]
fn malformed_json_reports_line_and_column() {
    one_error(
        parse_str("{\"kind\": \"incident\",\n  \"id\": }"),
        "",
        ErrorCode::MalformedJson,
        "malformed json at line 2 column 9: expected value",
    );
    one_error(
        parse_str(""),
        "",
        ErrorCode::MalformedJson,
        "malformed json at line 1 column 0: empty payload",
    );
    let res = parse_str("{\"kind\":\"incident\"} trailing");
    assert_eq!(res.unwrap_err().errors()[0].code, ErrorCode::MalformedJson);
    let res = parse_event(b"{\"id\":\"\xff\"}", &Limits::default(), now());
    assert_eq!(res.unwrap_err().errors()[0].code, ErrorCode::MalformedJson);
}

#[test]
fn payload_too_large_is_checked_before_parsing() {
    let limits = Limits {
        max_payload_bytes: 10,
        ..Limits::default()
    };
    let res = parse_event(b"{not even json at all}", &limits, now());
    one_error(
        res,
        "",
        ErrorCode::PayloadTooLarge,
        "payload is 22 bytes, at most 10 allowed",
    );
    assert_eq!(Limits::default().max_payload_bytes, 64 * 1024);
}

#[test]
fn missing_fields() {
    one_error(
        parse(&remove(incident(), "severity")),
        "severity",
        ErrorCode::MissingField,
        "severity: required field is missing",
    );
    one_error(
        parse(&remove(camera(), "model")),
        "model",
        ErrorCode::MissingField,
        "model: required field is missing",
    );
    one_error(
        parse(&remove(fraud(), "account_ref")),
        "account_ref",
        ErrorCode::MissingField,
        "account_ref: required field is missing",
    );
    one_error(
        parse(&remove(incident(), "kind")),
        "kind",
        ErrorCode::MissingField,
        "kind: required field is missing",
    );
    one_error(
        parse(&with(incident(), "/location", json!({"lat": 41.3}))),
        "location.lng",
        ErrorCode::MissingField,
        "location.lng: required field is missing",
    );
    // Every header field at once.
    let errs = parse_str(r#"{"kind":"fraud_flag"}"#).unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "id",
            "occurred_at",
            "location",
            "source",
            "scheme",
            "channel",
            "amount_uzs",
            "payment_system",
            "account_ref",
            "detector_score"
        ]
    );
    assert!(errs.iter().all(|e| e.code == ErrorCode::MissingField));
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    one_error(
        parse(&insert(incident(), "lattitude", json!(41.3))),
        "lattitude",
        ErrorCode::UnknownField,
        "lattitude: unknown field `lattitude` (producer-specific extras belong in `attributes`)",
    );
    one_error(
        parse(&{
            let mut v = incident();
            v["location"]["alt"] = json!(455);
            v
        }),
        "location.alt",
        ErrorCode::UnknownField,
        "location.alt: unknown field `alt` (allowed: lat, lng, accuracy_m)",
    );
    let mut v = incident();
    v["flags"]["victim_old"] = json!(true);
    let errs = parse(&v).unwrap_err();
    assert_eq!(errs.errors()[0].path, "flags.victim_old");
    assert_eq!(errs.errors()[0].code, ErrorCode::UnknownField);
    // Odd keys are quoted in the path.
    let errs = parse(&insert(incident(), "a b", json!(1))).unwrap_err();
    assert_eq!(errs.errors()[0].path, "[\"a b\"]");
    // Attributes are the place for extras and are kept verbatim.
    let v = with(
        incident(),
        "/attributes",
        json!({"lattitude": "41.3", "a b": "ok", "kirill": "Чилонзор"}),
    );
    let ev = parse(&v).unwrap();
    assert_eq!(ev.attributes()["a b"], "ok");
    assert_eq!(ev.attributes()["kirill"], "Чилонзор");
}

#[test]
fn unknown_kind_and_variants_name_the_allowed_values() {
    one_error(
        parse(&with(incident(), "/kind", json!("burglary"))),
        "kind",
        ErrorCode::UnknownKind,
        "kind: unknown kind \"burglary\", expected one of: incident, camera_alert, fraud_flag",
    );
    one_error(
        parse(&with(incident(), "/category", json!("burglary"))),
        "category",
        ErrorCode::UnknownVariant,
        "category: unknown category \"burglary\", expected one of: theft, robbery, assault, \
         homicide, drug_trafficking, drug_use, domestic_violence, fraud, cybercrime, vandalism, \
         hooliganism, weapons, public_order, other",
    );
    for (base, ptr) in [
        (incident(), "/status"),
        (camera(), "/detection"),
        (fraud(), "/scheme"),
        (fraud(), "/channel"),
        (fraud(), "/payment_system"),
    ] {
        let errs = parse(&with(base, ptr, json!("Nope"))).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs}");
        assert_eq!(errs.errors()[0].path, &ptr[1..]);
        assert_eq!(errs.errors()[0].code, ErrorCode::UnknownVariant);
        assert!(
            errs.errors()[0].message.contains("expected one of: "),
            "{errs}"
        );
    }
    // Case matters.
    assert!(parse(&with(incident(), "/category", json!("Theft"))).is_err());
}

#[test]
fn wrong_types() {
    one_error(
        parse(&with(incident(), "/location/lat", json!("41.3"))),
        "location.lat",
        ErrorCode::WrongType,
        "location.lat: expected a number, got a string",
    );
    one_error(
        parse(&with(incident(), "/source", json!(7))),
        "source",
        ErrorCode::WrongType,
        "source: expected a string, got a number",
    );
    one_error(
        parse(&with(incident(), "/location", json!([41.3, 69.2]))),
        "location",
        ErrorCode::WrongType,
        "location: expected an object, got an array",
    );
    one_error(
        parse(&with(incident(), "/severity", json!(2.5))),
        "severity",
        ErrorCode::WrongType,
        "severity: expected an integer, got 2.5",
    );
    one_error(
        parse(&with(incident(), "/flags/domestic", json!("yes"))),
        "flags.domestic",
        ErrorCode::WrongType,
        "flags.domestic: expected a boolean, got a string",
    );
    one_error(
        parse(&with(incident(), "/id", Value::Null)),
        "id",
        ErrorCode::WrongType,
        "id: expected a string, got null",
    );
    one_error(
        parse(&with(incident(), "/attributes", Value::Null)),
        "attributes",
        ErrorCode::WrongType,
        "attributes: expected an object of strings, got null",
    );
    one_error(
        parse(&with(incident(), "/kind", json!(1))),
        "kind",
        ErrorCode::WrongType,
        "kind: expected a string, got a number",
    );
    one_error(
        parse_str("[]"),
        "",
        ErrorCode::WrongType,
        "expected a json object, got an array",
    );
    one_error(
        parse(&with(incident(), "/flags", json!([true]))),
        "flags",
        ErrorCode::WrongType,
        "flags: expected an object, got an array",
    );
    // Positional arrays are not objects (serde would otherwise map them to struct fields).
    let positional = json!([
        "incident",
        "x",
        "2026-10-14T21:40:00+05:00",
        [41.3, 69.2],
        "s",
        {},
        "theft",
        2
    ]);
    one_error(
        parse(&positional),
        "",
        ErrorCode::WrongType,
        "expected a json object, got an array",
    );
    assert!(serde_json::from_value::<Event>(positional).is_err());
    one_error(
        parse_str("\"incident\""),
        "",
        ErrorCode::WrongType,
        "expected a json object, got a string",
    );
}

#[test]
fn non_finite_numbers() {
    let text = serde_json::to_string(&fraud())
        .unwrap()
        .replace("12500000.5", "-1e400");
    one_error(
        parse_str(&text),
        "amount_uzs",
        ErrorCode::NotFinite,
        "amount_uzs: number overflows a 64-bit float (at line 1 column 56)",
    );
    let text = serde_json::to_string(&incident())
        .unwrap()
        .replace("41.2856", "1e999");
    let errs = parse_str(&text).unwrap_err();
    assert_eq!(
        (errs.errors()[0].path.as_str(), errs.errors()[0].code),
        ("location.lat", ErrorCode::NotFinite)
    );
    // NaN / Infinity are not JSON.
    let text = serde_json::to_string(&incident())
        .unwrap()
        .replace("41.2856", "NaN");
    assert_eq!(
        parse_str(&text).unwrap_err().errors()[0].code,
        ErrorCode::MalformedJson
    );
    // Rust-built events with NaN are caught by validate().
    let Event::CameraAlert(mut c) = parse(&camera()).unwrap() else {
        panic!()
    };
    c.confidence = f64::NAN;
    let errs = Event::from(c)
        .validate(&Limits::default(), now())
        .unwrap_err();
    assert_eq!(
        errs.errors()[0].to_string(),
        "confidence: NaN is not a finite number"
    );
}

#[test]
fn ranges() {
    one_error(
        parse(&with(incident(), "/location/lat", json!(91.2))),
        "location.lat",
        ErrorCode::OutOfRange,
        "location.lat: 91.2 is out of range -90..90",
    );
    one_error(
        parse(&with(incident(), "/location/lng", json!(-180.5))),
        "location.lng",
        ErrorCode::OutOfRange,
        "location.lng: -180.5 is out of range -180..180",
    );
    one_error(
        parse(&with(incident(), "/location/accuracy_m", json!(-1))),
        "location.accuracy_m",
        ErrorCode::OutOfRange,
        "location.accuracy_m: -1 is out of range, must be >= 0",
    );
    one_error(
        parse(&with(camera(), "/confidence", json!(1.01))),
        "confidence",
        ErrorCode::OutOfRange,
        "confidence: 1.01 is out of range 0..1",
    );
    one_error(
        parse(&with(fraud(), "/detector_score", json!(-0.1))),
        "detector_score",
        ErrorCode::OutOfRange,
        "detector_score: -0.1 is out of range 0..1",
    );
    one_error(
        parse(&with(fraud(), "/amount_uzs", json!(-50000))),
        "amount_uzs",
        ErrorCode::OutOfRange,
        "amount_uzs: -50000 is out of range, must be >= 0",
    );
    one_error(
        parse(&with(incident(), "/severity", json!(0))),
        "severity",
        ErrorCode::OutOfRange,
        "severity: 0 is out of range 1..5",
    );
    one_error(
        parse(&with(incident(), "/severity", json!(6))),
        "severity",
        ErrorCode::OutOfRange,
        "severity: 6 is out of range 1..5",
    );
    one_error(
        parse(&with(incident(), "/severity", json!(-300))),
        "severity",
        ErrorCode::OutOfRange,
        "severity: -300 is out of range 1..5",
    );
    one_error(
        parse(&with(incident(), "/severity", json!(u64::MAX))),
        "severity",
        ErrorCode::OutOfRange,
        "severity: 18446744073709551615 is out of range",
    );
    // Bounds are inclusive.
    for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0)] {
        let v = with(
            with(incident(), "/location/lat", json!(lat)),
            "/location/lng",
            json!(lng),
        );
        assert!(parse(&v).is_ok());
    }
    assert!(parse(&with(camera(), "/confidence", json!(0))).is_ok());
    assert!(parse(&with(camera(), "/confidence", json!(1))).is_ok());
    assert!(parse(&with(fraud(), "/amount_uzs", json!(0))).is_ok());
}

#[test]
fn timestamps() {
    for bad in [
        "2026-10-14T21:40:00",
        "2026-10-14 21:40:00+05:00",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "",
    ] {
        let errs = parse(&with(incident(), "/occurred_at", json!(bad))).unwrap_err();
        assert_eq!(errs.len(), 1, "{bad}: {errs}");
        assert_eq!(errs.errors()[0].code, ErrorCode::InvalidTimestamp, "{bad}");
    }
    one_error(
        parse(&with(
            incident(),
            "/occurred_at",
            json!("2026-10-14T21:40:00"),
        )),
        "occurred_at",
        ErrorCode::InvalidTimestamp,
        "occurred_at: \"2026-10-14T21:40:00\" is not an rfc 3339 timestamp with offset, e.g. 2026-05-01T14:30:00+05:00",
    );
    // 5 minutes of clock skew are fine, more is not.
    assert!(
        parse(&with(
            incident(),
            "/occurred_at",
            json!("2026-11-01T05:04:59+05:00")
        ))
        .is_ok()
    );
    one_error(
        parse(&with(
            incident(),
            "/occurred_at",
            json!("2026-11-01T05:06:00+05:00"),
        )),
        "occurred_at",
        ErrorCode::InFuture,
        "occurred_at: 2026-11-01T05:06:00+05:00 is 6m ahead of the current time 2026-11-01T00:00:00Z, at most 5m allowed",
    );
    one_error(
        parse(&with(
            incident(),
            "/occurred_at",
            json!("1999-12-31T23:59:59Z"),
        )),
        "occurred_at",
        ErrorCode::TooOld,
        "occurred_at: 1999-12-31T23:59:59+00:00 is before 2000-01-01T00:00:00Z",
    );
    // The 2000 bound is absolute: 2000-01-01T04:00:00+05:00 is 1999 in UTC.
    let errs = parse(&with(
        incident(),
        "/occurred_at",
        json!("2000-01-01T04:00:00+05:00"),
    ))
    .unwrap_err();
    assert_eq!(errs.errors()[0].code, ErrorCode::TooOld);
    // Limits are configurable.
    let limits = Limits {
        max_future: chrono::TimeDelta::hours(1),
        ..Limits::default()
    };
    let v = with(
        incident(),
        "/occurred_at",
        json!("2026-11-01T05:30:00+05:00"),
    );
    assert!(parse_event(&serde_json::to_vec(&v).unwrap(), &limits, now()).is_ok());
    // Lower-case t and z are RFC 3339 too; fractions are kept.
    let ev = parse(&with(
        incident(),
        "/occurred_at",
        json!("2026-10-14t16:40:00.123z"),
    ))
    .unwrap();
    assert_eq!(ev.occurred_at().timestamp_subsec_millis(), 123);
}

#[test]
fn strings_ids_and_attributes() {
    one_error(
        parse(&with(incident(), "/id", json!(""))),
        "id",
        ErrorCode::Empty,
        "id: must not be empty",
    );
    one_error(
        parse(&with(incident(), "/id", json!("x".repeat(129)))),
        "id",
        ErrorCode::TooLong,
        "id: 129 bytes is too long, at most 128 allowed",
    );
    assert!(parse(&with(incident(), "/id", json!("x".repeat(128)))).is_ok());
    one_error(
        parse(&with(incident(), "/id", json!("iiv 1"))),
        "id",
        ErrorCode::InvalidId,
        "id: contains a space at byte 3; only visible ascii (0x21..0x7e) is allowed",
    );
    one_error(
        parse(&with(incident(), "/id", json!("iiv\t1"))),
        "id",
        ErrorCode::InvalidId,
        "id: contains a control character at byte 3; only visible ascii (0x21..0x7e) is allowed",
    );
    one_error(
        parse(&with(incident(), "/id", json!("iiv-№1"))),
        "id",
        ErrorCode::InvalidId,
        "id: contains a non-ascii character at byte 4; only visible ascii (0x21..0x7e) is allowed",
    );
    one_error(
        parse(&with(incident(), "/source", json!(""))),
        "source",
        ErrorCode::Empty,
        "source: must not be empty",
    );
    one_error(
        parse(&with(incident(), "/source", json!("s".repeat(129)))),
        "source",
        ErrorCode::TooLong,
        "source: 129 bytes is too long, at most 128 allowed",
    );
    // Byte, not character, lengths: 1001 two-byte characters are too many.
    one_error(
        parse(&with(incident(), "/description", json!("Ж".repeat(1001)))),
        "description",
        ErrorCode::TooLong,
        "description: 2002 bytes is too long, at most 2000 allowed",
    );
    assert!(parse(&with(incident(), "/description", json!(""))).is_ok());
    one_error(
        parse(&with(camera(), "/camera_id", json!(""))),
        "camera_id",
        ErrorCode::Empty,
        "camera_id: must not be empty",
    );
    one_error(
        parse(&with(camera(), "/model", json!("m".repeat(129)))),
        "model",
        ErrorCode::TooLong,
        "model: 129 bytes is too long, at most 128 allowed",
    );
    one_error(
        parse(&with(camera(), "/snapshot_uri", json!("u".repeat(2049)))),
        "snapshot_uri",
        ErrorCode::TooLong,
        "snapshot_uri: 2049 bytes is too long, at most 2048 allowed",
    );
    one_error(
        parse(&with(fraud(), "/account_ref", json!(""))),
        "account_ref",
        ErrorCode::Empty,
        "account_ref: must not be empty",
    );
    // Attributes.
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    one_error(
        parse(&with(incident(), "/attributes", Value::Object(many))),
        "attributes",
        ErrorCode::TooManyEntries,
        "attributes: has 33 entries, at most 32 allowed",
    );
    one_error(
        parse(&with(
            incident(),
            "/attributes",
            json!({ ("k".repeat(65)): "v" }),
        )),
        &format!("attributes.{}", "k".repeat(65)),
        ErrorCode::TooLong,
        &format!(
            "attributes.{}: attribute key of 65 bytes is too long, at most 64 allowed",
            "k".repeat(65)
        ),
    );
    one_error(
        parse(&with(incident(), "/attributes", json!({"": "v"}))),
        "attributes[\"\"]",
        ErrorCode::Empty,
        "attributes[\"\"]: attribute key must not be empty",
    );
    one_error(
        parse(&with(
            incident(),
            "/attributes",
            json!({"note": "v".repeat(1025)}),
        )),
        "attributes.note",
        ErrorCode::TooLong,
        "attributes.note: 1025 bytes is too long, at most 1024 allowed",
    );
    one_error(
        parse(&with(incident(), "/attributes", json!({"shift": 2}))),
        "attributes.shift",
        ErrorCode::WrongType,
        "attributes.shift: expected a string (attribute values are strings), got a number",
    );
}

#[test]
fn fields_of_another_kind() {
    one_error(
        parse(&insert(incident(), "camera_id", json!("tsh-0412"))),
        "camera_id",
        ErrorCode::FieldNotAllowedForKind,
        "camera_id: not allowed for kind incident (it is a camera_alert field)",
    );
    let errs = parse(&insert(
        insert(camera(), "severity", json!(3)),
        "amount_uzs",
        json!(10),
    ))
    .unwrap_err();
    let got: Vec<(&str, ErrorCode)> = errs.iter().map(|e| (e.path.as_str(), e.code)).collect();
    assert_eq!(
        got,
        [
            ("severity", ErrorCode::FieldNotAllowedForKind),
            ("amount_uzs", ErrorCode::FieldNotAllowedForKind)
        ]
    );
    let errs = parse(&insert(fraud(), "flags", json!({}))).unwrap_err();
    assert_eq!(errs.errors()[0].code, ErrorCode::FieldNotAllowedForKind);
}

#[test]
fn duplicate_fields() {
    one_error(
        parse_str(r#"{"kind":"incident","kind":"incident"}"#),
        "kind",
        ErrorCode::DuplicateField,
        "kind: field appears more than once (at line 1 column 25)",
    );
    let text = serde_json::to_string(&incident())
        .unwrap()
        .replace(r#""district_name":"Chilonzor""#, r#""a":"1","a":"2""#);
    let errs = parse_str(&text).unwrap_err();
    assert_eq!(
        (errs.errors()[0].path.as_str(), errs.errors()[0].code),
        ("attributes.a", ErrorCode::DuplicateField)
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let v = with(
        with(
            with(incident(), "/severity", json!(7)),
            "/location/lat",
            json!(-95),
        ),
        "/source",
        json!(""),
    );
    let errs = parse(&v).unwrap_err();
    assert_eq!(errs.len(), 3, "{errs}");
    assert_eq!(
        errs.to_string(),
        "location.lat: -95 is out of range -90..90; source: must not be empty; severity: 7 is out of range 1..5"
    );
    // Structural (slow path) and semantic problems together.
    let v = insert(
        with(
            with(
                with(camera(), "/confidence", json!("high")),
                "/id",
                json!("a b"),
            ),
            "/location/lng",
            json!(200),
        ),
        "extra",
        json!(1),
    );
    let errs = parse(&v).unwrap_err();
    let mut got: Vec<(&str, ErrorCode)> = errs.iter().map(|e| (e.path.as_str(), e.code)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("confidence", ErrorCode::WrongType),
            ("extra", ErrorCode::UnknownField),
            ("id", ErrorCode::InvalidId),
            ("location.lng", ErrorCode::OutOfRange),
        ]
    );
    assert!(errs.has_code(ErrorCode::UnknownField));
    assert!(errs.get("confidence").is_some());
    assert_eq!(errs.codes().len(), 4);
}

#[test]
fn batches_json_array() {
    let good = serde_json::to_string(&incident()).unwrap();
    let bad = serde_json::to_string(&with(camera(), "/confidence", json!(2))).unwrap();
    let tricky = serde_json::to_string(&with(fraud(), "/account_ref", json!("[,]{\"}"))).unwrap();
    let body = format!("[\n  {good},\n  {bad},\n  {tricky}, {{\"kind\": }},\n  {good}\n]\n");
    let items = parse_events(body.as_bytes(), &Limits::default(), now());
    assert_eq!(items.len(), 5);
    assert_eq!(
        items.iter().map(|i| i.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        items.iter().map(|i| i.line).collect::<Vec<_>>(),
        [2, 3, 4, 4, 5]
    );
    assert!(items[0].result.is_ok());
    assert_eq!(
        items[1].result.as_ref().unwrap_err().errors()[0].path,
        "confidence"
    );
    match &items[2].result {
        Ok(Event::FraudFlag(f)) => assert_eq!(f.account_ref, "[,]{\"}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        items[3].result.as_ref().unwrap_err().errors()[0].code,
        ErrorCode::MalformedJson
    );
    assert!(items[4].result.is_ok());

    assert!(parse_events(b"  [ ] ", &Limits::default(), now()).is_empty());
    assert!(parse_events(b"", &Limits::default(), now()).is_empty());
    // Unterminated array: the complete items survive.
    let items = parse_events(
        format!("[{good}, {good}").as_bytes(),
        &Limits::default(),
        now(),
    );
    assert_eq!(items.len(), 2);
    assert!(items[0].result.is_ok());
    assert_eq!(
        items[1].result.as_ref().unwrap_err().errors()[0].code,
        ErrorCode::MalformedJson
    );
    // Trailing garbage and empty elements.
    let items = parse_events(
        format!("[{good},,{good}] x").as_bytes(),
        &Limits::default(),
        now(),
    );
    assert_eq!(items.len(), 4);
    assert!(items[0].result.is_ok() && items[2].result.is_ok());
    assert!(items[1].result.is_err() && items[3].result.is_err());
}

#[test]
fn batches_ndjson() {
    let good = serde_json::to_string(&incident()).unwrap();
    let bad = serde_json::to_string(&remove(fraud(), "scheme")).unwrap();
    let body = format!("{good}\n\n{bad}\r\n{{broken\n   \n{good}");
    let items = parse_events(body.as_bytes(), &Limits::default(), now());
    assert_eq!(items.len(), 4);
    assert_eq!(
        items.iter().map(|i| (i.index, i.line)).collect::<Vec<_>>(),
        [(0, 1), (1, 3), (2, 4), (3, 6)]
    );
    assert!(items[0].result.is_ok());
    assert_eq!(
        items[1].result.as_ref().unwrap_err().errors()[0].code,
        ErrorCode::MissingField
    );
    assert_eq!(
        items[2].result.as_ref().unwrap_err().errors()[0].code,
        ErrorCode::MalformedJson
    );
    assert!(items[3].result.is_ok());
    // The size limit applies per item.
    let limits = Limits {
        max_payload_bytes: good.len(),
        ..Limits::default()
    };
    let items = parse_events(format!("{good}\n{good}\n").as_bytes(), &limits, now());
    assert!(items.iter().all(|i| i.result.is_ok()));
    // The item count is capped per batch: one more is refused whole.
    let limits = Limits {
        max_batch_items: 2,
        ..Limits::default()
    };
    for body in [format!("{good}\n{good}\n"), format!("[{good},{good}]")] {
        assert_eq!(parse_events(body.as_bytes(), &limits, now()).len(), 2);
    }
    for body in [
        format!("{good}\n{good}\n{good}\n"),
        format!("[{good},{good},{good}]"),
        "[0,0,0,0,0,0]".to_owned(),
    ] {
        let items = parse_events(body.as_bytes(), &limits, now());
        assert_eq!(items.len(), 1, "{body}");
        let errors = items[0].result.as_ref().unwrap_err();
        assert_eq!(errors.errors()[0].code, ErrorCode::BatchTooLarge);
        assert!(errors.errors()[0].message.contains("limit of 2 items"));
    }
}

#[test]
fn round_trip_every_kind() {
    for v in [
        incident(),
        camera(),
        fraud(),
        remove(remove(incident(), "flags"), "attributes"),
    ] {
        let ev = parse(&v).unwrap();
        let text = serde_json::to_string(&ev).unwrap();
        let again = parse_str(&text).unwrap();
        assert_eq!(ev, again);
        assert_eq!(
            ev.occurred_at().offset(),
            again.occurred_at().offset(),
            "offset preserved"
        );
        // Serialize output is the wire format: same document as the input.
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            serde_json::from_str::<Value>(&text).unwrap()
        );
        // Serde Deserialize for Event agrees.
        let de: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(de, ev);
    }
    // The wire form of the input documents is reproduced exactly.
    let ev = parse(&camera()).unwrap();
    assert_eq!(serde_json::to_value(&ev).unwrap(), camera());
    // `kind` comes first.
    assert!(
        serde_json::to_string(&ev)
            .unwrap()
            .starts_with(r#"{"kind":"camera_alert","id":"#)
    );
}

#[test]
fn serde_deserialize_is_strict() {
    let text = serde_json::to_string(&insert(incident(), "lattitude", json!(1))).unwrap();
    let err = serde_json::from_str::<Event>(&text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field"), "{err}");
    let text = serde_json::to_string(&with(incident(), "/location/lat", json!(91))).unwrap();
    let err = serde_json::from_str::<Event>(&text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("location.lat: 91 is out of range -90..90"),
        "{err}"
    );
    // Per-kind types: kind optional, must match when given.
    let i: Incident = serde_json::from_value(remove(incident(), "kind")).unwrap();
    assert_eq!(i.severity, 4);
    let i: Incident = serde_json::from_value(incident()).unwrap();
    assert_eq!(i.category, IncidentCategory::Robbery);
    assert!(serde_json::from_value::<Incident>(camera()).is_err());
    let c: CameraAlert = serde_json::from_value(camera()).unwrap();
    assert_eq!(c.model, "va-detector/3.4.1");
    let f: FraudFlag = serde_json::from_value(fraud()).unwrap();
    assert_eq!(f.scheme, FraudScheme::ScamCall);
}

#[test]
fn validate_rust_built_events() {
    let ev = parse(&incident()).unwrap();
    assert!(ev.validate(&Limits::default(), now()).is_ok());
    let Event::Incident(mut i) = ev else { panic!() };
    i.severity = 0;
    i.header.id = String::new();
    i.header.location.lat = 100.0;
    let errs = Event::from(i)
        .validate(&Limits::default(), now())
        .unwrap_err();
    assert_eq!(errs.len(), 3, "{errs}");
}

#[test]
fn enriched_event_round_trip() {
    let ev = parse(&incident()).unwrap();
    let enriched = EnrichedEvent {
        event: ev,
        cell: "8a2a1072b59ffff".parse().unwrap(),
        mahalla_id: Some("tsh-chilonzor-017".into()),
        district_id: Some("tsh-chilonzor".into()),
        region_id: Some("tashkent-city".into()),
        ingested_at: now(),
    };
    assert!(enriched.is_assigned());
    let v = serde_json::to_value(&enriched).unwrap();
    assert_eq!(v["cell"], "8a2a1072b59ffff");
    assert_eq!(v["event"]["kind"], "incident");
    let back: EnrichedEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, enriched);
    // Unassigned: kept, with nulls.
    let un = EnrichedEvent {
        mahalla_id: None,
        district_id: None,
        region_id: None,
        ..enriched
    };
    assert!(!un.is_assigned());
    let v = serde_json::to_value(&un).unwrap();
    assert_eq!(v["mahalla_id"], Value::Null);
    assert_eq!(serde_json::from_value::<EnrichedEvent>(v).unwrap(), un);
}

#[test]
fn cell_id_hex_round_trip() {
    let c: CellId = "8a2a1072b59ffff".parse().unwrap();
    assert_eq!(c.get(), 0x8a2a1072b59ffff);
    assert_eq!(c.to_string(), "8a2a1072b59ffff");
    assert_eq!(serde_json::to_string(&c).unwrap(), "\"8a2a1072b59ffff\"");
    assert_eq!(
        serde_json::from_str::<CellId>("\"8a2a1072b59ffff\"").unwrap(),
        c
    );
    let small = CellId::new(0x1f).unwrap();
    assert_eq!(small.to_string(), "00000000000001f");
    for c in [
        small,
        c,
        CellId::new(0).unwrap(),
        CellId::new(CellId::MAX_RAW).unwrap(),
    ] {
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
    }
    assert_eq!(small.to_string().parse::<CellId>().unwrap(), small);
    for bad in [
        "8A2A1072B59FFFF",
        "8a2a1072b59fff",
        "8a2a1072b59ffff0",
        "",
        "8a2a1072b59fffg",
        "+a2a1072b59ffff",
    ] {
        assert!(bad.parse::<CellId>().is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<CellId>("622236750694711295").is_err());
    assert_eq!(
        CellId::new(CellId::MAX_RAW).unwrap().to_string(),
        "fffffffffffffff"
    );
    assert!(CellId::new(1 << 60).is_none());
    assert!(CellId::try_from(u64::MAX).is_err());
    assert_eq!(u64::from(c), 0x8a2a1072b59ffff);
}

#[test]
fn pseudonymisation() {
    let key = b"posbon-test-key";
    let p = pseudonymise_account_ref(key, "9860 **** **** 4417");
    assert!(p.starts_with("hmac1:"));
    assert_eq!(p.len(), 6 + 32);
    assert!(is_pseudonymised(&p));
    assert_eq!(
        p,
        pseudonymise_account_ref(key, "9860 **** **** 4417"),
        "deterministic"
    );
    assert_ne!(
        p,
        pseudonymise_account_ref(b"other-key", "9860 **** **** 4417"),
        "keyed"
    );
    assert_ne!(p, pseudonymise_account_ref(key, "9860 **** **** 4418"));
    // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    assert_eq!(
        pseudonymise_account_ref(b"Jefe", "what do ya want for nothing?"),
        "hmac1:5bdcc146bf60754e6a042426089575c7"
    );
    assert!(!is_pseudonymised("9860 **** **** 4417"));
    assert!(!is_pseudonymised("hmac1:5BDCC146BF60754E6A042426089575C7"));
    assert!(!is_pseudonymised("hmac1:5bdcc146"));
    // The method on FraudFlag is idempotent, and names its key.
    let keys = PseudonymKeys::single("k1", key).expect("keys");
    let named = keys.pseudonymise("9860 **** **** 4417");
    assert_eq!(
        named,
        format!("hmac2:k1:{}", &p[6..]),
        "one key: the same digest"
    );
    let Event::FraudFlag(mut f) = parse(&fraud()).unwrap() else {
        panic!()
    };
    f.pseudonymise(&keys);
    assert_eq!(f.account_ref, named);
    f.pseudonymise(&keys);
    assert_eq!(f.account_ref, named);
    assert!(is_pseudonymised(&named));
    // The pseudonym is itself a valid account_ref.
    let ev = Event::from(f.clone());
    assert!(ev.validate(&Limits::default(), now()).is_ok());
    let old = f.replace_account_ref("x".into());
    assert_eq!(old, named);
}

/// A new key is rolled in: new pseudonyms name it, and old ones, lifted
/// with the new key alone, equal what the new keys make of the same
/// reference, so old and new flags of one account still join.
#[test]
fn pseudonym_keys_roll_over_and_old_pseudonyms_stay_joinable() {
    let card = "8600 1234 5678 9012";
    let before =
        PseudonymKeys::parse("k1 first-secret-of-32-characters-or-more\n", 32).expect("one key");
    let after = PseudonymKeys::parse(
        "# newest first\nk2 second-secret-of-32-characters-or-more\nk1 first-secret-of-32-characters-or-more\n",
        32,
    )
    .expect("two keys");
    assert_eq!(after.current_id(), "k2");
    assert_eq!(after.ids().collect::<Vec<_>>(), ["k1", "k2"]);
    let old = before.pseudonymise(card);
    let new = after.pseudonymise(card);
    assert!(old.starts_with("hmac2:k1:") && new.starts_with("hmac2:k2:"));
    assert_ne!(old, new);
    assert_eq!(
        after.lift(&old).as_deref(),
        Some(new.as_str()),
        "joinable after lifting"
    );
    assert_eq!(
        after.lift(&new).as_deref(),
        Some(new.as_str()),
        "already current"
    );
    assert_ne!(after.pseudonymise("8600 1234 5678 9013"), new);
    // A pseudonym of an earlier release (hmac1, the oldest key's) lifts too.
    let legacy = pseudonymise_account_ref(b"first-secret-of-32-characters-or-more", card);
    assert_eq!(after.lift(&legacy).as_deref(), Some(new.as_str()));
    // Not ours, or not a pseudonym: nothing.
    assert_eq!(
        after.lift("hmac2:k9:5bdcc146bf60754e6a042426089575c7"),
        None
    );
    assert_eq!(after.lift(card), None);
    // Bad key files say why.
    for (text, why) in [
        ("", "no pseudonym key"),
        ("k1 short\n", "shorter than 32"),
        ("K1 first-secret-of-32-characters-or-more\n", "a-z"),
        (
            "k1 first-secret-of-32-characters-or-more\nk1 second-secret-of-32-characters-or-more\n",
            "twice",
        ),
    ] {
        let e = PseudonymKeys::parse(text, 32).expect_err(why);
        assert!(e.contains(why), "{e}");
    }
    assert!(
        !format!("{after:?}").contains("secret"),
        "secrets stay out of Debug"
    );
}

#[test]
fn escalation_ids_and_round_trip() {
    let id = Escalation::deterministic_id("tsh-chilonzor-017", "drug_cluster", 3);
    assert_eq!(id, "esc:tsh-chilonzor-017:drug_cluster:3");
    assert_eq!(
        id,
        Escalation::deterministic_id("tsh-chilonzor-017", "drug_cluster", 3)
    );
    assert_ne!(
        id,
        Escalation::deterministic_id("tsh-chilonzor-017", "drug_cluster", 4)
    );
    let odd = Escalation::deterministic_id("Чилонзор 17", "rule:x", 1);
    assert!(
        odd.starts_with("esc:sha256:") && odd.len() == 11 + 32,
        "{odd}"
    );
    assert_ne!(
        Escalation::deterministic_id("a:b", "c", 1),
        Escalation::deterministic_id("a", "b:c", 1)
    );
    let long = Escalation::deterministic_id(&"m".repeat(200), "r", 1);
    for id in [&id, &odd, &long] {
        assert!(is_valid_id(id), "{id}");
    }

    let esc = Escalation {
        id: id.clone(),
        mahalla_id: "tsh-chilonzor-017".into(),
        district_id: "tsh-chilonzor".into(),
        region_id: "tashkent-city".into(),
        level: RiskLevel::High,
        previous_level: RiskLevel::Elevated,
        score: 3.7,
        rule: "drug_cluster".into(),
        measure: None,
        counts: [
            ("drug_handoff".to_owned(), 7u64),
            ("drug_use".to_owned(), 2),
        ]
        .into(),
        hot_cells: vec![HotCell {
            cell: "8a2a1072b59ffff".parse().unwrap(),
            gi_z: 3.2,
            events: 5,
        }],
        evidence: vec!["cam-0412-20261015T013205Z".into()],
        window_start: now() - chrono::TimeDelta::hours(24),
        window_end: now(),
        opened_at: now(),
        status: EscalationStatus::Open,
    };
    let v = serde_json::to_value(&esc).unwrap();
    assert_eq!(v["level"], "high");
    assert_eq!(v["hot_cells"][0]["cell"], "8a2a1072b59ffff");
    assert_eq!(serde_json::from_value::<Escalation>(v).unwrap(), esc);
}

#[test]
fn enums_have_stable_names() {
    assert!(RiskLevel::Normal < RiskLevel::Elevated && RiskLevel::High < RiskLevel::Critical);
    assert_eq!(RiskLevel::ALL.iter().max(), Some(&RiskLevel::Critical));
    macro_rules! check {
        ($($t:ty),*) => {$(
            for v in <$t>::ALL {
                assert_eq!(v.as_str().parse::<$t>().unwrap(), *v);
                assert_eq!(serde_json::to_value(v).unwrap(), json!(v.as_str()));
                assert_eq!(v.to_string(), v.as_str());
            }
            assert!("NOPE".parse::<$t>().is_err());
        )*};
    }
    check!(
        EventKind,
        IncidentCategory,
        IncidentStatus,
        Detection,
        FraudScheme,
        FraudChannel,
        PaymentSystem,
        RiskLevel,
        EscalationStatus,
        ErrorCode
    );
    assert_eq!(IncidentCategory::ALL.len(), 14);
    assert_eq!(Detection::ALL.len(), 8);
    assert_eq!(FraudScheme::ALL.len(), 7);
    assert_eq!(FraudChannel::ALL.len(), 8);
    assert_eq!(PaymentSystem::ALL.len(), 6);
    assert_eq!(EscalationStatus::ALL.len(), 5);
    assert_eq!(
        ErrorCode::FieldNotAllowedForKind.as_str(),
        "field_not_allowed_for_kind"
    );
    assert_eq!(
        "burglary"
            .parse::<IncidentCategory>()
            .unwrap_err()
            .to_string(),
        "unknown category \"burglary\", expected one of: theft, robbery, assault, homicide, \
         drug_trafficking, drug_use, domestic_violence, fraud, cybercrime, vandalism, \
         hooliganism, weapons, public_order, other"
    );
}

#[test]
fn validation_errors_serialize_for_api_responses() {
    let errs = parse(&with(incident(), "/severity", json!(9))).unwrap_err();
    assert_eq!(
        serde_json::to_value(&errs).unwrap(),
        json!([{"path": "severity", "code": "out_of_range", "message": "9 is out of range 1..5"}])
    );
    let e: &dyn std::error::Error = &errs;
    assert_eq!(e.to_string(), "severity: 9 is out of range 1..5");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let errs = parse_str(&deep).unwrap_err();
    assert_eq!(errs.errors()[0].code, ErrorCode::MalformedJson);
    assert!(
        errs.to_string().contains("recursion limit exceeded"),
        "{errs}"
    );
    let deep = format!("{{\"attributes\":{{\"a\":{}}}}}", "[".repeat(20_000));
    let errs = parse_str(&deep).unwrap_err();
    assert_eq!(errs.errors()[0].code, ErrorCode::MalformedJson, "{errs}");
    let deep = format!("{{\"kind\":{}}}", "{\"a\":".repeat(10_000));
    assert!(parse_str(&deep).is_err());
    let items = parse_events(
        format!("[{}]", "[".repeat(20_000)).as_bytes(),
        &Limits::default(),
        now(),
    );
    assert_eq!(items.len(), 1);
    assert!(items[0].result.is_err());
}

#[test]
fn nested_duplicates_and_unknown_flags_keep_their_path() {
    let errs = parse_str(r#"{"kind":"incident","location":{"lat":41.3,"lat":41.4,"lng":69.2}}"#)
        .unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs.errors()[0].path.as_str(), errs.errors()[0].code),
        ("location.lat", ErrorCode::DuplicateField)
    );
}
