//! The compact binary form of an [`EnrichedEvent`]: what the store keeps as
//! an event record (`posbon_store::codec`), about a third of the bytes of its
//! JSON and read without parsing text.
//!
//! Fields follow one another in a fixed order, with no names and no tags
//! (a new layout gets a new record version in the store, not a changed
//! one):
//!
//! | field | encoding |
//! |---|---|
//! | kind | `u8`: 0 incident, 1 camera alert, 2 fraud flag |
//! | id, source | string: LEB128 length, then UTF-8 bytes |
//! | occurred_at | `i64` seconds since the epoch, `u32` nanoseconds, `i32` offset seconds east of UTC |
//! | lat, lng | `f64` each |
//! | accuracy_m | `u8` 0 (absent) or 1, then the `f64` when present |
//! | attributes | LEB128 count, then key and value strings in key order |
//! | cell | `u64` |
//! | mahalla, district, region ids | optional string: LEB128 length + 1, 0 for `null` |
//! | ingested_at | `i64` seconds, `u32` nanoseconds (UTC) |
//! | incident | category `u8`, severity `u8`, flags `u8` (bit 0 `victim_minor` .. bit 5 `domestic`), status `u8`, description (optional string) |
//! | camera alert | camera id (string), detection `u8`, confidence `f64`, model (string), snapshot URI (optional string) |
//! | fraud flag | scheme `u8`, channel `u8`, amount `f64`, payment system `u8`, account reference (string), detector score `f64` |
//!
//! Numbers are little-endian. An enumerated value is its position in the
//! enum's `ALL` list: the lists only ever grow at the end (a test pins
//! them), so a stored code keeps its meaning.
//!
//! [`view`] reads a record without allocating, for readers that need only
//! some fields (the SQL engine); [`decode`] builds the event. Both check
//! the structure (lengths, UTF-8, codes, the cell and the date-times) and
//! fail with a [`CompactError`] that says what is wrong; they do not re-check
//! the event rules that ingest applied before the record was written.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use crate::cell::CellId;
use crate::enriched::EnrichedEvent;
use crate::event::{
    CameraAlert, Detection, Event, EventHeader, EventKind, FraudChannel, FraudFlag, FraudScheme,
    Incident, IncidentCategory, IncidentFlags, IncidentStatus, Location, PaymentSystem,
};

/// A record that is not a valid compact event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compact event record: {0}")]
pub struct CompactError(String);

impl CompactError {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// Appends the compact form of `event` to `out`.
pub fn encode(event: &EnrichedEvent, out: &mut Vec<u8>) {
    let ev = &event.event;
    let header = ev.header();
    out.push(code(EventKind::ALL, ev.kind()));
    put_str(out, &header.id);
    put_time(out, &header.occurred_at);
    out.extend_from_slice(&header.occurred_at.offset().local_minus_utc().to_le_bytes());
    put_f64(out, header.location.lat);
    put_f64(out, header.location.lng);
    match header.location.accuracy_m {
        Some(a) => {
            out.push(1);
            put_f64(out, a);
        }
        None => out.push(0),
    }
    put_str(out, &header.source);
    put_len(out, header.attributes.len());
    for (k, v) in &header.attributes {
        put_str(out, k);
        put_str(out, v);
    }
    out.extend_from_slice(&event.cell.get().to_le_bytes());
    put_opt_str(out, event.mahalla_id.as_deref());
    put_opt_str(out, event.district_id.as_deref());
    put_opt_str(out, event.region_id.as_deref());
    put_time(out, &event.ingested_at);
    match ev {
        Event::Incident(e) => {
            out.push(code(IncidentCategory::ALL, e.category));
            out.push(e.severity);
            out.push(flag_bits(&e.flags));
            out.push(code(IncidentStatus::ALL, e.status));
            put_opt_str(out, e.description.as_deref());
        }
        Event::CameraAlert(e) => {
            put_str(out, &e.camera_id);
            out.push(code(Detection::ALL, e.detection));
            put_f64(out, e.confidence);
            put_str(out, &e.model);
            put_opt_str(out, e.snapshot_uri.as_deref());
        }
        Event::FraudFlag(e) => {
            out.push(code(FraudScheme::ALL, e.scheme));
            out.push(code(FraudChannel::ALL, e.channel));
            put_f64(out, e.amount_uzs);
            out.push(code(PaymentSystem::ALL, e.payment_system));
            put_str(out, &e.account_ref);
            put_f64(out, e.detector_score);
        }
    }
}

/// The kind of a compact record from its first byte, without reading the
/// rest; `None` when the byte is not a kind.
pub fn peek_kind(bytes: &[u8]) -> Option<EventKind> {
    EventKind::ALL.get(usize::from(*bytes.first()?)).copied()
}

/// A compact record read in place: strings borrow from the record.
#[derive(Debug, Clone, PartialEq)]
pub struct View<'a> {
    /// The event id.
    pub id: &'a str,
    /// `occurred_at` with the producer's offset.
    pub occurred_at: DateTime<FixedOffset>,
    /// Where it happened.
    pub location: Location,
    /// Producing system.
    pub source: &'a str,
    /// Producer-specific extras, in key order.
    pub attributes: Attributes<'a>,
    /// H3 cell at the storage resolution.
    pub cell: CellId,
    /// Mahalla, `None` when unassigned.
    pub mahalla_id: Option<&'a str>,
    /// District, `None` when unassigned.
    pub district_id: Option<&'a str>,
    /// Region, `None` when unassigned.
    pub region_id: Option<&'a str>,
    /// When Posbon ingested the event.
    pub ingested_at: DateTime<Utc>,
    /// The fields of the event's kind.
    pub body: Body<'a>,
}

