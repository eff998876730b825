//! Configuration: defaults, loading from a `[risk]` TOML table, validation
//! errors that name the key.

use posbon_model::{Detection, EventKind, IncidentCategory, RiskLevel};
use posbon_risk::{ConfigError, Measure, RiskConfig, RuleGroup, Span};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    risk: RiskConfig,
}

fn load(toml_text: &str) -> Result<RiskConfig, toml::de::Error> {
    toml::from_str::<File>(toml_text).map(|f| f.risk)
}

fn invalid(f: impl FnOnce(&mut RiskConfig)) -> ConfigError {
    let mut c = RiskConfig::default();
    f(&mut c);
    c.validate().expect_err("should be invalid")
}

#[test]
fn defaults_are_valid_and_ship_the_two_rules() {
    let c = RiskConfig::default();
    c.validate().expect("defaults validate");
    assert_eq!(c.half_life, Span::from_hours(3));
    assert_eq!(c.baseline_window, Span::from_days(28));
    let drug = &c.rules[0];
    assert_eq!(drug.name, "drug_handoff_cluster");
    assert_eq!(drug.kinds, vec![EventKind::CameraAlert]);
    assert_eq!(drug.detections, vec![Detection::DrugHandoff]);
    assert_eq!(drug.min_confidence, Some(0.8));
    assert_eq!(drug.window, Span::from_hours(24));
    assert_eq!(
        (drug.group, drug.disk, drug.measure),
        (RuleGroup::Cell, 1, Measure::Count)
    );
    assert_eq!(drug.threshold, 3.0);
    assert_eq!(drug.level, RiskLevel::High);
    let wave = &c.rules[1];
    assert_eq!(wave.name, "fraud_wave");
    assert_eq!(
        (wave.group, wave.kinds.clone()),
        (RuleGroup::Mahalla, vec![EventKind::FraudFlag])
    );
}

#[test]
fn an_empty_table_is_the_defaults_and_toml_round_trips() {
    assert_eq!(load("[risk]\n").expect("loads"), RiskConfig::default());
    let text = toml::to_string(&File2 {
        risk: RiskConfig::default(),
    })
    .expect("serialises");
    assert_eq!(load(&text).expect("reads back"), RiskConfig::default());
}

#[derive(serde::Serialize)]
struct File2 {
    risk: RiskConfig,
}

#[test]
fn a_file_names_only_what_it_changes() {
    let c = load(
        r#"
        [risk]
        half_life = "90m"

        [risk.levels]
        min_dwell = "30m"
        high = { entry = 8.0, exit = 6.0, min_events = 4.0 }

        [risk.weights.incident]
        homicide = [5.0, 6.0, 7.0, 8.0, 9.0]

        [risk.weights.camera.detection]
        weapon = 4.0
        "#,
    )
    .expect("loads");
    c.validate().expect("valid");
    let d = RiskConfig::default();
    assert_eq!(c.half_life, Span::from_minutes(90));
    assert_eq!(c.levels.min_dwell, Span::from_minutes(30));
    assert_eq!(c.levels.high.entry, 8.0);
    assert_eq!(c.levels.elevated, d.levels.elevated);
    // Tables merge entry by entry with the defaults.
    assert_eq!(
        c.weights.incident.get(IncidentCategory::Homicide),
        [5.0, 6.0, 7.0, 8.0, 9.0]
    );
    assert_eq!(
        c.weights.incident.get(IncidentCategory::Theft),
        d.weights.incident.get(IncidentCategory::Theft)
    );
    assert_eq!(c.weights.camera.detection.get(Detection::Weapon), 4.0);
    assert_eq!(
        c.weights.camera.detection.get(Detection::DrugHandoff),
        d.weights.camera.detection.get(Detection::DrugHandoff)
    );
    assert_eq!(
        c.weights.camera.confidence_bands,
        d.weights.camera.confidence_bands
    );
    assert_eq!(c.rules, d.rules);
}

#[test]
fn rules_are_read_from_the_file() {
    let c = load(
        r#"
        [risk]
        [[risk.rules]]
        name = "violence_cluster"
        kinds = ["incident"]
        categories = ["assault", "robbery", "weapons"]
        min_severity = 3
        window = "12h"
        group = "cell"
        disk = 2
        measure = "harm"
        threshold = 20.0
        level = "elevated"
        "#,
    )
    .expect("loads");
    c.validate().expect("valid");
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.categories.len(), 3);
    assert_eq!(
        (r.disk, r.measure, r.min_severity),
        (2, Measure::Harm, Some(3))
    );
    assert_eq!(r.cooldown, Span::from_hours(1));
    assert_eq!(r.min_z, None);
}

