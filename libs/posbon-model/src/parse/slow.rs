//! The slow path, taken when `serde` rejects a document: reads it as a
//! [`serde_json::Value`] field by field so every problem is reported with its
//! path.

use std::collections::BTreeMap;

use serde_json::Value;

use super::checks::TimeRule;
use super::convert::build;
use super::path::{join_path, leaf};
use super::raw::{RawEvent, RawLocation};
use super::tracked::parse_value_tracked;
use crate::CowStr;
use crate::error::{ErrorCode, ValidationErrors};
use crate::event::{Event, IncidentFlags};
use crate::macros::WireEnum;

pub(super) fn slow_path(bytes: &[u8], time: &TimeRule) -> Result<Event, ValidationErrors> {
    let value = parse_value_tracked(bytes)?;
    if !value.is_object() {
        let mut errs = ValidationErrors::new();
        wrong_type("", "a json object", &value, &mut errs);
        return Err(errs);
    }
    let mut errs = ValidationErrors::new();
    let raw = raw_from_value(&value, &mut errs);
    match build(raw, time, None, &mut errs) {
        Some(ev) if errs.is_empty() => Ok(ev),
        _ => Err(errs),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(path: &str, expected: &str, got: &Value, errs: &mut ValidationErrors) {
    errs.push(
        path,
        ErrorCode::WrongType,
        format!("expected {expected}, got {}", type_name(got)),
    );
}

/// A required string field.
fn v_str<'v>(v: &'v Value, path: &str, errs: &mut ValidationErrors) -> Option<CowStr<'v>> {
    match v {
        Value::String(s) => Some(CowStr::borrowed(s)),
        other => {
            wrong_type(path, "a string", other, errs);
            None
        }
    }
}

/// An optional string field: `Some(None)` when present and `null`.
fn v_nullable_str<'v>(
    v: &'v Value,
    path: &str,
    errs: &mut ValidationErrors,
) -> Option<Option<CowStr<'v>>> {
    match v {
        Value::Null => Some(None),
        other => v_str(other, path, errs).map(Some),
    }
}

fn v_num(v: &Value, path: &str, nullable: bool, errs: &mut ValidationErrors) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Null if nullable => None,
        other => {
            wrong_type(path, "a number", other, errs);
            None
        }
    }
}

fn v_enum<E: WireEnum>(
    v: &Value,
    path: &str,
    code: ErrorCode,
    errs: &mut ValidationErrors,
) -> Option<E> {
    match v {
        Value::String(s) => match E::from_wire(s) {
            Some(e) => Some(e),
            None => {
                let shown: String = s.chars().take(64).collect();
                errs.push(
                    path,
                    code,
                    format!(
                        "unknown {} {shown:?}, expected one of: {}",
                        E::WHAT,
                        E::expected()
                    ),
                );
                None
            }
        },
        other => {
            wrong_type(path, "a string", other, errs);
            None
        }
    }
}

fn v_int(v: &Value, path: &str, errs: &mut ValidationErrors) -> Option<i64> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else if n.as_u64().is_some() {
                errs.push(path, ErrorCode::OutOfRange, format!("{n} is out of range"));
                None
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // JSON Schema's "integer" accepts 3.0; so do we.
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    #[allow(clippy::cast_possible_truncation)]
                    Some(f as i64)
                } else {
                    errs.push(
                        path,
                        ErrorCode::WrongType,
                        format!("expected an integer, got {n}"),
                    );
                    None
                }
            }
        }
        other => {
            wrong_type(path, "an integer", other, errs);
            None
        }
    }
}

fn v_bool(v: &Value, path: &str, errs: &mut ValidationErrors) -> bool {
    match v {
        Value::Bool(b) => *b,
        other => {
            wrong_type(path, "a boolean", other, errs);
            false
        }
    }
}

fn unknown_field(path: String, hint: &str, errs: &mut ValidationErrors) {
    let name = leaf(&path).to_owned();
    errs.push(
        path,
        ErrorCode::UnknownField,
        format!("unknown field `{name}`{hint}"),
    );
}

