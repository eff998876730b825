//! Parsing and validation of incoming events: the ingest hot path.
//!
//! Fast path: `serde` derives straight into the private flat [`RawEvent`]
//! (every field of every kind, all optional, unknown fields denied), which is
//! then converted by kind into the typed [`Event`] while semantic problems are
//! collected. Only when `serde` fails is the slow path taken: the document is
//! parsed into a [`serde_json::Value`] (tracking the path, so even a number
//! overflow is reported at its field) and every field is checked on its own,
//! so that every problem is reported with its path.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{ErrorCode, ValidationErrors};
use crate::event::{
    CameraAlert, Detection, Event, EventHeader, EventKind, FraudChannel, FraudFlag, FraudScheme,
    Incident, IncidentCategory, IncidentFlags, IncidentStatus, Location, MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_DESCRIPTION_BYTES, MAX_ID_BYTES, MAX_REF_BYTES,
    MAX_SOURCE_BYTES, MAX_URI_BYTES, PaymentSystem,
};
use crate::macros::WireEnum;

/// Limits applied by [`parse_event`] on top of the static rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted payload, in bytes, checked before parsing (default 64 KiB).
    pub max_payload_bytes: usize,
    /// How far `occurred_at` may be ahead of `now` (clock skew allowance;
    /// default 5 minutes).
    pub max_future: TimeDelta,
    /// Earliest accepted `occurred_at` (default 2000-01-01T00:00:00Z).
    pub min_occurred_at: DateTime<Utc>,
    /// Most items in one batch (JSON array or NDJSON, default 10,000). A
    /// larger batch is refused whole with [`ErrorCode::BatchTooLarge`], so a
    /// body of tiny invalid items cannot make an answer many times its size.
    pub max_batch_items: usize,
}

/// Default [`Limits::max_batch_items`].
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 10_000;

impl Limits {
    /// The verdict on a batch of `count` items: `None` when within
    /// [`Limits::max_batch_items`], else the error that refuses it whole.
    pub fn check_batch_items(&self, count: usize) -> Option<ValidationErrors> {
        (count > self.max_batch_items).then(|| {
            ValidationErrors::single(
                "",
                ErrorCode::BatchTooLarge,
                format!(
                    "batch holds more than the limit of {} items: none was taken; split it into smaller batches",
                    self.max_batch_items
                ),
            )
        })
    }
}

/// Default [`Limits::max_payload_bytes`]: 64 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_future: TimeDelta::minutes(5),
            min_occurred_at: default_min_occurred_at(),
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
        }
    }
}

/// 2000-01-01T00:00:00Z.
fn default_min_occurred_at() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default()
}

