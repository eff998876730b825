//! Registry loading, rejection of bad geometry, and exactness of `locate`
//! against a brute-force point-in-polygon over every mahalla.

use geo::{Intersects, Point};
use posbon_geo::{MahallaIdx, Registry, RegistryError, RegistryOptions, Resolution};
use proptest::prelude::*;
use serde_json::{Value, json};

const LNG0: f64 = 69.20;
const LAT0: f64 = 41.28;
const STEP: f64 = 0.004;
const N: usize = 8;

/// A deterministic jitter in -0.3..0.3 of a step.
fn jitter(i: usize, j: usize, salt: u64) -> f64 {
    let mut x = (i as u64) * 1_000_003 + (j as u64) * 7_919 + salt * 104_729;
    x ^= x >> 13;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    ((x % 10_000) as f64 / 10_000.0 - 0.5) * 0.6 * STEP
}

fn vertex(i: usize, j: usize) -> [f64; 2] {
    // Keep the outer frame straight so the grid has a clean outline.
    let jx = if i == 0 || i == N {
        0.0
    } else {
        jitter(i, j, 1)
    };
    let jy = if j == 0 || j == N {
        0.0
    } else {
        jitter(i, j, 2)
    };
    [LNG0 + i as f64 * STEP + jx, LAT0 + j as f64 * STEP + jy]
}

fn feature(id: &str, district: &str, geometry: Value) -> Value {
    json!({
        "type": "Feature",
        "properties": {"id": id, "name": format!("Mahalla {id}"), "district": district,
                       "district_name": district, "region": "tashkent", "region_name": "Toshkent",
                       "population": 5000},
        "geometry": geometry,
    })
}

/// An 8x8 jittered grid of quadrilaterals sharing exact vertices, with two cells
/// left empty (unassigned land), one quad holding a hole filled by another
/// mahalla, and one mahalla made of two separate quads (a MultiPolygon).
fn grid_registry() -> Value {
    let mut features = Vec::new();
    for i in 0..N {
        for j in 0..N {
            if (i, j) == (2, 5) || (i, j) == (6, 1) || (i, j) == (7, 7) {
                continue; // (2,5) and (6,1) stay empty; (7,7) joins a multipolygon below.
            }
            let ring = vec![
                vertex(i, j),
                vertex(i + 1, j),
                vertex(i + 1, j + 1),
                vertex(i, j + 1),
                vertex(i, j),
            ];
            let district = if i < N / 2 { "west" } else { "east" };
            let id = format!("m-{i}-{j}");
            if (i, j) == (4, 4) {
                // A square hole in the middle, filled by its own mahalla.
                let [x0, y0] = vertex(4, 4);
                let [x1, y1] = vertex(5, 5);
                let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
                let h = STEP * 0.15;
                let hole = vec![
                    [cx - h, cy - h],
                    [cx - h, cy + h],
                    [cx + h, cy + h],
                    [cx + h, cy - h],
                    [cx - h, cy - h],
                ];
                let island = vec![
                    [cx - h, cy - h],
                    [cx + h, cy - h],
                    [cx + h, cy + h],
                    [cx - h, cy + h],
                    [cx - h, cy - h],
                ];
                features.push(feature(
                    &id,
                    district,
                    json!({"type": "Polygon", "coordinates": [ring, hole]}),
                ));
                features.push(feature(
                    "island",
                    district,
                    json!({"type": "Polygon", "coordinates": [island]}),
                ));
                continue;
            }
            if (i, j) == (0, 0) {
                let other = vec![
                    vertex(7, 7),
                    vertex(8, 7),
                    vertex(8, 8),
                    vertex(7, 8),
                    vertex(7, 7),
                ];
                features.push(feature(
                    &id,
                    district,
                    json!({"type": "MultiPolygon", "coordinates": [[ring], [other]]}),
                ));
                continue;
            }
            features.push(feature(
                &id,
                district,
                json!({"type": "Polygon", "coordinates": [ring]}),
            ));
        }
    }
    json!({"type": "FeatureCollection", "features": features})
}

fn load(doc: &Value) -> Result<Registry, RegistryError> {
    Registry::from_geojson(doc.to_string().as_bytes(), &RegistryOptions::default())
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| load(&grid_registry()).expect("grid registry loads"))
}

