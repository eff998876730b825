//! Malformed events: one line per defect the ingest validator must reject.

use posbon_model::ErrorCode;
use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};

/// A defect deliberately put into a line by `--bad-fraction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Defect {
    /// The line is cut in the middle: not JSON.
    MalformedJson,
    /// A bare `NaN` token as a number (not JSON).
    NanToken,
    /// A bare `Infinity` token as a number (not JSON).
    InfinityToken,
    /// The string `"NaN"` where a number belongs.
    NanString,
    /// A number that overflows a 64-bit float (`1e999`).
    NumberOverflow,
    /// `kind` is not an event kind.
    UnknownKind,
    /// An enumerated field (category, detection, scheme) has an unknown value.
    UnknownVariant,
    /// A required field is missing.
    MissingField,
    /// Latitude outside -90..90.
    LatOutOfRange,
    /// Longitude outside -180..180.
    LngOutOfRange,
    /// `occurred_at` far in the future (2099).
    FutureTimestamp,
    /// `occurred_at` before 2000.
    AncientTimestamp,
    /// `occurred_at` is not RFC 3339 with an offset.
    InvalidTimestamp,
    /// Camera `confidence` outside 0..1.
    ConfidenceOutOfRange,
    /// Fraud `detector_score` outside 0..1.
    ScoreOutOfRange,
    /// Negative `amount_uzs`.
    NegativeAmount,
    /// An empty string where one is required.
    EmptyString,
    /// An id longer than 128 bytes.
    IdTooLong,
    /// A string longer than its limit.
    StringTooLong,
    /// A field the contract does not define.
    UnknownField,
    /// A payload larger than 64 KiB.
    PayloadTooLarge,
    /// A repeat of an earlier valid event's id with different content; the
    /// line itself is valid.
    DuplicateId,
}

impl Defect {
    /// Every defect.
    pub const ALL: [Defect; 22] = [
        Defect::MalformedJson,
        Defect::NanToken,
        Defect::InfinityToken,
        Defect::NanString,
        Defect::NumberOverflow,
        Defect::UnknownKind,
        Defect::UnknownVariant,
        Defect::MissingField,
        Defect::LatOutOfRange,
        Defect::LngOutOfRange,
        Defect::FutureTimestamp,
        Defect::AncientTimestamp,
        Defect::InvalidTimestamp,
        Defect::ConfidenceOutOfRange,
        Defect::ScoreOutOfRange,
        Defect::NegativeAmount,
        Defect::EmptyString,
        Defect::IdTooLong,
        Defect::StringTooLong,
        Defect::UnknownField,
        Defect::PayloadTooLarge,
        Defect::DuplicateId,
    ];

    /// Snake-case name, as written in the truth file.
    pub fn as_str(self) -> &'static str {
        match self {
            Defect::MalformedJson => "malformed_json",
            Defect::NanToken => "nan_token",
            Defect::InfinityToken => "infinity_token",
            Defect::NanString => "nan_string",
            Defect::NumberOverflow => "number_overflow",
            Defect::UnknownKind => "unknown_kind",
            Defect::UnknownVariant => "unknown_variant",
            Defect::MissingField => "missing_field",
            Defect::LatOutOfRange => "lat_out_of_range",
            Defect::LngOutOfRange => "lng_out_of_range",
            Defect::FutureTimestamp => "future_timestamp",
            Defect::AncientTimestamp => "ancient_timestamp",
            Defect::InvalidTimestamp => "invalid_timestamp",
            Defect::ConfidenceOutOfRange => "confidence_out_of_range",
            Defect::ScoreOutOfRange => "score_out_of_range",
            Defect::NegativeAmount => "negative_amount",
            Defect::EmptyString => "empty_string",
            Defect::IdTooLong => "id_too_long",
            Defect::StringTooLong => "string_too_long",
            Defect::UnknownField => "unknown_field",
            Defect::PayloadTooLarge => "payload_too_large",
            Defect::DuplicateId => "duplicate_id",
        }
    }

    /// The validator's error code for this defect (`None` for
    /// [`Defect::DuplicateId`], which the validator alone cannot see).
    pub fn expected_code(self) -> Option<ErrorCode> {
        Some(match self {
            Defect::MalformedJson | Defect::NanToken | Defect::InfinityToken => {
                ErrorCode::MalformedJson
            }
            Defect::NanString => ErrorCode::WrongType,
            Defect::NumberOverflow => ErrorCode::NotFinite,
            Defect::UnknownKind => ErrorCode::UnknownKind,
            Defect::UnknownVariant => ErrorCode::UnknownVariant,
            Defect::MissingField => ErrorCode::MissingField,
            Defect::LatOutOfRange
            | Defect::LngOutOfRange
            | Defect::ConfidenceOutOfRange
            | Defect::ScoreOutOfRange
            | Defect::NegativeAmount => ErrorCode::OutOfRange,
            Defect::FutureTimestamp => ErrorCode::InFuture,
            Defect::AncientTimestamp => ErrorCode::TooOld,
            Defect::InvalidTimestamp => ErrorCode::InvalidTimestamp,
            Defect::EmptyString => ErrorCode::Empty,
            Defect::IdTooLong | Defect::StringTooLong => ErrorCode::TooLong,
            Defect::UnknownField => ErrorCode::UnknownField,
            Defect::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Defect::DuplicateId => return None,
        })
    }
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bad line and where the validator should find the problem.
pub(crate) struct BadLine {
    pub(crate) line: String,
    /// JSON path of the problem (empty for the whole document).
    pub(crate) path: String,
}

