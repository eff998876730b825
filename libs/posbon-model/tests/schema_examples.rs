//! The example documents under `schemas/examples/` are judged the same way by
//! the JSON Schema (`schemas/event.schema.json`, via the `jsonschema` crate)
//! and by the Rust validator ([`posbon_model::parse_event`]).
//!
//! * `valid/`: both accept.
//! * `invalid/`: both reject; the Rust error codes and paths are asserted.
//! * `invalid-runtime/`: rules a JSON Schema cannot express; the schema
//!   accepts, the Rust validator rejects.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use posbon_model::{ErrorCode, Limits, parse_event};

use ErrorCode::*;

/// Fixed "current time" so the examples never age.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn examples_dir() -> PathBuf {
    manifest_dir().join("../../schemas/examples")
}

fn files(sub: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(examples_dir().join(sub)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read(&path).unwrap());
        }
    }
    out
}

fn validator(file: &str) -> jsonschema::Validator {
    let path = examples_dir().join("..").join(file);
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn schema_errors(v: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Expected Rust errors of each `invalid/` example: (path, code) pairs, all
/// of which must be reported, and nothing else.
const INVALID: &[(&str, &[(&str, ErrorCode)])] = &[
    ("amount_negative", &[("amount_uzs", OutOfRange)]),
    ("attribute_not_string", &[("attributes.shift", WrongType)]),
    ("confidence_above_one", &[("confidence", OutOfRange)]),
    ("detector_score_negative", &[("detector_score", OutOfRange)]),
    (
        "field_of_another_kind",
        &[("camera_id", FieldNotAllowedForKind)],
    ),
    ("id_empty", &[("id", Empty)]),
    ("id_null", &[("id", WrongType)]),
    ("id_too_long", &[("id", TooLong)]),
    ("id_with_space", &[("id", InvalidId)]),
    ("lat_out_of_range", &[("location.lat", OutOfRange)]),
    ("lng_out_of_range", &[("location.lng", OutOfRange)]),
    ("missing_severity", &[("severity", MissingField)]),
    ("not_an_object", &[("", WrongType)]),
    ("severity_six", &[("severity", OutOfRange)]),
    ("severity_wrong_type", &[("severity", WrongType)]),
    ("severity_zero", &[("severity", OutOfRange)]),
    ("source_empty", &[("source", Empty)]),
    (
        "three_problems",
        &[
            ("location.lat", OutOfRange),
            ("source", Empty),
            ("severity", OutOfRange),
        ],
    ),
    (
        "timestamp_without_offset",
        &[("occurred_at", InvalidTimestamp)],
    ),
    ("unknown_category", &[("category", UnknownVariant)]),
    ("unknown_detection", &[("detection", UnknownVariant)]),
    ("unknown_kind", &[("kind", UnknownKind)]),
    ("unknown_location_field", &[("location.alt", UnknownField)]),
    ("unknown_top_level_field", &[("lattitude", UnknownField)]),
];

/// Expected Rust errors of each `invalid-runtime/` example.
const INVALID_RUNTIME: &[(&str, &[(&str, ErrorCode)])] = &[
    ("description_too_many_bytes", &[("description", TooLong)]),
    ("duplicate_field", &[("severity", DuplicateField)]),
    ("number_overflow", &[("location.lat", NotFinite)]),
    ("occurred_before_2000", &[("occurred_at", TooOld)]),
    ("occurred_in_future", &[("occurred_at", InFuture)]),
    ("payload_too_large", &[("", PayloadTooLarge)]),
];

/// `invalid-runtime/` examples that no JSON parser producing 64-bit floats
/// can even read (so no schema validator can judge them).
const UNPARSABLE_BY_F64_JSON: &[&str] = &["number_overflow"];

fn assert_errors(name: &str, bytes: &[u8], expected: &[(&str, ErrorCode)]) {
    let errs = parse_event(bytes, &Limits::default(), now())
        .expect_err(&format!("rust validator accepted {name}"));
    let mut got: Vec<(String, ErrorCode)> = errs.iter().map(|e| (e.path.clone(), e.code)).collect();
    let mut want: Vec<(String, ErrorCode)> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), *c))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "{name}: rust errors were: {errs}");
    for e in errs.iter() {
        let text = e.to_string();
        assert!(
            !text.is_empty() && !text.ends_with('.'),
            "{name}: message style: {text}"
        );
        assert!(
            !e.message.starts_with(char::is_uppercase),
            "{name}: message style: {text}"
        );
    }
}

