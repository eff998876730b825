//! The test dataset: a small simulated city and its events in a memory store.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone, Utc};
use posbon_geo::Registry;
use posbon_model::{
    EnrichedEvent, Escalation, EscalationRecord, EscalationStatus, Event, RiskLevel,
};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimBody, SimRegistry, city_registry};
use posbon_store::{EventStoreExt, MemoryStore, Store};

pub struct Fixture {
    pub registry: Arc<Registry>,
    pub events: Vec<EnrichedEvent>,
}

pub fn tashkent() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600).expect("offset")
}

pub fn start() -> DateTime<FixedOffset> {
    tashkent()
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("time")
}

pub fn enrich(registry: &Registry, event: Event) -> EnrichedEvent {
    let ingested_at = event.occurred_at().with_timezone(&Utc) + TimeDelta::seconds(1);
    posbon_sim::enrich(registry, event, ingested_at).expect("location")
}

pub fn build(start: DateTime<FixedOffset>, days: i64) -> Fixture {
    let city = city_registry(&CityOptions {
        seed: 5,
        mahallas: 40,
    })
    .expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_generated(&city).expect("sim"));
    let stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 3,
            rate_per_hour: 40.0,
            duration: TimeDelta::days(days),
            start,
            bad_fraction: 0.0,
            situations: Default::default(),
        },
    )
    .expect("stream");
    let mut events: Vec<EnrichedEvent> = stream
        .filter_map(|item| match item.body {
            SimBody::Valid { event, .. } => Some(enrich(&registry, *event)),
            SimBody::Bad { .. } => None,
        })
        .collect();
    // Two events outside every mahalla on each day.
    let extra: Vec<EnrichedEvent> = (0..days * 2)
        .map(|i| {
            let mut e = events[usize::try_from(i).expect("index") * 7].event.clone();
            let h = e.header_mut();
            h.id = format!("outside-{i}");
            h.location.lat = 40.5;
            h.location.lng = 70.9;
            h.occurred_at = start + TimeDelta::hours(12 * i + 3);
            enrich(&registry, e)
        })
        .collect();
    events.extend(extra);
    Fixture { registry, events }
}

pub async fn store_of(events: &[EnrichedEvent]) -> Store {
    let store: Store = Arc::new(MemoryStore::new());
    for chunk in events.chunks(2000) {
        store.put_events(chunk).await.expect("put");
    }
    store
}

/// An escalation record of `mahalla` at `level`, opened at `opened` and,
/// with `closed`, closed then with that status.
pub fn escalation(
    n: u64,
    mahalla: &str,
    level: RiskLevel,
    opened: DateTime<Utc>,
    closed: Option<(DateTime<Utc>, EscalationStatus)>,
) -> EscalationRecord {
    let mut r = EscalationRecord::opened(
        Escalation {
            id: Escalation::deterministic_id(mahalla, "test", n),
            mahalla_id: mahalla.into(),
            district_id: "d".into(),
            region_id: "r".into(),
            level,
            previous_level: RiskLevel::Normal,
            score: 4.0,
            rule: "test".into(),
            measure: None,
            counts: BTreeMap::new(),
            hot_cells: vec![],
            evidence: vec![],
            window_start: opened,
            window_end: opened,
            opened_at: opened,
            status: EscalationStatus::Open,
        },
        n,
        opened,
    );
    if let Some((t, status)) = closed {
        r.closed_at = Some(t);
        r.escalation.status = status;
    }
    r
}