/// The reference: the first mahalla in registry order whose geometry intersects
/// the point, by geo's own predicate.
fn brute_force(registry: &Registry, lat: f64, lng: f64) -> Option<MahallaIdx> {
    let p = Point::new(lng, lat);
    registry
        .mahallas()
        .iter()
        .position(|m| m.geometry.intersects(&p))
        .map(|i| MahallaIdx(i as u32))
}

fn check(lat: f64, lng: f64) -> Result<(), TestCaseError> {
    let registry = registry();
    let found = registry.locate(lat, lng).expect("valid coordinate");
    let expected = brute_force(registry, lat, lng);
    prop_assert_eq!(
        found.mahalla,
        expected,
        "point {}, {} located in {:?}, brute force says {:?}",
        lat,
        lng,
        found.mahalla.map(|i| &registry.mahalla(i).id),
        expected.map(|i| &registry.mahalla(i).id)
    );
    Ok(())
}

#[test]
fn loads_the_hierarchy_and_uses_boundary_cells() {
    let r = registry();
    assert_eq!(r.mahallas().len(), N * N - 3 + 1);
    assert_eq!(r.districts().len(), 2);
    assert_eq!(r.regions().len(), 1);
    assert_eq!(
        r.region("tashkent").expect("region").districts,
        vec!["west", "east"]
    );
    let stats = r.stats();
    assert!(stats.interior_squares > 100, "{stats:?}");
    assert!(stats.boundary_squares > 100, "{stats:?}");
    let (idx, m) = r.mahalla_by_id("m-3-3").expect("present");
    assert!(
        m.area_m2 > 50_000.0 && m.area_m2 < 400_000.0,
        "{}",
        m.area_m2
    );
    let cells = r.mahalla_cells(idx, Resolution::Ten);
    assert!(cells.len() > 5);
    let coarse = r.mahalla_cells(idx, Resolution::Seven);
    assert!(!coarse.is_empty() && coarse.len() <= 4);
    let fine = r.mahalla_cells(idx, Resolution::Eleven);
    assert!(fine.len() > cells.len());
}

#[test]
fn points_in_holes_gaps_and_islands() {
    let r = registry();
    let [x0, y0] = vertex(4, 4);
    let [x1, y1] = vertex(5, 5);
    let centre = r.locate((y0 + y1) / 2.0, (x0 + x1) / 2.0).expect("valid");
    assert_eq!(r.mahalla(centre.mahalla.expect("island")).id, "island");
    // Inside the empty quad (2,5): unassigned.
    let [gx, gy] = vertex(2, 5);
    let [hx, hy] = vertex(3, 6);
    assert_eq!(
        r.locate((gy + hy) / 2.0, (gx + hx) / 2.0)
            .expect("valid")
            .mahalla,
        None
    );
    // Far away: unassigned, not an error.
    assert_eq!(r.locate(40.0, 65.0).expect("valid").mahalla, None);
    // The second part of the multipolygon belongs to m-0-0.
    let [mx, my] = vertex(7, 7);
    let [nx, ny] = vertex(8, 8);
    let p = r.locate((my + ny) / 2.0, (mx + nx) / 2.0).expect("valid");
    assert_eq!(r.mahalla(p.mahalla.expect("assigned")).id, "m-0-0");
    // Not points on Earth.
    assert!(r.locate(f64::NAN, 69.2).is_err());
    assert!(r.locate(91.0, 69.2).is_err());
    assert!(r.locate(41.0, f64::INFINITY).is_err());
}

#[test]
fn a_batch_gives_the_answers_of_single_lookups() {
    let r = registry();
    let mut points: Vec<(f64, f64)> = (0..4000)
        .map(|k| {
            let x = (k % 67) as f64 / 66.0 * (N as f64 + 0.2) - 0.1;
            let y = (k / 67) as f64 / 60.0 * (N as f64 + 0.2) - 0.1;
            (LAT0 + y * STEP, LNG0 + x * STEP)
        })
        .collect();
    points.extend([
        (f64::NAN, 69.2),
        (91.0, 69.2),
        (41.3, 181.0),
        (41.3, f64::INFINITY),
    ]);
    let mut out = Vec::new();
    r.locate_many(&points, &mut out);
    assert_eq!(out.len(), points.len());
    for (&(lat, lng), got) in points.iter().zip(&out) {
        // Debug strings: NaN coordinates in errors are not equal to themselves.
        assert_eq!(
            format!("{got:?}"),
            format!("{:?}", r.locate(lat, lng)),
            "point {lat}, {lng}"
        );
    }
    assert!(out.iter().filter(|r| r.is_err()).count() == 4);
}