/// Parses and validates one event.
///
/// `now` is the reference for the `occurred_at` future check (pass
/// `Utc::now()` in production, a fixed instant in tests). On failure every
/// problem found is returned, each with its JSON path.
pub fn parse_event(
    bytes: &[u8],
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Event, ValidationErrors> {
    if bytes.len() > limits.max_payload_bytes {
        return Err(ValidationErrors::single(
            "",
            ErrorCode::PayloadTooLarge,
            format!(
                "payload is {} bytes, at most {} allowed",
                bytes.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    let time = TimeRule {
        min: limits.min_occurred_at,
        now: Some((now, limits.max_future)),
    };
    // Fast path.
    if let Some(raw) = fast_parse(bytes) {
        let mut errs = ValidationErrors::new();
        return match build(raw, &time, None, &mut errs) {
            Some(ev) if errs.is_empty() => Ok(ev),
            _ => Err(errs),
        };
    }
    slow_path(bytes, &time)
}

/// `None` when the document is not a well-formed, structurally valid event
/// (the slow path then explains why).
fn fast_parse(bytes: &[u8]) -> Option<RawEvent<'_>> {
    // Validating UTF-8 once up front is cheaper than per string, as
    // `from_slice` does.
    let text = std::str::from_utf8(bytes).ok()?;
    fast_parse_str(text).ok()
}

fn fast_parse_str(text: &str) -> Result<RawEvent<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = MapOnly::<RawEvent<'_>>::deserialize(&mut de)?.0;
    de.end()?;
    Ok(raw)
}

/// Where one item of a batch was found.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// 0-based position of the item in the batch (array index, or count of
    /// non-blank lines before it in NDJSON).
    pub index: usize,
    /// 1-based line of the batch on which the item starts.
    pub line: usize,
    /// The event, or every problem found in it.
    pub result: Result<Event, ValidationErrors>,
}

/// Parses a batch: a JSON array of events, or NDJSON (one event per line;
/// blank lines are skipped). Chosen by the first non-whitespace byte (`[`
/// means array).
///
/// Each item is judged on its own, with the same rules as [`parse_event`]
/// (`limits.max_payload_bytes` applies to each item): one bad item never
/// loses the others. A structurally broken array is split as well as
/// possible (by bracket depth outside strings) and the broken part reported
/// as its own item.
///
/// A batch of more than `limits.max_batch_items` items is one item with
/// [`ErrorCode::BatchTooLarge`].
pub fn parse_events(bytes: &[u8], limits: &Limits, now: DateTime<Utc>) -> Vec<BatchItem> {
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let items = match first {
        None => Vec::new(),
        Some(i) if bytes[i] == b'[' => parse_array(bytes, i, limits, now),
        Some(_) => parse_ndjson(bytes, limits, now),
    };
    match limits.check_batch_items(items.len()) {
        Some(errors) => vec![BatchItem {
            index: 0,
            line: 1,
            result: Err(errors),
        }],
        None => items,
    }
}

fn parse_ndjson(bytes: &[u8], limits: &Limits, now: DateTime<Utc>) -> Vec<BatchItem> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let index = out.len();
        if index == limits.max_batch_items {
            // One more than the limit: the caller refuses the batch whole.
            out.push(too_many());
            break;
        }
        out.push(BatchItem {
            index,
            line: n + 1,
            result: parse_event(line, limits, now),
        });
    }
    out
}

/// The placeholder for the item past the limit (never returned: the batch
/// is refused whole).
fn too_many() -> BatchItem {
    BatchItem {
        index: 0,
        line: 0,
        result: Err(ValidationErrors::single("", ErrorCode::BatchTooLarge, "")),
    }
}

