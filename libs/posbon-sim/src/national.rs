//! The synthetic national registry: the 14 regions of Uzbekistan, each with
//! towns at real settlement points and rural districts around its capital.
//!
//! Each settlement (a town or a rural district) is a cluster of H3 cells grown
//! around its centre: towns from resolution-10 cells (mahallas of about
//! 0.5 km²), rural districts from resolution-9 cells (mahallas of about
//! 4.5 km², smaller near the district centre). Settlements reserve the
//! resolution-7 cells they touch plus a ring of buffer cells around them, so
//! no two settlements (or regions) ever overlap. Tashkent city is the
//! [`crate::city_registry`] output.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use h3o::{CellIndex, LatLng, Resolution};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::city::{self, CityOptions, DistrictSpec, TASHKENT_REGION};
use crate::error::SimError;
use crate::grid::{CellGraph, Projection, VertexSnapper};
use crate::names;
use crate::registry::{GeneratedRegistry, MahallaFeature};

/// Default number of mahallas of the national registry.
pub const DEFAULT_NATIONAL_MAHALLAS: usize = 9500;

/// Resolution of the cells settlements reserve (with a ring of buffer cells).
const RESERVE_RES: Resolution = Resolution::Seven;
/// Resolution of town mahalla cells.
const URBAN_RES: Resolution = Resolution::Ten;
/// Resolution of rural mahalla cells.
const RURAL_RES: Resolution = Resolution::Nine;
/// Mean area of a town mahalla, km².
const URBAN_MAHALLA_KM2: f64 = 0.5;
/// Mean area of a rural mahalla, km².
const RURAL_MAHALLA_KM2: f64 = 4.5;

/// Options of [`national_registry`].
#[derive(Debug, Clone)]
pub struct NationalOptions {
    /// Seed of the random generator: same seed, same registry.
    pub seed: u64,
    /// Number of mahallas (at least 300).
    pub mahallas: usize,
}

impl Default for NationalOptions {
    fn default() -> Self {
        Self {
            seed: city::DEFAULT_SEED,
            mahallas: DEFAULT_NATIONAL_MAHALLAS,
        }
    }
}

/// A town: a settlement point with its share of the region's mahallas.
#[derive(Debug, Clone, Copy)]
pub struct TownSpec {
    /// Name in Latin-script Uzbek.
    pub name: &'static str,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// Share of the region's mahallas in this town.
    pub share: f64,
}

/// A region (province, republic or Tashkent city).
#[derive(Debug, Clone, Copy)]
pub struct RegionSpec {
    /// Region id token.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Approximate population (2024), thousands.
    pub population_k: u32,
    /// Mahallas at the default national total of 9,500 (the weights).
    pub mahallas: u32,
    /// Radius around the capital where rural districts are placed, km.
    pub radius_km: f64,
    /// Towns, the capital first.
    pub towns: &'static [TownSpec],
}

const fn town(name: &'static str, lat: f64, lng: f64, share: f64) -> TownSpec {
    TownSpec {
        name,
        lat,
        lng,
        share,
    }
}

