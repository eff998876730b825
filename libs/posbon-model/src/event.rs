//! Event types: the messages producers publish onto the ingest stream.
//!
//! The wire form is a flat JSON object tagged by `kind`. In Rust an event is
//! the [`Event`] enum; the fields every kind shares live in [`EventHeader`],
//! which each variant flattens into its own object.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ValidationErrors};
use crate::parse::{Limits, raw_to_event_static};

/// Maximum length of an event id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Maximum length of `source`, in bytes.
pub const MAX_SOURCE_BYTES: usize = 128;
/// Maximum number of entries in `attributes`.
pub const MAX_ATTRIBUTES: usize = 32;
/// Maximum length of an attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 64;
/// Maximum length of an attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
/// Maximum length of an incident `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 2000;
/// Maximum length of short identifiers (`camera_id`, `model`, `account_ref`), in bytes.
pub const MAX_REF_BYTES: usize = 128;
/// Maximum length of a camera `snapshot_uri`, in bytes.
pub const MAX_URI_BYTES: usize = 2048;

/// Regular expression (JSON Schema dialect) that an event id matches:
/// one or more visible ASCII characters (0x21..=0x7E).
pub const ID_PATTERN: &str = "^[!-~]+$";

/// Returns true when `id` is a valid event id: 1..=128 bytes of visible ASCII
/// (0x21..=0x7E), safe to use as a NATS `Nats-Msg-Id` header.
pub fn is_valid_id(id: &str) -> bool {
    id_problem(id).is_none()
}

/// What makes `id` no event id ([`is_valid_id`]), in words for the one who
/// sent it; `None` when it is one.
pub(crate) fn id_problem(id: &str) -> Option<(ErrorCode, String)> {
    if id.is_empty() {
        return Some((ErrorCode::Empty, "must not be empty".to_owned()));
    }
    if id.len() > MAX_ID_BYTES {
        return Some((
            ErrorCode::TooLong,
            format!(
                "{} bytes is too long, at most {MAX_ID_BYTES} allowed",
                id.len()
            ),
        ));
    }
    let pos = id.bytes().position(|b| !(0x21..=0x7e).contains(&b))?;
    let what = match id.as_bytes()[pos] {
        b' ' => "a space",
        b if b < 0x20 || b == 0x7f => "a control character",
        _ => "a non-ascii character",
    };
    Some((
        ErrorCode::InvalidId,
        format!("contains {what} at byte {pos}; only visible ascii (0x21..0x7e) is allowed"),
    ))
}

/// Error of the `FromStr` implementations of the closed string enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}, expected one of: {expected}")]
pub struct UnknownVariant {
    /// What was being parsed, e.g. `category`.
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// Comma-separated list of the accepted values.
    pub expected: String,
}

string_enum! {
    /// The kind of an event; the `kind` tag on the wire.
    EventKind, "kind" {
        /// A crime or public-order incident reported by police, a mahalla or a citizen.
        Incident = "incident",
        /// A detection by a video-analytics system on a street camera.
        CameraAlert = "camera_alert",
        /// A suspicious payment or account activity flagged by a bank or payment system.
        FraudFlag = "fraud_flag",
    }
}

string_enum! {
    /// Category of an incident.
    IncidentCategory, "category" {
        /// Theft (o'g'rilik).
        Theft = "theft",
        /// Robbery (talonchilik / bosqinchilik).
        Robbery = "robbery",
        /// Assault, bodily harm.
        Assault = "assault",
        /// Homicide.
        Homicide = "homicide",
        /// Drug trafficking.
        DrugTrafficking = "drug_trafficking",
        /// Drug use.
        DrugUse = "drug_use",
        /// Domestic violence.
        DomesticViolence = "domestic_violence",
        /// Fraud reported as an incident.
        Fraud = "fraud",
        /// Cybercrime.
        Cybercrime = "cybercrime",
        /// Vandalism.
        Vandalism = "vandalism",
        /// Hooliganism (bezorilik).
        Hooliganism = "hooliganism",
        /// Illegal weapons.
        Weapons = "weapons",
        /// Public-order offence.
        PublicOrder = "public_order",
        /// Anything else.
        Other = "other",
    }
}