fn parse_array(bytes: &[u8], open: usize, limits: &Limits, now: DateTime<Utc>) -> Vec<BatchItem> {
    let mut out = Vec::new();
    let mut line = 1 + bytes[..open].iter().filter(|&&b| b == b'\n').count();
    let mut i = open + 1;
    let n = bytes.len();
    let skip_ws = |i: &mut usize, line: &mut usize| {
        while *i < n && bytes[*i].is_ascii_whitespace() {
            if bytes[*i] == b'\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    skip_ws(&mut i, &mut line);
    if i < n && bytes[i] == b']' {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i, &mut line);
            let start = i;
            let start_line = line;
            // Scan one element: up to a ',' or ']' at depth 0, outside strings.
            let mut depth = 0usize;
            let mut in_str = false;
            let mut esc = false;
            let mut end = None;
            while i < n {
                let b = bytes[i];
                if b == b'\n' {
                    line += 1;
                }
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                    }
                } else {
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b',' | b']' if depth == 0 => {
                            end = Some(b);
                            break;
                        }
                        _ => {}
                    }
                }
                i += 1;
            }
            let index = out.len();
            if index == limits.max_batch_items {
                out.push(too_many());
                return out;
            }
            let item = &bytes[start..i];
            let result = if end.is_none() {
                Err(ValidationErrors::single(
                    "",
                    ErrorCode::MalformedJson,
                    "malformed json: unterminated array (missing `]`)",
                ))
            } else if item.iter().all(|b| b.is_ascii_whitespace()) {
                Err(ValidationErrors::single(
                    "",
                    ErrorCode::MalformedJson,
                    "malformed json: empty array element",
                ))
            } else {
                parse_event(item, limits, now)
            };
            out.push(BatchItem {
                index,
                line: start_line,
                result,
            });
            match end {
                Some(b',') => i += 1,
                Some(_) => {
                    i += 1;
                    break;
                }
                None => return out,
            }
        }
    }
    skip_ws(&mut i, &mut line);
    if i < n {
        out.push(BatchItem {
            index: out.len(),
            line,
            result: Err(ValidationErrors::single(
                "",
                ErrorCode::MalformedJson,
                "malformed json: unexpected data after the end of the array",
            )),
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Raw (flat, all-optional) representation
// ---------------------------------------------------------------------------

/// A string borrowed from the input when it has no escapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A required field: present means non-null.
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Deserializes `T` from a JSON object only (serde-derived structs would
/// otherwise also accept a positional array).
pub(crate) struct MapOnly<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(MapOnly)
    }
}

/// A required object field.
fn some_map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    MapOnly::<T>::deserialize(d).map(|m| Some(m.0))
}

/// `attributes`: a non-null object of strings without duplicate keys.
fn attributes_de<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.insert(k, v).is_some() {
                    return Err(de::Error::custom("duplicate attribute"));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(V).map(Some)
}

/// Every field of every kind, all optional; the fast path's target.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent<'a> {
    #[serde(default, deserialize_with = "some")]
    kind: Option<EventKind>,
    #[serde(default, borrow, deserialize_with = "some")]
    id: Option<CowStr<'a>>,
    #[serde(default, borrow, deserialize_with = "some")]
    occurred_at: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "some_map")]
    location: Option<RawLocation>,
    #[serde(default, borrow, deserialize_with = "some")]
    source: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "attributes_de")]
    attributes: Option<BTreeMap<String, String>>,
    // incident
    #[serde(default, deserialize_with = "some")]
    category: Option<IncidentCategory>,
    #[serde(default, deserialize_with = "some")]
    severity: Option<i64>,
    #[serde(default, deserialize_with = "some_map")]
    flags: Option<IncidentFlags>,
    #[serde(default, deserialize_with = "some")]
    status: Option<IncidentStatus>,
    /// Outer `Some` = present (possibly `null`).
    #[serde(default, borrow, deserialize_with = "some")]
    description: Option<Option<CowStr<'a>>>,
    // camera_alert
    #[serde(default, borrow, deserialize_with = "some")]
    camera_id: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "some")]
    detection: Option<Detection>,
    #[serde(default, deserialize_with = "some")]
    confidence: Option<f64>,
    #[serde(default, borrow, deserialize_with = "some")]
    model: Option<CowStr<'a>>,
    /// Outer `Some` = present (possibly `null`).
    #[serde(default, borrow, deserialize_with = "some")]
    snapshot_uri: Option<Option<CowStr<'a>>>,
    // fraud_flag
    #[serde(default, deserialize_with = "some")]
    scheme: Option<FraudScheme>,
    #[serde(default, deserialize_with = "some")]
    channel: Option<FraudChannel>,
    #[serde(default, deserialize_with = "some")]
    amount_uzs: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    payment_system: Option<PaymentSystem>,
    #[serde(default, borrow, deserialize_with = "some")]
    account_ref: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "some")]
    detector_score: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    #[serde(default, deserialize_with = "some")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    lng: Option<f64>,
    #[serde(default)]
    accuracy_m: Option<f64>,
}

impl RawEvent<'_> {
    /// The fields of `kind`, each with whether it is present.
    fn fields_present(&self, kind: EventKind) -> impl Iterator<Item = (&'static str, bool)> {
        let fields: [(&'static str, bool); 6] = match kind {
            EventKind::Incident => [
                ("category", self.category.is_some()),
                ("severity", self.severity.is_some()),
                ("flags", self.flags.is_some()),
                ("status", self.status.is_some()),
                ("description", self.description.is_some()),
                ("", false),
            ],
            EventKind::CameraAlert => [
                ("camera_id", self.camera_id.is_some()),
                ("detection", self.detection.is_some()),
                ("confidence", self.confidence.is_some()),
                ("model", self.model.is_some()),
                ("snapshot_uri", self.snapshot_uri.is_some()),
                ("", false),
            ],
            EventKind::FraudFlag => [
                ("scheme", self.scheme.is_some()),
                ("channel", self.channel.is_some()),
                ("amount_uzs", self.amount_uzs.is_some()),
                ("payment_system", self.payment_system.is_some()),
                ("account_ref", self.account_ref.is_some()),
                ("detector_score", self.detector_score.is_some()),
            ],
        };
        fields.into_iter().filter(|(name, _)| !name.is_empty())
    }
}