/// The 14 regions of Uzbekistan, with their capitals and major towns.
pub const REGIONS: [RegionSpec; 14] = [
    RegionSpec {
        id: "tashkent",
        name: "Toshkent shahri",
        population_k: 3000,
        mahallas: 600,
        radius_km: 0.0,
        towns: &[town("Toshkent", 41.31, 69.28, 1.0)],
    },
    RegionSpec {
        id: "karakalpakstan",
        name: "Qoraqalpog'iston Respublikasi",
        population_k: 2000,
        mahallas: 550,
        radius_km: 150.0,
        towns: &[
            town("Nukus", 42.46, 59.61, 0.14),
            town("Xo'jayli", 42.40, 59.45, 0.04),
            town("To'rtko'l", 41.55, 61.00, 0.04),
            town("Beruniy", 41.69, 60.75, 0.03),
            town("Chimboy", 42.93, 59.77, 0.03),
        ],
    },
    RegionSpec {
        id: "khorezm",
        name: "Xorazm viloyati",
        population_k: 1950,
        mahallas: 550,
        radius_km: 45.0,
        towns: &[
            town("Urganch", 41.55, 60.63, 0.12),
            town("Xiva", 41.38, 60.36, 0.05),
        ],
    },
    RegionSpec {
        id: "bukhara",
        name: "Buxoro viloyati",
        population_k: 2000,
        mahallas: 550,
        radius_km: 80.0,
        towns: &[
            town("Buxoro", 39.77, 64.42, 0.16),
            town("Kogon", 39.72, 64.55, 0.03),
            town("G'ijduvon", 40.10, 64.68, 0.03),
        ],
    },
    RegionSpec {
        id: "navoiy",
        name: "Navoiy viloyati",
        population_k: 1050,
        mahallas: 250,
        radius_km: 120.0,
        towns: &[
            town("Navoiy", 40.10, 65.37, 0.18),
            town("Zarafshon", 41.57, 64.20, 0.06),
        ],
    },
    RegionSpec {
        id: "samarkand",
        name: "Samarqand viloyati",
        population_k: 4200,
        mahallas: 1000,
        radius_km: 70.0,
        towns: &[
            town("Samarqand", 39.65, 66.96, 0.14),
            town("Kattaqo'rg'on", 39.90, 66.26, 0.03),
            town("Urgut", 39.40, 67.24, 0.03),
        ],
    },
    RegionSpec {
        id: "kashkadarya",
        name: "Qashqadaryo viloyati",
        population_k: 3500,
        mahallas: 950,
        radius_km: 100.0,
        towns: &[
            town("Qarshi", 38.86, 65.79, 0.10),
            town("Shahrisabz", 39.06, 66.83, 0.04),
            town("G'uzor", 38.62, 66.25, 0.02),
        ],
    },
    RegionSpec {
        id: "surkhandarya",
        name: "Surxondaryo viloyati",
        population_k: 2900,
        mahallas: 800,
        radius_km: 90.0,
        towns: &[
            town("Termiz", 37.22, 67.28, 0.08),
            town("Denov", 38.27, 67.90, 0.04),
        ],
    },
    RegionSpec {
        id: "jizzakh",
        name: "Jizzax viloyati",
        population_k: 1450,
        mahallas: 350,
        radius_km: 70.0,
        towns: &[town("Jizzax", 40.12, 67.84, 0.14)],
    },
    RegionSpec {
        id: "syrdarya",
        name: "Sirdaryo viloyati",
        population_k: 900,
        mahallas: 250,
        radius_km: 45.0,
        towns: &[
            town("Guliston", 40.49, 68.78, 0.14),
            town("Yangiyer", 40.27, 68.82, 0.05),
            town("Shirin", 40.22, 69.13, 0.03),
        ],
    },
    RegionSpec {
        id: "tashkent_region",
        name: "Toshkent viloyati",
        population_k: 3000,
        mahallas: 850,
        radius_km: 60.0,
        towns: &[
            town("Nurafshon", 41.04, 69.36, 0.04),
            town("Chirchiq", 41.47, 69.58, 0.06),
            town("Angren", 41.02, 70.14, 0.06),
            town("Olmaliq", 40.85, 69.60, 0.05),
            town("Yangiyo'l", 41.11, 69.05, 0.03),
        ],
    },
    RegionSpec {
        id: "namangan",
        name: "Namangan viloyati",
        population_k: 3000,
        mahallas: 900,
        radius_km: 45.0,
        towns: &[
            town("Namangan", 41.00, 71.67, 0.15),
            town("Chust", 41.00, 71.24, 0.04),
            town("Pop", 40.87, 71.11, 0.03),
        ],
    },
    RegionSpec {
        id: "andijan",
        name: "Andijon viloyati",
        population_k: 3300,
        mahallas: 950,
        radius_km: 40.0,
        towns: &[
            town("Andijon", 40.78, 72.34, 0.12),
            town("Asaka", 40.64, 72.24, 0.04),
            town("Xonobod", 40.80, 73.00, 0.03),
        ],
    },
    RegionSpec {
        id: "fergana",
        name: "Farg'ona viloyati",
        population_k: 4000,
        mahallas: 1000,
        radius_km: 50.0,
        towns: &[
            town("Farg'ona", 40.39, 71.78, 0.10),
            town("Qo'qon", 40.53, 70.94, 0.06),
            town("Marg'ilon", 40.47, 71.72, 0.05),
            town("Quvasoy", 40.30, 71.98, 0.03),
        ],
    },
];

