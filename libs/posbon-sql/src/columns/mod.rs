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
//!
//! The parts: this module holds the column layout of the tables (`Col`,
//! `TableDef`) and the builder of one Arrow column; `record` the borrowed
//! record both versions decode into; `json_v1` and `compact_v2` the decoder
//! of each record version; `decoder` the `Decoder` that picks one per record
//! and appends the projected columns.

mod compact_v2;
mod decoder;
mod json_v1;
mod record;

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, DictionaryArray, Float64Builder, Int8Builder,
    StringArray, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef, TimeUnit};
use posbon_model::{
    Detection, EventKind, FraudChannel, FraudScheme, IncidentCategory, IncidentStatus,
    PaymentSystem,
};

pub(crate) use decoder::{Decoder, KeyParts};

/// The time zone of `local_date` and of the daily report: the one local
/// day of Posbon ([`posbon_model::LOCAL_TIME_ZONE`]).
pub use posbon_model::LOCAL_TIME_ZONE as TIME_ZONE;

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