impl ValidationErrors {
    /// True when some error is about `path` or a path below it.
    pub(crate) fn has_path_prefix(&self, path: &str) -> bool {
        self.iter().any(|e| {
            e.path == path
                || (e.path.starts_with(path)
                    && matches!(e.path.as_bytes().get(path.len()), Some(b'.' | b'[')))
        })
    }
}

// ---------------------------------------------------------------------------
// Semantic checks (shared by the raw conversion and Event::validate)
// ---------------------------------------------------------------------------

/// Time rules: the static lower bound, and optionally the future bound.
pub(crate) struct TimeRule {
    min: DateTime<Utc>,
    now: Option<(DateTime<Utc>, TimeDelta)>,
}

impl TimeRule {
    /// Rules that do not depend on the current time.
    fn static_only() -> Self {
        Self {
            min: default_min_occurred_at(),
            now: None,
        }
    }
}

fn missing(errs: &mut ValidationErrors, path: &str) {
    if !errs.has_path_prefix(path) {
        errs.push(path, ErrorCode::MissingField, "required field is missing");
    }
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn check_id(path: &str, id: &str, errs: &mut ValidationErrors) {
    if id.is_empty() {
        errs.push(path, ErrorCode::Empty, "must not be empty");
    } else if id.len() > MAX_ID_BYTES {
        errs.push(
            path,
            ErrorCode::TooLong,
            format!(
                "{} bytes is too long, at most {MAX_ID_BYTES} allowed",
                id.len()
            ),
        );
    } else if let Some(pos) = id.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        let what = match id.as_bytes()[pos] {
            b' ' => "a space",
            b if b < 0x20 || b == 0x7f => "a control character",
            _ => "a non-ascii character",
        };
        errs.push(
            path,
            ErrorCode::InvalidId,
            format!("contains {what} at byte {pos}; only visible ascii (0x21..0x7e) is allowed"),
        );
    }
}

fn check_text(path: &str, s: &str, non_empty: bool, max: usize, errs: &mut ValidationErrors) {
    if non_empty && s.is_empty() {
        errs.push(path, ErrorCode::Empty, "must not be empty");
    } else if s.len() > max {
        errs.push(
            path,
            ErrorCode::TooLong,
            format!("{} bytes is too long, at most {max} allowed", s.len()),
        );
    }
}

/// Checks `lo <= v <= hi` (either bound optional); returns whether it passed.
fn check_range(
    path: &str,
    v: f64,
    lo: Option<f64>,
    hi: Option<f64>,
    errs: &mut ValidationErrors,
) -> bool {
    if !v.is_finite() {
        errs.push(
            path,
            ErrorCode::NotFinite,
            format!("{v} is not a finite number"),
        );
        return false;
    }
    let below = lo.is_some_and(|lo| v < lo);
    let above = hi.is_some_and(|hi| v > hi);
    if below || above {
        let range = match (lo, hi) {
            (Some(lo), Some(hi)) => format!("is out of range {lo}..{hi}"),
            (Some(lo), None) => format!("is out of range, must be >= {lo}"),
            (None, Some(hi)) => format!("is out of range, must be <= {hi}"),
            (None, None) => String::new(),
        };
        errs.push(path, ErrorCode::OutOfRange, format!("{v} {range}"));
        return false;
    }
    true
}