fn assert_table_covers(dir: &str, table: &[(&str, &[(&str, ErrorCode)])], names: &[&String]) {
    let listed: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    for n in names {
        assert!(
            listed.contains(&n.as_str()),
            "{dir}/{n}.json has no expected errors in the table"
        );
    }
    for n in listed {
        assert!(
            names.iter().any(|x| *x == n),
            "table lists {dir}/{n}.json which does not exist"
        );
    }
}

#[test]
fn valid_examples_pass_schema_and_rust() {
    let event = validator("event.schema.json");
    let docs = files("valid");
    assert!(docs.len() >= 3);
    let mut kinds = Vec::new();
    for (name, bytes) in &docs {
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let errs = schema_errors(&event, &doc);
        assert!(errs.is_empty(), "schema rejected valid/{name}: {errs:?}");
        let ev = parse_event(bytes, &Limits::default(), now())
            .unwrap_or_else(|e| panic!("rust rejected valid/{name}: {e}"));
        // The per-kind schema accepts it too.
        let kind_schema = validator(&format!("{}.schema.json", ev.kind()));
        assert!(
            kind_schema.is_valid(&doc),
            "{}.schema.json rejected valid/{name}",
            ev.kind()
        );
        // Re-serialized, it is still valid for both.
        let again = serde_json::to_value(&ev).unwrap();
        assert!(
            event.is_valid(&again),
            "schema rejected re-serialized valid/{name}"
        );
        kinds.push(ev.kind());
    }
    for k in posbon_model::EventKind::ALL {
        assert!(kinds.contains(k), "no valid example of kind {k}");
    }
}

#[test]
fn invalid_examples_fail_schema_and_rust() {
    let event = validator("event.schema.json");
    let docs = files("invalid");
    assert!(docs.len() >= 15);
    assert_table_covers("invalid", INVALID, &docs.keys().collect::<Vec<_>>());
    for (name, expected) in INVALID {
        let bytes = &docs[*name];
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert!(!event.is_valid(&doc), "schema accepted invalid/{name}.json");
        assert_errors(name, bytes, expected);
    }
}

#[test]
fn runtime_only_examples_pass_schema_but_fail_rust() {
    let event = validator("event.schema.json");
    let docs = files("invalid-runtime");
    assert_table_covers(
        "invalid-runtime",
        INVALID_RUNTIME,
        &docs.keys().collect::<Vec<_>>(),
    );
    for (name, expected) in INVALID_RUNTIME {
        let bytes = &docs[*name];
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(doc) => {
                assert!(!UNPARSABLE_BY_F64_JSON.contains(name));
                let errs = schema_errors(&event, &doc);
                assert!(
                    errs.is_empty(),
                    "schema rejected invalid-runtime/{name}: {errs:?}"
                );
            }
            Err(e) => {
                assert!(UNPARSABLE_BY_F64_JSON.contains(name), "{name}: {e}");
                assert!(e.to_string().contains("number out of range"), "{name}: {e}");
            }
        }
        assert_errors(name, bytes, expected);
    }
}

#[test]
fn example_dirs_only_hold_json() {
    for sub in ["valid", "invalid", "invalid-runtime"] {
        for entry in std::fs::read_dir(examples_dir().join(sub)).unwrap() {
            let p = entry.unwrap().path();
            assert_eq!(
                p.extension().and_then(|e| e.to_str()),
                Some("json"),
                "{}",
                p.display()
            );
        }
    }
}

/// The package directory of this checkout: cargo sets `CARGO_MANIFEST_DIR`
/// when it runs the test, and a binary built in another checkout with the
/// same target directory (which cargo reuses) would otherwise look there.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
