//! JSON Schemas (draft 2020-12) of the wire messages, generated from the types.
//!
//! The checked-in copies live in the repository's top-level `schemas/`
//! folder; the `schemas_up_to_date` test fails when they drift, and
//! `POSBON_BLESS=1 cargo test -p posbon-model --test schemas` rewrites them.

use std::collections::BTreeSet;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

use crate::event::{EventKind, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES};

/// Schema of `attributes`.
pub(crate) fn attributes_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Producer-specific extras, kept verbatim: at most 32 entries, keys of 1..=64 bytes, string values of at most 1024 bytes.",
        "type": "object",
        "maxProperties": MAX_ATTRIBUTES,
        "propertyNames": { "minLength": 1, "maxLength": MAX_ATTRIBUTE_KEY_BYTES },
        "additionalProperties": { "type": "string", "maxLength": MAX_ATTRIBUTE_VALUE_BYTES },
    })
}

fn root_for<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// Collects every `#/$defs/NAME` referenced below `v`.
fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(name) = x.as_str().and_then(|s| s.strip_prefix("#/$defs/")) {
                        out.insert(name.to_owned());
                    }
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The schema of one kind: the `oneOf` branch of the event schema whose
/// `kind` is `kind`, as a root schema with only the definitions it uses.
fn kind_schema(event: &Value, kind: EventKind, title: &str) -> Value {
    let branch = event
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|branches| {
            branches.iter().find(|b| {
                b.pointer("/properties/kind/const").and_then(Value::as_str) == Some(kind.as_str())
            })
        })
        .cloned()
        .unwrap_or(Value::Null);
    let Value::Object(branch) = branch else {
        return Value::Null;
    };
    let mut used = BTreeSet::new();
    collect_refs(&Value::Object(branch.clone()), &mut used);
    let mut defs = Map::new();
    if let Some(all) = event.get("$defs").and_then(Value::as_object) {
        for name in used {
            if let Some(d) = all.get(&name) {
                defs.insert(name, d.clone());
            }
        }
    }
    let mut out = Map::new();
    out.insert(
        "$schema".into(),
        event.get("$schema").cloned().unwrap_or(Value::Null),
    );
    out.insert("title".into(), Value::String(title.to_owned()));
    for (k, v) in branch {
        out.insert(k, v);
    }
    out.insert("$defs".into(), Value::Object(defs));
    Value::Object(out)
}

/// Every schema, as `(file name, schema)`: `event.schema.json` (any event,
/// `oneOf` by kind), `incident.schema.json`, `camera_alert.schema.json`,
/// `fraud_flag.schema.json`, `enriched_event.schema.json` and
/// `escalation.schema.json`.
pub fn generate_schemas() -> Vec<(&'static str, Value)> {
    let event = root_for::<crate::Event>();
    vec![
        (
            "incident.schema.json",
            kind_schema(&event, EventKind::Incident, "Incident"),
        ),
        (
            "camera_alert.schema.json",
            kind_schema(&event, EventKind::CameraAlert, "CameraAlert"),
        ),
        (
            "fraud_flag.schema.json",
            kind_schema(&event, EventKind::FraudFlag, "FraudFlag"),
        ),
        ("event.schema.json", event),
        (
            "enriched_event.schema.json",
            root_for::<crate::EnrichedEvent>(),
        ),
        ("escalation.schema.json", root_for::<crate::Escalation>()),
        (
            "escalation_record.schema.json",
            root_for::<crate::EscalationRecord>(),
        ),
        (
            "escalation_action.schema.json",
            root_for::<crate::ActionRequest>(),
        ),
        ("silence.schema.json", root_for::<crate::Silence>()),
        (
            "silence_request.schema.json",
            root_for::<crate::SilenceRequest>(),
        ),
    ]
}
