//! The synthetic registry of Tashkent city: its 12 districts placed where they
//! are, a few hundred mahallas tiling the city outline without gaps or
//! overlaps.
//!
//! Construction: every H3 cell at resolution 11 whose centre is inside the
//! outline (Natural Earth, public domain; see `data/README.md`) is assigned to
//! a district by weighted growth from district seed points, then each district
//! is split the same way among well-spread mahalla seeds. Regions grow only
//! through their own cells, so every district and mahalla is one connected
//! piece; outlines come from dissolving the cells, so neighbouring mahallas
//! share exactly the same vertices. Resolution-11 cells are rotated against
//! resolution-10 cells, so mahalla boundaries never follow resolution-10 cell
//! edges.

use geo::{Coord, LineString, Polygon};
use h3o::geom::{ContainmentMode, TilerBuilder};
use h3o::{CellIndex, LatLng, Resolution};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::SimError;
use crate::grid::{self, CellGraph, NONE, Projection, Seed, VertexSnapper};
use crate::names::{self, MahallaNamer};
use crate::registry::{GeneratedRegistry, MahallaFeature};

/// The Tashkent city outline (GeoJSON, Natural Earth admin-1, public domain).
pub const TASHKENT_OUTLINE_GEOJSON: &str = include_str!("../data/tashkent-city-outline.geojson");

/// Resolution of the cells mahallas of the city are built from.
pub const CITY_RESOLUTION: Resolution = Resolution::Eleven;

/// Default number of mahallas of the city.
pub const DEFAULT_CITY_MAHALLAS: usize = 600;

/// Default seed of the simulator.
pub const DEFAULT_SEED: u64 = 2024;

/// Region id of Tashkent city.
pub const TASHKENT_REGION: &str = "tashkent";

/// Region display name of Tashkent city.
pub const TASHKENT_REGION_NAME: &str = "Toshkent shahri";

/// Options of [`city_registry`].
#[derive(Debug, Clone)]
pub struct CityOptions {
    /// Seed of the random generator: same seed, same registry.
    pub seed: u64,
    /// Number of mahallas (at least 12, one per district).
    pub mahallas: usize,
}

impl Default for CityOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            mahallas: DEFAULT_CITY_MAHALLAS,
        }
    }
}

/// A district of Tashkent city.
#[derive(Debug, Clone, Copy)]
pub struct CityDistrict {
    /// Id token.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Latitude of the seed point the district grows from (inside the outline).
    pub lat: f64,
    /// Longitude of the seed point.
    pub lng: f64,
    /// Approximate population (2024), thousands.
    pub population_k: u32,
    /// Approximate real area, km² (sets the growth weight).
    pub area_km2: f64,
}

/// The 12 districts of Tashkent. Chilonzor's and Yunusobod's seeds are their
/// GeoNames reference points; Sergeli's and Bektemir's reference points lie
/// outside the coarse outline, so their seeds sit at the southern tip and the
/// south-eastern edge; the others are placed by their relative positions.
pub const TASHKENT_DISTRICTS: [CityDistrict; 12] = [
    CityDistrict {
        id: "bektemir",
        name: "Bektemir",
        lat: 41.2665,
        lng: 69.2930,
        population_k: 35,
        area_km2: 16.0,
    },
    CityDistrict {
        id: "chilonzor",
        name: "Chilonzor",
        lat: 41.28194,
        lng: 69.18111,
        population_k: 270,
        area_km2: 30.0,
    },
    CityDistrict {
        id: "mirobod",
        name: "Mirobod",
        lat: 41.2800,
        lng: 69.2700,
        population_k: 150,
        area_km2: 17.0,
    },
    CityDistrict {
        id: "mirzo_ulugbek",
        name: "Mirzo Ulug'bek",
        lat: 41.3450,
        lng: 69.3250,
        population_k: 310,
        area_km2: 32.0,
    },
    CityDistrict {
        id: "olmazor",
        name: "Olmazor",
        lat: 41.3500,
        lng: 69.2000,
        population_k: 420,
        area_km2: 34.0,
    },
    CityDistrict {
        id: "sergeli",
        name: "Sergeli",
        lat: 41.2330,
        lng: 69.2300,
        population_k: 180,
        area_km2: 40.0,
    },
    CityDistrict {
        id: "shayxontohur",
        name: "Shayxontohur",
        lat: 41.3150,
        lng: 69.2250,
        population_k: 350,
        area_km2: 27.0,
    },
    CityDistrict {
        id: "uchtepa",
        name: "Uchtepa",
        lat: 41.3100,
        lng: 69.1700,
        population_k: 290,
        area_km2: 24.0,
    },
    CityDistrict {
        id: "yakkasaroy",
        name: "Yakkasaroy",
        lat: 41.2650,
        lng: 69.2350,
        population_k: 130,
        area_km2: 14.0,
    },
    CityDistrict {
        id: "yangihayot",
        name: "Yangihayot",
        lat: 41.2580,
        lng: 69.1800,
        population_k: 200,
        area_km2: 30.0,
    },
    CityDistrict {
        id: "yashnobod",
        name: "Yashnobod",
        lat: 41.3100,
        lng: 69.3350,
        population_k: 290,
        area_km2: 34.0,
    },
    CityDistrict {
        id: "yunusobod",
        name: "Yunusobod",
        lat: 41.37139,
        lng: 69.27944,
        population_k: 350,
        area_km2: 41.0,
    },
];