/// The kind-specific fields of a [`View`].
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// An incident.
    Incident {
        /// Crime category.
        category: IncidentCategory,
        /// Severity 1..=5.
        severity: u8,
        /// Victim and offender flags.
        flags: IncidentFlags,
        /// Report status.
        status: IncidentStatus,
        /// Free text.
        description: Option<&'a str>,
    },
    /// A camera alert.
    CameraAlert {
        /// Camera identifier.
        camera_id: &'a str,
        /// What was detected.
        detection: Detection,
        /// Model confidence.
        confidence: f64,
        /// Model name and version.
        model: &'a str,
        /// Snapshot location.
        snapshot_uri: Option<&'a str>,
    },
    /// A fraud flag.
    FraudFlag {
        /// Fraud scheme.
        scheme: FraudScheme,
        /// Channel.
        channel: FraudChannel,
        /// Amount in soum.
        amount_uzs: f64,
        /// Payment system.
        payment_system: PaymentSystem,
        /// Pseudonymised account reference.
        account_ref: &'a str,
        /// Detector score.
        detector_score: f64,
    },
}

impl Body<'_> {
    /// The event kind of these fields.
    pub fn kind(&self) -> EventKind {
        match self {
            Body::Incident { .. } => EventKind::Incident,
            Body::CameraAlert { .. } => EventKind::CameraAlert,
            Body::FraudFlag { .. } => EventKind::FraudFlag,
        }
    }
}

/// The attributes of a [`View`], read on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes<'a> {
    len: usize,
    bytes: &'a [u8],
}

impl<'a> Attributes<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in key order (checked when the view was read).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut r = Reader { bytes: self.bytes };
        (0..self.len).map_while(move |_| Some((r.str().ok()?, r.str().ok()?)))
    }
}

