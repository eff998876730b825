//! Tests of the built-in defaults: `defaults.toml` reads, validates and holds
//! exactly the values the defaults had when they were written in Rust.

use serde::Deserialize;

use super::defaults::{DEFAULTS_TOML, read_complete};
use super::{
    CameraWeights, CategoryTable, DetectionTable, FraudWeights, HotCellsConfig, LevelsConfig,
    PriorConfig, RiskConfig, RuleConfig, SchemeTable, WeightsConfig,
};

/// `RiskConfig::default()` as JSON, dumped from the defaults as they were
/// written in Rust (struct literals and a table of rows computed as the
/// weight at severity 3 times the severity factors) before they moved to
/// `defaults.toml`. JSON prints every float in its shortest exact form, so
/// equal text is equal values to the bit. A change of a default changes
/// both `defaults.toml` and this.
const RUST_DEFAULTS_JSON: &str = r#"{
  "weights": {
    "incident": {
      "theft": [
        0.75,
        1.125,
        1.5,
        2.25,
        3.0
      ],
      "robbery": [
        2.0,
        3.0,
        4.0,
        6.0,
        8.0
      ],
      "assault": [
        1.5,
        2.25,
        3.0,
        4.5,
        6.0
      ],
      "homicide": [
        4.0,
        6.0,
        8.0,
        12.0,
        16.0
      ],
      "drug_trafficking": [
        2.0,
        3.0,
        4.0,
        6.0,
        8.0
      ],
      "drug_use": [
        0.75,
        1.125,
        1.5,
        2.25,
        3.0
      ],
      "domestic_violence": [
        1.5,
        2.25,
        3.0,
        4.5,
        6.0
      ],
      "fraud": [
        0.75,
        1.125,
        1.5,
        2.25,
        3.0
      ],
      "cybercrime": [
        0.75,
        1.125,
        1.5,
        2.25,
        3.0
      ],
      "vandalism": [
        0.5,
        0.75,
        1.0,
        1.5,
        2.0
      ],
      "hooliganism": [
        0.75,
        1.125,
        1.5,
        2.25,
        3.0
      ],
      "weapons": [
        2.0,
        3.0,
        4.0,
        6.0,
        8.0
      ],
      "public_order": [
        0.4,
        0.6000000000000001,
        0.8,
        1.2000000000000002,
        1.6
      ],
      "other": [
        0.4,
        0.6000000000000001,
        0.8,
        1.2000000000000002,
        1.6
      ]
    },
    "camera": {
      "detection": {
        "drug_handoff": 2.0,
        "weapon": 3.0,
        "fight": 1.5,
        "crowd": 0.3,
        "loitering": 0.2,
        "intrusion": 0.8,
        "plate_match": 0.5,
        "other": 0.2
      },
      "confidence_bands": [
        {
          "min": 0.5,
          "factor": 0.25
        },
        {
          "min": 0.7,
          "factor": 0.5
        },
        {
          "min": 0.8,
          "factor": 0.75
        },
        {
          "min": 0.9,
          "factor": 1.0
        }
      ]
    },
    "fraud": {
      "scheme": {
        "card_fraud": 1.0,
        "phishing": 1.0,
        "account_takeover": 1.5,
        "scam_call": 1.0,
        "fake_marketplace": 0.8,
        "investment_scam": 1.5,
        "other": 0.8
      },
      "amount_bands": [
        {
          "min_uzs": 0.0,
          "factor": 0.6
        },
        {
          "min_uzs": 1000000.0,
          "factor": 1.0
        },
        {
          "min_uzs": 10000000.0,
          "factor": 1.5
        },
        {
          "min_uzs": 100000000.0,
          "factor": 2.5
        }
      ]
    }
  },
  "half_life": "3h",
  "baseline_window": "28d",
  "utc_offset_minutes": 300,
  "min_baseline": "3d",
  "prior": {
    "harm_per_day": 1.0,
    "days": 2.0,
    "dispersion": 2.0,
    "cell_harm_per_day": 0.05
  },
  "profile_shrinkage": 10.0,
  "overdispersion": 150.0,
  "levels": {
    "elevated": {
      "entry": 5.0,
      "exit": 3.0,
      "min_events": 3.0
    },
    "high": {
      "entry": 7.0,
      "exit": 5.0,
      "min_events": 5.0
    },
    "critical": {
      "entry": 10.0,
      "exit": 7.0,
      "min_events": 8.0
    },
    "min_dwell": "2h"
  },
  "evidence_window": "1d",
  "max_evidence": 25,
  "max_recent_events": 20000,
  "hot_cells": {
    "min_z": 1.96,
    "max_cells": 5
  },
  "rules": [
    {
      "name": "drug_handoff_cluster",
      "kinds": [
        "camera_alert"
      ],
      "detections": [
        "drug_handoff"
      ],
      "min_confidence": 0.8,
      "window": "1d",
      "group": "cell",
      "disk": 1,
      "measure": "count",
      "threshold": 3.0,
      "min_z": 3.0,
      "prior_per_day": 0.1,
      "before_baseline": "threshold",
      "cooldown": "1h",
      "max_idle": "4h",
      "level": "high"
    },
    {
      "name": "fraud_wave",
      "kinds": [
        "fraud_flag"
      ],
      "window": "3h",
      "group": "mahalla",
      "disk": 1,
      "measure": "count",
      "threshold": 6.0,
      "min_z": 5.0,
      "prior_per_day": 1.0,
      "before_baseline": "hold",
      "cooldown": "1h",
      "level": "high"
    }
  ]
}"#;