/// The Tashkent city outline as a polygon (degrees, `x` = lng).
pub fn tashkent_outline() -> Result<Polygon<f64>, SimError> {
    let doc: serde_json::Value = serde_json::from_str(TASHKENT_OUTLINE_GEOJSON)?;
    let ring = doc
        .pointer("/features/0/geometry/coordinates/0")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| SimError::Geometry("embedded outline has no ring".into()))?;
    let coords = ring
        .iter()
        .map(|p| {
            let lng = p.get(0).and_then(serde_json::Value::as_f64);
            let lat = p.get(1).and_then(serde_json::Value::as_f64);
            match (lng, lat) {
                (Some(x), Some(y)) => Ok(Coord { x, y }),
                _ => Err(SimError::Geometry(
                    "embedded outline has a bad position".into(),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(LineString::new(coords), vec![]))
}

/// Every resolution-11 cell whose centre lies inside the city outline, sorted.
pub fn tashkent_cells() -> Result<Vec<CellIndex>, SimError> {
    let mut tiler = TilerBuilder::new(CITY_RESOLUTION)
        .containment_mode(ContainmentMode::ContainsCentroid)
        .build();
    tiler
        .add(tashkent_outline()?)
        .map_err(|e| SimError::Geometry(format!("outline: {e}")))?;
    let mut cells: Vec<CellIndex> = tiler.into_coverage().collect();
    cells.sort_unstable();
    cells.dedup();
    Ok(cells)
}

/// Splits `total` into parts proportional to `weights`, each at least `min`
/// (largest remainder method).
pub(crate) fn apportion(total: usize, weights: &[f64], min: usize) -> Vec<usize> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let floor_total = min * n;
    let rest = total.saturating_sub(floor_total);
    let sum: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * rest as f64).collect();
    let mut parts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = rest - parts.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts.iter().map(|p| p + min).collect()
}

/// A standard normal sample (Box–Muller).
pub(crate) fn normal<R: RngExt + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The member cell nearest to a point (metres).
pub(crate) fn nearest_member(graph: &CellGraph, members: &[u32], xy: (f64, f64)) -> Option<u32> {
    members.iter().copied().min_by(|&a, &b| {
        let da = (graph.xy[a as usize].0 - xy.0).powi(2) + (graph.xy[a as usize].1 - xy.1).powi(2);
        let db = (graph.xy[b as usize].0 - xy.0).powi(2) + (graph.xy[b as usize].1 - xy.1).powi(2);
        da.total_cmp(&db).then(a.cmp(&b))
    })
}

/// Metadata of a district to split into mahallas.
pub(crate) struct DistrictSpec<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) region: &'a str,
    pub(crate) region_name: &'a str,
    /// Number of mahallas.
    pub(crate) mahallas: usize,
    /// Population to share among them.
    pub(crate) population: u64,
    /// Whether the mahallas are urban.
    pub(crate) urban: bool,
    /// Growth centre used to make seeds denser near it (metres); `None` for
    /// uniform density.
    pub(crate) centre: Option<(f64, f64)>,
}

/// Splits the cells of `group` (in `member`) into the district's mahallas and
/// appends their features to `out`.
pub(crate) fn split_district<R: RngExt + ?Sized>(
    rng: &mut R,
    graph: &CellGraph,
    member: &[u32],
    group: u32,
    spec: &DistrictSpec<'_>,
    snapper: &VertexSnapper,
    out: &mut Vec<MahallaFeature>,
) -> Result<(), SimError> {
    let members: Vec<u32> = (0..graph.len() as u32)
        .filter(|&i| member[i as usize] == group)
        .collect();
    if members.is_empty() {
        return Ok(());
    }
    let count = spec.mahallas.clamp(1, members.len());
    let (cx, cy) = spec.centre.unwrap_or((0.0, 0.0));
    let extent = members
        .iter()
        .map(|&m| {
            let (x, y) = graph.xy[m as usize];
            ((x - cx).powi(2) + (y - cy).powi(2)).sqrt()
        })
        .fold(1.0_f64, f64::max);
    let dense_centre = spec.centre.is_some();
    let seed_cells = grid::spread_seeds(rng, graph, &members, count, |(x, y)| {
        if dense_centre {
            // Rural districts: small mahallas in the district town, big ones
            // at the edge.
            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
            1.0 + 2.5 * d / extent
        } else {
            1.0
        }
    });
    let seeds: Vec<Seed> = seed_cells
        .iter()
        .map(|&c| Seed {
            cell: c,
            xy: graph.xy[c as usize],
            weight: rng.random_range(0.85..1.15),
        })
        .collect();
    let mut label = vec![NONE; graph.len()];
    grid::grow(graph, member, group, &seeds, &mut label);
    grid::absorb_unreached(graph, member, group, &mut label);

    let mut cells_of: Vec<Vec<CellIndex>> = vec![Vec::new(); seeds.len()];
    for &m in &members {
        let l = label[m as usize];
        if l != NONE {
            cells_of[l as usize].push(graph.cells[m as usize]);
        }
    }
    // Populations: proportional to the cell count, with log-normal noise.
    let raw: Vec<f64> = cells_of
        .iter()
        .map(|c| c.len() as f64 * (0.35 * normal(rng)).exp())
        .collect();
    let raw_sum: f64 = raw.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut namer = MahallaNamer::new();
    let mut number = 0;
    for (cells, r) in cells_of.into_iter().zip(raw) {
        if cells.is_empty() {
            continue;
        }
        number += 1;
        let geometry = grid::dissolve(&cells, snapper)?;
        let population = (spec.population as f64 * r / raw_sum).round().max(50.0) as u32;
        out.push(MahallaFeature {
            id: format!("{}-{number:03}", spec.id),
            name: namer.next(rng),
            district: spec.id.to_owned(),
            district_name: spec.name.to_owned(),
            region: spec.region.to_owned(),
            region_name: spec.region_name.to_owned(),
            population,
            inspector: names::inspector(rng),
            urban: spec.urban,
            geometry,
            cells,
        });
    }
    Ok(())
}