/// Reads a compact record without allocating.
pub fn view(bytes: &[u8]) -> Result<View<'_>, CompactError> {
    let mut r = Reader { bytes };
    let kind = r.code(EventKind::ALL, "kind")?;
    let id = r.str()?;
    if !crate::is_valid_id(id) {
        return Err(CompactError::new(format!("invalid event id {id:?}")));
    }
    let occurred = r.time("occurred_at")?;
    let offset = r.i32()?;
    // RFC 3339 offsets are whole minutes: one with seconds never came from an
    // event, and its JSON (`-06:11`) would name another instant.
    let offset = FixedOffset::east_opt(offset)
        .filter(|_| offset % 60 == 0)
        .ok_or_else(|| CompactError::new(format!("occurred_at: invalid offset {offset} s")))?;
    // The producer's local time must be one RFC 3339 can write too.
    let occurred_at = occurred.with_timezone(&offset);
    if !occurred
        .naive_utc()
        .checked_add_offset(offset)
        .is_some_and(|local| (0..=9999).contains(&local.year()))
    {
        return Err(CompactError::new(format!(
            "occurred_at: {occurred} at offset {offset} is not within the years 0000..9999"
        )));
    }
    let location = Location {
        lat: r.f64()?,
        lng: r.f64()?,
        accuracy_m: match r.u8()? {
            0 => None,
            1 => Some(r.f64()?),
            b => return Err(CompactError::new(format!("accuracy_m: bad marker {b}"))),
        },
    };
    let source = r.str()?;
    let count = r.len()?;
    let start = r.bytes;
    let mut last: Option<&str> = None;
    for _ in 0..count {
        let key = r.str()?;
        r.str()?;
        if last.is_some_and(|l| l >= key) {
            return Err(CompactError::new("attributes out of key order"));
        }
        last = Some(key);
    }
    let attributes = Attributes {
        len: count,
        bytes: &start[..start.len() - r.bytes.len()],
    };
    let cell = r.u64()?;
    let cell = CellId::new(cell)
        .ok_or_else(|| CompactError::new(format!("cell {cell:#x} out of range")))?;
    let mahalla_id = r.opt_str()?;
    let district_id = r.opt_str()?;
    let region_id = r.opt_str()?;
    let ingested_at = r.time("ingested_at")?;
    let body = match kind {
        EventKind::Incident => Body::Incident {
            category: r.code(IncidentCategory::ALL, "category")?,
            severity: r.u8()?,
            flags: flags_of(r.u8()?)?,
            status: r.code(IncidentStatus::ALL, "status")?,
            description: r.opt_str()?,
        },
        EventKind::CameraAlert => Body::CameraAlert {
            camera_id: r.str()?,
            detection: r.code(Detection::ALL, "detection")?,
            confidence: r.f64()?,
            model: r.str()?,
            snapshot_uri: r.opt_str()?,
        },
        EventKind::FraudFlag => Body::FraudFlag {
            scheme: r.code(FraudScheme::ALL, "scheme")?,
            channel: r.code(FraudChannel::ALL, "channel")?,
            amount_uzs: r.f64()?,
            payment_system: r.code(PaymentSystem::ALL, "payment_system")?,
            account_ref: r.str()?,
            detector_score: r.f64()?,
        },
    };
    if !r.bytes.is_empty() {
        return Err(CompactError::new(format!(
            "{} bytes after the last field",
            r.bytes.len()
        )));
    }
    Ok(View {
        id,
        occurred_at,
        location,
        source,
        attributes,
        cell,
        mahalla_id,
        district_id,
        region_id,
        ingested_at,
        body,
    })
}

/// Decodes a compact record into the event.
pub fn decode(bytes: &[u8]) -> Result<EnrichedEvent, CompactError> {
    view(bytes).map(|v| v.to_event())
}

impl View<'_> {
    /// The event kind.
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// The event, owned.
    pub fn to_event(&self) -> EnrichedEvent {
        let header = EventHeader {
            id: self.id.to_owned(),
            occurred_at: self.occurred_at,
            location: self.location,
            source: self.source.to_owned(),
            attributes: self
                .attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<BTreeMap<_, _>>(),
        };
        let event = match self.body {
            Body::Incident {
                category,
                severity,
                flags,
                status,
                description,
            } => Event::Incident(Incident {
                header,
                category,
                severity,
                flags,
                status,
                description: description.map(str::to_owned),
            }),
            Body::CameraAlert {
                camera_id,
                detection,
                confidence,
                model,
                snapshot_uri,
            } => Event::CameraAlert(CameraAlert {
                header,
                camera_id: camera_id.to_owned(),
                detection,
                confidence,
                model: model.to_owned(),
                snapshot_uri: snapshot_uri.map(str::to_owned),
            }),
            Body::FraudFlag {
                scheme,
                channel,
                amount_uzs,
                payment_system,
                account_ref,
                detector_score,
            } => Event::FraudFlag(FraudFlag {
                header,
                scheme,
                channel,
                amount_uzs,
                payment_system,
                account_ref: account_ref.to_owned(),
                detector_score,
            }),
        };
        EnrichedEvent {
            event,
            cell: self.cell,
            mahalla_id: self.mahalla_id.map(str::to_owned),
            district_id: self.district_id.map(str::to_owned),
            region_id: self.region_id.map(str::to_owned),
            ingested_at: self.ingested_at,
        }
    }
}

