//! Posbon simulator: synthetic mahalla registries and realistic event streams.
//!
//! - [`city_registry`]: Tashkent city, its 12 districts and about 600 mahallas
//!   tiling the city outline without gaps or overlaps.
//! - [`national_registry`]: all 14 regions of Uzbekistan, about 9,500 mahallas
//!   in towns and rural districts around real settlement points.
//!
//! - [`EventStream`]: a realistic NDJSON event stream over a registry, with
//!   daily and weekly cycles, near-repeat bursts, drug hand-off hotspots,
//!   fraud waves and (optionally) malformed lines, plus its ground truth.
//!
//! Everything is deterministic: the same options give byte-identical output.

mod city;
mod error;
mod events;
mod grid;
mod names;
mod national;
mod registry;

pub use city::{
    CITY_RESOLUTION, CityDistrict, CityOptions, DEFAULT_CITY_MAHALLAS, DEFAULT_SEED,
    TASHKENT_DISTRICTS, TASHKENT_OUTLINE_GEOJSON, TASHKENT_REGION, TASHKENT_REGION_NAME,
    city_registry, tashkent_cells, tashkent_outline,
};
pub use error::SimError;
pub use events::{
    BadLineTruth, CYBER_FRAUD_SHARE, DEFAULT_RATE_PER_HOUR, DIFFICULT_FACTOR,
    DIFFICULT_MIN_EXTRA_PER_DAY, Defect, DifficultTruth, EventOptions, EventStream, Injection,
    InjectionKind, Origin, REPEAT_BRANCHING, REPEAT_RADIUS_M, SimBody, SimItem, SimMahalla,
    SimRegistry, SituationTruth, Situations, StreamSummary, TRUTH_RESOLUTION, Truth, default_start,
    parse_duration, tashkent_offset, write_ndjson,
};
pub use national::{
    DEFAULT_NATIONAL_MAHALLAS, NationalOptions, REGIONS, RegionSpec, TownSpec, national_registry,
};
pub use registry::{GeneratedRegistry, MahallaFeature};

/// The mahalla registry at `path`, or, when `path` is `None`, the simulated
/// Tashkent registry of [`CityOptions::default`] (what `posbon simulate city`
/// writes with default options): every service that takes a `registry`
/// setting loads it this way, so they all agree on the mahallas.
pub fn load_registry(path: Option<&std::path::Path>) -> Result<posbon_geo::Registry, SimError> {
    let options = posbon_geo::RegistryOptions::default();
    match path {
        Some(path) => posbon_geo::Registry::from_path(path, &options).map_err(|e| {
            SimError::Registry(format!(
                "cannot load the mahalla registry {}: {e}",
                path.display()
            ))
        }),
        None => city_registry(&CityOptions::default())?.registry(),
    }
}

/// A simulated event placed the way ingest places it: its H3 cell at the
/// registry's resolution and its mahalla, district and region, received at
/// `ingested_at`. `None` when the registry cannot locate the point (never for
/// a parsed event). What tests and benchmarks feed the store, the risk
/// engine and the escalator without running ingest; ingest itself also
/// pseudonymises fraud flags, which callers do when they need it.
pub fn enrich(
    registry: &posbon_geo::Registry,
    event: posbon_model::Event,
    ingested_at: chrono::DateTime<chrono::Utc>,
) -> Option<posbon_model::EnrichedEvent> {
    let loc = event.location();
    let found = registry.locate(loc.lat, loc.lng).ok()?;
    let m = found.mahalla.map(|i| registry.mahalla(i));
    Some(posbon_model::EnrichedEvent {
        cell: posbon_model::CellId::new(u64::from(found.cell))?,
        mahalla_id: m.map(|m| m.id.clone()),
        district_id: m.map(|m| m.district_id.clone()),
        region_id: m.map(|m| m.region_id.clone()),
        ingested_at,
        event,
    })
}
