//! Raw to typed conversion: building the typed [`Event`] from a [`RawEvent`]
//! while collecting every problem.

use super::checks::{
    TimeRule, check_attributes, check_id, check_range, check_severity, check_text, check_time,
    missing, parse_time,
};
use super::raw::RawEvent;
use crate::CowStr;
use crate::error::{ErrorCode, ValidationErrors};
use crate::event::{
    CameraAlert, Event, EventHeader, EventKind, FraudFlag, Incident, Location,
    MAX_DESCRIPTION_BYTES, MAX_REF_BYTES, MAX_SOURCE_BYTES, MAX_URI_BYTES,
};

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
pub(super) fn build(
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