/// The code of `value`: its position in `all`.
fn code<T: PartialEq>(all: &[T], value: T) -> u8 {
    // Every enum has fewer than 256 values (a test checks it).
    all.iter().position(|v| *v == value).unwrap_or(0) as u8
}

fn flag_bits(f: &IncidentFlags) -> u8 {
    u8::from(f.victim_minor)
        | u8::from(f.victim_youth) << 1
        | u8::from(f.victim_woman) << 2
        | u8::from(f.offender_minor) << 3
        | u8::from(f.offender_youth) << 4
        | u8::from(f.domestic) << 5
}

fn flags_of(bits: u8) -> Result<IncidentFlags, CompactError> {
    if bits >> 6 != 0 {
        return Err(CompactError::new(format!(
            "flags: unknown bits {bits:#04x}"
        )));
    }
    Ok(IncidentFlags {
        victim_minor: bits & 1 != 0,
        victim_youth: bits & 2 != 0,
        victim_woman: bits & 4 != 0,
        offender_minor: bits & 8 != 0,
        offender_youth: bits & 16 != 0,
        domestic: bits & 32 != 0,
    })
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            put_len(out, s.len() + 1);
            out.extend_from_slice(s.as_bytes());
        }
        None => out.push(0),
    }
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_time<Tz: chrono::TimeZone>(out: &mut Vec<u8>, t: &DateTime<Tz>) {
    out.extend_from_slice(&t.timestamp().to_le_bytes());
    out.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
}

