//! Risk evaluation throughput: `Engine::apply` over a realistic simulated
//! stream, single thread, in process, with a tick every 5 minutes of event
//! time as the escalator does.
//!
//! Two streams: the simulated Tashkent city (about 600 mahallas) at 2,000
//! events/h over 10 days, and the national registry (about 10,000 mahallas)
//! at 20,000 events/h over 2 days. The national figures are the first day on
//! a fresh engine (cold), the second day on the engine that holds the first
//! (warm: the steady state of a running escalator), and the same warm day for
//! one escalator shard of several (`POSBON_BENCH_RISK_SHARDS`, default 8:
//! only the events of the mahallas it owns). Events are generated and
//! enriched (located) before the clock starts; only the engine is timed. Each
//! figure is the best of three fresh engines, reported with the others.
//!
//! Run: `cargo bench -p posbon-benches --bench risk`. Target: at least 2M
//! events/s on one core.

use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use posbon_geo::{Registry, RegistryOptions};
use posbon_model::EnrichedEvent;
use posbon_risk::{Engine, RiskConfig};
use posbon_sim::{
    CityOptions, EventOptions, EventStream, GeneratedRegistry, NationalOptions, SimBody,
    SimRegistry,
};

/// Passes per stream; `POSBON_BENCH_RISK_PASSES` changes it (e.g. to
/// profile the engine with `perf record -D <generation ms>`).
fn passes() -> usize {
    std::env::var("POSBON_BENCH_RISK_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The allocator the service binaries (and the escalator in them) use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn stream(
    generated: &GeneratedRegistry,
    rate: f64,
    days: i64,
) -> (Arc<Registry>, Vec<EnrichedEvent>) {
    let geojson = generated.to_geojson_string();
    let registry = Arc::new(
        Registry::from_geojson(geojson.as_bytes(), &RegistryOptions::default()).expect("registry"),
    );
    let sim = Arc::new(SimRegistry::from_geojson(geojson.as_bytes()).expect("sim registry"));
    let options = EventOptions {
        seed: 7,
        rate_per_hour: rate,
        duration: TimeDelta::days(days),
        ..EventOptions::default()
    };
    let mut events = Vec::new();
    for item in EventStream::new(sim, &options).expect("stream") {
        let SimBody::Valid { event, .. } = item.body else {
            continue;
        };
        let at = event.occurred_at().with_timezone(&Utc);
        events.push(posbon_sim::enrich(&registry, *event, at).expect("valid location"));
    }
    (registry, events)
}

/// Events applied per timed batch.
const BATCH: usize = 1024;

/// One pass: a fresh engine takes `warmup` untimed, then `events` timed.
/// Returns the rate, the escalations of the timed part and the footprint.
///
/// Events are applied in batches of [`BATCH`], each copied just before it
/// is timed, as the escalator applies the events of a fetched batch it has
/// just decoded: the engine reads an event's ids from the cache, not from
/// the generated stream hundreds of megabytes long. Only `apply` and `tick`
/// are timed.
fn pass(
    registry: &Arc<Registry>,
    warmup: &[EnrichedEvent],
    events: &[EnrichedEvent],
) -> (f64, usize, posbon_risk::Footprint) {
    let tick = TimeDelta::minutes(5);
    let mut engine = Engine::new(RiskConfig::default(), Arc::clone(registry)).expect("engine");
    let mut out = Vec::with_capacity(1024);
    let Some(first) = warmup.first().or(events.first()) else {
        return (0.0, 0, engine.footprint());
    };
    let mut next_tick = first.event.occurred_at().with_timezone(&Utc) + tick;
    let mut run = |events: &[EnrichedEvent], out: &mut Vec<_>| {
        let mut elapsed = std::time::Duration::ZERO;
        for batch in events.chunks(BATCH) {
            let batch = batch.to_vec();
            let started = Instant::now();
            for e in &batch {
                let at = e.event.occurred_at().with_timezone(&Utc);
                while next_tick <= at {
                    engine.tick(next_tick, out);
                    next_tick += tick;
                }
                engine.apply(e, out);
            }
            elapsed += started.elapsed();
        }
        elapsed
    };
    run(warmup, &mut out);
    out.clear();
    let elapsed = run(events, &mut out);
    (
        events.len() as f64 / elapsed.as_secs_f64(),
        out.len(),
        engine.footprint(),
    )
}

/// Runs `events` through fresh engines (after `warmup`, untimed) and prints
/// the best pass with the others.
fn measure(
    name: &str,
    registry: &Arc<Registry>,
    warmup: &[EnrichedEvent],
    events: &[EnrichedEvent],
) {
    let mut rates = Vec::new();
    let mut escalations = 0;
    let mut footprint = None;
    for _ in 0..passes() {
        let (rate, n, f) = pass(registry, warmup, events);
        rates.push(rate);
        escalations = n;
        footprint = Some(f);
    }
    let best = rates.iter().copied().fold(0.0, f64::max);
    let shown: Vec<String> = rates.iter().map(|r| format!("{:.2}M", r / 1e6)).collect();
    println!(
        "risk/{name}: {} events, best {:.2}M events/s ({:.0} ns/event), passes [{}]; {} escalations; state {:?}",
        events.len(),
        best / 1e6,
        1e9 / best,
        shown.join(", "),
        escalations,
        footprint.unwrap_or_default(),
    );
}

/// Whether to run the stream `name`: `POSBON_BENCH_RISK_STREAM` (`city` or
/// `national`) runs only that one.
fn wanted(name: &str) -> bool {
    std::env::var("POSBON_BENCH_RISK_STREAM").map_or(true, |only| only == name)
}

fn main() {
    if wanted("city") {
        city();
    }
    if wanted("national") {
        national();
    }
}

fn city() {
    let t = Instant::now();
    let city = posbon_sim::city_registry(&CityOptions::default()).expect("city");
    let (registry, events) = stream(&city, 2000.0, 10);
    println!(
        "city: {} mahallas, {} events generated and located in {:.1?}",
        registry.mahallas().len(),
        events.len(),
        t.elapsed()
    );
    measure("city_2000_per_h_10d", &registry, &[], &events);
}

fn national() {
    let t = Instant::now();
    let national = posbon_sim::national_registry(&NationalOptions::default()).expect("national");
    let (registry, events) = stream(&national, 20_000.0, 2);
    // The first day on a fresh engine (cold: every mahalla's lists and maps
    // grow from nothing), and the second day on the engine that holds the
    // first (warm: the steady state of a running escalator).
    let day_two = events.first().map_or(0, |first| {
        let end = first.event.occurred_at() + TimeDelta::days(1);
        events
            .iter()
            .position(|e| e.event.occurred_at() >= end)
            .unwrap_or(events.len())
    });
    let (first_day, second_day) = events.split_at(day_two);
    println!(
        "national: {} mahallas, {} events generated and located in {:.1?}",
        registry.mahallas().len(),
        events.len(),
        t.elapsed()
    );
    measure("national_20000_per_h_1d_cold", &registry, &[], first_day);
    measure(
        "national_20000_per_h_1d_warm",
        &registry,
        first_day,
        second_day,
    );
    // One escalator instance of several (POSBON_BENCH_RISK_SHARDS, default
    // 8): the same two days, only the events of the mahallas shard 0 owns.
    let shards = std::env::var("POSBON_BENCH_RISK_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let shard = posbon_escalator::Shard::new(0, shards).expect("shard");
    let owned = |events: &[EnrichedEvent]| -> Vec<EnrichedEvent> {
        events
            .iter()
            .filter(|e| shard.owns(e.mahalla_id.as_deref()))
            .cloned()
            .collect()
    };
    measure(
        &format!("national_20000_per_h_1d_warm_shard_1_of_{shards}"),
        &registry,
        &owned(first_day),
        &owned(second_day),
    );
}
