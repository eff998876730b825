//! The borrowed record both record versions decode into: the fields a
//! decoder needs of a stored event, strings kept in place.

use posbon_model::{CowStr, compact};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Col;

/// The record fields a decoder reads. The others are skipped: their bytes
/// are scanned but no number is converted and no string is copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Need(pub(super) u32);

impl Need {
    pub(super) const KIND: u32 = 1;
    pub(super) const LOCATION: u32 = 1 << 1;
    pub(super) const SOURCE: u32 = 1 << 2;
    pub(super) const ATTRIBUTES: u32 = 1 << 3;
    pub(super) const CATEGORY: u32 = 1 << 4;
    pub(super) const SEVERITY: u32 = 1 << 5;
    pub(super) const FLAGS: u32 = 1 << 6;
    pub(super) const STATUS: u32 = 1 << 7;
    pub(super) const DESCRIPTION: u32 = 1 << 8;
    pub(super) const CAMERA_ID: u32 = 1 << 9;
    pub(super) const DETECTION: u32 = 1 << 10;
    pub(super) const CONFIDENCE: u32 = 1 << 11;
    pub(super) const MODEL: u32 = 1 << 12;
    pub(super) const SNAPSHOT_URI: u32 = 1 << 13;
    pub(super) const SCHEME: u32 = 1 << 14;
    pub(super) const CHANNEL: u32 = 1 << 15;
    pub(super) const AMOUNT: u32 = 1 << 16;
    pub(super) const PAYMENT_SYSTEM: u32 = 1 << 17;
    pub(super) const ACCOUNT_REF: u32 = 1 << 18;
    pub(super) const DETECTOR_SCORE: u32 = 1 << 19;
    pub(super) const CELL: u32 = 1 << 20;
    pub(super) const MAHALLA: u32 = 1 << 21;
    pub(super) const DISTRICT: u32 = 1 << 22;
    pub(super) const REGION: u32 = 1 << 23;
    pub(super) const INGESTED_AT: u32 = 1 << 24;

    pub(super) const fn has(self, field: u32) -> bool {
        self.0 & field != 0
    }

    /// What a column needs from the record (nothing when the key has it).
    pub(super) const fn of(col: Col, cell_keys: bool) -> u32 {
        match col {
            Col::Id | Col::OccurredAt | Col::LocalDate => 0,
            Col::Cell if cell_keys => 0,
            Col::Cell => Self::CELL,
            Col::Kind => Self::KIND,
            Col::IngestedAt => Self::INGESTED_AT,
            Col::Lat | Col::Lng | Col::AccuracyM => Self::LOCATION,
            Col::MahallaId => Self::MAHALLA,
            Col::DistrictId => Self::DISTRICT,
            Col::RegionId => Self::REGION,
            Col::Source => Self::SOURCE,
            Col::AnyCategory => Self::CATEGORY | Self::DETECTION | Self::SCHEME,
            Col::Severity => Self::SEVERITY,
            Col::Confidence => Self::CONFIDENCE,
            Col::AmountUzs => Self::AMOUNT,
            Col::Attributes => Self::ATTRIBUTES,
            Col::IncidentCategory => Self::CATEGORY,
            Col::Status => Self::STATUS,
            Col::VictimMinor
            | Col::VictimYouth
            | Col::VictimWoman
            | Col::OffenderMinor
            | Col::OffenderYouth
            | Col::Domestic => Self::FLAGS,
            Col::Description => Self::DESCRIPTION,
            Col::CameraId => Self::CAMERA_ID,
            Col::Detection => Self::DETECTION,
            Col::Model => Self::MODEL,
            Col::SnapshotUri => Self::SNAPSHOT_URI,
            Col::Scheme => Self::SCHEME,
            Col::Channel => Self::CHANNEL,
            Col::PaymentSystem => Self::PAYMENT_SYSTEM,
            Col::AccountRef => Self::ACCOUNT_REF,
            Col::DetectorScore => Self::DETECTOR_SCORE,
        }
    }
}

/// A stored record, the fields a decoder needs of it.
#[derive(Debug, Default)]
pub(super) struct Rec<'a> {
    pub(super) event: Ev<'a>,
    pub(super) cell: Option<u64>,
    pub(super) mahalla_id: Option<CowStr<'a>>,
    pub(super) district_id: Option<CowStr<'a>>,
    pub(super) region_id: Option<CowStr<'a>>,
    /// Microseconds since the epoch.
    pub(super) ingested_at: Option<i64>,
}

/// The attributes of a record: JSON text, or the entries of a compact one.
#[derive(Debug, Clone, Copy)]
pub(super) enum Attrs<'a> {
    Json(&'a RawValue),
    Compact(compact::Attributes<'a>),
}

#[derive(Debug, Deserialize)]
pub(super) struct Loc {
    pub(super) lat: f64,
    pub(super) lng: f64,
    #[serde(default)]
    pub(super) accuracy_m: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Flags {
    #[serde(default)]
    pub(super) victim_minor: bool,
    #[serde(default)]
    pub(super) victim_youth: bool,
    #[serde(default)]
    pub(super) victim_woman: bool,
    #[serde(default)]
    pub(super) offender_minor: bool,
    #[serde(default)]
    pub(super) offender_youth: bool,
    #[serde(default)]
    pub(super) domestic: bool,
}

#[derive(Debug, Default)]
pub(super) struct Ev<'a> {
    pub(super) kind: Option<CowStr<'a>>,
    pub(super) location: Option<Loc>,
    pub(super) source: Option<CowStr<'a>>,
    pub(super) attributes: Option<Attrs<'a>>,
    pub(super) category: Option<CowStr<'a>>,
    pub(super) severity: Option<u8>,
    pub(super) flags: Option<Flags>,
    pub(super) status: Option<CowStr<'a>>,
    pub(super) description: Option<CowStr<'a>>,
    pub(super) camera_id: Option<CowStr<'a>>,
    pub(super) detection: Option<CowStr<'a>>,
    pub(super) confidence: Option<f64>,
    pub(super) model: Option<CowStr<'a>>,
    pub(super) snapshot_uri: Option<CowStr<'a>>,
    pub(super) scheme: Option<CowStr<'a>>,
    pub(super) channel: Option<CowStr<'a>>,
    pub(super) amount_uzs: Option<f64>,
    pub(super) payment_system: Option<CowStr<'a>>,
    pub(super) account_ref: Option<CowStr<'a>>,
    pub(super) detector_score: Option<f64>,
}

impl Ev<'_> {
    /// The value of `events.category`.
    pub(super) fn any_category(&self) -> Option<&str> {
        self.category
            .as_ref()
            .or(self.detection.as_ref())
            .or(self.scheme.as_ref())
            .map(|s| s.0.as_ref())
    }
}
