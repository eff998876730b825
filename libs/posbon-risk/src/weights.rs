//! Harm weights compiled from [`WeightsConfig`] into flat tables, and the
//! class of an event (its category, detection or scheme) for the counts of an
//! escalation.

use posbon_model::{Detection, Event, FraudScheme, IncidentCategory};

use crate::config::WeightsConfig;

/// Weights are kept as integers in steps of 1/256, so that baselines are exact
/// integer sums (the same whatever the order events arrive in).
pub(crate) const WEIGHT_SCALE: f64 = 256.0;

const CATEGORIES: usize = IncidentCategory::ALL.len();
const DETECTIONS: usize = Detection::ALL.len();
const SCHEMES: usize = FraudScheme::ALL.len();

/// Number of event classes: incident categories, then detections, then schemes.
pub(crate) const CLASSES: usize = CATEGORIES + DETECTIONS + SCHEMES;

/// The class of an event: its incident category, camera detection or fraud
/// scheme, as one small number.
pub(crate) fn class_of(event: &Event) -> u8 {
    match event {
        Event::Incident(i) => i.category as u8,
        Event::CameraAlert(c) => (CATEGORIES + c.detection as usize) as u8,
        Event::FraudFlag(f) => (CATEGORIES + DETECTIONS + f.scheme as usize) as u8,
    }
}

/// Wire name of a class (`theft`, `drug_handoff`, `scam_call`, ...). The
/// three `other` values, which would clash, are `other_incident`,
/// `other_detection` and `other_scheme`.
pub(crate) fn class_name(class: u8) -> &'static str {
    let c = class as usize;
    if c < CATEGORIES {
        match IncidentCategory::ALL[c] {
            IncidentCategory::Other => "other_incident",
            v => v.as_str(),
        }
    } else if c < CATEGORIES + DETECTIONS {
        match Detection::ALL[c - CATEGORIES] {
            Detection::Other => "other_detection",
            v => v.as_str(),
        }
    } else if c < CLASSES {
        match FraudScheme::ALL[c - CATEGORIES - DETECTIONS] {
            FraudScheme::Other => "other_scheme",
            v => v.as_str(),
        }
    } else {
        "unknown"
    }
}

fn quantize(w: f64) -> u32 {
    // Validated to 0..=MAX_WEIGHT, so this fits.
    (w * WEIGHT_SCALE).round().clamp(0.0, u32::MAX as f64) as u32
}

/// The harm weight of any event, from a [`WeightsConfig`].
#[derive(Debug, Clone)]
pub struct HarmWeights {
    incident: [[u32; 5]; CATEGORIES],
    confidence_mins: Vec<f64>,
    /// `[detection][band]`, flattened.
    camera: Vec<u32>,
    amount_mins: Vec<f64>,
    /// `[scheme][band]`, flattened.
    fraud: Vec<u32>,
}

impl HarmWeights {
    /// Compiles the tables (validate the configuration first).
    pub fn new(config: &WeightsConfig) -> Self {
        let mut incident = [[0u32; 5]; CATEGORIES];
        for (c, row) in IncidentCategory::ALL.iter().zip(incident.iter_mut()) {
            let weights = config.incident.get(*c);
            for (q, w) in row.iter_mut().zip(weights) {
                *q = quantize(w);
            }
        }
        let bands = &config.camera.confidence_bands;
        let mut camera = Vec::with_capacity(DETECTIONS * bands.len());
        for d in Detection::ALL {
            let w = config.camera.detection.get(*d);
            camera.extend(bands.iter().map(|b| quantize(w * b.factor)));
        }
        let amounts = &config.fraud.amount_bands;
        let mut fraud = Vec::with_capacity(SCHEMES * amounts.len());
        for s in FraudScheme::ALL {
            let w = config.fraud.scheme.get(*s);
            fraud.extend(amounts.iter().map(|b| quantize(w * b.factor)));
        }
        Self {
            incident,
            confidence_mins: bands.iter().map(|b| b.min).collect(),
            camera,
            amount_mins: amounts.iter().map(|b| b.min_uzs).collect(),
            fraud,
        }
    }

    /// Harm weight of an event (rounded to 1/256).
    pub fn weight(&self, event: &Event) -> f64 {
        f64::from(self.quantized(event)) / WEIGHT_SCALE
    }

    /// Harm weight in 1/256 steps.
    pub(crate) fn quantized(&self, event: &Event) -> u32 {
        match event {
            Event::Incident(i) => {
                let s = usize::from(i.severity.clamp(1, 5)) - 1;
                self.incident[i.category as usize][s]
            }
            Event::CameraAlert(c) => {
                let bands = self.confidence_mins.len();
                match self
                    .confidence_mins
                    .iter()
                    .rposition(|&m| c.confidence >= m)
                {
                    Some(b) => self.camera[c.detection as usize * bands + b],
                    None => 0,
                }
            }
            Event::FraudFlag(f) => {
                let bands = self.amount_mins.len();
                let b = self
                    .amount_mins
                    .iter()
                    .rposition(|&m| f.amount_uzs >= m)
                    .unwrap_or(0);
                self.fraud
                    .get(f.scheme as usize * bands + b)
                    .copied()
                    .unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_their_names() {
        let names: std::collections::BTreeSet<&str> = (0..CLASSES as u8).map(class_name).collect();
        assert_eq!(names.len(), CLASSES, "class names are distinct");
        assert!(!names.contains("unknown"));
        assert_eq!(class_name(IncidentCategory::Homicide as u8), "homicide");
        assert_eq!(
            class_name((CATEGORIES + Detection::DrugHandoff as usize) as u8),
            "drug_handoff"
        );
        assert_eq!(
            class_name((CATEGORIES + DETECTIONS + FraudScheme::ScamCall as usize) as u8),
            "scam_call"
        );
    }
}
