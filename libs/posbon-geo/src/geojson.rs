//! Reading the registry GeoJSON: one Feature per mahalla.
//!
//! The format is documented in `schemas/mahalla-registry.md`. Everything that is
//! wrong with a feature is reported with the feature's position and id; nothing
//! is repaired silently (geo-types closes rings on its own, so ring closure is
//! checked here, on the raw coordinates).

use geo::{Coord, LineString, MultiPolygon, Polygon, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::RegistryError;
use crate::id::check_place_id;

/// The properties of one mahalla feature, as written in the file.
#[derive(Debug, Deserialize)]
struct RawProperties {
    id: Option<String>,
    name: Option<String>,
    district: Option<String>,
    district_name: Option<String>,
    region: Option<String>,
    region_name: Option<String>,
    population: Option<u64>,
    inspector: Option<String>,
    inspector_contact: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// One feature after reading and checking, before indexing.
#[derive(Debug, Clone)]
pub(crate) struct FeatureRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) district_id: String,
    pub(crate) district_name: String,
    pub(crate) region_id: String,
    pub(crate) region_name: String,
    pub(crate) population: Option<u32>,
    pub(crate) inspector: Option<String>,
    pub(crate) inspector_contact: Option<String>,
    pub(crate) extra: Map<String, Value>,
    pub(crate) geometry: MultiPolygon<f64>,
}

/// Parses a FeatureCollection into checked records.
pub(crate) fn read_features(bytes: &[u8]) -> Result<Vec<FeatureRecord>, RegistryError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Document(format!("malformed json: {e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| RegistryError::Document("top level is not an object".into()))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {}
        Some(other) => {
            return Err(RegistryError::Document(format!(
                "type is {other:?}, expected \"FeatureCollection\""
            )));
        }
        None => return Err(RegistryError::Document("missing \"type\"".into())),
    }
    let features = obj
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| RegistryError::Document("missing \"features\" array".into()))?;
    features
        .iter()
        .enumerate()
        .map(|(index, f)| read_feature(index, f))
        .collect()
}

fn read_feature(index: usize, feature: &Value) -> Result<FeatureRecord, RegistryError> {
    let err = |id: Option<&str>, what: String| RegistryError::feature(index, id, what);
    let obj = feature
        .as_object()
        .ok_or_else(|| err(None, "is not an object".into()))?;
    if obj.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(err(None, "type is not \"Feature\"".into()));
    }
    let props_value = obj
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| err(None, "properties: missing or not an object".into()))?;
    let props: RawProperties = serde_json::from_value(props_value.clone())
        .map_err(|e| err(None, format!("properties: {e}")))?;
    // The mahalla id: properties.id, else the feature's own id.
    let id = match (&props.id, obj.get("id")) {
        (Some(id), _) => id.clone(),
        (None, Some(Value::String(s))) => s.clone(),
        (None, Some(Value::Number(n))) => n.to_string(),
        _ => return Err(err(None, "properties.id: missing".into())),
    };
    let idr = Some(id.as_str());
    check_place_id(&id).map_err(|e| err(idr, format!("properties.id {e}")))?;
    let required = |field: &str, v: &Option<String>| -> Result<String, RegistryError> {
        match v {
            Some(s) if !s.trim().is_empty() => Ok(s.clone()),
            Some(_) => Err(err(idr, format!("properties.{field}: is empty"))),
            None => Err(err(idr, format!("properties.{field}: missing"))),
        }
    };
    let name = required("name", &props.name)?;
    let district_id = required("district", &props.district)?;
    check_place_id(&district_id).map_err(|e| err(idr, format!("properties.district {e}")))?;
    let region_id = required("region", &props.region)?;
    check_place_id(&region_id).map_err(|e| err(idr, format!("properties.region {e}")))?;
    let population = match props.population {
        None => None,
        Some(p) => Some(u32::try_from(p).map_err(|_| {
            err(
                idr,
                format!("properties.population: {p} is larger than {}", u32::MAX),
            )
        })?),
    };
    let geometry = obj
        .get("geometry")
        .filter(|g| !g.is_null())
        .ok_or_else(|| err(idr, "geometry: missing".into()))?;
    let geometry = read_geometry(geometry).map_err(|what| err(idr, format!("geometry: {what}")))?;
    Ok(FeatureRecord {
        district_name: props.district_name.unwrap_or_else(|| district_id.clone()),
        region_name: props.region_name.unwrap_or_else(|| region_id.clone()),
        id,
        name,
        district_id,
        region_id,
        population,
        inspector: props.inspector,
        inspector_contact: props.inspector_contact,
        extra: props.extra,
        geometry,
    })
}

