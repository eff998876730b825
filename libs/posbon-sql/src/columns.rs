//! The event tables' columns, their Arrow types, and the decoder that turns
//! stored event records into Arrow columns.
//!
//! The decoder reads a stored record (the compact form of the
//! [`EnrichedEvent`](posbon_model::EnrichedEvent), [`posbon_model::compact`],
//! or the JSON of the first record version) into a borrowed struct that
//! keeps strings in place, then appends only the projected columns. What the
//! key already holds (the id, `occurred_at`, and the cell of an `e` key) is
//! taken from the key, and a query that needs nothing else
//! (`SELECT count(*) FROM events WHERE ...`) decodes no record at all; a
//! per-kind table recognises other kinds from the first bytes of the record
//! and skips them without decoding.

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::sync::Arc;

use chrono::{NaiveDate, Offset, TimeZone};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, DictionaryArray, Float64Builder, Int8Builder,
    StringArray, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use posbon_model::{
    Detection, EventKind, FraudChannel, FraudScheme, IncidentCategory, IncidentStatus,
    PaymentSystem, compact,
};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::SqlError;

/// The time zone of `local_date` and of the daily report: Posbon serves
/// Uzbekistan.
pub const TIME_ZONE: chrono_tz::Tz = chrono_tz::Asia::Tashkent;

/// The Arrow type of timestamps: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type of the enum columns: dictionary-encoded strings.
pub fn enum_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
}

/// A column of an event table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Col {
    Id,
    Kind,
    OccurredAt,
    LocalDate,
    IngestedAt,
    Lat,
    Lng,
    AccuracyM,
    Cell,
    MahallaId,
    DistrictId,
    RegionId,
    Source,
    /// `events.category`: the incident category, camera detection or fraud scheme.
    AnyCategory,
    Severity,
    Confidence,
    AmountUzs,
    Attributes,
    IncidentCategory,
    Status,
    VictimMinor,
    VictimYouth,
    VictimWoman,
    OffenderMinor,
    OffenderYouth,
    Domestic,
    Description,
    CameraId,
    Detection,
    Model,
    SnapshotUri,
    Scheme,
    Channel,
    PaymentSystem,
    AccountRef,
    DetectorScore,
}

impl Col {
    /// The column name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Col::Id => "id",
            Col::Kind => "kind",
            Col::OccurredAt => "occurred_at",
            Col::LocalDate => "local_date",
            Col::IngestedAt => "ingested_at",
            Col::Lat => "lat",
            Col::Lng => "lng",
            Col::AccuracyM => "accuracy_m",
            Col::Cell => "cell",
            Col::MahallaId => "mahalla_id",
            Col::DistrictId => "district_id",
            Col::RegionId => "region_id",
            Col::Source => "source",
            Col::AnyCategory | Col::IncidentCategory => "category",
            Col::Severity => "severity",
            Col::Confidence => "confidence",
            Col::AmountUzs => "amount_uzs",
            Col::Attributes => "attributes",
            Col::Status => "status",
            Col::VictimMinor => "victim_minor",
            Col::VictimYouth => "victim_youth",
            Col::VictimWoman => "victim_woman",
            Col::OffenderMinor => "offender_minor",
            Col::OffenderYouth => "offender_youth",
            Col::Domestic => "domestic",
            Col::Description => "description",
            Col::CameraId => "camera_id",
            Col::Detection => "detection",
            Col::Model => "model",
            Col::SnapshotUri => "snapshot_uri",
            Col::Scheme => "scheme",
            Col::Channel => "channel",
            Col::PaymentSystem => "payment_system",
            Col::AccountRef => "account_ref",
            Col::DetectorScore => "detector_score",
        }
    }

    /// The dictionary of an enum column.
    fn dictionary(self) -> Option<&'static [&'static str]> {
        Some(match self {
            Col::Kind => &DICTS.kind,
            Col::AnyCategory => &DICTS.any_category,
            Col::IncidentCategory => &DICTS.incident_category,
            Col::Status => &DICTS.status,
            Col::Detection => &DICTS.detection,
            Col::Scheme => &DICTS.scheme,
            Col::Channel => &DICTS.channel,
            Col::PaymentSystem => &DICTS.payment_system,
            _ => return None,
        })
    }

    /// The Arrow type.
    pub(crate) fn data_type(self) -> DataType {
        if self.dictionary().is_some() {
            return enum_type();
        }
        match self {
            Col::OccurredAt | Col::IngestedAt => timestamp_type(),
            Col::LocalDate => DataType::Date32,
            Col::Lat
            | Col::Lng
            | Col::AccuracyM
            | Col::Confidence
            | Col::AmountUzs
            | Col::DetectorScore => DataType::Float64,
            Col::Cell => DataType::UInt64,
            Col::Severity => DataType::UInt8,
            Col::VictimMinor
            | Col::VictimYouth
            | Col::VictimWoman
            | Col::OffenderMinor
            | Col::OffenderYouth
            | Col::Domestic => DataType::Boolean,
            _ => DataType::Utf8,
        }
    }

    /// True when the value comes from the key alone (no record decoding).
    const fn in_key(self, cell_keys: bool) -> bool {
        match self {
            Col::Id | Col::OccurredAt | Col::LocalDate => true,
            Col::Cell => cell_keys,
            _ => false,
        }
    }
}

