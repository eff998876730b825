//! Matchers on escalations: which ones a silence holds back or a
//! notification route pages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::escalation::{Escalation, RiskLevel};

/// Most entries of one matcher list.
pub const MAX_MATCHER_VALUES: usize = 100;

/// Which escalations a silence or a notification route covers. Lists are
/// ANDed; the values of one list are ORed; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationMatchers {
    /// Region ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region: Vec<String>,
    /// District ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub district: Vec<String>,
    /// Mahalla ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mahalla: Vec<String>,
    /// Rule names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<String>,
    /// Levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level: Vec<RiskLevel>,
}

impl EscalationMatchers {
    /// Whether `escalation` is covered.
    pub fn matches(&self, escalation: &Escalation) -> bool {
        fn within(list: &[String], value: &str) -> bool {
            list.is_empty() || list.iter().any(|v| v == value)
        }
        within(&self.region, &escalation.region_id)
            && within(&self.district, &escalation.district_id)
            && within(&self.mahalla, &escalation.mahalla_id)
            && within(&self.rule, &escalation.rule)
            && (self.level.is_empty() || self.level.contains(&escalation.level))
    }

    /// Whether any of `region`, `district` or `mahalla` is given.
    pub fn names_a_place(&self) -> bool {
        !(self.region.is_empty() && self.district.is_empty() && self.mahalla.is_empty())
    }

    /// Checks list lengths and ids, naming the list at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (name, list) in [
            ("region", &self.region),
            ("district", &self.district),
            ("mahalla", &self.mahalla),
            ("rule", &self.rule),
        ] {
            if list.len() > MAX_MATCHER_VALUES {
                return Err(format!(
                    "{name}: {} values, at most {MAX_MATCHER_VALUES}",
                    list.len()
                ));
            }
            if let Some(bad) = list.iter().find(|v| !crate::is_valid_id(v)) {
                return Err(format!(
                    "{name}: {bad:?} is not an id (1 to 128 visible ASCII characters)"
                ));
            }
        }
        let mut levels = self.level.clone();
        levels.sort_unstable();
        levels.dedup();
        if levels.len() != self.level.len() {
            return Err("level: each level at most once".to_owned());
        }
        Ok(())
    }
}