fn parse_time(path: &str, s: &str, errs: &mut ValidationErrors) -> Option<DateTime<FixedOffset>> {
    // RFC 3339 proper requires `T` between date and time; chrono also accepts a space.
    let t_ok = matches!(s.as_bytes().get(10), Some(b'T' | b't'));
    match DateTime::parse_from_rfc3339(s) {
        Ok(dt) if t_ok => Some(dt),
        _ => {
            let shown: String = s.chars().take(64).collect();
            errs.push(
                path,
                ErrorCode::InvalidTimestamp,
                format!(
                    "{shown:?} is not an rfc 3339 timestamp with offset, e.g. 2026-05-01T14:30:00+05:00"
                ),
            );
            None
        }
    }
}

fn check_time(path: &str, dt: DateTime<FixedOffset>, rule: &TimeRule, errs: &mut ValidationErrors) {
    let utc = dt.with_timezone(&Utc);
    if utc < rule.min {
        errs.push(
            path,
            ErrorCode::TooOld,
            format!("{} is before {}", dt.to_rfc3339(), utc_text(rule.min)),
        );
    }
    if let Some((now, max_future)) = rule.now
        && let Some(latest) = now.checked_add_signed(max_future)
        && utc > latest
    {
        errs.push(
            path,
            ErrorCode::InFuture,
            format!(
                "{} is {} ahead of the current time {}, at most {} allowed",
                dt.to_rfc3339(),
                human_duration(utc - now),
                utc_text(now),
                human_duration(max_future)
            ),
        );
    }
}

fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `90s`, `5m`, `3h`, `12d` (rounded down).
fn human_duration(d: TimeDelta) -> String {
    match d.num_seconds() {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

fn check_location(loc: &Location, errs: &mut ValidationErrors) {
    check_range("location.lat", loc.lat, Some(-90.0), Some(90.0), errs);
    check_range("location.lng", loc.lng, Some(-180.0), Some(180.0), errs);
    if let Some(acc) = loc.accuracy_m {
        check_range("location.accuracy_m", acc, Some(0.0), None, errs);
    }
}

fn check_attributes(attrs: &BTreeMap<String, String>, errs: &mut ValidationErrors) {
    if attrs.len() > MAX_ATTRIBUTES {
        errs.push(
            "attributes",
            ErrorCode::TooManyEntries,
            format!(
                "has {} entries, at most {MAX_ATTRIBUTES} allowed",
                attrs.len()
            ),
        );
    }
    // Paths are only built on error: this runs for every event.
    let path = |k: &str| join_path("attributes", k);
    for (k, v) in attrs {
        if k.is_empty() {
            errs.push(path(k), ErrorCode::Empty, "attribute key must not be empty");
        } else if k.len() > MAX_ATTRIBUTE_KEY_BYTES {
            errs.push(
                path(k),
                ErrorCode::TooLong,
                format!(
                    "attribute key of {} bytes is too long, at most {MAX_ATTRIBUTE_KEY_BYTES} allowed",
                    k.len()
                ),
            );
        } else if v.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            check_text(&path(k), v, false, MAX_ATTRIBUTE_VALUE_BYTES, errs);
        }
    }
}

fn check_header(h: &EventHeader, time: &TimeRule, errs: &mut ValidationErrors) {
    check_id("id", &h.id, errs);
    check_time("occurred_at", h.occurred_at, time, errs);
    check_location(&h.location, errs);
    check_text("source", &h.source, true, MAX_SOURCE_BYTES, errs);
    check_attributes(&h.attributes, errs);
}

fn check_severity(v: i64, errs: &mut ValidationErrors) -> Option<u8> {
    match u8::try_from(v) {
        Ok(s @ 1..=5) => Some(s),
        _ => {
            errs.push(
                "severity",
                ErrorCode::OutOfRange,
                format!("{v} is out of range 1..5"),
            );
            None
        }
    }
}

/// Validates an event built in Rust (all rules but the payload size).
pub(crate) fn validate_event(
    ev: &Event,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(), ValidationErrors> {
    let time = TimeRule {
        min: limits.min_occurred_at,
        now: Some((now, limits.max_future)),
    };
    check_event(ev, &time)
}

/// Validates an event against the rules its strict `Deserialize` applies:
/// all but the payload size and the ones relative to the current time.
pub(crate) fn validate_event_static(ev: &Event) -> Result<(), ValidationErrors> {
    check_event(ev, &TimeRule::static_only())
}

fn check_event(ev: &Event, time: &TimeRule) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_header(ev.header(), time, &mut errs);
    match ev {
        Event::Incident(e) => {
            check_severity(i64::from(e.severity), &mut errs);
            if let Some(d) = &e.description {
                check_text("description", d, false, MAX_DESCRIPTION_BYTES, &mut errs);
            }
        }
        Event::CameraAlert(e) => {
            check_text("camera_id", &e.camera_id, true, MAX_REF_BYTES, &mut errs);
            check_range("confidence", e.confidence, Some(0.0), Some(1.0), &mut errs);
            check_text("model", &e.model, true, MAX_REF_BYTES, &mut errs);
            if let Some(u) = &e.snapshot_uri {
                check_text("snapshot_uri", u, false, MAX_URI_BYTES, &mut errs);
            }
        }
        Event::FraudFlag(e) => {
            check_range("amount_uzs", e.amount_uzs, Some(0.0), None, &mut errs);
            check_text(
                "account_ref",
                &e.account_ref,
                true,
                MAX_REF_BYTES,
                &mut errs,
            );
            check_range(
                "detector_score",
                e.detector_score,
                Some(0.0),
                Some(1.0),
                &mut errs,
            );
        }
    }
    errs.into_result(())
}

// ---------------------------------------------------------------------------
// Raw -> typed conversion
// ---------------------------------------------------------------------------

/// Conversion used by the strict `Deserialize` impls: static rules only.
pub(crate) fn raw_to_event_static(
    raw: RawEvent<'_>,
    expect: Option<EventKind>,
) -> Result<Event, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    match build(raw, &TimeRule::static_only(), expect, &mut errs) {
        Some(ev) if errs.is_empty() => Ok(ev),
        _ => Err(errs),
    }
}

