//! Public event builders for tests and benchmarks: [`incident`],
//! [`enriched_in_cell`] and the [`scattered_events`] workload.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use posbon_geo::{CellIndex, LatLng};
use posbon_model::{EnrichedEvent, Event, EventHeader, Incident, IncidentCategory};

use super::STORAGE;

/// A Tashkent point in the same res-7 cell as `41.3111, 69.2797`.
pub(super) const CENTRE: (f64, f64) = (41.3111, 69.2797);

/// An incident with the given id, time and place (a fixture for tests and
/// benchmarks).
pub fn incident(id: &str, occurred_at: DateTime<FixedOffset>, lat: f64, lng: f64) -> Event {
    Event::Incident(Incident {
        header: EventHeader {
            id: id.to_owned(),
            occurred_at,
            location: posbon_model::Location::new(lat, lng),
            source: "iiv-102".to_owned(),
            attributes: Default::default(),
        },
        category: IncidentCategory::Theft,
        severity: 2,
        flags: Default::default(),
        status: Default::default(),
        description: Some("telefon o'g'irlandi".to_owned()),
    })
}

/// An incident at the centre of `cell`, enriched with `cell` at its own
/// resolution and the given mahalla (a fixture for tests and benchmarks).
/// `occurred_at` is shown with Tashkent's `+05:00` offset.
pub fn enriched_in_cell(
    id: &str,
    occurred_at: DateTime<Utc>,
    cell: CellIndex,
    mahalla_id: Option<&str>,
) -> EnrichedEvent {
    let centre = LatLng::from(cell);
    let tashkent = FixedOffset::east_opt(5 * 3600).expect("valid offset");
    EnrichedEvent {
        event: incident(
            id,
            occurred_at.with_timezone(&tashkent),
            centre.lat(),
            centre.lng(),
        ),
        cell: posbon_model::CellId::new(u64::from(cell)).expect("h3 index fits"),
        mahalla_id: mahalla_id.map(str::to_owned),
        district_id: mahalla_id.map(|_| "chilonzor".to_owned()),
        region_id: mahalla_id.map(|_| "tashkent".to_owned()),
        ingested_at: occurred_at + Duration::seconds(2),
    }
}

/// `count` incidents scattered around central Tashkent (roughly normal,
/// deviation about `spread` degrees), at pseudo-random times over `days`
/// days from 2026-05-01 UTC, with ids `<prefix>-0000000`, …: the same
/// deterministic workload for the tests and benchmarks that need many
/// events over many cells and regions.
pub fn scattered_events(prefix: &str, count: usize, spread: f64, days: u32) -> Vec<EnrichedEvent> {
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let span_ms = u64::from(days) * 86_400_000;
    (0..count)
        .map(|i| {
            let lat = 41.31 + spread * rng.normal() / 1.4;
            let lng = 69.25 + spread * rng.normal() / 1.4;
            let cell = LatLng::new(lat, lng).expect("valid").to_cell(STORAGE);
            let at = t0() + Duration::milliseconds((rng.next() % span_ms) as i64);
            enriched_in_cell(&format!("{prefix}-{i:07}"), at, cell, Some("m-1"))
        })
        .collect()
}

/// A small deterministic generator (xorshift).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Roughly normal, mean 0, deviation 1 (a sum of uniforms).
    fn normal(&mut self) -> f64 {
        (0..6)
            .map(|_| (self.next() % 10_000) as f64 / 10_000.0)
            .sum::<f64>()
            - 3.0
    }
}

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid time")
}