string_enum! {
    /// Lifecycle status of an incident report.
    IncidentStatus, "status" {
        /// Reported, not yet checked (the default).
        Reported = "reported",
        /// Confirmed by an officer.
        Confirmed = "confirmed",
        /// Under investigation.
        UnderInvestigation = "under_investigation",
        /// Closed.
        Closed = "closed",
        /// Checked and found to be unfounded.
        Unfounded = "unfounded",
    }
}

#[allow(clippy::derivable_impls)] // the enum is declared by a macro
impl Default for IncidentStatus {
    fn default() -> Self {
        Self::Reported
    }
}

string_enum! {
    /// What a video-analytics model detected.
    Detection, "detection" {
        /// Suspected drug hand-off.
        DrugHandoff = "drug_handoff",
        /// Visible weapon.
        Weapon = "weapon",
        /// Fight.
        Fight = "fight",
        /// Unusual crowd.
        Crowd = "crowd",
        /// Loitering.
        Loitering = "loitering",
        /// Intrusion into a restricted area.
        Intrusion = "intrusion",
        /// Licence plate on a watch list.
        PlateMatch = "plate_match",
        /// Anything else.
        Other = "other",
    }
}

string_enum! {
    /// Fraud scheme of a fraud flag.
    FraudScheme, "scheme" {
        /// Card fraud (skimming, stolen card data).
        CardFraud = "card_fraud",
        /// Phishing.
        Phishing = "phishing",
        /// Account takeover.
        AccountTakeover = "account_takeover",
        /// Scam phone call (fake bank employee etc.).
        ScamCall = "scam_call",
        /// Fake marketplace listing or shop.
        FakeMarketplace = "fake_marketplace",
        /// Investment scam.
        InvestmentScam = "investment_scam",
        /// Anything else.
        Other = "other",
    }
}

string_enum! {
    /// Channel through which a fraud happened.
    FraudChannel, "channel" {
        /// Card payment.
        Card = "card",
        /// Online banking.
        OnlineBanking = "online_banking",
        /// Mobile banking or payment app.
        MobileApp = "mobile_app",
        /// Phone call.
        PhoneCall = "phone_call",
        /// SMS.
        Sms = "sms",
        /// Messenger (Telegram etc.).
        Messenger = "messenger",
        /// Online marketplace.
        Marketplace = "marketplace",
        /// Anything else.
        Other = "other",
    }
}

string_enum! {
    /// Payment system involved in a fraud flag.
    PaymentSystem, "payment_system" {
        /// Uzcard (national).
        Uzcard = "uzcard",
        /// Humo (national).
        Humo = "humo",
        /// Visa.
        Visa = "visa",
        /// Mastercard.
        Mastercard = "mastercard",
        /// UnionPay.
        Unionpay = "unionpay",
        /// Anything else.
        Other = "other",
    }
}

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Latitude in degrees, -90..=90.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub lng: f64,
    /// Horizontal accuracy radius in metres, >= 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub accuracy_m: Option<f64>,
}

impl Location {
    /// A location without accuracy.
    pub const fn new(lat: f64, lng: f64) -> Self {
        Self {
            lat,
            lng,
            accuracy_m: None,
        }
    }
}

/// Fields every event carries, whatever its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventHeader {
    /// Producer-assigned idempotency key: 1..=128 bytes of visible ASCII
    /// (0x21..=0x7E). Used as the NATS `Nats-Msg-Id` header for de-duplication.
    #[schemars(length(min = 1, max = 128), regex(pattern = ID_PATTERN))]
    pub id: String,
    /// When it happened: RFC 3339 with an explicit offset; the producer's
    /// offset is preserved (Tashkent is `+05:00`).
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub occurred_at: DateTime<FixedOffset>,
    /// Where it happened.
    pub location: Location,
    /// Producing system, e.g. `iiv-102` or `bank-x-antifraud` (1..=128 bytes).
    #[schemars(length(min = 1, max = 128))]
    pub source: String,
    /// Producer-specific extras, kept verbatim: at most 32 entries, keys of
    /// 1..=64 bytes, string values of at most 1024 bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::attributes_schema")]
    pub attributes: BTreeMap<String, String>,
}