fn req_str(v: Option<CowStr<'_>>, path: &str, errs: &mut ValidationErrors) -> Option<String> {
    match v {
        Some(s) => Some(s.0.into_owned()),
        None => {
            missing(errs, path);
            None
        }
    }
}

/// Converts a raw event, pushing every problem onto `errs`. Returns the typed
/// event only when nothing was wrong with it (`errs` may hold earlier,
/// structural errors; the caller decides).
fn build(
    raw: RawEvent<'_>,
    time: &TimeRule,
    expect: Option<EventKind>,
    errs: &mut ValidationErrors,
) -> Option<Event> {
    let before = errs.len();
    let kind = match (raw.kind, expect) {
        (Some(k), Some(e)) if k != e => {
            errs.push(
                "kind",
                ErrorCode::UnknownKind,
                format!("expected {e}, got {k}"),
            );
            None
        }
        (Some(k), _) => Some(k),
        (None, Some(e)) if !errs.has_path("kind") => Some(e),
        (None, _) => {
            missing(errs, "kind");
            None
        }
    };

    // Fields of other kinds.
    if let Some(kind) = kind {
        for other in EventKind::ALL.iter().copied().filter(|&k| k != kind) {
            for (name, set) in raw.fields_present(other) {
                // Present, or present but invalid (an error recorded by the slow path).
                if (set || errs.has_path_prefix(name)) && !errs.has_path(name) {
                    errs.push(
                        name,
                        ErrorCode::FieldNotAllowedForKind,
                        format!("not allowed for kind {kind} (it is a {other} field)"),
                    );
                }
            }
        }
    }

    // Header.
    let id = req_str(raw.id, "id", errs);
    if let Some(id) = &id {
        check_id("id", id, errs);
    }
    let occurred_at = match &raw.occurred_at {
        Some(s) => parse_time("occurred_at", &s.0, errs),
        None => {
            missing(errs, "occurred_at");
            None
        }
    };
    if let Some(dt) = occurred_at {
        check_time("occurred_at", dt, time, errs);
    }
    let location = match raw.location {
        Some(l) => {
            let lat = l
                .lat
                .filter(|&v| check_range("location.lat", v, Some(-90.0), Some(90.0), errs));
            if l.lat.is_none() {
                missing(errs, "location.lat");
            }
            let lng = l
                .lng
                .filter(|&v| check_range("location.lng", v, Some(-180.0), Some(180.0), errs));
            if l.lng.is_none() {
                missing(errs, "location.lng");
            }
            if let Some(acc) = l.accuracy_m {
                check_range("location.accuracy_m", acc, Some(0.0), None, errs);
            }
            match (lat, lng) {
                (Some(lat), Some(lng)) => Some(Location {
                    lat,
                    lng,
                    accuracy_m: l.accuracy_m,
                }),
                _ => None,
            }
        }
        None => {
            missing(errs, "location");
            None
        }
    };
    let source = req_str(raw.source, "source", errs);
    if let Some(s) = &source {
        check_text("source", s, true, MAX_SOURCE_BYTES, errs);
    }
    let attributes = raw.attributes.unwrap_or_default();
    check_attributes(&attributes, errs);

    // Kind-specific fields: required ones only when the kind is known, but
    // every present field is checked.
    let need = |k: EventKind| kind == Some(k);
    let required = |present: bool, path: &str, k: EventKind, errs: &mut ValidationErrors| {
        if !present && need(k) {
            missing(errs, path);
        }
    };

    // incident
    required(
        raw.category.is_some(),
        "category",
        EventKind::Incident,
        errs,
    );
    required(
        raw.severity.is_some(),
        "severity",
        EventKind::Incident,
        errs,
    );
    let severity = raw.severity.and_then(|v| check_severity(v, errs));
    let description = raw.description.flatten().map(|s| s.0.into_owned());
    if let Some(d) = &description {
        check_text("description", d, false, MAX_DESCRIPTION_BYTES, errs);
    }

    // camera_alert
    let camera_id = raw.camera_id.map(|s| s.0.into_owned());
    required(
        camera_id.is_some(),
        "camera_id",
        EventKind::CameraAlert,
        errs,
    );
    if let Some(s) = &camera_id {
        check_text("camera_id", s, true, MAX_REF_BYTES, errs);
    }
    required(
        raw.detection.is_some(),
        "detection",
        EventKind::CameraAlert,
        errs,
    );
    required(
        raw.confidence.is_some(),
        "confidence",
        EventKind::CameraAlert,
        errs,
    );
    if let Some(c) = raw.confidence {
        check_range("confidence", c, Some(0.0), Some(1.0), errs);
    }
    let model = raw.model.map(|s| s.0.into_owned());
    required(model.is_some(), "model", EventKind::CameraAlert, errs);
    if let Some(s) = &model {
        check_text("model", s, true, MAX_REF_BYTES, errs);
    }
    let snapshot_uri = raw.snapshot_uri.flatten().map(|s| s.0.into_owned());
    if let Some(s) = &snapshot_uri {
        check_text("snapshot_uri", s, false, MAX_URI_BYTES, errs);
    }

    // fraud_flag
    required(raw.scheme.is_some(), "scheme", EventKind::FraudFlag, errs);
    required(raw.channel.is_some(), "channel", EventKind::FraudFlag, errs);
    required(
        raw.amount_uzs.is_some(),
        "amount_uzs",
        EventKind::FraudFlag,
        errs,
    );
    if let Some(a) = raw.amount_uzs {
        check_range("amount_uzs", a, Some(0.0), None, errs);
    }
    required(
        raw.payment_system.is_some(),
        "payment_system",
        EventKind::FraudFlag,
        errs,
    );
    let account_ref = raw.account_ref.map(|s| s.0.into_owned());
    required(
        account_ref.is_some(),
        "account_ref",
        EventKind::FraudFlag,
        errs,
    );
    if let Some(s) = &account_ref {
        check_text("account_ref", s, true, MAX_REF_BYTES, errs);
    }
    required(
        raw.detector_score.is_some(),
        "detector_score",
        EventKind::FraudFlag,
        errs,
    );
    if let Some(s) = raw.detector_score {
        check_range("detector_score", s, Some(0.0), Some(1.0), errs);
    }

    if errs.len() != before {
        return None;
    }
    let header = EventHeader {
        id: id?,
        occurred_at: occurred_at?,
        location: location?,
        source: source?,
        attributes,
    };
    Some(match kind? {
        EventKind::Incident => Event::Incident(Incident {
            header,
            category: raw.category?,
            severity: severity?,
            flags: raw.flags.unwrap_or_default(),
            status: raw.status.unwrap_or_default(),
            description,
        }),
        EventKind::CameraAlert => Event::CameraAlert(CameraAlert {
            header,
            camera_id: camera_id?,
            detection: raw.detection?,
            confidence: raw.confidence?,
            model: model?,
            snapshot_uri,
        }),
        EventKind::FraudFlag => Event::FraudFlag(FraudFlag {
            header,
            scheme: raw.scheme?,
            channel: raw.channel?,
            amount_uzs: raw.amount_uzs?,
            payment_system: raw.payment_system?,
            account_ref: account_ref?,
            detector_score: raw.detector_score?,
        }),
    })
}