#[test]
fn unknown_keys_and_values_are_rejected() {
    let e = load("[risk]\nhalf_lif = \"3h\"\n").expect_err("typo");
    assert!(e.to_string().contains("half_lif"), "{e}");
    let e = load("[risk.levels]\nhigh = { entry = 8.0, exit = 6.0, min_event = 4.0 }\n")
        .expect_err("typo");
    assert!(e.to_string().contains("min_event"), "{e}");
    let e = load("[risk.weights.incident]\nhomicde = [1.0, 1.0, 1.0, 1.0, 1.0]\n")
        .expect_err("unknown category");
    assert!(e.to_string().contains("homicde"), "{e}");
    let e = load("[risk]\nhalf_life = \"3 hours\"\n").expect_err("bad span");
    assert!(e.to_string().contains("3 hours"), "{e}");
    let e = load("[[risk.rules]]\nname = \"x\"\nkinds = [\"incident\"]\nwindow = \"1h\"\ngroup = \"street\"\nthreshold = 1.0\nlevel = \"high\"\n")
        .expect_err("bad group");
    assert!(e.to_string().contains("street"), "{e}");
}

#[test]
fn validation_names_the_bad_key() {
    let cases: Vec<(ConfigError, &str)> = vec![
        (invalid(|c| c.levels.high.exit = 9.0), "levels.high.exit"),
        (
            invalid(|c| {
                c.levels.critical.entry = 6.0;
                c.levels.critical.exit = 5.5;
            }),
            "levels.critical.entry",
        ),
        (invalid(|c| c.half_life = Span::from_secs(1)), "half_life"),
        (
            invalid(|c| c.baseline_window = Span::from_hours(36)),
            "baseline_window",
        ),
        (
            invalid(|c| c.min_baseline = Span::from_days(40)),
            "min_baseline",
        ),
        (invalid(|c| c.prior.days = 0.0), "prior.days"),
        (invalid(|c| c.overdispersion = f64::NAN), "overdispersion"),
        (invalid(|c| c.max_evidence = 0), "max_evidence"),
        (
            invalid(|c| c.utc_offset_minutes = 360),
            "utc_offset_minutes",
        ),
        (
            invalid(|c| {
                c.weights
                    .incident
                    .0
                    .insert(IncidentCategory::Theft, [1.0, -1.0, 1.0, 1.0, 1.0]);
            }),
            "weights.incident.theft[1]",
        ),
        (
            invalid(|c| c.weights.camera.confidence_bands[2].min = 0.6),
            "weights.camera.confidence_bands[2].min",
        ),
        (
            invalid(|c| c.weights.fraud.amount_bands[0].min_uzs = 5.0),
            "weights.fraud.amount_bands",
        ),
        (
            invalid(|c| c.rules[0].min_confidence = Some(1.5)),
            "rules[0].min_confidence",
        ),
        (
            invalid(|c| c.rules[1].detections = vec![Detection::Weapon]),
            "rules[1].detections",
        ),
        (
            invalid(|c| c.rules[1].name = "drug_handoff_cluster".into()),
            "rules[1].name",
        ),
        (
            invalid(|c| c.rules[1].name = "risk_score".into()),
            "rules[1].name",
        ),
        (
            invalid(|c| c.rules[1].name = "fraud wave".into()),
            "rules[1].name",
        ),
        (
            invalid(|c| c.rules[0].level = RiskLevel::Normal),
            "rules[0].level",
        ),
        (
            invalid(|c| c.rules[0].window = Span::from_days(30)),
            "rules[0].window",
        ),
        (
            invalid(|c| c.rules[0].max_idle = Some(Span::from_days(2))),
            "rules[0].max_idle",
        ),
        (invalid(|c| c.rules[1].kinds.clear()), "rules[1].kinds"),
    ];
    for (e, key) in cases {
        assert_eq!(e.key, key, "{e}");
        assert!(e.to_string().starts_with(key), "{e}");
    }
}
