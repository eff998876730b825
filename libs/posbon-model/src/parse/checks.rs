//! Semantic field checks (ids, text, ranges, timestamps, attributes), shared by
//! the raw conversion and `Event::validate`.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use super::path::join_path;
use super::{Limits, default_min_occurred_at};
use crate::error::{ErrorCode, ValidationErrors};
use crate::event::{
    Event, EventHeader, Location, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES, MAX_DESCRIPTION_BYTES, MAX_REF_BYTES, MAX_SOURCE_BYTES, MAX_URI_BYTES,
};

/// Time rules: the static lower bound, and optionally the future bound.
pub(crate) struct TimeRule {
    pub(super) min: DateTime<Utc>,
    pub(super) now: Option<(DateTime<Utc>, TimeDelta)>,
}

impl TimeRule {
    /// Rules that do not depend on the current time.
    pub(super) fn static_only() -> Self {
        Self {
            min: default_min_occurred_at(),
            now: None,
        }
    }
}

pub(super) fn missing(errs: &mut ValidationErrors, path: &str) {
    if !errs.has_path_prefix(path) {
        errs.push(path, ErrorCode::MissingField, "required field is missing");
    }
}

pub(super) fn check_id(path: &str, id: &str, errs: &mut ValidationErrors) {
    if let Some((code, message)) = crate::event::id_problem(id) {
        errs.push(path, code, message);
    }
}

pub(super) fn check_text(
    path: &str,
    s: &str,
    non_empty: bool,
    max: usize,
    errs: &mut ValidationErrors,
) {
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
pub(super) fn check_range(
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

pub(super) fn parse_time(
    path: &str,
    s: &str,
    errs: &mut ValidationErrors,
) -> Option<DateTime<FixedOffset>> {
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

pub(super) fn check_time(
    path: &str,
    dt: DateTime<FixedOffset>,
    rule: &TimeRule,
    errs: &mut ValidationErrors,
) {
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

pub(super) fn check_attributes(attrs: &BTreeMap<String, String>, errs: &mut ValidationErrors) {
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

pub(super) fn check_severity(v: i64, errs: &mut ValidationErrors) -> Option<u8> {
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