/// Owner of a reserved cell that belongs to no settlement (a buffer).
const BLOCKED: u32 = u32::MAX;

/// Which settlement reserved each resolution-7 cell.
#[derive(Debug, Default)]
struct Reservations {
    owner: HashMap<CellIndex, u32>,
}

impl Reservations {
    fn is_free(&self, cell: CellIndex) -> bool {
        !self.owner.contains_key(&cell)
    }

    /// Reserves `cells` (already at [`RESERVE_RES`]) for `sid` and blocks a
    /// ring around them.
    fn reserve(&mut self, sid: u32, cells: &HashSet<CellIndex>) {
        let mut sorted: Vec<CellIndex> = cells.iter().copied().collect();
        sorted.sort_unstable();
        for &c in &sorted {
            self.owner.insert(c, sid);
        }
        for &c in &sorted {
            for n in c.grid_disk::<Vec<CellIndex>>(1) {
                self.owner.entry(n).or_insert(BLOCKED);
            }
        }
    }

    /// The free resolution-7 cell nearest to `ll` (searching outwards ring
    /// by ring), as its centre.
    fn nearest_free(&self, ll: LatLng) -> Option<LatLng> {
        let start = ll.to_cell(RESERVE_RES);
        if self.is_free(start) {
            return Some(ll);
        }
        for k in 1..400 {
            let mut ring: Vec<CellIndex> = start.grid_ring::<Vec<CellIndex>>(k);
            ring.sort_unstable();
            let best = ring
                .into_iter()
                .filter(|&c| self.is_free(c))
                .map(|c| (LatLng::from(c).distance_m(ll), c))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            if let Some((_, c)) = best {
                return Some(LatLng::from(c));
            }
        }
        None
    }

    /// Grows a cluster of `want` cells at `res` around `centre` (a blob with
    /// a random wavy outline), taking only cells whose resolution-7 parent is
    /// free or already this settlement's, then reserves those parents.
    fn claim<R: RngExt + ?Sized>(
        &mut self,
        rng: &mut R,
        sid: u32,
        centre: LatLng,
        res: Resolution,
        want: usize,
    ) -> Vec<CellIndex> {
        let projection = Projection::new(centre.lat(), centre.lng());
        let waves: Vec<(f64, f64, f64)> = (1..=3)
            .map(|k| {
                (
                    f64::from(k),
                    rng.random_range(0.0..0.12),
                    rng.random_range(0.0..std::f64::consts::TAU),
                )
            })
            .collect();
        let priority = |cell: CellIndex| -> u64 {
            let ll = LatLng::from(cell);
            let (x, y) = projection.to_xy(ll.lat(), ll.lng());
            let theta = y.atan2(x);
            let shape: f64 = 1.0
                + waves
                    .iter()
                    .map(|(k, a, p)| a * (k * theta + p).sin())
                    .sum::<f64>();
            ((x * x + y * y).sqrt() * shape).to_bits()
        };
        let mut own: HashSet<CellIndex> = HashSet::new();
        let mut seen: HashSet<CellIndex> = HashSet::new();
        let mut heap = BinaryHeap::new();
        let start = centre.to_cell(res);
        heap.push(Reverse((priority(start), start)));
        seen.insert(start);
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let Some(Reverse((_, cell))) = heap.pop() else {
                break;
            };
            let Some(parent) = cell.parent(RESERVE_RES) else {
                continue;
            };
            if !own.contains(&parent) {
                if !self.is_free(parent) {
                    continue;
                }
                own.insert(parent);
            }
            out.push(cell);
            for n in cell.grid_disk::<Vec<CellIndex>>(1) {
                if seen.insert(n) {
                    heap.push(Reverse((priority(n), n)));
                }
            }
        }
        self.reserve(sid, &own);
        out
    }
}