// ---------------------------------------------------------------------------
// Slow path
// ---------------------------------------------------------------------------

fn slow_path(bytes: &[u8], time: &TimeRule) -> Result<Event, ValidationErrors> {
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

/// Appends `key` to `parent` as `parent.key`, or `parent["key"]` when the key
/// is not a plain identifier.
pub(crate) fn join_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => {
            let quoted = serde_json::to_string(key).unwrap_or_default();
            format!("{parent}[{quoted}]")
        }
    }
}

#[derive(Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Default)]
struct Tracker {
    path: RefCell<Vec<Seg>>,
    duplicate: RefCell<bool>,
}

impl Tracker {
    fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in self.path.borrow().iter() {
            match seg {
                Seg::Key(k) => out = join_path(&out, k),
                Seg::Index(i) => out = format!("{out}[{i}]"),
            }
        }
        out
    }
}

struct ValueSeed<'t>(&'t Tracker);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            self.0.path.borrow_mut().push(Seg::Index(out.len()));
            match seq.next_element_seed(ValueSeed(self.0))? {
                Some(v) => out.push(v),
                None => {
                    self.0.path.borrow_mut().pop();
                    break;
                }
            }
            self.0.path.borrow_mut().pop();
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let dup = out.contains_key(&key);
            self.0.path.borrow_mut().push(Seg::Key(key.clone()));
            if dup {
                *self.0.duplicate.borrow_mut() = true;
                return Err(de::Error::custom("duplicate field"));
            }
            let v = map.next_value_seed(ValueSeed(self.0))?;
            self.0.path.borrow_mut().pop();
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON into a `Value`, turning a failure into a located error.
fn parse_value_tracked(bytes: &[u8]) -> Result<Value, ValidationErrors> {
    let tracker = Tracker::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let res = ValueSeed(&tracker)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    res.map_err(|e| {
        let text = e.to_string();
        let reason = text.split(" at line ").next().unwrap_or(&text).to_owned();
        let at = format!("line {} column {}", e.line(), e.column());
        let path = tracker.path_string();
        if *tracker.duplicate.borrow() {
            ValidationErrors::single(
                path,
                ErrorCode::DuplicateField,
                format!("field appears more than once (at {at})"),
            )
        } else if reason.starts_with("number out of range") {
            ValidationErrors::single(
                path,
                ErrorCode::NotFinite,
                format!("number overflows a 64-bit float (at {at})"),
            )
        } else {
            let reason = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                "empty payload".to_owned()
            } else {
                reason
            };
            ValidationErrors::single(
                "",
                ErrorCode::MalformedJson,
                format!("malformed json at {at}: {reason}"),
            )
        }
    })
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
        Value::String(s) => Some(CowStr(Cow::Borrowed(s))),
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
