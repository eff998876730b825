//! A generated mahalla registry and its GeoJSON form (the contract that
//! `posbon-geo` loads: one Polygon / MultiPolygon feature per mahalla, with
//! `id`, `name`, `district`, `district_name`, `region`, `region_name`,
//! `population` and `inspector` properties, coordinates as `[lng, lat]`).

use std::collections::BTreeMap;
use std::io::Write;

use geo::{LineString, MultiPolygon, Polygon};
use h3o::CellIndex;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

use crate::error::SimError;

/// One generated mahalla.
#[derive(Debug, Clone)]
pub struct MahallaFeature {
    /// Globally unique, subject-safe id, e.g. `chilonzor-017`.
    pub id: String,
    /// Uzbek name in Latin script, unique within the district.
    pub name: String,
    /// District id token, e.g. `mirzo_ulugbek`.
    pub district: String,
    /// District display name, e.g. `Mirzo Ulug'bek`.
    pub district_name: String,
    /// Region id token, e.g. `tashkent`.
    pub region: String,
    /// Region display name, e.g. `Toshkent shahri`.
    pub region_name: String,
    /// Resident population.
    pub population: u32,
    /// Name of the responsible mahalla inspector (synthetic).
    pub inspector: String,
    /// True for town mahallas, false for rural ones.
    pub urban: bool,
    /// Outline, degrees (`x` = lng, `y` = lat); exterior rings counter-clockwise.
    pub geometry: MultiPolygon<f64>,
    /// The H3 cells (all of one resolution) the mahalla was built from; the
    /// geometry is exactly their union.
    pub cells: Vec<CellIndex>,
}

impl MahallaFeature {
    /// Area of the mahalla in square metres (sum of its cells' areas).
    pub fn area_m2(&self) -> f64 {
        self.cells.iter().map(|c| c.area_m2()).sum()
    }
}

/// A generated registry: a list of mahallas.
#[derive(Debug, Clone, Default)]
pub struct GeneratedRegistry {
    /// The mahallas, grouped by region and district.
    pub features: Vec<MahallaFeature>,
}

impl GeneratedRegistry {
    /// Number of mahallas.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when there is no mahalla.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Distinct district ids with their mahalla counts, sorted by id.
    pub fn districts(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for f in &self.features {
            *out.entry(f.district.as_str()).or_insert(0) += 1;
        }
        out
    }

    /// Distinct region ids with their mahalla counts, sorted by id.
    pub fn regions(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for f in &self.features {
            *out.entry(f.region.as_str()).or_insert(0) += 1;
        }
        out
    }

    /// Total population of all mahallas.
    pub fn population(&self) -> u64 {
        self.features.iter().map(|f| u64::from(f.population)).sum()
    }

    /// Writes the registry as a GeoJSON FeatureCollection.
    pub fn write_geojson<W: Write>(&self, writer: W) -> Result<(), SimError> {
        let mut writer = std::io::BufWriter::new(writer);
        serde_json::to_writer(&mut writer, &GeoJson(self))?;
        writer.write_all(b"\n")?;
        writer.flush()?;
        Ok(())
    }

    /// The registry as a GeoJSON FeatureCollection string.
    pub fn to_geojson_string(&self) -> String {
        // Serialising plain data into a String cannot fail.
        serde_json::to_string(&GeoJson(self)).unwrap_or_default()
    }

    /// The registry loaded as services load one (default options), as if
    /// written to a file and read back.
    pub fn registry(&self) -> Result<posbon_geo::Registry, SimError> {
        posbon_geo::Registry::from_geojson(
            self.to_geojson_string().as_bytes(),
            &posbon_geo::RegistryOptions::default(),
        )
        .map_err(|e| SimError::Registry(format!("the generated registry does not load: {e}")))
    }

    /// The registry as a GeoJSON value (handy in tests; large for a national
    /// registry, prefer [`Self::write_geojson`]).
    pub fn to_geojson_value(&self) -> serde_json::Value {
        serde_json::to_value(GeoJson(self)).unwrap_or_default()
    }
}

struct GeoJson<'a>(&'a GeneratedRegistry);

impl Serialize for GeoJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type", "FeatureCollection")?;
        map.serialize_entry("features", &Features(&self.0.features))?;
        map.end()
    }
}

struct Features<'a>(&'a [MahallaFeature]);

impl Serialize for Features<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for f in self.0 {
            seq.serialize_element(&Feature(f))?;
        }
        seq.end()
    }
}

struct Feature<'a>(&'a MahallaFeature);

#[derive(Serialize)]
struct Properties<'a> {
    id: &'a str,
    name: &'a str,
    district: &'a str,
    district_name: &'a str,
    region: &'a str,
    region_name: &'a str,
    population: u32,
    inspector: &'a str,
}

impl Serialize for Feature<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("type", "Feature")?;
        map.serialize_entry("id", &f.id)?;
        map.serialize_entry(
            "properties",
            &Properties {
                id: &f.id,
                name: &f.name,
                district: &f.district,
                district_name: &f.district_name,
                region: &f.region,
                region_name: &f.region_name,
                population: f.population,
                inspector: &f.inspector,
            },
        )?;
        map.serialize_entry("geometry", &Geometry(&f.geometry))?;
        map.end()
    }
}

struct Geometry<'a>(&'a MultiPolygon<f64>);

impl Serialize for Geometry<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        if let [single] = self.0.0.as_slice() {
            map.serialize_entry("type", "Polygon")?;
            map.serialize_entry("coordinates", &PolygonCoords(single))?;
        } else {
            map.serialize_entry("type", "MultiPolygon")?;
            let polys: Vec<PolygonCoords<'_>> = self.0.0.iter().map(PolygonCoords).collect();
            map.serialize_entry("coordinates", &polys)?;
        }
        map.end()
    }
}

struct PolygonCoords<'a>(&'a Polygon<f64>);

impl Serialize for PolygonCoords<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut seq = s.serialize_seq(Some(1 + p.interiors().len()))?;
        seq.serialize_element(&RingCoords(p.exterior()))?;
        for ring in p.interiors() {
            seq.serialize_element(&RingCoords(ring))?;
        }
        seq.end()
    }
}

struct RingCoords<'a>(&'a LineString<f64>);

impl Serialize for RingCoords<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.0.len()))?;
        for c in &self.0.0 {
            seq.serialize_element(&[c.x, c.y])?;
        }
        seq.end()
    }
}