/// A settlement to generate: a district made of one cluster.
struct Settlement {
    district_id: String,
    district_name: String,
    centre: LatLng,
    mahallas: usize,
    urban: bool,
    /// Relative population weight of its mahallas.
    weight: f64,
}

/// Generates the national registry.
///
/// Same options, same registry (byte for byte once serialised).
pub fn national_registry(options: &NationalOptions) -> Result<GeneratedRegistry, SimError> {
    if options.mahallas < 300 {
        return Err(SimError::InvalidOption(format!(
            "a national registry needs at least 300 mahallas, got {}",
            options.mahallas
        )));
    }
    if options.mahallas > 100_000 {
        return Err(SimError::InvalidOption(format!(
            "a national registry holds at most 100000 mahallas, got {}",
            options.mahallas
        )));
    }
    let weights: Vec<f64> = REGIONS.iter().map(|r| f64::from(r.mahallas)).collect();
    let per_region = city::apportion(options.mahallas, &weights, 12);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x0a71_0a11);
    let mut reservations = Reservations::default();
    let mut used_districts: HashSet<String> = city::TASHKENT_DISTRICTS
        .iter()
        .map(|d| d.id.to_owned())
        .collect();
    let mut features: Vec<MahallaFeature> = Vec::with_capacity(options.mahallas);
    let mut sid: u32 = 0;

    for (region, &count) in REGIONS.iter().zip(&per_region) {
        if region.id == TASHKENT_REGION {
            let city = city::city_registry(&CityOptions {
                seed: options.seed,
                mahallas: count,
            })?;
            let parents: HashSet<CellIndex> = city
                .features
                .iter()
                .flat_map(|f| f.cells.iter().filter_map(|c| c.parent(RESERVE_RES)))
                .collect();
            reservations.reserve(sid, &parents);
            sid += 1;
            features.extend(city.features);
            continue;
        }
        let settlements = plan_region(&mut rng, region, count, &mut used_districts);
        let region_features_start = features.len();
        let mut weights_of: Vec<f64> = Vec::new();
        for s in settlements {
            let Some(centre) = reservations.nearest_free(s.centre) else {
                return Err(SimError::Geometry(format!(
                    "no room left for {}",
                    s.district_id
                )));
            };
            let (res, km2) = if s.urban {
                (URBAN_RES, URBAN_MAHALLA_KM2)
            } else {
                (RURAL_RES, RURAL_MAHALLA_KM2)
            };
            let cell_km2 = centre.to_cell(res).area_km2();
            let want = ((s.mahallas as f64 * km2 / cell_km2).ceil() as usize).max(s.mahallas * 4);
            let cells = reservations.claim(&mut rng, sid, centre, res, want);
            sid += 1;
            let projection = Projection::new(centre.lat(), centre.lng());
            let graph = CellGraph::new(cells, projection);
            let member = vec![0_u32; graph.len()];
            let mut snapper = VertexSnapper::default();
            snapper.add_cells(&graph.cells);
            let spec = DistrictSpec {
                id: &s.district_id,
                name: &s.district_name,
                region: region.id,
                region_name: region.name,
                mahallas: s.mahallas,
                population: 1_000_000,
                urban: s.urban,
                centre: if s.urban { None } else { Some((0.0, 0.0)) },
            };
            let before = features.len();
            city::split_district(&mut rng, &graph, &member, 0, &spec, &snapper, &mut features)?;
            weights_of.extend(std::iter::repeat_n(s.weight, features.len() - before));
        }
        // Share the region's population among its mahallas, by the relative
        // weights the split produced times the settlement weight.
        let region_features = &mut features[region_features_start..];
        let raw: Vec<f64> = region_features
            .iter()
            .zip(&weights_of)
            .map(|(f, w)| f64::from(f.population) * w)
            .collect();
        let sum: f64 = raw.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let total = f64::from(region.population_k) * 1000.0;
        for (f, r) in region_features.iter_mut().zip(raw) {
            f.population = (total * r / sum).round().max(50.0) as u32;
        }
    }
    Ok(GeneratedRegistry { features })
}

