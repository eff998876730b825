//! Posbon wire contract: the messages that flow through the system, and the
//! parser/validator that guards the ingest boundary.
//!
//! Producers (police and mahalla reporting, video analytics, banks' anti-fraud
//! systems) publish [`Event`]s: JSON objects tagged by `kind` (`incident`,
//! `camera_alert`, `fraud_flag`). Posbon validates each one with
//! [`parse_event`], pseudonymises fraud account references
//! ([`pseudonymise_account_ref`]), enriches it with its H3 cell and
//! administrative area ([`EnrichedEvent`]) and, when a mahalla's risk rises,
//! opens an [`Escalation`].
//!
//! # Example
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use posbon_model::{ErrorCode, Event, Limits, parse_event};
//!
//! let now = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
//! let json = br#"{
//!     "kind": "incident",
//!     "id": "iiv-2026-000123",
//!     "occurred_at": "2026-05-01T14:30:00+05:00",
//!     "location": { "lat": 41.3111, "lng": 69.2797 },
//!     "source": "iiv-102",
//!     "category": "theft",
//!     "severity": 2
//! }"#;
//! let event = parse_event(json, &Limits::default(), now).unwrap();
//! assert_eq!(event.id(), "iiv-2026-000123");
//! assert!(matches!(event, Event::Incident(ref i) if i.severity == 2));
//!
//! // Every problem is reported at once, each with its path.
//! let bad = br#"{"kind":"incident","id":"x 1","occurred_at":"2026-05-01T14:30:00+05:00",
//!   "location":{"lat":91.2,"lng":69.2},"source":"iiv-102","category":"theft","severity":9}"#;
//! let errors = parse_event(bad, &Limits::default(), now).unwrap_err();
//! assert_eq!(errors.len(), 3);
//! assert_eq!(errors.get("location.lat").unwrap().to_string(), "location.lat: 91.2 is out of range -90..90");
//! assert_eq!(errors.get("severity").unwrap().code, ErrorCode::OutOfRange);
//! assert_eq!(errors.get("id").unwrap().code, ErrorCode::InvalidId);
//! ```
//!
//! # Contract rules
//!
//! * `id`: 1..=128 bytes of visible ASCII (0x21..=0x7E), safe as a NATS
//!   `Nats-Msg-Id` de-duplication header.
//! * `occurred_at`: RFC 3339 with an explicit offset (kept as sent); at most
//!   [`Limits::max_future`] ahead of the current time and not before
//!   [`Limits::min_occurred_at`] (2000-01-01).
//! * Numbers must be finite and in range (`lat` -90..90, `lng` -180..180,
//!   `confidence` and `detector_score` 0..1, amounts and accuracy >= 0,
//!   `severity` an integer 1..5; ranges are inclusive).
//! * String limits are in UTF-8 **bytes**.
//! * **Unknown fields are rejected** with [`ErrorCode::UnknownField`] naming
//!   their path, at every level: a typo such as `lattitude` must not silently
//!   lose data. Fields of another kind (e.g. `camera_id` on an incident) are
//!   rejected with [`ErrorCode::FieldNotAllowedForKind`]. Producer-specific
//!   extras belong in `attributes` (string to string, at most 32 entries),
//!   which is kept verbatim.
//! * Optional fields may be absent or `null`; required fields may not be `null`.
//!
//! The same limits are stated by the JSON Schemas from [`generate_schemas`]
//! (checked in under `schemas/` at the top of the repository), except the
//! rules a schema cannot express: the time window, the payload size, number
//! overflow, byte (rather than character) string lengths and duplicate keys.
//!
//! # Performance
//!
//! [`parse_event`] deserializes straight into a flat private struct and only
//! falls back to a slower, path-tracking [`serde_json::Value`] walk when the
//! document is invalid, so valid events cost one pass of `serde_json` plus the
//! checks (the `model` benchmark in `posbon-benches` measures it).

#[macro_use]
mod macros;

mod cell;
pub mod compact;
mod cow_str;
mod enriched;
mod error;
mod escalation;
mod event;
mod lifecycle;
mod local;
mod matchers;
mod parse;
mod pseudonym;
mod rfc3339;
mod risk_view;
mod schema;
mod silence;
pub mod span;
mod wire;

pub use cell::{CELL_PATTERN, CellId, InvalidCellId};
pub use cow_str::CowStr;
pub use enriched::EnrichedEvent;
pub use error::{ErrorCode, FieldError, ValidationErrors};
pub use escalation::{Escalation, EscalationStatus, HotCell, MeasureName, RiskLevel, RuleMeasure};
pub use event::{
    CameraAlert, Detection, Event, EventHeader, EventKind, FraudChannel, FraudFlag, FraudScheme,
    ID_PATTERN, Incident, IncidentCategory, IncidentFlags, IncidentStatus, Location,
    MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_DESCRIPTION_BYTES,
    MAX_ID_BYTES, MAX_REF_BYTES, MAX_SOURCE_BYTES, MAX_URI_BYTES, PaymentSystem, UnknownVariant,
    is_valid_id,
};
pub use lifecycle::{
    ACTION_RESERVE, ActionRequest, AuditKind, AuditStep, EscalationAction, EscalationRecord,
    MAX_ACTOR_BYTES, MAX_HISTORY, MAX_NOTE_BYTES, NotifyTier, TransitionError,
};
pub use local::{LOCAL_TIME_ZONE, local_date, local_offset_minutes};
pub use matchers::{EscalationMatchers, MAX_MATCHER_VALUES};
pub use parse::{
    BatchItem, DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_PAYLOAD_BYTES, Limits, parse_event,
    parse_events,
};
pub use pseudonym::{
    NAMED_PSEUDONYM_PREFIX, PSEUDONYM_HEX_DIGITS, PSEUDONYM_PREFIX, PseudonymKey, PseudonymKeys,
    is_pseudonymised, pseudonymise_account_ref,
};
pub use risk_view::{MahallaRisk, RISK_SNAPSHOT_PREFIX, RiskSnapshot};
pub use schema::generate_schemas;
pub use silence::{MAX_SILENCE_DAYS, Silence, SilenceRequest};
pub use span::{InvalidSpan, Span};
pub use wire::{COMPACT_CONTENT_TYPE, EventEncoding, JSON_CONTENT_TYPE};