/// Reads a `Value` into a raw event, recording type and name problems.
fn raw_from_value<'v>(v: &'v Value, errs: &mut ValidationErrors) -> RawEvent<'v> {
    let mut raw = RawEvent::default();
    let Value::Object(map) = v else {
        wrong_type("", "a json object", v, errs);
        return raw;
    };
    for (k, val) in map {
        let p = k.as_str();
        match p {
            "kind" => raw.kind = v_enum(val, p, ErrorCode::UnknownKind, errs),
            "id" => raw.id = v_str(val, p, errs),
            "occurred_at" => raw.occurred_at = v_str(val, p, errs),
            "source" => raw.source = v_str(val, p, errs),
            "location" => match val {
                Value::Object(m) => {
                    let mut loc = RawLocation::default();
                    for (lk, lv) in m {
                        let lp = join_path("location", lk);
                        match lk.as_str() {
                            "lat" => loc.lat = v_num(lv, &lp, false, errs),
                            "lng" => loc.lng = v_num(lv, &lp, false, errs),
                            "accuracy_m" => loc.accuracy_m = v_num(lv, &lp, true, errs),
                            _ => unknown_field(lp, " (allowed: lat, lng, accuracy_m)", errs),
                        }
                    }
                    raw.location = Some(loc);
                }
                other => wrong_type(p, "an object", other, errs),
            },
            "attributes" => match val {
                Value::Object(m) => {
                    let mut attrs = BTreeMap::new();
                    for (ak, av) in m {
                        match av {
                            Value::String(s) => {
                                attrs.insert(ak.clone(), s.clone());
                            }
                            other => wrong_type(
                                &join_path("attributes", ak),
                                "a string (attribute values are strings)",
                                other,
                                errs,
                            ),
                        }
                    }
                    raw.attributes = Some(attrs);
                }
                other => wrong_type(p, "an object of strings", other, errs),
            },
            "category" => raw.category = v_enum(val, p, ErrorCode::UnknownVariant, errs),
            "severity" => raw.severity = v_int(val, p, errs),
            "flags" => match val {
                Value::Object(m) => {
                    let mut f = IncidentFlags::default();
                    for (fk, fv) in m {
                        let fp = join_path("flags", fk);
                        match fk.as_str() {
                            "victim_minor" => f.victim_minor = v_bool(fv, &fp, errs),
                            "victim_youth" => f.victim_youth = v_bool(fv, &fp, errs),
                            "victim_woman" => f.victim_woman = v_bool(fv, &fp, errs),
                            "offender_minor" => f.offender_minor = v_bool(fv, &fp, errs),
                            "offender_youth" => f.offender_youth = v_bool(fv, &fp, errs),
                            "domestic" => f.domestic = v_bool(fv, &fp, errs),
                            _ => unknown_field(
                                fp,
                                " (allowed: victim_minor, victim_youth, victim_woman, \
                                 offender_minor, offender_youth, domestic)",
                                errs,
                            ),
                        }
                    }
                    raw.flags = Some(f);
                }
                other => wrong_type(p, "an object", other, errs),
            },
            "status" => raw.status = v_enum(val, p, ErrorCode::UnknownVariant, errs),
            "description" => raw.description = v_nullable_str(val, p, errs),
            "camera_id" => raw.camera_id = v_str(val, p, errs),
            "detection" => raw.detection = v_enum(val, p, ErrorCode::UnknownVariant, errs),
            "confidence" => raw.confidence = v_num(val, p, false, errs),
            "model" => raw.model = v_str(val, p, errs),
            "snapshot_uri" => raw.snapshot_uri = v_nullable_str(val, p, errs),
            "scheme" => raw.scheme = v_enum(val, p, ErrorCode::UnknownVariant, errs),
            "channel" => raw.channel = v_enum(val, p, ErrorCode::UnknownVariant, errs),
            "amount_uzs" => raw.amount_uzs = v_num(val, p, false, errs),
            "payment_system" => {
                raw.payment_system = v_enum(val, p, ErrorCode::UnknownVariant, errs)
            }
            "account_ref" => raw.account_ref = v_str(val, p, errs),
            "detector_score" => raw.detector_score = v_num(val, p, false, errs),
            _ => unknown_field(
                join_path("", k),
                " (producer-specific extras belong in `attributes`)",
                errs,
            ),
        }
    }
    raw
}
