//! Ground truth of a stream: the injected patterns and the bad lines.

use std::io::Write;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use super::{Defect, EventOptions};
use crate::error::SimError;

/// Kind of an injected pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionKind {
    /// A burst of high-confidence drug hand-off detections at one camera.
    DrugHandoffHotspot,
    /// A burst of fraud flags of one scheme in one mahalla.
    FraudWave,
}

/// One injected pattern.
#[derive(Debug, Clone, Serialize)]
pub struct Injection {
    /// What it is.
    pub kind: InjectionKind,
    /// The mahalla it happens in.
    pub mahalla_id: String,
    /// The camera (hotspots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<String>,
    /// The fraud scheme (waves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// H3 cells at resolution 10: for a hotspot, the camera's cell and its
    /// neighbours; for a wave, the cells its events fell in.
    pub cells: Vec<String>,
    /// Start of the burst (event time).
    pub start: DateTime<FixedOffset>,
    /// End of the burst (event time, exclusive).
    pub end: DateTime<FixedOffset>,
    /// Ids of the events of the burst, in stream order.
    pub event_ids: Vec<String>,
}

/// One deliberately bad line.
#[derive(Debug, Clone, Serialize)]
pub struct BadLineTruth {
    /// 1-based line number in the stream.
    pub line: u64,
    /// The defect.
    pub defect: Defect,
    /// The error code `posbon_model::parse_event` reports for it (none for a
    /// duplicate id, which parses).
    pub code: Option<String>,
    /// JSON path of the problem, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For a duplicate id: the line of the earlier event with that id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of_line: Option<u64>,
    /// For a duplicate id: the repeated id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Everything the stream injected on purpose.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Seed of the stream.
    pub seed: u64,
    /// Mean rate, events per hour.
    pub rate_per_hour: f64,
    /// Event time of the start.
    pub start: DateTime<FixedOffset>,
    /// Event time of the end (exclusive).
    pub end: DateTime<FixedOffset>,
    /// Resolution of the cells named here.
    pub cell_resolution: u8,
    /// Number of mahallas in the registry.
    pub mahallas: usize,
    /// Number of cameras placed.
    pub cameras: usize,
    /// Number of valid events written.
    pub valid_events: u64,
    /// Hotspots and fraud waves.
    pub injections: Vec<Injection>,
    /// Bad lines, in line order.
    pub bad_lines: Vec<BadLineTruth>,
    /// Prevention situations planted ([`super::Situations`]).
    #[serde(skip_serializing_if = "super::SituationTruth::is_empty")]
    pub situations: super::SituationTruth,
}

impl Truth {
    pub(crate) fn new(options: &EventOptions, start: DateTime<FixedOffset>) -> Self {
        Self {
            seed: options.seed,
            rate_per_hour: options.rate_per_hour,
            start,
            end: options.end(),
            cell_resolution: u8::from(super::TRUTH_RESOLUTION),
            mahallas: 0,
            cameras: 0,
            valid_events: 0,
            injections: Vec::new(),
            bad_lines: Vec::new(),
            situations: super::SituationTruth::default(),
        }
    }

    /// Writes the truth as pretty JSON.
    pub fn write_json<W: Write>(&self, writer: W) -> Result<(), SimError> {
        let mut writer = std::io::BufWriter::new(writer);
        serde_json::to_writer_pretty(&mut writer, self)?;
        writer.write_all(b"\n")?;
        writer.flush()?;
        Ok(())
    }
}
