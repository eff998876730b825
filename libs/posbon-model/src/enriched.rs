//! [`EnrichedEvent`]: an event after geographic enrichment.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cell::CellId;
use crate::event::Event;

/// An event plus where it falls in the administrative geography.
///
/// An event outside every known mahalla is kept with `mahalla_id`,
/// `district_id` and `region_id` set to `None` (JSON `null`): it is never
/// dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichedEvent {
    /// The validated event, as received (account references pseudonymised).
    pub event: Event,
    /// H3 cell of the event's location at the storage resolution.
    pub cell: CellId,
    /// Mahalla containing the location; `null` when unassigned.
    #[serde(default)]
    pub mahalla_id: Option<String>,
    /// District (tuman) of the mahalla; `null` when unassigned.
    #[serde(default)]
    pub district_id: Option<String>,
    /// Region (viloyat) of the district; `null` when unassigned.
    #[serde(default)]
    pub region_id: Option<String>,
    /// When Posbon ingested the event.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub ingested_at: DateTime<Utc>,
}

impl EnrichedEvent {
    /// True when the event was assigned to a mahalla.
    pub fn is_assigned(&self) -> bool {
        self.mahalla_id.is_some()
    }
}
