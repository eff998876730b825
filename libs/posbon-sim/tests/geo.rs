//! The generated registries load with `posbon-geo`, and generated events
//! locate to the mahalla the generator placed them in.

use std::sync::Arc;
use std::time::Instant;

use posbon_geo::{Registry, RegistryOptions};
use posbon_sim::{
    CityOptions, EventOptions, EventStream, NationalOptions, SimBody, SimRegistry, city_registry,
    national_registry, parse_duration,
};

#[test]
fn city_registry_loads_and_events_locate_to_their_mahalla() {
    let city = city_registry(&CityOptions::default()).expect("city");
    let text = city.to_geojson_string();
    let t = Instant::now();
    let registry = Registry::from_geojson(text.as_bytes(), &RegistryOptions::default())
        .unwrap_or_else(|e| panic!("city registry rejected: {e}"));
    eprintln!(
        "posbon-geo loaded the city in {:?}: {:?}",
        t.elapsed(),
        registry.stats()
    );
    assert_eq!(registry.mahallas().len(), city.len());
    assert_eq!(registry.districts().len(), 12);
    for (f, m) in city.features.iter().zip(registry.mahallas()) {
        assert_eq!(f.id, m.id);
        assert_eq!(f.district, m.district_id);
        assert_eq!(Some(f.population), m.population);
    }

    let sim = Arc::new(SimRegistry::from_geojson(text.as_bytes()).expect("sim registry"));
    let opts = EventOptions {
        rate_per_hour: 400.0,
        duration: parse_duration("1d").expect("1d"),
        ..EventOptions::default()
    };
    let mut checked = 0;
    for item in EventStream::new(sim.clone(), &opts).expect("stream") {
        let SimBody::Valid { event, mahalla, .. } = item.body else {
            continue;
        };
        let loc = event.location();
        let found = registry.locate(loc.lat, loc.lng).expect("locate");
        let idx = found
            .mahalla
            .unwrap_or_else(|| panic!("line {} is unassigned", item.line_no));
        assert_eq!(
            registry.mahalla(idx).id,
            sim.mahallas()[mahalla].id,
            "line {} located elsewhere",
            item.line_no
        );
        checked += 1;
    }
    assert!(checked > 5000);
}

#[test]
fn national_registry_loads() {
    let t = Instant::now();
    let national = national_registry(&NationalOptions {
        seed: 5,
        mahallas: 2000,
    })
    .expect("national");
    let generated = t.elapsed();
    let text = national.to_geojson_string();
    let t = Instant::now();
    let registry = Registry::from_geojson(text.as_bytes(), &RegistryOptions::default())
        .unwrap_or_else(|e| panic!("national registry rejected: {e}"));
    eprintln!(
        "national ({} mahallas) generated in {generated:?}, {} MB, loaded in {:?}",
        national.len(),
        text.len() / 1_000_000,
        t.elapsed()
    );
    assert_eq!(registry.mahallas().len(), national.len());
    assert_eq!(registry.regions().len(), 14);
}
