//! `locate` on a national registry of 10,000 mahallas, beside the bare h3o
//! lat/lng-to-cell call it builds on, and the time to load and cover that
//! registry.
//!
//! Run: `cargo bench -p posbon-benches --bench geo`. Targets: locate costs at
//! most 1.5x the bare call and makes at least 1M lookups/s on one core; loading
//! and covering the registry takes under 10 s. Both `locate` (one point at a
//! time) and `locate_many` (the batch form ingest uses) are measured.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use h3o::{LatLng, Resolution};
use posbon_geo::{Registry, RegistryOptions};
use posbon_sim::{NationalOptions, national_registry};

const MAHALLAS: usize = 10_000;
const POINTS: usize = 100_000;

struct Fixture {
    registry: Registry,
    points: Vec<(f64, f64)>,
}

/// Points where events happen: inside the bounding box of a random mahalla, so
/// most land in mahallas (many in boundary cells) and some outside every one.
fn points(registry: &Registry) -> Vec<(f64, f64)> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let boxes: Vec<_> = registry
        .mahallas()
        .iter()
        .map(|m| geo::BoundingRect::bounding_rect(&m.geometry).expect("non-empty geometry"))
        .collect();
    (0..POINTS)
        .map(|_| {
            let b = boxes[(next() * boxes.len() as f64) as usize % boxes.len()];
            let lng = b.min().x + next() * b.width();
            let lat = b.min().y + next() * b.height();
            (lat, lng)
        })
        .collect()
}

fn fixture() -> Fixture {
    let started = Instant::now();
    let generated = national_registry(&NationalOptions {
        mahallas: MAHALLAS,
        ..NationalOptions::default()
    })
    .expect("national registry");
    let geojson = generated.to_geojson_string();
    println!(
        "national registry: {} mahallas, {:.1} MB of geojson, generated in {:.2?}",
        generated.len(),
        geojson.len() as f64 / 1e6,
        started.elapsed()
    );
    let mut loads = Vec::new();
    let mut registry = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = Registry::from_geojson(geojson.as_bytes(), &RegistryOptions::default())
            .expect("registry loads");
        loads.push(t.elapsed());
        registry = Some(r);
    }
    let registry = registry.expect("loaded");
    let single = {
        let t = Instant::now();
        let options = RegistryOptions {
            threads: 1,
            ..RegistryOptions::default()
        };
        drop(Registry::from_geojson(geojson.as_bytes(), &options).expect("registry loads"));
        t.elapsed()
    };
    loads.sort();
    let stats = registry.stats();
    println!(
        "load and cover {} mahallas at res 10: {:.2?} (median of 3, all cores; target < 10 s), {:.2?} on one thread; {} interior squares, {} boundary squares ({:.1} MB grid), {} neighbour pairs probed for overlap; stages of the last load: claim squares {} ms, index {} ms, overlap {} ms",
        registry.mahallas().len(),
        loads[1],
        single,
        stats.interior_squares,
        stats.boundary_squares,
        stats.grid_bytes as f64 / 1e6,
        stats.overlap_checks,
        stats.cover_ms,
        stats.index_ms,
        stats.overlap_ms
    );
    let points = points(&registry);
    Fixture { registry, points }
}

fn bare(points: &[(f64, f64)]) -> u64 {
    let mut acc = 0u64;
    for &(lat, lng) in points {
        let cell = LatLng::new(lat, lng)
            .expect("valid")
            .to_cell(Resolution::Ten);
        acc = acc.wrapping_add(u64::from(cell));
    }
    acc
}

fn located(registry: &Registry, points: &[(f64, f64)]) -> u64 {
    let mut acc = 0u64;
    for &(lat, lng) in points {
        let found = registry.locate(lat, lng).expect("valid");
        acc = acc.wrapping_add(u64::from(found.cell));
        acc = acc.wrapping_add(found.mahalla.map_or(0, |m| u64::from(m.0)));
    }
    acc
}

fn located_many(
    registry: &Registry,
    points: &[(f64, f64)],
    out: &mut Vec<Result<posbon_geo::Located, posbon_geo::GeoError>>,
) -> u64 {
    out.clear();
    registry.locate_many(points, out);
    let mut acc = 0u64;
    for found in out.iter().flatten() {
        acc = acc.wrapping_add(u64::from(found.cell));
        acc = acc.wrapping_add(found.mahalla.map_or(0, |m| u64::from(m.0)));
    }
    acc
}

/// Interleaved rounds of both loops, best round of each: the ratio printed is
/// measured in one run on the same points.
fn compare(f: &Fixture) {
    let (mut best_bare, mut best_locate, mut best_many) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut out = Vec::with_capacity(f.points.len());
    for _ in 0..15 {
        let t = Instant::now();
        black_box(located_many(&f.registry, black_box(&f.points), &mut out));
        best_many = best_many.min(t.elapsed());
        let t = Instant::now();
        black_box(bare(black_box(&f.points)));
        best_bare = best_bare.min(t.elapsed());
        let t = Instant::now();
        black_box(located(&f.registry, black_box(&f.points)));
        best_locate = best_locate.min(t.elapsed());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / f.points.len() as f64;
    let assigned = f
        .points
        .iter()
        .filter(|&&(lat, lng)| {
            f.registry
                .locate(lat, lng)
                .is_ok_and(|l| l.mahalla.is_some())
        })
        .count();
    println!(
        "h3o lat/lng to cell: {:.0} ns; locate one point at a time: {:.0} ns = {:.2}x the bare call, {:.2}M lookups/s; locate_many (batches of 64): {:.0} ns = {:.2}x the bare call, {:.2}M lookups/s on one core (targets: <= 1.5x, >= 1M/s); {:.0}% of points in a mahalla",
        per(best_bare),
        per(best_locate),
        best_locate.as_secs_f64() / best_bare.as_secs_f64(),
        1e3 / per(best_locate),
        per(best_many),
        best_many.as_secs_f64() / best_bare.as_secs_f64(),
        1e3 / per(best_many),
        100.0 * assigned as f64 / f.points.len() as f64
    );
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    compare(&f);
    let mut group = c.benchmark_group("locate_10k_mahallas");
    group.throughput(Throughput::Elements(f.points.len() as u64));
    group.bench_function("h3o_latlng_to_cell", |b| {
        b.iter(|| bare(black_box(&f.points)))
    });
    group.bench_function("registry_locate", |b| {
        b.iter(|| located(&f.registry, black_box(&f.points)))
    });
    group.bench_function("registry_locate_many", |b| {
        let mut out = Vec::with_capacity(f.points.len());
        b.iter(|| located_many(&f.registry, black_box(&f.points), &mut out))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