#[test]
fn every_vertex_goes_to_the_first_mahalla_that_touches_it() {
    for i in 0..=N {
        for j in 0..=N {
            let [lng, lat] = vertex(i, j);
            check(lat, lng).expect("vertex agrees");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn random_points_agree_with_brute_force(
        x in -0.1f64..(N as f64 + 0.1),
        y in -0.1f64..(N as f64 + 0.1),
    ) {
        check(LAT0 + y * STEP, LNG0 + x * STEP)?;
    }

    #[test]
    fn points_on_and_near_edges_agree_with_brute_force(
        i in 0..N, j in 0..N, horizontal in any::<bool>(), t in 0.0f64..=1.0,
        offset_exp in -13i32..-4, sign in prop_oneof![Just(-1.0), Just(0.0), Just(1.0)],
    ) {
        let a = vertex(i, j);
        let b = if horizontal { vertex(i + 1, j) } else { vertex(i, j + 1) };
        let lng = a[0] + t * (b[0] - a[0]);
        let lat = a[1] + t * (b[1] - a[1]);
        let d = sign * 10f64.powi(offset_exp);
        check(lat + d, lng)?;
        check(lat, lng + d)?;
    }
}

fn square(x: f64, y: f64, size: f64) -> Vec<[f64; 2]> {
    vec![
        [x, y],
        [x + size, y],
        [x + size, y + size],
        [x, y + size],
        [x, y],
    ]
}

fn expect_error(doc: Value, needles: &[&str]) {
    let err = load(&doc).expect_err("must be rejected").to_string();
    for needle in needles {
        assert!(
            err.contains(needle),
            "error {err:?} does not mention {needle:?}"
        );
    }
}

fn collection(features: Vec<Value>) -> Value {
    json!({"type": "FeatureCollection", "features": features})
}

#[test]
fn bad_geometry_is_rejected_naming_the_feature() {
    let good = feature(
        "a",
        "d",
        json!({"type": "Polygon", "coordinates": [square(69.2, 41.3, 0.01)]}),
    );
    let mut unclosed = square(69.3, 41.3, 0.01);
    unclosed.pop();
    unclosed.push([69.3, 41.3005]);
    expect_error(
        collection(vec![
            good.clone(),
            feature(
                "b",
                "d",
                json!({"type": "Polygon", "coordinates": [unclosed]}),
            ),
        ]),
        &["feature 1", "\"b\"", "not closed"],
    );
    let bowtie = vec![
        [69.3, 41.3],
        [69.31, 41.31],
        [69.31, 41.3],
        [69.3, 41.31],
        [69.3, 41.3],
    ];
    expect_error(
        collection(vec![
            good.clone(),
            feature(
                "bow",
                "d",
                json!({"type": "Polygon", "coordinates": [bowtie]}),
            ),
        ]),
        &["feature 1", "\"bow\"", "self-intersection"],
    );
    expect_error(
        collection(vec![feature(
            "e",
            "d",
            json!({"type": "Polygon", "coordinates": []}),
        )]),
        &["feature 0", "\"e\"", "no rings"],
    );
    expect_error(
        collection(vec![feature(
            "e",
            "d",
            json!({"type": "MultiPolygon", "coordinates": []}),
        )]),
        &["feature 0", "empty"],
    );
    expect_error(
        collection(vec![
            good.clone(),
            feature(
                "big",
                "d",
                json!({"type": "Polygon", "coordinates": [square(69.205, 41.305, 0.01)]}),
            ),
        ]),
        &["features 0", "\"a\"", "1", "\"big\"", "overlap"],
    );
    // The same polygon twice under another id is an overlap too.
    expect_error(
        collection(vec![
            good.clone(),
            feature(
                "twin",
                "d",
                json!({"type": "Polygon", "coordinates": [square(69.2, 41.3, 0.01)]}),
            ),
        ]),
        &["\"twin\"", "overlap"],
    );
    expect_error(
        collection(vec![good.clone(), good.clone()]),
        &["feature 1", "also used by feature 0"],
    );
    expect_error(
        collection(vec![feature(
            "bad id",
            "d",
            json!({"type": "Polygon", "coordinates": [square(69.2, 41.3, 0.01)]}),
        )]),
        &["feature 0", "properties.id", "lowercase"],
    );
    expect_error(
        collection(vec![feature(
            "far",
            "d",
            json!({"type": "Polygon", "coordinates": [[[69.2, 91.0], [69.3, 41.0], [69.3, 41.1], [69.2, 91.0]]]}),
        )]),
        &["feature 0", "latitude 91", "out of range"],
    );
    expect_error(
        collection(vec![feature(
            "pt",
            "d",
            json!({"type": "Point", "coordinates": [69.2, 41.3]}),
        )]),
        &["feature 0", "\"Point\" is not Polygon or MultiPolygon"],
    );
    let mut other_region = feature(
        "c",
        "d",
        json!({"type": "Polygon", "coordinates": [square(69.4, 41.3, 0.01)]}),
    );
    other_region["properties"]["region"] = json!("samarkand");
    expect_error(
        collection(vec![good.clone(), other_region]),
        &["feature 1", "district \"d\" is in region \"samarkand\""],
    );
    let mut nameless = good.clone();
    nameless["properties"]
        .as_object_mut()
        .expect("object")
        .remove("name");
    expect_error(
        collection(vec![nameless]),
        &["feature 0", "properties.name: missing"],
    );
    expect_error(json!({"type": "Feature"}), &["FeatureCollection"]);
    expect_error(collection(vec![]), &["no mahalla"]);
    assert!(matches!(
        Registry::from_geojson(b"{not json", &RegistryOptions::default()),
        Err(RegistryError::Document(_))
    ));
}

/// Found by fuzzing (`posbon-fuzz`, target `registry_geojson`): one wrong
/// coordinate stretched a mahalla over 59° × 40°, and loading a 674-byte
/// file scanned billions of grid squares (hours, tens of GB).
#[test]
fn a_mahalla_stretched_over_a_continent_is_refused_at_once() {
    let started = std::time::Instant::now();
    let mut ring = square(69.26, 41.30, 0.01);
    ring[2] = [69.27, 1.0];
    ring[3] = [128.0, 41.31];
    expect_error(
        collection(vec![
            feature(
                "a-001",
                "west",
                json!({"type": "Polygon", "coordinates": [square(69.25, 41.30, 0.01)]}),
            ),
            feature(
                "a-002",
                "west",
                json!({"type": "Polygon", "coordinates": [ring]}),
            ),
        ]),
        &[
            "feature 1",
            "a-002",
            "more than the 4° × 4° a mahalla may cover",
        ],
    );
    // Many mahallas just under the limit each: refused on their sum, before
    // any is claimed (they overlap, which is only found after claiming).
    let big: Vec<Value> = (0..18)
        .map(|i| {
            feature(
                &format!("big-{i}"),
                "west",
                json!({"type": "Polygon", "coordinates": [square(60.0, 20.0, 3.9)]}),
            )
        })
        .collect();
    expect_error(collection(big), &["more than a registry may"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn slivers_within_the_tolerance_are_accepted() {
    // Two squares that overlap by a strip of about 0.5 m x 1 km: ~500 m².
    let a = feature(
        "a",
        "d",
        json!({"type": "Polygon", "coordinates": [square(69.2, 41.3, 0.01)]}),
    );
    let b = feature(
        "b",
        "d",
        json!({"type": "Polygon", "coordinates": [square(69.209994, 41.3, 0.01)]}),
    );
    let doc = collection(vec![a, b]).to_string();
    let strict = Registry::from_geojson(doc.as_bytes(), &RegistryOptions::default());
    assert!(matches!(strict, Err(RegistryError::Overlap { .. })));
    let lenient = RegistryOptions {
        overlap_tolerance_m2: 1_000.0,
        ..RegistryOptions::default()
    };
    let r = Registry::from_geojson(doc.as_bytes(), &lenient).expect("within tolerance");
    // In the overlap the first mahalla wins.
    let p = r.locate(41.305, 69.209997).expect("valid");
    assert_eq!(r.mahalla(p.mahalla.expect("assigned")).id, "a");
}