/// The fixed dictionaries of the enum columns, in the order of the model's
/// `ALL` constants (so dictionary keys are stable across batches).
struct Dicts {
    kind: Vec<&'static str>,
    any_category: Vec<&'static str>,
    incident_category: Vec<&'static str>,
    status: Vec<&'static str>,
    detection: Vec<&'static str>,
    scheme: Vec<&'static str>,
    channel: Vec<&'static str>,
    payment_system: Vec<&'static str>,
}

static DICTS: std::sync::LazyLock<Dicts> = std::sync::LazyLock::new(|| {
    let incident: Vec<&'static str> = IncidentCategory::ALL.iter().map(|v| v.as_str()).collect();
    let detection: Vec<&'static str> = Detection::ALL.iter().map(|v| v.as_str()).collect();
    let scheme: Vec<&'static str> = FraudScheme::ALL.iter().map(|v| v.as_str()).collect();
    let mut any = incident.clone();
    for name in detection.iter().chain(&scheme) {
        if !any.contains(name) {
            any.push(name);
        }
    }
    Dicts {
        kind: EventKind::ALL.iter().map(|v| v.as_str()).collect(),
        any_category: any,
        incident_category: incident,
        status: IncidentStatus::ALL.iter().map(|v| v.as_str()).collect(),
        detection,
        scheme,
        channel: FraudChannel::ALL.iter().map(|v| v.as_str()).collect(),
        payment_system: PaymentSystem::ALL.iter().map(|v| v.as_str()).collect(),
    }
});

/// The values every row of an event table has, whatever its kind.
const COMMON: [(Col, bool); 13] = [
    (Col::Id, false),
    (Col::Kind, false),
    (Col::OccurredAt, false),
    (Col::LocalDate, false),
    (Col::IngestedAt, false),
    (Col::Lat, false),
    (Col::Lng, false),
    (Col::AccuracyM, true),
    (Col::Cell, false),
    (Col::MahallaId, true),
    (Col::DistrictId, true),
    (Col::RegionId, true),
    (Col::Source, false),
];

/// An event table: its name, the kind it holds (all when `None`) and its
/// columns with their nullability.
#[derive(Debug)]
pub(crate) struct TableDef {
    pub(crate) name: &'static str,
    pub(crate) kind: Option<EventKind>,
    pub(crate) cols: Vec<(Col, bool)>,
}

impl TableDef {
    fn new(name: &'static str, kind: Option<EventKind>, extra: &[(Col, bool)]) -> Self {
        let mut cols = COMMON.to_vec();
        cols.extend_from_slice(extra);
        cols.push((Col::Attributes, true));
        Self { name, kind, cols }
    }

    /// Every event table: `events`, `incidents`, `camera_alerts`,
    /// `fraud_flags`.
    pub(crate) fn event_tables() -> [Self; 4] {
        [
            Self::events(),
            Self::incidents(),
            Self::camera_alerts(),
            Self::fraud_flags(),
        ]
    }

    /// `events`: every event, with the fields the report needs from each kind.
    pub(crate) fn events() -> Self {
        Self::new(
            "events",
            None,
            &[
                (Col::AnyCategory, false),
                (Col::Severity, true),
                (Col::Confidence, true),
                (Col::AmountUzs, true),
            ],
        )
    }

    /// `incidents`.
    pub(crate) fn incidents() -> Self {
        Self::new(
            "incidents",
            Some(EventKind::Incident),
            &[
                (Col::IncidentCategory, false),
                (Col::Severity, false),
                (Col::Status, false),
                (Col::VictimMinor, false),
                (Col::VictimYouth, false),
                (Col::VictimWoman, false),
                (Col::OffenderMinor, false),
                (Col::OffenderYouth, false),
                (Col::Domestic, false),
                (Col::Description, true),
            ],
        )
    }

