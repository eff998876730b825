//! The decoder of the first record version: the JSON of the enriched event,
//! read field by field, skipping what the columns do not need.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::record::{Attrs, Ev, Need, Rec};
use posbon_model::CowStr;

/// The version byte of JSON records ([`posbon_store::codec`]).
pub(super) const JSON_V1: u8 = posbon_store::codec::EVENT_JSON_V1;

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

/// Reads a record's map, keeping the fields in `Need`.
pub(super) struct RecSeed(pub(super) Need);

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
                    let text: CowStr<'_> = map.next_value()?;
                    let cell = u64::from_str_radix(&text.0, 16)
                        .map_err(|_| serde::de::Error::custom("stored cell is not hexadecimal"))?;
                    rec.cell = Some(cell);
                }
                b"mahalla_id" if need.has(Need::MAHALLA) => rec.mahalla_id = map.next_value()?,
                b"district_id" if need.has(Need::DISTRICT) => rec.district_id = map.next_value()?,
                b"region_id" if need.has(Need::REGION) => rec.region_id = map.next_value()?,
                b"ingested_at" if need.has(Need::INGESTED_AT) => {
                    let text: CowStr<'_> = map.next_value()?;
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
