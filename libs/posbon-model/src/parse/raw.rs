//! The raw input form: the flat, all-optional [`RawEvent`] that the fast path
//! deserializes into, borrowing strings from the input where it can.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::CowStr;

use crate::event::{
    Detection, EventKind, FraudChannel, FraudScheme, IncidentCategory, IncidentFlags,
    IncidentStatus, PaymentSystem,
};

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
    pub(super) kind: Option<EventKind>,
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) id: Option<CowStr<'a>>,
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) occurred_at: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "some_map")]
    pub(super) location: Option<RawLocation>,
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) source: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "attributes_de")]
    pub(super) attributes: Option<BTreeMap<String, String>>,
    // incident
    #[serde(default, deserialize_with = "some")]
    pub(super) category: Option<IncidentCategory>,
    #[serde(default, deserialize_with = "some")]
    pub(super) severity: Option<i64>,
    #[serde(default, deserialize_with = "some_map")]
    pub(super) flags: Option<IncidentFlags>,
    #[serde(default, deserialize_with = "some")]
    pub(super) status: Option<IncidentStatus>,
    /// Outer `Some` = present (possibly `null`).
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) description: Option<Option<CowStr<'a>>>,
    // camera_alert
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) camera_id: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "some")]
    pub(super) detection: Option<Detection>,
    #[serde(default, deserialize_with = "some")]
    pub(super) confidence: Option<f64>,
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) model: Option<CowStr<'a>>,
    /// Outer `Some` = present (possibly `null`).
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) snapshot_uri: Option<Option<CowStr<'a>>>,
    // fraud_flag
    #[serde(default, deserialize_with = "some")]
    pub(super) scheme: Option<FraudScheme>,
    #[serde(default, deserialize_with = "some")]
    pub(super) channel: Option<FraudChannel>,
    #[serde(default, deserialize_with = "some")]
    pub(super) amount_uzs: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    pub(super) payment_system: Option<PaymentSystem>,
    #[serde(default, borrow, deserialize_with = "some")]
    pub(super) account_ref: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "some")]
    pub(super) detector_score: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocation {
    #[serde(default, deserialize_with = "some")]
    pub(super) lat: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    pub(super) lng: Option<f64>,
    #[serde(default)]
    pub(super) accuracy_m: Option<f64>,
}

impl RawEvent<'_> {
    /// The fields of `kind`, each with whether it is present.
    pub(super) fn fields_present(
        &self,
        kind: EventKind,
    ) -> impl Iterator<Item = (&'static str, bool)> {
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