    /// `camera_alerts`.
    pub(crate) fn camera_alerts() -> Self {
        Self::new(
            "camera_alerts",
            Some(EventKind::CameraAlert),
            &[
                (Col::CameraId, false),
                (Col::Detection, false),
                (Col::Confidence, false),
                (Col::Model, false),
                (Col::SnapshotUri, true),
            ],
        )
    }

    /// `fraud_flags`.
    pub(crate) fn fraud_flags() -> Self {
        Self::new(
            "fraud_flags",
            Some(EventKind::FraudFlag),
            &[
                (Col::Scheme, false),
                (Col::Channel, false),
                (Col::AmountUzs, false),
                (Col::PaymentSystem, false),
                (Col::AccountRef, false),
                (Col::DetectorScore, false),
            ],
        )
    }

    /// The Arrow schema.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.cols
                .iter()
                .map(|&(col, nullable)| Field::new(col.name(), col.data_type(), nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

/// A string that borrows from the input when it has no escapes.
#[derive(Debug)]
struct BStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A map key as bytes: serde_json hands them over without checking UTF-8
/// (the keys are compared with ASCII names only).
struct Key<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_vec())))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The record fields a decoder reads. The others are skipped: their bytes
/// are scanned but no number is converted and no string is copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Need(u32);

impl Need {
    const KIND: u32 = 1;
    const LOCATION: u32 = 1 << 1;
    const SOURCE: u32 = 1 << 2;
    const ATTRIBUTES: u32 = 1 << 3;
    const CATEGORY: u32 = 1 << 4;
    const SEVERITY: u32 = 1 << 5;
    const FLAGS: u32 = 1 << 6;
    const STATUS: u32 = 1 << 7;
    const DESCRIPTION: u32 = 1 << 8;
    const CAMERA_ID: u32 = 1 << 9;
    const DETECTION: u32 = 1 << 10;
    const CONFIDENCE: u32 = 1 << 11;
    const MODEL: u32 = 1 << 12;
    const SNAPSHOT_URI: u32 = 1 << 13;
    const SCHEME: u32 = 1 << 14;
    const CHANNEL: u32 = 1 << 15;
    const AMOUNT: u32 = 1 << 16;
    const PAYMENT_SYSTEM: u32 = 1 << 17;
    const ACCOUNT_REF: u32 = 1 << 18;
    const DETECTOR_SCORE: u32 = 1 << 19;
    const CELL: u32 = 1 << 20;
    const MAHALLA: u32 = 1 << 21;
    const DISTRICT: u32 = 1 << 22;
    const REGION: u32 = 1 << 23;
    const INGESTED_AT: u32 = 1 << 24;

    const fn has(self, field: u32) -> bool {
        self.0 & field != 0
    }

