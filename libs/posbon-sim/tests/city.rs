//! The Tashkent city registry: districts, tiling without gaps or overlaps,
//! connected mahallas, determinism.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use geo::{Contains, Point};
use h3o::{CellIndex, LatLng};
use posbon_sim::{
    CITY_RESOLUTION, CityOptions, GeneratedRegistry, TASHKENT_DISTRICTS, city_registry,
    tashkent_cells, tashkent_outline,
};

fn city() -> &'static GeneratedRegistry {
    static CITY: OnceLock<GeneratedRegistry> = OnceLock::new();
    CITY.get_or_init(|| {
        let t = Instant::now();
        let city = city_registry(&CityOptions::default()).expect("city");
        eprintln!(
            "city registry: {} mahallas in {:?}",
            city.len(),
            t.elapsed()
        );
        city
    })
}

#[test]
fn twelve_districts_and_about_600_mahallas() {
    let city = city();
    let districts = city.districts();
    assert_eq!(districts.len(), 12, "{districts:?}");
    for d in TASHKENT_DISTRICTS {
        assert!(districts.contains_key(d.id), "missing {}", d.id);
    }
    assert!((540..=660).contains(&city.len()), "{} mahallas", city.len());
    assert_eq!(city.regions().len(), 1);
    let population = city.population();
    assert!(
        (2_700_000..=3_300_000).contains(&population),
        "population {population}"
    );
    let ids: HashSet<&str> = city.features.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), city.len(), "ids are unique");
    for f in &city.features {
        assert!(f.id.len() <= 64);
        assert!(
            f.id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
            "{}",
            f.id
        );
        assert!(f.population > 0);
        assert!(!f.inspector.is_empty());
    }
    // Names are unique within a district.
    let mut names: HashMap<&str, HashSet<&str>> = HashMap::new();
    for f in &city.features {
        assert!(
            names.entry(&f.district).or_default().insert(&f.name),
            "{} repeats {}",
            f.district,
            f.name
        );
    }
}

#[test]
fn every_city_cell_is_in_exactly_one_mahalla() {
    let city = city();
    let all: HashSet<CellIndex> = tashkent_cells().expect("cells").into_iter().collect();
    let mut owner: HashMap<CellIndex, usize> = HashMap::new();
    for (i, f) in city.features.iter().enumerate() {
        for c in &f.cells {
            assert_eq!(c.resolution(), CITY_RESOLUTION);
            assert!(owner.insert(*c, i).is_none(), "cell {c} is in two mahallas");
        }
    }
    assert_eq!(owner.len(), all.len(), "no gaps");
    assert!(owner.keys().all(|c| all.contains(c)));
}

#[test]
fn every_mahalla_is_one_connected_piece_with_one_polygon() {
    for f in &city().features {
        let set: HashSet<CellIndex> = f.cells.iter().copied().collect();
        let mut seen = HashSet::new();
        let mut stack = vec![f.cells[0]];
        seen.insert(f.cells[0]);
        while let Some(c) = stack.pop() {
            for n in c.grid_disk::<Vec<CellIndex>>(1) {
                if set.contains(&n) && seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        assert_eq!(seen.len(), set.len(), "{} is not connected", f.id);
        assert_eq!(
            f.geometry.0.len(),
            1,
            "{} has {} polygons",
            f.id,
            f.geometry.0.len()
        );
    }
}

#[test]
fn districts_are_where_they_should_be() {
    let city = city();
    let outline = tashkent_outline().expect("outline");
    let checks = [
        ("chilonzor", 41.28194, 69.18111),
        ("yunusobod", 41.37139, 69.27944),
        ("bektemir", 41.20972, 69.33417),
        ("sergeli", 41.19833, 69.22222),
    ];
    let mut checked = 0;
    for (district, lat, lng) in checks {
        if !outline.contains(&Point::new(lng, lat)) {
            continue;
        }
        let cell = LatLng::new(lat, lng)
            .expect("latlng")
            .to_cell(CITY_RESOLUTION);
        let f = city
            .features
            .iter()
            .find(|f| f.cells.contains(&cell))
            .expect("inside the city");
        assert_eq!(f.district, district);
        // The polygon agrees with the cells.
        let centre = LatLng::from(cell);
        assert!(f.geometry.contains(&Point::new(centre.lng(), centre.lat())));
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn shared_edges_are_bit_identical_and_areas_add_up() {
    let city = city();
    // Every vertex used by some mahalla, with the mahallas using it.
    let mut uses: HashMap<(u64, u64), usize> = HashMap::new();
    let mut near: HashMap<(i64, i64), Vec<(f64, f64)>> = HashMap::new();
    for f in &city.features {
        let mut mine = HashSet::new();
        for p in &f.geometry.0 {
            for c in p
                .exterior()
                .0
                .iter()
                .chain(p.interiors().iter().flat_map(|r| r.0.iter()))
            {
                if mine.insert((c.x.to_bits(), c.y.to_bits())) {
                    *uses.entry((c.x.to_bits(), c.y.to_bits())).or_default() += 1;
                    near.entry(((c.x * 1e5).round() as i64, (c.y * 1e5).round() as i64))
                        .or_default()
                        .push((c.x, c.y));
                }
            }
        }
    }
    // Shared vertices exist, and no two distinct vertices are within a
    // micrometre of each other (which would mean unsnapped duplicates).
    assert!(uses.values().filter(|&&n| n >= 2).count() > 1000);
    for list in near.values() {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let d = (a.0 - b.0).abs().max((a.1 - b.1).abs());
                assert!(d == 0.0 || d > 1e-8, "near-duplicate vertices {a:?} {b:?}");
            }
        }
    }
    // Sum of mahalla areas equals the area of the whole.
    let sum: f64 = city.features.iter().map(|f| f.area_m2()).sum();
    let whole: f64 = tashkent_cells()
        .expect("cells")
        .iter()
        .map(|c| c.area_m2())
        .sum();
    assert!((sum - whole).abs() / whole < 1e-3);
    eprintln!("city area {:.1} km²", whole / 1e6);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = city().to_geojson_string();
    let b = city_registry(&CityOptions::default())
        .expect("city")
        .to_geojson_string();
    assert_eq!(a, b);
    let c = city_registry(&CityOptions {
        seed: 7,
        mahallas: 100,
    })
    .expect("city");
    assert_eq!(c.len(), 100);
    assert_ne!(a, c.to_geojson_string());
}
