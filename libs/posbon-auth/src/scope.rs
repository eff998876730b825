//! Scopes: the part of the country a caller sees and acts on.
//!
//! A [`Scope`] is a list of `region:<id>`, `district:<id>` and
//! `mahalla:<id>` items; an empty list is the whole country. A
//! [`ResolvedScope`] is a scope checked against the mahalla registry: the
//! set of mahallas it covers, and the districts and regions it touches.

use std::collections::HashSet;
use std::sync::Arc;

use posbon_geo::Registry;
use serde::{Deserialize, Serialize};

/// One item of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeItem {
    /// A whole region.
    Region(String),
    /// A whole district.
    District(String),
    /// One mahalla.
    Mahalla(String),
}

impl std::fmt::Display for ScopeItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopeItem::Region(id) => write!(f, "region:{id}"),
            ScopeItem::District(id) => write!(f, "district:{id}"),
            ScopeItem::Mahalla(id) => write!(f, "mahalla:{id}"),
        }
    }
}

impl std::str::FromStr for ScopeItem {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, id) = s.split_once(':').ok_or_else(|| {
            format!("scope item {s:?} is not region:<id>, district:<id> or mahalla:<id>")
        })?;
        posbon_geo::check_place_id(id).map_err(|e| format!("scope item {s:?}: the id {e}"))?;
        match kind {
            "region" => Ok(ScopeItem::Region(id.to_owned())),
            "district" => Ok(ScopeItem::District(id.to_owned())),
            "mahalla" => Ok(ScopeItem::Mahalla(id.to_owned())),
            other => Err(format!(
                "scope item {s:?}: {other:?} is not region, district or mahalla"
            )),
        }
    }
}

impl Serialize for ScopeItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A list of scope items; empty is the whole country.
pub type Scope = Vec<ScopeItem>;

/// A scope checked against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedScope {
    items: Vec<ScopeItem>,
    /// `None`: the whole country.
    mahallas: Option<Arc<HashSet<String>>>,
    districts: Option<Arc<HashSet<String>>>,
    regions: Option<Arc<HashSet<String>>>,
}

impl ResolvedScope {
    /// The whole country.
    pub fn national() -> Self {
        Self {
            items: Vec::new(),
            mahallas: None,
            districts: None,
            regions: None,
        }
    }

    /// Checks `scope` against `registry`: every id must exist.
    pub fn resolve(scope: &[ScopeItem], registry: &Registry) -> Result<Self, String> {
        if scope.is_empty() {
            return Ok(Self::national());
        }
        let mut mahallas = HashSet::new();
        let mut districts = HashSet::new();
        let mut regions = HashSet::new();
        let add_district = |id: &str,
                            mahallas: &mut HashSet<String>,
                            districts: &mut HashSet<String>,
                            regions: &mut HashSet<String>|
         -> Result<(), String> {
            let d = registry
                .district(id)
                .ok_or_else(|| format!("scope: no district {id:?} in the registry"))?;
            districts.insert(d.id.clone());
            regions.insert(d.region_id.clone());
            for m in &d.mahallas {
                mahallas.insert(registry.mahalla(*m).id.clone());
            }
            Ok(())
        };
        for item in scope {
            match item {
                ScopeItem::Region(id) => {
                    let r = registry
                        .region(id)
                        .ok_or_else(|| format!("scope: no region {id:?} in the registry"))?;
                    regions.insert(r.id.clone());
                    for d in &r.districts {
                        add_district(d, &mut mahallas, &mut districts, &mut regions)?;
                    }
                }
                ScopeItem::District(id) => {
                    add_district(id, &mut mahallas, &mut districts, &mut regions)?;
                }
                ScopeItem::Mahalla(id) => {
                    let (_, m) = registry
                        .mahalla_by_id(id)
                        .ok_or_else(|| format!("scope: no mahalla {id:?} in the registry"))?;
                    mahallas.insert(m.id.clone());
                    districts.insert(m.district_id.clone());
                    regions.insert(m.region_id.clone());
                }
            }
        }
        let mut items = scope.to_vec();
        items.sort();
        items.dedup();
        Ok(Self {
            items,
            mahallas: Some(Arc::new(mahallas)),
            districts: Some(Arc::new(districts)),
            regions: Some(Arc::new(regions)),
        })
    }