/// Victim and offender flags of an incident; all default to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentFlags {
    /// A victim is a minor (under 18).
    #[serde(default)]
    pub victim_minor: bool,
    /// A victim is young (18..=30).
    #[serde(default)]
    pub victim_youth: bool,
    /// A victim is a woman.
    #[serde(default)]
    pub victim_woman: bool,
    /// An offender is a minor (under 18).
    #[serde(default)]
    pub offender_minor: bool,
    /// An offender is young (18..=30).
    #[serde(default)]
    pub offender_youth: bool,
    /// The incident happened within a family / household.
    #[serde(default)]
    pub domestic: bool,
}

impl IncidentFlags {
    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An incident report (`kind: "incident"`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Common fields.
    #[serde(flatten)]
    pub header: EventHeader,
    /// Crime category.
    pub category: IncidentCategory,
    /// Severity, 1 (minor) ..= 5 (most serious).
    #[schemars(range(min = 1, max = 5))]
    pub severity: u8,
    /// Victim / offender flags.
    #[serde(default, skip_serializing_if = "IncidentFlags::is_empty")]
    pub flags: IncidentFlags,
    /// Status of the report (default `reported`).
    #[serde(default)]
    pub status: IncidentStatus,
    /// Free-text description, at most 2000 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
}

/// A video-analytics detection (`kind: "camera_alert"`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraAlert {
    /// Common fields.
    #[serde(flatten)]
    pub header: EventHeader,
    /// Camera identifier (1..=128 bytes).
    #[schemars(length(min = 1, max = 128))]
    pub camera_id: String,
    /// What was detected.
    pub detection: Detection,
    /// Model confidence, 0..=1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub confidence: f64,
    /// Video-analytics model name and version (1..=128 bytes).
    #[schemars(length(min = 1, max = 128))]
    pub model: String,
    /// Where the snapshot image is stored (at most 2048 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub snapshot_uri: Option<String>,
}

/// A suspicious payment or account activity (`kind: "fraud_flag"`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FraudFlag {
    /// Common fields.
    #[serde(flatten)]
    pub header: EventHeader,
    /// Fraud scheme.
    pub scheme: FraudScheme,
    /// Channel.
    pub channel: FraudChannel,
    /// Amount involved in Uzbek soum (>= 0; decimals allowed).
    ///
    /// Stored as `f64`: every whole-soum amount below 2^53 (about 9e15 UZS) is
    /// exact, and amounts with tiyin (1/100) keep their 2 decimals up to about
    /// 1e13 UZS. This is a risk signal, not a ledger, so that is plenty.
    #[schemars(
        description = "Amount involved, in Uzbek soum (UZS), >= 0; integers and decimals accepted."
    )]
    #[schemars(range(min = 0.0))]
    pub amount_uzs: f64,
    /// Payment system.
    pub payment_system: PaymentSystem,
    /// Account or card reference (1..=128 bytes). Pseudonymised with
    /// [`crate::PseudonymKeys::pseudonymise`] before storage.
    #[schemars(
        description = "Account or card reference (1..=128 bytes); replaced by a keyed HMAC pseudonym naming its key (hmac2:<key id>:...; hmac1:... from earlier releases) before storage."
    )]
    #[schemars(length(min = 1, max = 128))]
    pub account_ref: String,
    /// Score of the producer's fraud detector, 0..=1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub detector_score: f64,
}

impl FraudFlag {
    /// Replaces `account_ref` with its keyed pseudonym under `keys`.
    /// Idempotent: a reference that is already pseudonymised is left alone.
    pub fn pseudonymise(&mut self, keys: &crate::PseudonymKeys) {
        if !crate::pseudonym::is_pseudonymised(&self.account_ref) {
            self.account_ref = keys.pseudonymise(&self.account_ref);
        }
    }

