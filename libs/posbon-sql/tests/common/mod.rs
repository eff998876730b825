//! The test dataset: a small simulated city and three days of its events in
//! a memory store, the same on every run (fixed seeds).

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone, Utc};
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, Event};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimBody, SimRegistry, city_registry};
use posbon_sql::{SqlEngine, SqlLimits};
use posbon_store::{EventStore, EventStoreExt, KvPair, MemoryStore, Store};

/// The first instant of the data: 2026-05-01T00:00:00+05:00.
pub fn start() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(5 * 3600)
        .expect("offset")
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("time")
}

/// Days of data.
pub const DAYS: i64 = 3;

/// The dataset.
pub struct Fixture {
    pub registry: Arc<Registry>,
    pub events: Vec<EnrichedEvent>,
    pub store: Arc<MemoryStore>,
}

/// Enriches a simulated event the way ingest does: cell, mahalla, district,
/// region; ingested two seconds after it occurred.
pub fn enrich(registry: &Registry, event: Event) -> EnrichedEvent {
    let ingested_at = event.occurred_at().with_timezone(&Utc) + TimeDelta::seconds(2);
    let mut event = event;
    if let Event::FraudFlag(f) = &mut event {
        f.pseudonymise(&posbon_model::PseudonymKeys::single("k1", b"test key").expect("key"));
    }
    posbon_sim::enrich(registry, event, ingested_at).expect("valid location")
}

/// A city of 60 mahallas and `days` days of its events at `rate` per hour.
pub fn build(days: i64, rate: f64) -> Fixture {
    let city = city_registry(&CityOptions {
        seed: 11,
        mahallas: 60,
    })
    .expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_generated(&city).expect("sim registry"));
    let stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 7,
            rate_per_hour: rate,
            duration: TimeDelta::days(days),
            start: start(),
            bad_fraction: 0.0,
            situations: Default::default(),
        },
    )
    .expect("stream");
    let mut events = Vec::new();
    for item in stream {
        if let SimBody::Valid { event, .. } = item.body {
            events.push(enrich(&registry, *event));
        }
    }
    // A few events outside every mahalla (far from the city).
    let firsts: Vec<EnrichedEvent> = events.iter().take(5).cloned().collect();
    for (i, e) in firsts.into_iter().enumerate() {
        let mut e = e.event;
        let header = e.header_mut();
        header.id = format!("outside-{i}");
        header.location.lat = 40.0 + i as f64 * 0.01;
        header.location.lng = 70.5;
        // Producer extras, with characters JSON escapes.
        header
            .attributes
            .insert("post".to_owned(), format!("Yo'l \"{i}\" ✓"));
        header
            .attributes
            .insert("unit".to_owned(), "102".to_owned());
        events.push(enrich(&registry, e));
    }
    let store = Arc::new(MemoryStore::new());
    futures::executor::block_on(async {
        for chunk in events.chunks(1000) {
            store.put_events(chunk).await.expect("put");
        }
    });
    Fixture {
        registry,
        events,
        store,
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| build(DAYS, 120.0));

/// The shared dataset.
pub fn fixture() -> &'static Fixture {
    &FIXTURE
}

/// An engine over the shared dataset.
pub fn engine() -> SqlEngine {
    engine_over(fixture().store.clone(), SqlLimits::default())
}

/// An engine over `store` with the dataset's registry.
pub fn engine_over(store: Store, limits: SqlLimits) -> SqlEngine {
    SqlEngine::new(store, Arc::clone(&fixture().registry), limits).expect("engine")
}

/// One `scan` call: the range asked and the entries returned.
#[derive(Debug, Clone)]
pub struct ScanCall {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub limit: usize,
    pub returned: usize,
}

/// A store that records every scan, over the shared dataset.
#[derive(Debug, Default)]
pub struct CountingStore {
    pub inner: Arc<MemoryStore>,
    pub scans: Mutex<Vec<ScanCall>>,
}

impl CountingStore {
    pub fn new(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            scans: Mutex::new(Vec::new()),
        }
    }

    pub fn take(&self) -> Vec<ScanCall> {
        std::mem::take(&mut *self.scans.lock().expect("lock"))
    }
}

#[async_trait]
impl EventStore for CountingStore {
    fn name(&self) -> &str {
        "counting"
    }
    async fn put_batch(&self, entries: Vec<KvPair>) -> posbon_store::Result<()> {
        self.inner.put_batch(entries).await
    }
    async fn get(&self, key: &[u8]) -> posbon_store::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> posbon_store::Result<posbon_store::Swap> {
        self.inner.compare_and_swap(key, expected, new).await
    }
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> posbon_store::Result<Vec<KvPair>> {
        let found = self.inner.scan(start, end, limit).await?;
        self.scans.lock().expect("lock").push(ScanCall {
            start: start.to_vec(),
            end: end.to_vec(),
            limit,
            returned: found.len(),
        });
        Ok(found)
    }
    async fn delete_range(&self, start: &[u8], end: &[u8]) -> posbon_store::Result<()> {
        self.inner.delete_range(start, end).await
    }
}