const NAN_MARK: &str = "\"__posbon_sim_nan__\"";
const INF_MARK: &str = "\"__posbon_sim_inf__\"";
const OVERFLOW_MARK: &str = "\"__posbon_sim_overflow__\"";

fn kind_of(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("incident")
}

/// Fallback templates, one per kind (used before the stream produced one).
pub(crate) fn fallback_template(kind: &str) -> Value {
    let header = json!({
        "id": "sim-template",
        "occurred_at": "2026-11-01T12:00:00+05:00",
        "location": {"lat": 41.31, "lng": 69.28, "accuracy_m": 20.0},
        "source": "iiv-102",
    });
    let mut v = header;
    let extra = match kind {
        "camera_alert" => json!({
            "kind": "camera_alert", "camera_id": "cam-template", "detection": "loitering",
            "confidence": 0.7, "model": "uzvision-va-3.2"
        }),
        "fraud_flag" => json!({
            "kind": "fraud_flag", "scheme": "phishing", "channel": "sms", "amount_uzs": 1500000.0,
            "payment_system": "uzcard", "account_ref": "8600********1234", "detector_score": 0.8
        }),
        _ => json!({"kind": "incident", "category": "theft", "severity": 2}),
    };
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

fn set(v: &mut Value, path: &[&str], value: Value) {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            obj.insert((*key).to_owned(), value);
            return;
        }
        cur = obj.entry((*key).to_owned()).or_insert_with(|| json!({}));
    }
}

