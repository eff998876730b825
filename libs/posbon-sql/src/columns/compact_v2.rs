//! The decoder of the second record version: the compact form of the
//! enriched event ([`posbon_model::compact`]), read without allocating.

use posbon_model::compact;

use super::record::{Attrs, Ev, Flags, Loc, Rec};
use posbon_model::CowStr;

/// The version byte of compact records ([`posbon_store::codec`]).
pub(super) const COMPACT_V2: u8 = posbon_store::codec::EVENT_COMPACT_V2;

impl<'a> Rec<'a> {
    /// The fields of a compact record (all of them: reading one costs no
    /// allocation).
    pub(super) fn of_compact(v: &compact::View<'a>) -> Self {
        let s = |x: &'a str| CowStr::borrowed(x);
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
