//! Test support: a small grid registry and builders for enriched events.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use posbon_geo::{Registry, RegistryOptions};
use posbon_model::{
    CameraAlert, Detection, EnrichedEvent, Event, EventHeader, FraudChannel, FraudFlag,
    FraudScheme, Incident, IncidentCategory, Location, PaymentSystem,
};

/// Side of a grid mahalla, degrees (about 1.1 km north-south).
pub const SIDE: f64 = 0.01;
/// South-west corner of the grid.
pub const LAT0: f64 = 41.25;
pub const LNG0: f64 = 69.20;

/// `n` × `n` square mahallas `m-<row>-<col>` in one district.
pub fn grid_geojson(n: usize) -> String {
    let mut features = Vec::new();
    for r in 0..n {
        for c in 0..n {
            let (y0, x0) = (LAT0 + r as f64 * SIDE, LNG0 + c as f64 * SIDE);
            let (y1, x1) = (y0 + SIDE, x0 + SIDE);
            features.push(format!(
                r#"{{"type":"Feature","properties":{{"id":"m-{r}-{c}","name":"M {r} {c}","district":"grid","region":"tashkent","population":5000}},"geometry":{{"type":"Polygon","coordinates":[[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]]}}}}"#
            ));
        }
    }
    format!(
        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
        features.join(",")
    )
}

pub fn registry(n: usize) -> Arc<Registry> {
    Arc::new(
        Registry::from_geojson(grid_geojson(n).as_bytes(), &RegistryOptions::default())
            .expect("grid registry"),
    )
}

/// Centre of mahalla `m-<row>-<col>`, nudged by `(dy, dx)` metres.
pub fn point(row: usize, col: usize, dy_m: f64, dx_m: f64) -> (f64, f64) {
    let lat = LAT0 + (row as f64 + 0.5) * SIDE + dy_m / 111_132.0;
    let lng = LNG0 + (col as f64 + 0.5) * SIDE + dx_m / (111_132.0 * lat.to_radians().cos());
    (lat, lng)
}

/// 2026-11-02T00:00:00Z plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .expect("valid time")
        + TimeDelta::minutes(minutes)
}

fn header(id: &str, t: DateTime<Utc>, (lat, lng): (f64, f64)) -> EventHeader {
    EventHeader {
        id: id.to_owned(),
        occurred_at: t.fixed_offset(),
        location: Location::new(lat, lng),
        source: "test".to_owned(),
        attributes: Default::default(),
    }
}

pub fn incident(
    id: &str,
    t: DateTime<Utc>,
    p: (f64, f64),
    category: IncidentCategory,
    severity: u8,
) -> Event {
    Event::Incident(Incident {
        header: header(id, t, p),
        category,
        severity,
        flags: Default::default(),
        status: Default::default(),
        description: None,
    })
}

pub fn camera(
    id: &str,
    t: DateTime<Utc>,
    p: (f64, f64),
    detection: Detection,
    confidence: f64,
) -> Event {
    Event::CameraAlert(CameraAlert {
        header: header(id, t, p),
        camera_id: "cam-1".to_owned(),
        detection,
        confidence,
        model: "test-model".to_owned(),
        snapshot_uri: None,
    })
}

pub fn fraud(
    id: &str,
    t: DateTime<Utc>,
    p: (f64, f64),
    scheme: FraudScheme,
    amount_uzs: f64,
) -> Event {
    Event::FraudFlag(FraudFlag {
        header: header(id, t, p),
        scheme,
        channel: FraudChannel::PhoneCall,
        amount_uzs,
        payment_system: PaymentSystem::Uzcard,
        account_ref: "hmac1:00".to_owned(),
        detector_score: 0.9,
    })
}

/// Enriches an event the way ingest does: its cell and mahalla from the registry.
pub fn enrich(registry: &Registry, event: Event) -> EnrichedEvent {
    let ingested_at = event.occurred_at().with_timezone(&Utc);
    posbon_sim::enrich(registry, event, ingested_at).expect("valid location")
}

/// A deterministic pseudo-random generator for background streams.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f64() * n as f64) as usize).min(n - 1)
    }
}

/// A quiet background over `days` days from `at(0)`: in every mahalla of an
/// `n` × `n` grid, about `per_day` incidents a day of mixed categories.
pub fn background(
    registry: &Registry,
    n: usize,
    days: i64,
    per_day: f64,
    seed: u64,
) -> Vec<EnrichedEvent> {
    let mut rng = Lcg(seed);
    let mut out = Vec::new();
    let cats = [
        IncidentCategory::Theft,
        IncidentCategory::Hooliganism,
        IncidentCategory::Fraud,
        IncidentCategory::PublicOrder,
    ];
    let total = (per_day * days as f64 * (n * n) as f64) as usize;
    let minutes = days * 24 * 60;
    let mut times: Vec<i64> = (0..total)
        .map(|_| (rng.next_f64() * minutes as f64) as i64)
        .collect();
    times.sort_unstable();
    for (k, t) in times.into_iter().enumerate() {
        let (r, c) = (rng.below(n), rng.below(n));
        let p = point(
            r,
            c,
            (rng.next_f64() - 0.5) * 800.0,
            (rng.next_f64() - 0.5) * 600.0,
        );
        let e = incident(
            &format!("bg-{seed}-{k}"),
            at(t),
            p,
            cats[rng.below(cats.len())],
            2,
        );
        out.push(enrich(registry, e));
    }
    out
}