fn read_geometry(geometry: &Value) -> Result<MultiPolygon<f64>, String> {
    let kind = geometry
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing \"type\"")?;
    let coords = geometry
        .get("coordinates")
        .ok_or("missing \"coordinates\"")?;
    let polygons = match kind {
        "Polygon" => vec![read_polygon(coords, "coordinates")?],
        "MultiPolygon" => {
            let parts = coords.as_array().ok_or("coordinates: not an array")?;
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| read_polygon(p, &format!("coordinates[{i}]")))
                .collect::<Result<Vec<_>, _>>()?
        }
        other => return Err(format!("type {other:?} is not Polygon or MultiPolygon")),
    };
    if polygons.is_empty() {
        return Err("is empty".into());
    }
    let mp = MultiPolygon::new(polygons);
    if let Some(problem) = mp.validation_errors().into_iter().next() {
        return Err(format!("invalid: {problem}"));
    }
    Ok(mp)
}

fn read_polygon(value: &Value, path: &str) -> Result<Polygon<f64>, String> {
    let rings = value
        .as_array()
        .ok_or_else(|| format!("{path}: not an array of rings"))?;
    if rings.is_empty() {
        return Err(format!("{path}: polygon has no rings"));
    }
    let mut out = Vec::with_capacity(rings.len());
    for (r, ring) in rings.iter().enumerate() {
        out.push(read_ring(ring, &format!("{path}[{r}]"))?);
    }
    let exterior = out.remove(0);
    Ok(Polygon::new(exterior, out))
}

fn read_ring(value: &Value, path: &str) -> Result<LineString<f64>, String> {
    let positions = value
        .as_array()
        .ok_or_else(|| format!("{path}: not an array of positions"))?;
    let mut coords = Vec::with_capacity(positions.len());
    for (i, pos) in positions.iter().enumerate() {
        let pair = pos
            .as_array()
            .filter(|a| a.len() >= 2)
            .ok_or_else(|| format!("{path}[{i}]: a position is an array [lng, lat]"))?;
        let lng = pair[0]
            .as_f64()
            .ok_or_else(|| format!("{path}[{i}][0]: longitude is not a number"))?;
        let lat = pair[1]
            .as_f64()
            .ok_or_else(|| format!("{path}[{i}][1]: latitude is not a number"))?;
        if !(-180.0..=180.0).contains(&lng) || !lng.is_finite() {
            return Err(format!(
                "{path}[{i}][0]: longitude {lng} is out of range -180..180"
            ));
        }
        if !(-90.0..=90.0).contains(&lat) || !lat.is_finite() {
            return Err(format!(
                "{path}[{i}][1]: latitude {lat} is out of range -90..90"
            ));
        }
        coords.push(Coord { x: lng, y: lat });
    }
    if coords.len() < 4 {
        return Err(format!(
            "{path}: ring has {} positions, a closed ring needs at least 4",
            coords.len()
        ));
    }
    if coords.first() != coords.last() {
        return Err(format!(
            "{path}: ring is not closed (first and last positions differ)"
        ));
    }
    Ok(LineString::new(coords))
}