/// Makes a line with `defect` from a valid event `template` (as JSON).
/// `templates` gives a valid event of the kind a defect needs.
pub(crate) fn make<R: RngExt + ?Sized>(
    rng: &mut R,
    defect: Defect,
    bad_id: &str,
    template: impl Fn(&str) -> Value,
) -> BadLine {
    let any_kind = ["incident", "camera_alert", "fraud_flag"][rng.random_range(0..3)];
    let mut v = template(any_kind);
    set(&mut v, &["id"], Value::String(bad_id.to_owned()));
    let mut path = String::new();
    let mut replace: Option<(&str, &str)> = None;
    match defect {
        Defect::MalformedJson => {
            let text = v.to_string();
            let cut = rng.random_range(text.len() / 4..text.len() * 3 / 4);
            // Cut on a char boundary.
            let cut = (cut..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            return BadLine {
                line: text[..cut].to_owned(),
                path,
            };
        }
        Defect::NanToken => {
            path = "location.lat".into();
            set(&mut v, &["location", "lat"], json!("__posbon_sim_nan__"));
            replace = Some((NAN_MARK, "NaN"));
        }
        Defect::InfinityToken => {
            path = "location.lng".into();
            set(&mut v, &["location", "lng"], json!("__posbon_sim_inf__"));
            replace = Some((
                INF_MARK,
                if rng.random_bool(0.5) {
                    "Infinity"
                } else {
                    "-Infinity"
                },
            ));
        }
        Defect::NanString => {
            v = template("camera_alert");
            set(&mut v, &["id"], Value::String(bad_id.to_owned()));
            path = "confidence".into();
            set(
                &mut v,
                &["confidence"],
                json!(if rng.random_bool(0.5) {
                    "NaN"
                } else {
                    "Infinity"
                }),
            );
        }
        Defect::NumberOverflow => {
            v = template("fraud_flag");
            set(&mut v, &["id"], Value::String(bad_id.to_owned()));
            path = "amount_uzs".into();
            set(&mut v, &["amount_uzs"], json!("__posbon_sim_overflow__"));
            replace = Some((OVERFLOW_MARK, "1e999"));
        }
        Defect::UnknownKind => {
            path = "kind".into();
            let k =
                ["burglary_alarm", "Incident", "fraud", "sensor_reading"][rng.random_range(0..4)];
            set(&mut v, &["kind"], json!(k));
        }
        Defect::UnknownVariant => match kind_of(&v) {
            "camera_alert" => {
                path = "detection".into();
                set(&mut v, &["detection"], json!("jaywalking"));
            }
            "fraud_flag" => {
                path = "scheme".into();
                set(&mut v, &["scheme"], json!("pyramid_scheme"));
            }
            _ => {
                path = "category".into();
                set(
                    &mut v,
                    &["category"],
                    json!(["burglary", "Theft", "smuggling"][rng.random_range(0..3)]),
                );
            }
        },
        Defect::MissingField => {
            let field = ["occurred_at", "location", "source", "id"][rng.random_range(0..4)];
            path = field.into();
            if let Some(obj) = v.as_object_mut() {
                obj.remove(field);
            }
        }
        Defect::LatOutOfRange => {
            path = "location.lat".into();
            set(
                &mut v,
                &["location", "lat"],
                json!([91.5, -95.0, 141.3][rng.random_range(0..3)]),
            );
        }
        Defect::LngOutOfRange => {
            path = "location.lng".into();
            set(
                &mut v,
                &["location", "lng"],
                json!([181.0, -200.5, 369.28][rng.random_range(0..3)]),
            );
        }
        Defect::FutureTimestamp => {
            path = "occurred_at".into();
            set(&mut v, &["occurred_at"], json!("2099-06-01T12:00:00+05:00"));
        }
        Defect::AncientTimestamp => {
            path = "occurred_at".into();
            let t = ["1999-12-31T23:00:00+05:00", "1970-01-01T00:00:00Z"][rng.random_range(0..2)];
            set(&mut v, &["occurred_at"], json!(t));
        }
        Defect::InvalidTimestamp => {
            path = "occurred_at".into();
            let t =
                ["2026-11-01 10:00", "yesterday", "2026-11-01T10:00:00"][rng.random_range(0..3)];
            set(&mut v, &["occurred_at"], json!(t));
        }
        Defect::ConfidenceOutOfRange => {
            v = template("camera_alert");
            set(&mut v, &["id"], Value::String(bad_id.to_owned()));
            path = "confidence".into();
            set(
                &mut v,
                &["confidence"],
                json!([1.7, -0.2, 97.0][rng.random_range(0..3)]),
            );
        }
        Defect::ScoreOutOfRange => {
            v = template("fraud_flag");
            set(&mut v, &["id"], Value::String(bad_id.to_owned()));
            path = "detector_score".into();
            set(
                &mut v,
                &["detector_score"],
                json!([1.2, -0.2, 85.0][rng.random_range(0..3)]),
            );
        }
        Defect::NegativeAmount => {
            v = template("fraud_flag");
            set(&mut v, &["id"], Value::String(bad_id.to_owned()));
            path = "amount_uzs".into();
            set(&mut v, &["amount_uzs"], json!(-150_000.0));
        }
        Defect::EmptyString => {
            path = "source".into();
            set(&mut v, &["source"], json!(""));
        }
        Defect::IdTooLong => {
            path = "id".into();
            let id = format!("{bad_id}-{}", "x".repeat(200));
            set(&mut v, &["id"], json!(id));
        }
        Defect::StringTooLong => {
            path = "source".into();
            set(
                &mut v,
                &["source"],
                json!(format!("iiv-{}", "q".repeat(150))),
            );
        }
        Defect::UnknownField => {
            if rng.random_bool(0.5) {
                path = "priority".into();
                set(&mut v, &["priority"], json!("high"));
            } else {
                path = "location.altitude".into();
                set(&mut v, &["location", "altitude"], json!(455.0));
            }
        }
        Defect::PayloadTooLarge => {
            v = template("incident");
            set(&mut v, &["id"], Value::String(bad_id.to_owned()));
            set(
                &mut v,
                &["description"],
                json!("Katta hajmli xabar. ".repeat(3500)),
            );
        }
        Defect::DuplicateId => {
            // Built by the stream from an earlier valid event.
        }
    }
    let mut line = v.to_string();
    if let Some((mark, token)) = replace {
        line = line.replace(mark, token);
    }
    BadLine { line, path }
}