    /// Replaces `account_ref` with the given value (e.g. a pseudonym
    /// computed elsewhere) and returns the previous one.
    pub fn replace_account_ref(&mut self, account_ref: String) -> String {
        std::mem::replace(&mut self.account_ref, account_ref)
    }
}

/// Any event, tagged by `kind` on the wire.
///
/// `Deserialize` is strict: it applies every rule of [`crate::parse_event`]
/// except the ones relative to the current time and the payload size (use
/// [`crate::parse_event`] at the ingest boundary).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(
    title = "Event",
    description = "A Posbon event: one JSON object tagged by `kind`. Unknown fields are rejected; producer-specific extras belong in `attributes`."
)]
pub enum Event {
    /// `kind: "incident"`: a crime or public-order incident report.
    Incident(Incident),
    /// `kind: "camera_alert"`: a detection by a video-analytics system.
    CameraAlert(CameraAlert),
    /// `kind: "fraud_flag"`: a suspicious payment or account activity.
    FraudFlag(FraudFlag),
}

impl Event {
    /// The common fields.
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::Incident(e) => &e.header,
            Event::CameraAlert(e) => &e.header,
            Event::FraudFlag(e) => &e.header,
        }
    }

    /// The common fields, mutably.
    pub fn header_mut(&mut self) -> &mut EventHeader {
        match self {
            Event::Incident(e) => &mut e.header,
            Event::CameraAlert(e) => &mut e.header,
            Event::FraudFlag(e) => &mut e.header,
        }
    }

    /// Producer-assigned idempotency key.
    pub fn id(&self) -> &str {
        &self.header().id
    }

    /// Kind of the event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Incident(_) => EventKind::Incident,
            Event::CameraAlert(_) => EventKind::CameraAlert,
            Event::FraudFlag(_) => EventKind::FraudFlag,
        }
    }

    /// When it happened, with the producer's offset.
    pub fn occurred_at(&self) -> DateTime<FixedOffset> {
        self.header().occurred_at
    }

    /// Where it happened.
    pub fn location(&self) -> Location {
        self.header().location
    }

    /// Producing system.
    pub fn source(&self) -> &str {
        &self.header().source
    }

    /// Producer-specific extras.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.header().attributes
    }

    /// Checks every rule of [`crate::parse_event`] (except the payload size)
    /// on an event built in Rust, e.g. by a simulator.
    pub fn validate(
        &self,
        limits: &Limits,
        now: DateTime<chrono::Utc>,
    ) -> Result<(), ValidationErrors> {
        crate::parse::validate_event(self, limits, now)
    }
}

impl From<Incident> for Event {
    fn from(e: Incident) -> Self {
        Event::Incident(e)
    }
}

impl From<CameraAlert> for Event {
    fn from(e: CameraAlert) -> Self {
        Event::CameraAlert(e)
    }
}

impl From<FraudFlag> for Event {
    fn from(e: FraudFlag) -> Self {
        Event::FraudFlag(e)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw =
            crate::parse::MapOnly::<crate::parse::RawEvent<'de>>::deserialize(deserializer)?.0;
        raw_to_event_static(raw, None).map_err(serde::de::Error::custom)
    }
}

macro_rules! kind_deserialize {
    ($ty:ident, $kind:ident) => {
        /// Strict like [`Event`]'s; a `kind` field is accepted when it matches.
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = crate::parse::MapOnly::<crate::parse::RawEvent<'de>>::deserialize(
                    deserializer,
                )?
                .0;
                match raw_to_event_static(raw, Some(EventKind::$kind))
                    .map_err(serde::de::Error::custom)?
                {
                    Event::$kind(e) => Ok(e),
                    other => Err(serde::de::Error::custom(format!(
                        "kind: expected {}, got {}",
                        EventKind::$kind,
                        other.kind()
                    ))),
                }
            }
        }
    };
}

kind_deserialize!(Incident, Incident);
kind_deserialize!(CameraAlert, CameraAlert);
kind_deserialize!(FraudFlag, FraudFlag);
