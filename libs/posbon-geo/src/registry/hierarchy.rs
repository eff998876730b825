//! The district and region hierarchy of a registry, read from its features
//! and checked for consistency.

use std::collections::HashMap;

use crate::error::RegistryError;
use crate::geojson::FeatureRecord;

use super::{District, MahallaIdx, Region};

type Hierarchy = (
    Vec<District>,
    Vec<Region>,
    HashMap<String, MahallaIdx>,
    HashMap<String, usize>,
    HashMap<String, usize>,
);

pub(super) fn hierarchy(features: &[FeatureRecord]) -> Result<Hierarchy, RegistryError> {
    let mut by_id = HashMap::with_capacity(features.len());
    let mut districts: Vec<District> = Vec::new();
    let mut regions: Vec<Region> = Vec::new();
    let mut district_by_id: HashMap<String, usize> = HashMap::new();
    let mut region_by_id: HashMap<String, usize> = HashMap::new();
    for (i, f) in features.iter().enumerate() {
        let idx = MahallaIdx(i as u32);
        if let Some(prev) = by_id.insert(f.id.clone(), idx) {
            return Err(RegistryError::feature(
                i,
                Some(&f.id),
                format!("properties.id is also used by feature {}", prev.0),
            ));
        }
        match district_by_id.get(&f.district_id) {
            Some(&d) => {
                let district = &mut districts[d];
                if district.region_id != f.region_id {
                    return Err(RegistryError::feature(
                        i,
                        Some(&f.id),
                        format!(
                            "district {:?} is in region {:?} here but in region {:?} in an earlier feature",
                            f.district_id, f.region_id, district.region_id
                        ),
                    ));
                }
                if district.name != f.district_name {
                    return Err(RegistryError::feature(
                        i,
                        Some(&f.id),
                        format!(
                            "district {:?} is named {:?} here but {:?} in an earlier feature",
                            f.district_id, f.district_name, district.name
                        ),
                    ));
                }
                district.mahallas.push(idx);
            }
            None => {
                district_by_id.insert(f.district_id.clone(), districts.len());
                districts.push(District {
                    id: f.district_id.clone(),
                    name: f.district_name.clone(),
                    region_id: f.region_id.clone(),
                    mahallas: vec![idx],
                });
                match region_by_id.get(&f.region_id) {
                    Some(&r) => {
                        if regions[r].name != f.region_name {
                            return Err(RegistryError::feature(
                                i,
                                Some(&f.id),
                                format!(
                                    "region {:?} is named {:?} here but {:?} in an earlier feature",
                                    f.region_id, f.region_name, regions[r].name
                                ),
                            ));
                        }
                        regions[r].districts.push(f.district_id.clone());
                    }
                    None => {
                        region_by_id.insert(f.region_id.clone(), regions.len());
                        regions.push(Region {
                            id: f.region_id.clone(),
                            name: f.region_name.clone(),
                            districts: vec![f.district_id.clone()],
                        });
                    }
                }
            }
        }
    }
    Ok((districts, regions, by_id, district_by_id, region_by_id))
}
