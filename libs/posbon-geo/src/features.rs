//! Writing GeoJSON geometries (RFC 7946): a mahalla's shape, an H3 cell's
//! hexagon, a point. Coordinates are `[lng, lat]` rounded to 6 decimals
//! (about 0.1 m), rings closed.

use geo::{LineString, MultiPolygon, Polygon};
use h3o::CellIndex;
use serde_json::{Value, json};

/// The media type of GeoJSON.
pub const GEOJSON_MEDIA_TYPE: &str = "application/geo+json";

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn ring(line: &LineString<f64>) -> Value {
    Value::Array(
        line.coords()
            .map(|c| json!([round(c.x), round(c.y)]))
            .collect(),
    )
}

fn polygon_rings(p: &Polygon<f64>) -> Value {
    let mut rings = vec![ring(p.exterior())];
    rings.extend(p.interiors().iter().map(ring));
    Value::Array(rings)
}

/// A `MultiPolygon` geometry.
pub fn multipolygon(shape: &MultiPolygon<f64>) -> Value {
    json!({
        "type": "MultiPolygon",
        "coordinates": shape.0.iter().map(polygon_rings).collect::<Vec<_>>(),
    })
}

/// The hexagon (or pentagon) of `cell` as a `Polygon` geometry.
pub fn cell_polygon(cell: CellIndex) -> Value {
    let boundary = cell.boundary();
    let ring: Vec<Value> = boundary
        .iter()
        .chain(boundary.iter().take(1))
        .map(|v| json!([round(v.lng()), round(v.lat())]))
        .collect();
    json!({ "type": "Polygon", "coordinates": [ring] })
}

/// A `Point` geometry.
pub fn point(lat: f64, lng: f64) -> Value {
    json!({ "type": "Point", "coordinates": [round(lng), round(lat)] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_a_closed_ring_of_lng_lat() {
        let cell = h3o::LatLng::new(41.3, 69.25)
            .expect("point")
            .to_cell(h3o::Resolution::Ten);
        let g = cell_polygon(cell);
        let ring = g["coordinates"][0].as_array().expect("ring");
        assert_eq!(ring.len(), 7, "{g}");
        assert_eq!(ring[0], ring[6]);
        let lng = ring[0][0].as_f64().expect("lng");
        assert!((60.0..80.0).contains(&lng), "lng first: {g}");
        assert_eq!(
            point(41.3, 69.25),
            json!({"type": "Point", "coordinates": [69.25, 41.3]})
        );
    }
}