    /// What a column needs from the record (nothing when the key has it).
    const fn of(col: Col, cell_keys: bool) -> u32 {
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
struct Rec<'a> {
    event: Ev<'a>,
    cell: Option<u64>,
    mahalla_id: Option<BStr<'a>>,
    district_id: Option<BStr<'a>>,
    region_id: Option<BStr<'a>>,
    /// Microseconds since the epoch.
    ingested_at: Option<i64>,
}

/// The attributes of a record: JSON text, or the entries of a compact one.
#[derive(Debug, Clone, Copy)]
enum Attrs<'a> {
    Json(&'a RawValue),
    Compact(compact::Attributes<'a>),
}

impl<'a> Rec<'a> {
    /// The fields of a compact record (all of them: reading one costs no
    /// allocation).
    fn of_compact(v: &compact::View<'a>) -> Self {
        let s = |x: &'a str| BStr(Cow::Borrowed(x));
        let mut ev = Ev {
            kind: Some(s(v.kind().as_str())),
            location: Some(Loc {
                lat: v.location.lat,
                lng: v.location.lng,
                accuracy_m: v.location.accuracy_m,
            }),
            source: Some(s(v.source)),
            attributes: (!v.attributes.is_empty()).then_some(Attrs::Compact(v.attributes)),
            ..Ev::default()
        };
        match v.body {
            compact::Body::Incident {
                category,
                severity,
                flags,
                status,
                description,
            } => {
                ev.category = Some(s(category.as_str()));
                ev.severity = Some(severity);
                ev.flags = Some(Flags {
                    victim_minor: flags.victim_minor,
                    victim_youth: flags.victim_youth,
                    victim_woman: flags.victim_woman,
                    offender_minor: flags.offender_minor,
                    offender_youth: flags.offender_youth,
                    domestic: flags.domestic,
                });
                ev.status = Some(s(status.as_str()));
                ev.description = description.map(s);
            }
            compact::Body::CameraAlert {
                camera_id,
                detection,
                confidence,
                model,
                snapshot_uri,
            } => {
                ev.camera_id = Some(s(camera_id));
                ev.detection = Some(s(detection.as_str()));
                ev.confidence = Some(confidence);
                ev.model = Some(s(model));
                ev.snapshot_uri = snapshot_uri.map(s);
            }
            compact::Body::FraudFlag {
                scheme,
                channel,
                amount_uzs,
                payment_system,
                account_ref,
                detector_score,
            } => {
                ev.scheme = Some(s(scheme.as_str()));
                ev.channel = Some(s(channel.as_str()));
                ev.amount_uzs = Some(amount_uzs);
                ev.payment_system = Some(s(payment_system.as_str()));
                ev.account_ref = Some(s(account_ref));
                ev.detector_score = Some(detector_score);
            }
        }
        Rec {
            event: ev,
            cell: Some(v.cell.get()),
            mahalla_id: v.mahalla_id.map(s),
            district_id: v.district_id.map(s),
            region_id: v.region_id.map(s),
            ingested_at: Some(v.ingested_at.timestamp_micros()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Loc {
    lat: f64,
    lng: f64,
    #[serde(default)]
    accuracy_m: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Flags {
    #[serde(default)]
    victim_minor: bool,
    #[serde(default)]
    victim_youth: bool,
    #[serde(default)]
    victim_woman: bool,
    #[serde(default)]
    offender_minor: bool,
    #[serde(default)]
    offender_youth: bool,
    #[serde(default)]
    domestic: bool,
}

#[derive(Debug, Default)]
struct Ev<'a> {
    kind: Option<BStr<'a>>,
    location: Option<Loc>,
    source: Option<BStr<'a>>,
    attributes: Option<Attrs<'a>>,
    category: Option<BStr<'a>>,
    severity: Option<u8>,
    flags: Option<Flags>,
    status: Option<BStr<'a>>,
    description: Option<BStr<'a>>,
    camera_id: Option<BStr<'a>>,
    detection: Option<BStr<'a>>,
    confidence: Option<f64>,
    model: Option<BStr<'a>>,
    snapshot_uri: Option<BStr<'a>>,
    scheme: Option<BStr<'a>>,
    channel: Option<BStr<'a>>,
    amount_uzs: Option<f64>,
    payment_system: Option<BStr<'a>>,
    account_ref: Option<BStr<'a>>,
    detector_score: Option<f64>,
}

impl Ev<'_> {
    /// The value of `events.category`.
    fn any_category(&self) -> Option<&str> {
        self.category
            .as_ref()
            .or(self.detection.as_ref())
            .or(self.scheme.as_ref())
            .map(|s| s.0.as_ref())
    }
}

/// Reads a record's map, keeping the fields in `Need`.
struct RecSeed(Need);

impl<'de> DeserializeSeed<'de> for RecSeed {
    type Value = Rec<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Rec<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecSeed {
    type Value = Rec<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an enriched event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rec<'de>, A::Error> {
        let need = self.0;
        let mut rec = Rec::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                b"event" => rec.event = map.next_value_seed(EvSeed(need))?,
                b"cell" if need.has(Need::CELL) => {
                    let text: BStr<'_> = map.next_value()?;
                    let cell = u64::from_str_radix(&text.0, 16)
                        .map_err(|_| serde::de::Error::custom("stored cell is not hexadecimal"))?;
                    rec.cell = Some(cell);
                }
                b"mahalla_id" if need.has(Need::MAHALLA) => rec.mahalla_id = map.next_value()?,
                b"district_id" if need.has(Need::DISTRICT) => rec.district_id = map.next_value()?,
                b"region_id" if need.has(Need::REGION) => rec.region_id = map.next_value()?,
                b"ingested_at" if need.has(Need::INGESTED_AT) => {
                    let text: BStr<'_> = map.next_value()?;
                    let t = chrono::DateTime::parse_from_rfc3339(&text.0).map_err(|e| {
                        serde::de::Error::custom(format!("stored ingested_at is not rfc 3339: {e}"))
                    })?;
                    rec.ingested_at = Some(t.timestamp_micros());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(rec)
    }
}

/// Reads an event's map, keeping the fields in `Need`.
struct EvSeed(Need);

impl<'de> DeserializeSeed<'de> for EvSeed {
    type Value = Ev<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Ev<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EvSeed {
    type Value = Ev<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ev<'de>, A::Error> {
        let need = self.0;
        let mut ev = Ev::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                b"kind" if need.has(Need::KIND) => ev.kind = Some(map.next_value()?),
                b"location" if need.has(Need::LOCATION) => ev.location = Some(map.next_value()?),
                b"source" if need.has(Need::SOURCE) => ev.source = Some(map.next_value()?),
                b"attributes" if need.has(Need::ATTRIBUTES) => {
                    ev.attributes = map.next_value::<Option<&RawValue>>()?.map(Attrs::Json);
                }
                b"category" if need.has(Need::CATEGORY) => ev.category = map.next_value()?,
                b"severity" if need.has(Need::SEVERITY) => ev.severity = map.next_value()?,
                b"flags" if need.has(Need::FLAGS) => ev.flags = map.next_value()?,
                b"status" if need.has(Need::STATUS) => ev.status = map.next_value()?,
                b"description" if need.has(Need::DESCRIPTION) => {
                    ev.description = map.next_value()?
                }
                b"camera_id" if need.has(Need::CAMERA_ID) => ev.camera_id = map.next_value()?,
                b"detection" if need.has(Need::DETECTION) => ev.detection = map.next_value()?,
                b"confidence" if need.has(Need::CONFIDENCE) => ev.confidence = map.next_value()?,
                b"model" if need.has(Need::MODEL) => ev.model = map.next_value()?,
                b"snapshot_uri" if need.has(Need::SNAPSHOT_URI) => {
                    ev.snapshot_uri = map.next_value()?;
                }
                b"scheme" if need.has(Need::SCHEME) => ev.scheme = map.next_value()?,
                b"channel" if need.has(Need::CHANNEL) => ev.channel = map.next_value()?,
                b"amount_uzs" if need.has(Need::AMOUNT) => ev.amount_uzs = map.next_value()?,
                b"payment_system" if need.has(Need::PAYMENT_SYSTEM) => {
                    ev.payment_system = map.next_value()?;
                }
                b"account_ref" if need.has(Need::ACCOUNT_REF) => {
                    ev.account_ref = map.next_value()?
                }
                b"detector_score" if need.has(Need::DETECTOR_SCORE) => {
                    ev.detector_score = map.next_value()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ev)
    }
}

/// The version byte of JSON records ([`posbon_store::codec`]).
const JSON_V1: u8 = posbon_store::codec::EVENT_JSON_V1;
/// The version byte of compact records ([`posbon_store::codec`]).
const COMPACT_V2: u8 = posbon_store::codec::EVENT_COMPACT_V2;

/// The kind of a stored record from its first bytes, without decoding it;
/// `None` when the record does not start the usual way.
fn peek_kind(record: &[u8]) -> Option<EventKind> {
    const HEAD: &[u8] = br#"{"event":{"kind":""#;
    if let Some(rest) = record.strip_prefix(&[COMPACT_V2]) {
        return compact::peek_kind(rest);
    }
    let json = record.strip_prefix(&[JSON_V1])?;
    let rest = json.strip_prefix(HEAD)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    EventKind::from_wire(std::str::from_utf8(&rest[..end]).ok()?)
}

/// One column being built.
#[derive(Debug)]
enum Builder {
    Str(StringBuilder),
    Dict(Int8Builder, &'static [&'static str]),
    F64(Float64Builder),
    U64(UInt64Builder),
    U8(UInt8Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

impl Builder {
    fn new(col: Col, capacity: usize) -> Self {
        if let Some(values) = col.dictionary() {
            return Builder::Dict(Int8Builder::with_capacity(capacity), values);
        }
        match col.data_type() {
            DataType::Float64 => Builder::F64(Float64Builder::with_capacity(capacity)),
            DataType::UInt64 => Builder::U64(UInt64Builder::with_capacity(capacity)),
            DataType::UInt8 => Builder::U8(UInt8Builder::with_capacity(capacity)),
            DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Timestamp(..) => Builder::Ts(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            DataType::Date32 => Builder::Date(Date32Builder::with_capacity(capacity)),
            _ => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    fn str(&mut self, v: Option<&str>) {
        match self {
            Builder::Str(b) => b.append_option(v),
            Builder::Dict(b, values) => b.append_option(
                v.and_then(|v| values.iter().position(|x| *x == v))
                    .map(|i| i as i8),
            ),
            _ => {}
        }
    }

    fn f64(&mut self, v: Option<f64>) {
        if let Builder::F64(b) = self {
            b.append_option(v);
        }
    }

    fn bool(&mut self, v: bool) {
        if let Builder::Bool(b) = self {
            b.append_value(v);
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::Dict(mut keys, values) => {
                let values = Arc::new(StringArray::from(values.to_vec()));
                Arc::new(DictionaryArray::<Int8Type>::new(keys.finish(), values))
            }
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::U64(mut b) => Arc::new(b.finish()),
            Builder::U8(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Days from 0001-01-01 (chrono's day count) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Turns pages of stored records into record batches of the projected
/// columns of one table.
#[derive(Debug)]
pub(crate) struct Decoder {
    cols: Vec<Col>,
    schema: SchemaRef,
    kind: Option<EventKind>,
    needs_record: bool,
    /// The record fields the columns need.
    need: Need,
    /// Whether records come with `e` keys (cell in the key) or `t` keys.
    cell_keys: bool,
    /// The UTC hour and the time zone's offset in it, seconds.
    offset_cache: (i64, i32),
    /// When set, only rows whose cell is in one of these ranges (sorted by
    /// start) are kept.
    cell_filter: Option<Arc<Vec<RangeInclusive<u64>>>>,
}

/// A decoded key: what every row has without its record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyParts<'a> {
    pub(crate) micros: i64,
    pub(crate) cell: Option<u64>,
    pub(crate) id: &'a [u8],
}

impl Decoder {
    /// A decoder of `table`'s columns at `projection` (indexes into its
    /// columns; all when `None`), for records read with `e` keys when
    /// `cell_keys`, else `t` keys.
    pub(crate) fn new(table: &TableDef, projection: &[usize], cell_keys: bool) -> Self {
        let cols: Vec<Col> = projection.iter().map(|&i| table.cols[i].0).collect();
        let full = table.schema();
        let schema = Arc::new(full.project(projection).unwrap_or_else(|_| Schema::empty()));
        let needs_record = cols.iter().any(|c| !c.in_key(cell_keys));
        let mut need = cols.iter().fold(0, |n, &c| n | Need::of(c, cell_keys));
        if table.kind.is_some() {
            // To recognise other kinds when the first bytes do not tell.
            need |= Need::KIND;
        }
        Self {
            cols,
            schema,
            kind: table.kind,
            needs_record,
            need: Need(need),
            cell_keys,
            offset_cache: (i64::MIN, 0),
            cell_filter: None,
        }
    }

    /// Keeps only rows whose cell falls in one of `ranges` (sorted by start).
    pub(crate) fn keep_cells(&mut self, ranges: Arc<Vec<RangeInclusive<u64>>>) {
        if !self.cell_keys {
            self.needs_record = true;
            self.need.0 |= Need::CELL;
        }
        self.cell_filter = Some(ranges);
    }

    fn cell_kept(&self, cell: u64) -> bool {
        let Some(ranges) = &self.cell_filter else {
            return true;
        };
        let i = ranges.partition_point(|r| *r.start() <= cell);
        i > 0 && ranges[i - 1].contains(&cell)
    }

    /// The schema of the batches.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The local date of an instant, as days since 1970-01-01.
    fn local_date(&mut self, micros: i64) -> i32 {
        let hour = micros.div_euclid(3_600_000_000);
        if self.offset_cache.0 != hour {
            let offset = chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| {
                    TIME_ZONE
                        .offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc()
                })
                .unwrap_or(0);
            self.offset_cache = (hour, offset);
        }
        let local = micros + i64::from(self.offset_cache.1) * 1_000_000;
        local.div_euclid(86_400_000_000) as i32
    }

    /// Decodes the rows of `records` whose key passes `keep` into one batch.
    /// `key` extracts the key parts of each entry.
    pub(crate) fn decode<'a, I>(
        &mut self,
        records: I,
        capacity: usize,
    ) -> Result<RecordBatch, SqlError>
    where
        I: Iterator<Item = (KeyParts<'a>, &'a [u8])>,
    {
        let mut builders: Vec<Builder> = self
            .cols
            .iter()
            .map(|&c| Builder::new(c, capacity))
            .collect();
        let mut rows = 0usize;
        for (key, record) in records {
            if let (Some(kind), Some(found)) = (self.kind, peek_kind(record))
                && found != kind
            {
                continue;
            }
            let peeked = self.kind.and_then(|_| peek_kind(record));
            let rec = if self.needs_record || (self.kind.is_some() && peeked.is_none()) {
                let rec = match record.split_first() {
                    Some((&COMPACT_V2, rest)) => {
                        let view = compact::view(rest).map_err(|e| {
                            SqlError::internal(format!("cannot decode a stored event record: {e}"))
                        })?;
                        Rec::of_compact(&view)
                    }
                    Some((&JSON_V1, json)) => {
                        let mut de = serde_json::Deserializer::from_slice(json);
                        RecSeed(self.need).deserialize(&mut de).map_err(|e| {
                            SqlError::internal(format!("cannot decode a stored event record: {e}"))
                        })?
                    }
                    _ => return Err(SqlError::internal("unknown event record version")),
                };
                if let Some(kind) = self.kind
                    && rec.event.kind.as_ref().is_none_or(|k| k.0 != kind.as_str())
                {
                    continue;
                }
                Some(rec)
            } else {
                None
            };
            if self.cell_filter.is_some() {
                let cell = match (key.cell, &rec) {
                    (Some(cell), _) => cell,
                    (None, Some(rec)) => rec.cell.ok_or_else(no_cell)?,
                    (None, None) => return Err(SqlError::internal("cell filter without the cell")),
                };
                if !self.cell_kept(cell) {
                    continue;
                }
            }
            rows += 1;
            for (i, builder) in builders.iter_mut().enumerate() {
                let col = self.cols[i];
                self.append(builder, col, &key, rec.as_ref())?;
            }
        }
        let columns: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema(), columns, &options)
            .map_err(|e| SqlError::internal(format!("cannot build a record batch: {e}")))
    }

    fn append(
        &mut self,
        b: &mut Builder,
        col: Col,
        key: &KeyParts<'_>,
        rec: Option<&Rec<'_>>,
    ) -> Result<(), SqlError> {
        let missing = || SqlError::internal(format!("column {} needs the record", col.name()));
        match col {
            Col::Id => b.str(Some(
                std::str::from_utf8(key.id)
                    .map_err(|_| SqlError::internal("event id is not utf-8"))?,
            )),
            Col::OccurredAt => {
                if let Builder::Ts(t) = b {
                    t.append_value(key.micros);
                }
            }
            Col::LocalDate => {
                let day = self.local_date(key.micros);
                if let Builder::Date(d) = b {
                    d.append_value(day);
                }
            }
            Col::Cell if self.cell_keys => {
                if let (Builder::U64(u), Some(cell)) = (&mut *b, key.cell) {
                    u.append_value(cell);
                }
            }
            _ => {
                let rec = rec.ok_or_else(missing)?;
                append_from_record(b, col, rec)?;
            }
        }
        Ok(())
    }
}

/// Appends a value that comes from the record.
fn append_from_record(b: &mut Builder, col: Col, rec: &Rec<'_>) -> Result<(), SqlError> {
    let ev = &rec.event;
    let missing = |what: &str| SqlError::internal(format!("a stored event record has no {what}"));
    match col {
        Col::Kind => b.str(Some(&ev.kind.as_ref().ok_or_else(|| missing("kind"))?.0)),
        Col::IngestedAt => {
            let micros = rec.ingested_at.ok_or_else(|| missing("ingested_at"))?;
            if let Builder::Ts(ts) = b {
                ts.append_value(micros);
            }
        }
        Col::Lat | Col::Lng => {
            let loc = ev.location.as_ref().ok_or_else(|| missing("location"))?;
            b.f64(Some(if col == Col::Lat { loc.lat } else { loc.lng }));
        }
        Col::AccuracyM => b.f64(ev.location.as_ref().and_then(|l| l.accuracy_m)),
        Col::Cell => {
            let cell = rec.cell.ok_or_else(no_cell)?;
            if let Builder::U64(u) = b {
                u.append_value(cell);
            }
        }
        Col::MahallaId => b.str(rec.mahalla_id.as_ref().map(|v| v.0.as_ref())),
        Col::DistrictId => b.str(rec.district_id.as_ref().map(|v| v.0.as_ref())),
        Col::RegionId => b.str(rec.region_id.as_ref().map(|v| v.0.as_ref())),
        Col::Source => b.str(Some(
            &ev.source.as_ref().ok_or_else(|| missing("source"))?.0,
        )),
        Col::AnyCategory => b.str(ev.any_category()),
        Col::Severity => {
            if let Builder::U8(u) = b {
                u.append_option(ev.severity);
            }
        }
        Col::Confidence => b.f64(ev.confidence),
        Col::AmountUzs => b.f64(ev.amount_uzs),
        Col::Attributes => match ev.attributes {
            Some(Attrs::Json(raw)) => b.str(Some(raw.get())),
            Some(Attrs::Compact(attrs)) => {
                let map: std::collections::BTreeMap<&str, &str> = attrs.iter().collect();
                let text = serde_json::to_string(&map)
                    .map_err(|e| SqlError::internal(format!("cannot write attributes: {e}")))?;
                b.str(Some(&text));
            }
            None => b.str(None),
        },
        Col::IncidentCategory => b.str(ev.category.as_ref().map(|v| v.0.as_ref())),
        Col::Status => b.str(Some(
            ev.status.as_ref().map_or("reported", |v| v.0.as_ref()),
        )),
        Col::VictimMinor => b.bool(ev.flags.as_ref().is_some_and(|f| f.victim_minor)),
        Col::VictimYouth => b.bool(ev.flags.as_ref().is_some_and(|f| f.victim_youth)),
        Col::VictimWoman => b.bool(ev.flags.as_ref().is_some_and(|f| f.victim_woman)),
        Col::OffenderMinor => b.bool(ev.flags.as_ref().is_some_and(|f| f.offender_minor)),
        Col::OffenderYouth => b.bool(ev.flags.as_ref().is_some_and(|f| f.offender_youth)),
        Col::Domestic => b.bool(ev.flags.as_ref().is_some_and(|f| f.domestic)),
        Col::Description => b.str(ev.description.as_ref().map(|v| v.0.as_ref())),
        Col::CameraId => b.str(ev.camera_id.as_ref().map(|v| v.0.as_ref())),
        Col::Detection => b.str(ev.detection.as_ref().map(|v| v.0.as_ref())),
        Col::Model => b.str(ev.model.as_ref().map(|v| v.0.as_ref())),
        Col::SnapshotUri => b.str(ev.snapshot_uri.as_ref().map(|v| v.0.as_ref())),
        Col::Scheme => b.str(ev.scheme.as_ref().map(|v| v.0.as_ref())),
        Col::Channel => b.str(ev.channel.as_ref().map(|v| v.0.as_ref())),
        Col::PaymentSystem => b.str(ev.payment_system.as_ref().map(|v| v.0.as_ref())),
        Col::AccountRef => b.str(ev.account_ref.as_ref().map(|v| v.0.as_ref())),
        Col::DetectorScore => b.f64(ev.detector_score),
        Col::Id | Col::OccurredAt | Col::LocalDate => {}
    }
    Ok(())
}

/// The error of a record read without its cell.
fn no_cell() -> SqlError {
    SqlError::internal("a stored event record has no cell")
}

/// Days since 1970-01-01 of a calendar date.
pub(crate) fn date_to_days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// The calendar date of a day count since 1970-01-01.
pub(crate) fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_DAYS_FROM_CE)?)
}

/// The first instant (microseconds, UTC) of `date` in [`TIME_ZONE`].
pub(crate) fn local_day_start(date: NaiveDate) -> Option<i64> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    let local = TIME_ZONE.from_local_datetime(&midnight).earliest()?;
    Some(local.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_hold_every_model_value_once() {
        assert_eq!(DICTS.kind, ["incident", "camera_alert", "fraud_flag"]);
        let mut seen = std::collections::HashSet::new();
        assert!(DICTS.any_category.iter().all(|c| seen.insert(*c)));
        assert!(DICTS.any_category.len() < 127);
        for c in IncidentCategory::ALL {
            assert!(DICTS.any_category.contains(&c.as_str()));
        }
    }

    #[test]
    fn kinds_are_recognised_from_the_first_bytes() {
        let rec = b"\x01{\"event\":{\"kind\":\"camera_alert\",\"id\":\"x\"}}";
        assert_eq!(peek_kind(rec), Some(EventKind::CameraAlert));
        assert_eq!(peek_kind(b"\x01{\"cell\":1}"), None);
        assert_eq!(peek_kind(b"\x03{\"event\":{\"kind\":\"incident\""), None);
        assert_eq!(peek_kind(b"\x02\x02"), Some(EventKind::FraudFlag));
        assert_eq!(peek_kind(b"\x02\x09"), None);
    }

    #[test]
    fn days_round_trip() {
        let date = NaiveDate::from_ymd_opt(2026, 5, 1).expect("date");
        let days = date_to_days(date);
        assert_eq!(days, 20_574);
        assert_eq!(days_to_date(days), Some(date));
        // Midnight in Tashkent is 19:00 UTC the day before.
        let start = local_day_start(date).expect("start");
        assert_eq!(
            chrono::DateTime::from_timestamp_micros(start)
                .expect("time")
                .to_rfc3339(),
            "2026-04-30T19:00:00+00:00"
        );
    }
}