#[test]
fn the_embedded_toml_reads_completely_and_validates() {
    let config = read_complete(DEFAULTS_TOML).expect("defaults.toml reads with every key");
    config.validate().expect("defaults.toml validates");
    assert_eq!(config, RiskConfig::default());
}

#[test]
fn the_embedded_toml_holds_the_values_the_rust_defaults_had() {
    let json = serde_json::to_string_pretty(&RiskConfig::default()).expect("serialises");
    for (i, (now, then)) in json.lines().zip(RUST_DEFAULTS_JSON.lines()).enumerate() {
        assert_eq!(now, then, "line {} of RUST_DEFAULTS_JSON", i + 1);
    }
    assert_eq!(json, RUST_DEFAULTS_JSON);
    let old: RiskConfig = serde_json::from_str(RUST_DEFAULTS_JSON).expect("reads");
    assert_eq!(RiskConfig::default(), old);
}

#[test]
fn every_default_is_its_part_of_the_whole() {
    let all = RiskConfig::default();
    assert_eq!(PriorConfig::default(), all.prior);
    assert_eq!(HotCellsConfig::default(), all.hot_cells);
    assert_eq!(LevelsConfig::default(), all.levels);
    assert_eq!(WeightsConfig::default(), all.weights);
    assert_eq!(CameraWeights::default(), all.weights.camera);
    assert_eq!(FraudWeights::default(), all.weights.fraud);
    assert_eq!(CategoryTable::default(), all.weights.incident);
    assert_eq!(DetectionTable::default(), all.weights.camera.detection);
    assert_eq!(SchemeTable::default(), all.weights.fraud.scheme);
    assert_eq!(
        all.rules,
        vec![RuleConfig::drug_handoff_cluster(), RuleConfig::fraud_wave()]
    );
}

#[test]
fn the_embedded_toml_can_be_copied_into_a_service_file() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        risk: RiskConfig,
    }
    let file: File = toml::from_str(DEFAULTS_TOML).expect("reads as a service's file");
    assert_eq!(file.risk, RiskConfig::default());
}

#[test]
fn no_key_of_the_defaults_falls_back_on_a_default() {
    for key in [
        "overdispersion",
        "cell_harm_per_day",
        "min_dwell",
        "max_cells",
    ] {
        let line = DEFAULTS_TOML
            .lines()
            .find(|line| line.starts_with(&format!("{key} = ")))
            .expect(key);
        let text = DEFAULTS_TOML.replacen(&format!("{line}\n"), "", 1);
        let err = read_complete(&text).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    let text = DEFAULTS_TOML.replacen("homicide = ", "homicides = ", 1);
    assert!(read_complete(&text).is_err());
}
