//! The registry as the event generator sees it: mahalla outlines with their
//! populations, and uniform point sampling inside them.

use geo::{BoundingRect, Contains, InteriorPoint, MultiPolygon, Point, Rect};
use rand::RngExt;
use serde_json::Value;

use crate::error::SimError;
use crate::registry::GeneratedRegistry;

/// One mahalla of a [`SimRegistry`].
#[derive(Debug, Clone)]
pub struct SimMahalla {
    /// Mahalla id.
    pub id: String,
    /// District id.
    pub district: String,
    /// Region id.
    pub region: String,
    /// Population (5,000 when the registry has none).
    pub population: u32,
    /// Outline (degrees, `x` = lng).
    pub geometry: MultiPolygon<f64>,
    bbox: Rect<f64>,
    fallback: (f64, f64),
}

/// Coordinates are rounded to this many decimal degrees (about 1 cm).
const COORD_SCALE: f64 = 1e7;

fn round_coord(v: f64) -> f64 {
    (v * COORD_SCALE).round() / COORD_SCALE
}

impl SimMahalla {
    /// Whether the point (degrees) lies strictly inside the mahalla.
    pub fn contains(&self, lat: f64, lng: f64) -> bool {
        self.geometry.contains(&Point::new(lng, lat))
    }

    /// A uniformly random point strictly inside the mahalla, rounded to
    /// 1e-7 degree, as (lat, lng).
    pub(crate) fn sample_point<R: RngExt + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        let (min, max) = (self.bbox.min(), self.bbox.max());
        for _ in 0..256 {
            let lng = round_coord(min.x + (max.x - min.x) * rng.random::<f64>());
            let lat = round_coord(min.y + (max.y - min.y) * rng.random::<f64>());
            if self.contains(lat, lng) {
                return (lat, lng);
            }
        }
        self.fallback
    }

    /// A point near (lat, lng): uniform in a disk of `radius_m`, kept inside
    /// the mahalla and accepted by `accept`; `None` after a few misses.
    pub(crate) fn sample_near<R: RngExt + ?Sized>(
        &self,
        rng: &mut R,
        lat: f64,
        lng: f64,
        radius_m: f64,
        accept: impl Fn(f64, f64) -> bool,
    ) -> Option<(f64, f64)> {
        let m_per_deg_lat = 111_132.0;
        let m_per_deg_lng = m_per_deg_lat * lat.to_radians().cos();
        for _ in 0..24 {
            let r = radius_m * rng.random::<f64>().sqrt();
            let a = std::f64::consts::TAU * rng.random::<f64>();
            let plat = round_coord(lat + r * a.sin() / m_per_deg_lat);
            let plng = round_coord(lng + r * a.cos() / m_per_deg_lng);
            if self.contains(plat, plng) && accept(plat, plng) {
                return Some((plat, plng));
            }
        }
        None
    }
}

/// The mahallas an event stream is generated over.
#[derive(Debug, Clone)]
pub struct SimRegistry {
    mahallas: Vec<SimMahalla>,
}

impl SimRegistry {
    /// Reads a registry GeoJSON FeatureCollection (the format
    /// [`GeneratedRegistry::write_geojson`] writes and `posbon-geo` loads).
    pub fn from_geojson(bytes: &[u8]) -> Result<Self, SimError> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| SimError::Registry(format!("malformed json: {e}")))?;
        let features = doc
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| SimError::Registry("missing \"features\" array".into()))?;
        let mut mahallas = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            mahallas.push(
                read_feature(f).map_err(|e| SimError::Registry(format!("feature {i}: {e}")))?,
            );
        }
        if mahallas.is_empty() {
            return Err(SimError::Registry("no mahalla in the registry".into()));
        }
        Ok(Self { mahallas })
    }

    /// The registry of a generated one. Goes through its GeoJSON text, so
    /// that a stream over a generated registry is identical to one over the
    /// same registry written to a file and read back.
    pub fn from_generated(registry: &GeneratedRegistry) -> Result<Self, SimError> {
        Self::from_geojson(registry.to_geojson_string().as_bytes())
    }

    /// The mahallas, in file order.
    pub fn mahallas(&self) -> &[SimMahalla] {
        &self.mahallas
    }

    /// Number of mahallas.
    pub fn len(&self) -> usize {
        self.mahallas.len()
    }

    /// True when there is no mahalla (never, for a loaded registry).
    pub fn is_empty(&self) -> bool {
        self.mahallas.is_empty()
    }
}

fn read_feature(f: &Value) -> Result<SimMahalla, String> {
    let props = f.get("properties").ok_or("missing properties")?;
    let text = |k: &str| -> Result<String, String> {
        props
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("properties.{k} is missing"))
    };
    let id = text("id")?;
    let district = text("district")?;
    let region = text("region")?;
    let population = props
        .get("population")
        .and_then(Value::as_u64)
        .map_or(5000, |p| u32::try_from(p).unwrap_or(u32::MAX));
    let geometry = f.get("geometry").ok_or("missing geometry")?;
    let coords = geometry.get("coordinates").ok_or("missing coordinates")?;
    let polygons = match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => vec![read_polygon(coords)?],
        Some("MultiPolygon") => coords
            .as_array()
            .ok_or("coordinates is not an array")?
            .iter()
            .map(read_polygon)
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(format!("{id}: geometry is not a Polygon or MultiPolygon")),
    };
    let geometry = MultiPolygon::new(polygons);
    let bbox = geometry
        .bounding_rect()
        .ok_or_else(|| format!("{id}: empty geometry"))?;
    let fallback = geometry
        .interior_point()
        .map_or((bbox.center().y, bbox.center().x), |p| (p.y(), p.x()));
    Ok(SimMahalla {
        id,
        district,
        region,
        population,
        geometry,
        bbox,
        fallback,
    })
}

fn read_polygon(v: &Value) -> Result<geo::Polygon<f64>, String> {
    let rings = v.as_array().ok_or("a polygon is not an array of rings")?;
    let mut out = Vec::with_capacity(rings.len());
    for ring in rings {
        let positions = ring.as_array().ok_or("a ring is not an array")?;
        let coords = positions
            .iter()
            .map(|p| {
                match (
                    p.get(0).and_then(Value::as_f64),
                    p.get(1).and_then(Value::as_f64),
                ) {
                    (Some(x), Some(y)) => Ok(geo::Coord { x, y }),
                    _ => Err("a position is not [lng, lat]".to_owned()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(geo::LineString::new(coords));
    }
    if out.is_empty() {
        return Err("a polygon has no ring".into());
    }
    let exterior = out.remove(0);
    Ok(geo::Polygon::new(exterior, out))
}