/// Lays out a region: its towns, then rural districts around the capital.
fn plan_region<R: RngExt + ?Sized>(
    rng: &mut R,
    region: &RegionSpec,
    count: usize,
    used: &mut HashSet<String>,
) -> Vec<Settlement> {
    let mut out = Vec::new();
    let shares: f64 = region.towns.iter().map(|t| t.share).sum();
    let mut town_counts: Vec<usize> = region
        .towns
        .iter()
        .map(|t| ((count as f64 * t.share).round() as usize).max(3))
        .collect();
    // Leave at least a third of the mahallas rural.
    let town_total: usize = town_counts.iter().sum();
    if shares >= 1.0 || town_total * 3 > count * 2 {
        let scale = (count as f64 * 0.66) / town_total.max(1) as f64;
        for c in &mut town_counts {
            *c = ((*c as f64 * scale).floor() as usize).max(1);
        }
    }
    for (t, &m) in region.towns.iter().zip(&town_counts) {
        let name = format!("{} shahri", t.name);
        let mut id = names::token(&name);
        while !used.insert(id.clone()) {
            id.push('_');
            id.push_str(region.id);
        }
        out.push(Settlement {
            district_id: id,
            district_name: name,
            centre: LatLng::new(t.lat, t.lng).unwrap_or_else(|_| fallback_latlng()),
            mahallas: m,
            urban: true,
            weight: 1.7,
        });
    }
    let rural_total = count.saturating_sub(town_counts.iter().sum());
    if rural_total == 0 {
        return out;
    }
    let districts = ((rural_total as f64 / 75.0).round() as usize)
        .clamp(1, 14)
        .min(rural_total);
    let weights: Vec<f64> = (0..districts).map(|_| rng.random_range(0.6..1.4)).collect();
    let counts = city::apportion(rural_total, &weights, 1);
    let capital = region.towns[0];
    let projection = Projection::new(capital.lat, capital.lng);
    let min_r = 15_000.0_f64.min(region.radius_km * 500.0);
    for (k, m) in counts.into_iter().enumerate() {
        // Spread the districts around the capital: one per sector, jittered.
        let angle =
            (k as f64 + rng.random_range(0.0..0.8)) / districts as f64 * std::f64::consts::TAU;
        let r = min_r + (region.radius_km * 1000.0 - min_r) * rng.random::<f64>().sqrt();
        let (lat, lng) = projection.to_latlng(r * angle.cos(), r * angle.sin());
        let name = names::district_name(rng, used);
        out.push(Settlement {
            district_id: names::token(&name),
            district_name: name,
            centre: LatLng::new(lat, lng).unwrap_or_else(|_| fallback_latlng()),
            mahallas: m,
            urban: false,
            weight: 1.0,
        });
    }
    out
}

fn fallback_latlng() -> LatLng {
    // The geographic centre of Uzbekistan; only used if a table entry is bad.
    LatLng::new(41.38, 64.57).unwrap_or_else(|_| LatLng::from(CellIndex::first(Resolution::Zero)))
}