    /// The items, sorted; empty for the whole country.
    pub fn items(&self) -> &[ScopeItem] {
        &self.items
    }

    /// Whether this is the whole country.
    pub fn is_national(&self) -> bool {
        self.mahallas.is_none()
    }

    /// The mahallas covered (`None`: all).
    pub fn mahallas(&self) -> Option<&Arc<HashSet<String>>> {
        self.mahallas.as_ref()
    }

    /// The districts with at least one mahalla in scope (`None`: all).
    pub fn districts(&self) -> Option<&Arc<HashSet<String>>> {
        self.districts.as_ref()
    }

    /// The regions with at least one mahalla in scope (`None`: all).
    pub fn regions(&self) -> Option<&Arc<HashSet<String>>> {
        self.regions.as_ref()
    }

    /// Whether mahalla `id` is in scope.
    pub fn contains_mahalla(&self, id: &str) -> bool {
        self.mahallas.as_ref().is_none_or(|m| m.contains(id))
    }

    /// Whether the whole of `item` lies inside this scope (a report of a
    /// district may be read by a caller scoped to that district or its
    /// region, not by one scoped to a single mahalla of it).
    pub fn covers(&self, item: &ScopeItem, registry: &Registry) -> bool {
        if self.is_national() {
            return true;
        }
        match item {
            ScopeItem::Mahalla(id) => self.contains_mahalla(id),
            ScopeItem::District(id) => registry.district(id).is_some_and(|d| {
                d.mahallas
                    .iter()
                    .all(|m| self.contains_mahalla(&registry.mahalla(*m).id))
            }),
            ScopeItem::Region(id) => registry.region(id).is_some_and(|r| {
                r.districts
                    .iter()
                    .all(|d| self.covers(&ScopeItem::District(d.clone()), registry))
            }),
        }
    }

    /// NATS subject filters on `posbon.alerts.<region>.<district>.<mahalla>`
    /// that deliver exactly this scope's escalations.
    pub fn alert_subjects(&self, registry: &Registry) -> Vec<String> {
        if self.is_national() {
            return vec!["posbon.alerts.*.*.*".to_owned()];
        }
        let mut out = Vec::with_capacity(self.items.len());
        for item in &self.items {
            match item {
                ScopeItem::Region(id) => out.push(format!("posbon.alerts.{id}.*.*")),
                ScopeItem::District(id) => {
                    if let Some(d) = registry.district(id) {
                        out.push(format!("posbon.alerts.{}.{id}.*", d.region_id));
                    }
                }
                ScopeItem::Mahalla(id) => {
                    if let Some((_, m)) = registry.mahalla_by_id(id) {
                        out.push(format!(
                            "posbon.alerts.{}.{}.{id}",
                            m.region_id, m.district_id
                        ));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_and_print() {
        let item: ScopeItem = "district:chilonzor".parse().expect("valid");
        assert_eq!(item, ScopeItem::District("chilonzor".into()));
        assert_eq!(item.to_string(), "district:chilonzor");
        assert!("city:x".parse::<ScopeItem>().is_err());
        assert!("chilonzor".parse::<ScopeItem>().is_err());
        // Ids follow the registry's rule (posbon_geo::check_place_id): no
        // subject wildcards, dots or capitals.
        for (bad, why) in [
            ("district:", "the id is empty"),
            ("region:*", "may only hold lowercase"),
            ("region:tashkent.>", "may only hold lowercase"),
            ("mahalla:M-1", "may only hold lowercase"),
        ] {
            let e = bad.parse::<ScopeItem>().expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        let list: Scope =
            serde_json::from_str(r#"["region:tashkent","mahalla:m-1"]"#).expect("a list of items");
        assert_eq!(list.len(), 2);
    }
}