/// Generates the Tashkent city registry.
///
/// Same options, same registry (byte for byte once serialised).
pub fn city_registry(options: &CityOptions) -> Result<GeneratedRegistry, SimError> {
    let n = TASHKENT_DISTRICTS.len();
    if options.mahallas < n {
        return Err(SimError::InvalidOption(format!(
            "a city needs at least {n} mahallas, got {}",
            options.mahallas
        )));
    }
    let cells = tashkent_cells()?;
    if options.mahallas > cells.len() / 4 {
        return Err(SimError::InvalidOption(format!(
            "at most {} mahallas fit in the city, got {}",
            cells.len() / 4,
            options.mahallas
        )));
    }
    let centre = tashkent_outline()?
        .exterior()
        .0
        .iter()
        .fold((0.0, 0.0, 0.0), |(y, x, k), c| (y + c.y, x + c.x, k + 1.0));
    let projection = Projection::new(centre.0 / centre.2, centre.1 / centre.2);
    let graph = CellGraph::new(cells, projection);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x7a5b_c17e);

    // Districts.
    let all: Vec<u32> = (0..graph.len() as u32).collect();
    let member = vec![0_u32; graph.len()];
    let mut seeds = Vec::with_capacity(n);
    for d in &TASHKENT_DISTRICTS {
        let xy = projection.to_xy(d.lat, d.lng);
        let own = LatLng::new(d.lat, d.lng)
            .ok()
            .map(|ll| ll.to_cell(CITY_RESOLUTION));
        let cell = own
            .and_then(|c| graph.index.get(&c).copied())
            .or_else(|| nearest_member(&graph, &all, xy))
            .ok_or_else(|| SimError::Geometry("the city outline holds no cell".into()))?;
        seeds.push(Seed {
            cell,
            xy,
            weight: (d.area_km2 / 30.0).sqrt(),
        });
    }
    let mut district_of = vec![NONE; graph.len()];
    grid::grow(&graph, &member, 0, &seeds, &mut district_of);
    let stray = grid::absorb_unreached(&graph, &member, 0, &mut district_of);
    if stray > 0 {
        return Err(SimError::Geometry(format!(
            "{stray} city cells are cut off from every district"
        )));
    }

    let mut snapper = VertexSnapper::default();
    snapper.add_cells(&graph.cells);

    let weights: Vec<f64> = TASHKENT_DISTRICTS
        .iter()
        .map(|d| f64::from(d.population_k))
        .collect();
    let counts = apportion(options.mahallas, &weights, 1);
    let mut features = Vec::with_capacity(options.mahallas);
    for (i, d) in TASHKENT_DISTRICTS.iter().enumerate() {
        let spec = DistrictSpec {
            id: d.id,
            name: d.name,
            region: TASHKENT_REGION,
            region_name: TASHKENT_REGION_NAME,
            mahallas: counts[i],
            population: u64::from(d.population_k) * 1000,
            urban: true,
            centre: None,
        };
        split_district(
            &mut rng,
            &graph,
            &district_of,
            i as u32,
            &spec,
            &snapper,
            &mut features,
        )?;
    }
    Ok(GeneratedRegistry { features })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_sums_and_respects_minimum() {
        let parts = apportion(100, &[1.0, 2.0, 3.0, 0.0], 2);
        assert_eq!(parts.iter().sum::<usize>(), 100);
        assert!(parts.iter().all(|&p| p >= 2));
        assert!(parts[2] > parts[1] && parts[1] > parts[0]);
    }

    #[test]
    fn district_seeds_are_inside_the_outline() {
        use geo::Contains;
        let outline = tashkent_outline().expect("outline");
        for d in &TASHKENT_DISTRICTS {
            assert!(
                outline.contains(&geo::Point::new(d.lng, d.lat)),
                "{} is outside",
                d.id
            );
        }
    }
}