/// A cursor over a record.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CompactError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| CompactError::new("record ends early"))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, CompactError> {
        self.take::<1>().map(|[b]| b)
    }

    fn i32(&mut self) -> Result<i32, CompactError> {
        self.take().map(i32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, CompactError> {
        self.take().map(u64::from_le_bytes)
    }

    fn f64(&mut self) -> Result<f64, CompactError> {
        self.take().map(f64::from_le_bytes)
    }

    fn len(&mut self) -> Result<usize, CompactError> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= usize::from(b & 0x7f)
                .checked_shl(shift)
                .filter(|v| v >> shift == usize::from(b & 0x7f))
                .ok_or_else(|| CompactError::new("length overflows"))?;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CompactError::new("length overflows"))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], CompactError> {
        if n > self.bytes.len() {
            return Err(CompactError::new(format!(
                "a string of {n} bytes runs past the record's end"
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'a str, CompactError> {
        let n = self.len()?;
        let bytes = self.bytes(n)?;
        std::str::from_utf8(bytes).map_err(|_| CompactError::new("a string is not UTF-8"))
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, CompactError> {
        match self.len()? {
            0 => Ok(None),
            n => {
                let bytes = self.bytes(n - 1)?;
                std::str::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| CompactError::new("a string is not UTF-8"))
            }
        }
    }

    fn code<T: Copy>(&mut self, all: &[T], what: &str) -> Result<T, CompactError> {
        let b = self.u8()?;
        all.get(usize::from(b))
            .copied()
            .ok_or_else(|| CompactError::new(format!("{what}: unknown code {b}")))
    }

    fn time(&mut self, what: &str) -> Result<DateTime<Utc>, CompactError> {
        let secs = i64::from_le_bytes(self.take()?);
        let nanos = u32::from_le_bytes(self.take()?);
        // Years 0000..9999: the times RFC 3339 can write, so every time read
        // here has a JSON form that reads back.
        DateTime::from_timestamp(secs, nanos)
            .filter(|t| (0..=9999).contains(&t.year()))
            .ok_or_else(|| CompactError::new(format!("{what}: invalid time {secs} s {nanos} ns")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are positions in `ALL`: these lists may only grow at the end,
    /// or stored records change meaning.
    #[test]
    fn codes_are_stable() {
        fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|v| name(*v)).collect()
        }
        assert_eq!(
            names(EventKind::ALL, EventKind::as_str),
            ["incident", "camera_alert", "fraud_flag"]
        );
        assert_eq!(
            names(IncidentCategory::ALL, IncidentCategory::as_str),
            [
                "theft",
                "robbery",
                "assault",
                "homicide",
                "drug_trafficking",
                "drug_use",
                "domestic_violence",
                "fraud",
                "cybercrime",
                "vandalism",
                "hooliganism",
                "weapons",
                "public_order",
                "other"
            ]
        );
        assert_eq!(
            names(IncidentStatus::ALL, IncidentStatus::as_str),
            [
                "reported",
                "confirmed",
                "under_investigation",
                "closed",
                "unfounded"
            ]
        );
        assert_eq!(
            names(Detection::ALL, Detection::as_str),
            [
                "drug_handoff",
                "weapon",
                "fight",
                "crowd",
                "loitering",
                "intrusion",
                "plate_match",
                "other"
            ]
        );
        assert_eq!(
            names(FraudScheme::ALL, FraudScheme::as_str),
            [
                "card_fraud",
                "phishing",
                "account_takeover",
                "scam_call",
                "fake_marketplace",
                "investment_scam",
                "other"
            ]
        );
        assert_eq!(
            names(FraudChannel::ALL, FraudChannel::as_str),
            [
                "card",
                "online_banking",
                "mobile_app",
                "phone_call",
                "sms",
                "messenger",
                "marketplace",
                "other"
            ]
        );
        assert_eq!(
            names(PaymentSystem::ALL, PaymentSystem::as_str),
            ["uzcard", "humo", "visa", "mastercard", "unionpay", "other"]
        );
    }

    /// Found by fuzzing (`posbon-fuzz`, target `compact`): a record whose
    /// offset had seconds decoded, and its JSON dropped them, naming another
    /// instant.
    #[test]
    fn offsets_with_seconds_are_refused() {
        let mut record = vec![0u8];
        put_str(&mut record, "iiv-1");
        record.extend_from_slice(&1_777_627_800i64.to_le_bytes());
        record.extend_from_slice(&0u32.to_le_bytes());
        let at = record.len();
        record.extend_from_slice(&(-(6 * 3600 + 11 * 60 + 28i32)).to_le_bytes());
        let err = view(&record).expect_err("seconds in the offset");
        assert_eq!(
            err.to_string(),
            "invalid compact event record: occurred_at: invalid offset -22288 s"
        );
        // A whole-minute offset gets past the check (and the record then ends early).
        record[at..at + 4].copy_from_slice(&(-(6 * 3600 + 11 * 60i32)).to_le_bytes());
        assert_eq!(
            view(&record).expect_err("ends early").to_string(),
            "invalid compact event record: record ends early"
        );
    }

    /// Found by fuzzing (`posbon-fuzz`, target `compact`): a record at the
    /// end of chrono's range with a positive offset decoded, and writing
    /// its JSON panicked ("Local time out of range for `NaiveDateTime`");
    /// a year past 9999 decoded to JSON that Posbon itself refuses.
    #[test]
    fn times_outside_rfc_3339_years_are_refused() {
        let record = |secs: i64, offset: i32| {
            let mut r = vec![0u8];
            put_str(&mut r, "iiv-1");
            r.extend_from_slice(&secs.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&offset.to_le_bytes());
            view(&r).expect_err("ends early or refused").to_string()
        };
        let end_of_chrono = 8_210_266_876_799; // +262142-12-31T23:59:59Z
        let year_10000 = 253_402_300_800; // 10000-01-01T00:00:00Z
        let last_of_9999 = year_10000 - 1;
        let first_of_0000 = -62_167_219_200; // 0000-01-01T00:00:00Z
        for (secs, offset) in [
            (end_of_chrono, 3600),
            (year_10000, 0),
            (last_of_9999, 3600),
            (first_of_0000, -60),
        ] {
            assert!(
                record(secs, offset).contains("occurred_at:"),
                "{secs} s at {offset}: {}",
                record(secs, offset)
            );
        }
        for (secs, offset) in [(last_of_9999, 0), (first_of_0000, 0), (0, -86_340)] {
            assert!(
                record(secs, offset).contains("record ends early"),
                "{secs} s at {offset}: {}",
                record(secs, offset)
            );
        }
    }

    #[test]
    fn lengths_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, usize::MAX] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            assert_eq!(Reader { bytes: &out }.len(), Ok(n));
        }
        let overlong = [0xffu8; 11];
        assert!(Reader { bytes: &overlong }.len().is_err());
    }
}
