//! The `registry_geojson` target: the mahalla registry, an operator's
//! GeoJSON file.

use posbon_geo::{MahallaIdx, Registry, RegistryOptions};

use super::Sig;
use crate::Features;

/// Largest input [`registry_geojson`] reads.
pub const REGISTRY_MAX_BYTES: usize = 256 << 10;

/// Fuzz target: a mahalla registry ([`Registry::from_geojson`]), inputs up
/// to [`REGISTRY_MAX_BYTES`] covering up to [`REGISTRY_MAX_SQUARES`] grid
/// squares (see there: loading takes time in proportion to the area).
///
/// On a registry that loads, checks that [`Registry::locate`] agrees with
/// [`Registry::contains`] (the first mahalla in registry order that holds
/// the point) at every vertex, edge midpoint and a few points between.
pub fn registry_geojson(data: &[u8]) {
    registry_geojson_features(data);
}

pub(crate) fn registry_geojson_features(data: &[u8]) -> Features {
    if data.len() > REGISTRY_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("registry_geojson");
    if registry_too_costly(data) {
        sig.add("skipped");
        return sig.finish();
    }
    let options = RegistryOptions {
        // One thread: the runner measures one input at a time.
        threads: 1,
        ..RegistryOptions::default()
    };
    match Registry::from_geojson(data, &options) {
        Ok(registry) => {
            sig.add(&registry.mahallas().len().min(8));
            sig.add(&registry.districts().len().min(4));
            check_registry(&registry);
        }
        Err(e) => sig.text(&e.to_string()),
    }
    sig.finish()
}

/// Grid squares (1/1024° a side) a registry of the target may cover: about
/// 0.5° × 0.5°. Loading scans every square of every mahalla's bounding box,
/// by design, so its time follows the area as much as the bytes; the
/// target bounds both.
pub const REGISTRY_MAX_SQUARES: f64 = (1 << 18) as f64;

/// Whether loading `data` would claim more than [`REGISTRY_MAX_SQUARES`]
/// while staying under the library's own limits (4° × 4° a mahalla, 2^28
/// squares in all), which refuse a larger registry before any work: those
/// inputs run, to test that refusal.
fn registry_too_costly(data: &[u8]) -> bool {
    const LIB_MAHALLA: f64 = 0.9 * (4096.0 * 4096.0);
    const LIB_TOTAL: f64 = 0.9 * (1u64 << 28) as f64;
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let Some(features) = doc.get("features").and_then(|f| f.as_array()) else {
        return false;
    };
    let (mut total, mut largest) = (0.0f64, 0.0f64);
    for f in features {
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        if let Some(c) = f.pointer("/geometry/coordinates") {
            positions(c, &mut bbox, 0);
        }
        if bbox[0] <= bbox[2] && bbox[1] <= bbox[3] {
            let squares =
                ((bbox[2] - bbox[0]) * 1024.0 + 2.0) * ((bbox[3] - bbox[1]) * 1024.0 + 2.0);
            total += squares;
            largest = largest.max(squares);
        }
    }
    total > REGISTRY_MAX_SQUARES && largest < LIB_MAHALLA && total < LIB_TOTAL
}

/// Widens `bbox` (`[min x, min y, max x, max y]`) by every `[x, y, ...]`
/// position in `v`.
fn positions(v: &serde_json::Value, bbox: &mut [f64; 4], depth: usize) {
    let Some(items) = v.as_array() else {
        return;
    };
    if let [x, y, ..] = items.as_slice()
        && let (Some(x), Some(y)) = (x.as_f64(), y.as_f64())
    {
        *bbox = [
            bbox[0].min(x),
            bbox[1].min(y),
            bbox[2].max(x),
            bbox[3].max(y),
        ];
        return;
    }
    if depth < 8 {
        for item in items {
            positions(item, bbox, depth + 1);
        }
    }
}

fn check_registry(registry: &Registry) {
    const MAX_PROBES: usize = 256;
    let mut probes: Vec<(f64, f64)> = Vec::new();
    for m in registry.mahallas() {
        for poly in &m.geometry.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for line in ring.lines() {
                    let (a, b) = (line.start, line.end);
                    probes.push((a.y, a.x));
                    probes.push(((a.y + b.y) / 2.0, (a.x + b.x) / 2.0));
                    probes.push((a.y + (b.y - a.y) / 3.0, a.x + (b.x - a.x) / 3.0));
                }
            }
        }
    }
    let step = probes.len().div_ceil(MAX_PROBES).max(1);
    let n = registry.mahallas().len();
    for &(lat, lng) in probes.iter().step_by(step) {
        let Ok(found) = registry.locate(lat, lng) else {
            continue;
        };
        let exact = (0..n)
            .map(|i| MahallaIdx(i as u32))
            .find(|&i| registry.contains(i, lat, lng));
        assert_eq!(
            found.mahalla, exact,
            "locate({lat}, {lng}) disagrees with contains"
        );
        if let Some(idx) = found.mahalla {
            let m = registry.mahalla(idx);
            assert!(
                registry.district(&m.district_id).is_some(),
                "mahalla {} in an unknown district",
                m.id
            );
        }
    }
}
