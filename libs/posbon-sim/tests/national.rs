//! The national registry: 14 regions, the requested mahalla count, unique ids,
//! no overlaps, rural mahallas bigger than urban ones.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use h3o::{CellIndex, Resolution};
use std::sync::Arc;

use posbon_sim::{
    EventOptions, EventStream, NationalOptions, REGIONS, SimBody, SimRegistry, national_registry,
};

#[test]
fn national_registry_has_14_regions_and_the_requested_size() {
    let t = Instant::now();
    let reg = national_registry(&NationalOptions::default()).expect("national");
    let elapsed = t.elapsed();
    eprintln!("national registry: {} mahallas in {elapsed:?}", reg.len());
    let regions = reg.regions();
    assert_eq!(regions.len(), 14, "{regions:?}");
    for r in REGIONS {
        assert!(regions.contains_key(r.id), "missing {}", r.id);
    }
    let requested = NationalOptions::default().mahallas as f64;
    assert!(
        (reg.len() as f64 - requested).abs() / requested < 0.05,
        "{} mahallas",
        reg.len()
    );
    eprintln!("mahallas per region: {regions:?}");
    eprintln!("districts: {}", reg.districts().len());

    let ids: HashSet<&str> = reg.features.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), reg.len(), "ids are unique");
    for f in &reg.features {
        assert!(f.id.len() <= 64 && f.district.len() <= 64);
        assert!(!f.cells.is_empty());
        assert!(f.geometry.0.len() == 1, "{} is in pieces", f.id);
    }

    // District ids belong to a single region.
    let mut region_of: HashMap<&str, &str> = HashMap::new();
    for f in &reg.features {
        assert_eq!(
            *region_of.entry(&f.district).or_insert(&f.region),
            f.region.as_str()
        );
    }

    // No overlaps: compare at the finest resolution in use, via children.
    let mut owner: HashMap<CellIndex, usize> = HashMap::new();
    for (i, f) in reg.features.iter().enumerate() {
        for c in &f.cells {
            // Cells of one mahalla are unique and never claimed twice.
            assert!(owner.insert(*c, i).is_none(), "cell {c} is in two mahallas");
        }
    }
    // Different resolutions never meet: a resolution-9 or -10 cell has no
    // ancestor or descendant claimed by another mahalla.
    for (i, f) in reg.features.iter().enumerate() {
        let c = f.cells[0];
        for r in [Resolution::Seven, Resolution::Eight, Resolution::Nine] {
            if let Some(p) = c.parent(r)
                && let Some(&j) = owner.get(&p)
            {
                assert_eq!(i, j);
            }
        }
    }

    // Rural mahallas are bigger than urban ones, on average.
    let mean = |urban: bool| {
        let (sum, n) = reg
            .features
            .iter()
            .filter(|f| f.urban == urban)
            .fold((0.0, 0.0), |(s, n), f| (s + f.area_m2(), n + 1.0));
        sum / n
    };
    let (urban, rural) = (mean(true), mean(false));
    eprintln!(
        "mean mahalla area: urban {:.2} km², rural {:.2} km²",
        urban / 1e6,
        rural / 1e6
    );
    assert!(rural > 3.0 * urban);
    let population = reg.population();
    eprintln!("population {population}");
    assert!((30_000_000..=42_000_000).contains(&population));

    // At a realistic national rate, thousands of mahallas record nothing in
    // a day.
    let sim = Arc::new(SimRegistry::from_generated(&reg).expect("sim registry"));
    let opts = EventOptions {
        rate_per_hour: 400.0,
        ..EventOptions::default()
    };
    let mut seen = HashSet::new();
    for item in EventStream::new(sim.clone(), &opts).expect("stream") {
        if let SimBody::Valid { mahalla, .. } = item.body {
            seen.insert(mahalla);
        }
    }
    let quiet = sim.len() - seen.len();
    eprintln!(
        "{quiet} of {} mahallas quiet for a day at 400 events/h",
        sim.len()
    );
    assert!(quiet > 3000);
}

#[test]
fn national_registry_is_deterministic_and_scales() {
    let a = national_registry(&NationalOptions {
        seed: 3,
        mahallas: 1500,
    })
    .expect("national");
    let b = national_registry(&NationalOptions {
        seed: 3,
        mahallas: 1500,
    })
    .expect("national");
    assert_eq!(a.to_geojson_string(), b.to_geojson_string());
    assert!(
        (a.len() as f64 - 1500.0).abs() / 1500.0 < 0.05,
        "{}",
        a.len()
    );
    assert_eq!(a.regions().len(), 14);
    assert!(
        national_registry(&NationalOptions {
            seed: 3,
            mahallas: 10
        })
        .is_err()
    );
}
