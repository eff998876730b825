//! The engine's behaviour on hand-made streams over a small grid registry.

mod common;

use common::{at, background, camera, enrich, fraud, incident, point, registry};
use posbon_model::{
    Detection, Escalation, EscalationStatus, FraudScheme, IncidentCategory, MeasureName, RiskLevel,
    RuleMeasure,
};
use posbon_risk::{Engine, RiskConfig, SCORE_RULE};

fn engine(n: usize) -> (Engine, std::sync::Arc<posbon_geo::Registry>) {
    let reg = registry(n);
    (
        Engine::new(RiskConfig::default(), reg.clone()).expect("valid config"),
        reg,
    )
}

#[test]
fn three_strong_drug_handoffs_in_a_cell_within_a_day_escalate() {
    let (mut e, reg) = engine(3);
    let mut out = Vec::new();
    let p = point(1, 1, 0.0, 0.0);
    // Weak detections and a lone strong one do nothing.
    for (i, conf) in [0.5, 0.7, 0.79].iter().enumerate() {
        let ev = camera(
            &format!("weak-{i}"),
            at(i as i64),
            p,
            Detection::DrugHandoff,
            *conf,
        );
        e.apply(&enrich(&reg, ev), &mut out);
    }
    e.apply(
        &enrich(&reg, camera("s1", at(60), p, Detection::DrugHandoff, 0.9)),
        &mut out,
    );
    e.apply(
        &enrich(
            &reg,
            camera(
                "s2",
                at(90),
                point(1, 1, 40.0, 0.0),
                Detection::DrugHandoff,
                0.85,
            ),
        ),
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    e.apply(
        &enrich(&reg, camera("s3", at(300), p, Detection::DrugHandoff, 0.95)),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let esc = &out[0];
    assert_eq!(esc.id, "esc:m-1-1:drug_handoff_cluster:1");
    assert_eq!(
        esc.id,
        Escalation::deterministic_id("m-1-1", "drug_handoff_cluster", 1)
    );
    assert_eq!(esc.mahalla_id, "m-1-1");
    assert_eq!(esc.district_id, "grid");
    assert_eq!(esc.region_id, "tashkent");
    assert_eq!(esc.rule, "drug_handoff_cluster");
    assert_eq!(
        (esc.previous_level, esc.level),
        (RiskLevel::Normal, RiskLevel::High)
    );
    assert_eq!(esc.counts.get("drug_handoff"), Some(&3));
    // Fired on its count before its baseline was ready: the measure says so
    // and carries no standard score, whatever the headline score is.
    assert_eq!(
        esc.measure,
        Some(RuleMeasure {
            name: MeasureName::Count,
            value: 3.0,
            threshold: 3.0,
            z: None,
            min_z: Some(3.0),
        })
    );
    assert_eq!(esc.evidence, vec!["s1", "s2", "s3"]);
    assert_eq!(esc.opened_at, at(300));
    assert_eq!(esc.window_end, at(300));
    assert_eq!(esc.window_start, at(300 - 24 * 60));
    assert_eq!(esc.status, EscalationStatus::Open);
    assert_eq!(e.level("m-1-1").expect("known").level, RiskLevel::High);
    assert_eq!(
        e.level("m-1-1").expect("known").open_rules,
        vec!["drug_handoff_cluster"]
    );
    // A fourth at the same place is the same episode.
    e.apply(
        &enrich(&reg, camera("s4", at(320), p, Detection::DrugHandoff, 0.95)),
        &mut out,
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn strong_handoffs_spread_over_more_than_a_day_do_not() {
    let (mut e, reg) = engine(3);
    let mut out = Vec::new();
    let p = point(0, 2, 0.0, 0.0);
    for (i, minutes) in [0, 13 * 60, 26 * 60, 39 * 60].iter().enumerate() {
        let ev = camera(
            &format!("s{i}"),
            at(*minutes),
            p,
            Detection::DrugHandoff,
            0.9,
        );
        e.apply(&enrich(&reg, ev), &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn unassigned_events_feed_cell_rules_but_not_mahalla_rules() {
    let (mut e, reg) = engine(2);
    let mut out = Vec::new();
    // Just outside the grid's east edge, and just inside.
    let lat = common::LAT0 + 0.5 * common::SIDE;
    let edge = common::LNG0 + 2.0 * common::SIDE;
    let outside = (lat, edge + 0.0004);
    let inside = (lat, edge - 0.0004);
    let o = reg.locate(outside.0, outside.1).expect("valid");
    let i = reg.locate(inside.0, inside.1).expect("valid");
    assert!(o.mahalla.is_none() && i.mahalla.is_some());
    assert!(
        o.cell.grid_distance(i.cell).expect("near") <= 2,
        "test points must be near"
    );
    for k in 0..2 {
        let ev = camera(
            &format!("u{k}"),
            at(k),
            outside,
            Detection::DrugHandoff,
            0.9,
        );
        e.apply(&enrich(&reg, ev), &mut out);
    }
    assert!(out.is_empty());
    // Unassigned fraud flags never make a fraud wave.
    for k in 0..50 {
        let ev = fraud(
            &format!("f{k}"),
            at(10 + k),
            outside,
            FraudScheme::ScamCall,
            1e6,
        );
        e.apply(&enrich(&reg, ev), &mut out);
    }
    assert!(out.is_empty());
    assert!(e.levels().all(|(_, level)| level == RiskLevel::Normal));
    // One assigned detection completes the cluster; its mahalla escalates.
    e.apply(
        &enrich(
            &reg,
            camera("a", at(100), inside, Detection::DrugHandoff, 0.9),
        ),
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].mahalla_id, "m-0-1");
    assert_eq!(out[0].evidence.len(), 3);
}

#[test]
fn a_raised_mahalla_calms_down_on_ticks_after_the_dwell() {
    let (mut e, reg) = engine(2);
    let config = e.config().clone();
    let mut out = Vec::new();
    let p = point(0, 0, 0.0, 0.0);
    for k in 0..3 {
        let ev = camera(&format!("s{k}"), at(k * 10), p, Detection::DrugHandoff, 0.9);
        e.apply(&enrich(&reg, ev), &mut out);
    }
    assert_eq!(out.len(), 1);
    let raised = e.level("m-0-0").expect("known");
    assert_eq!(raised.level, RiskLevel::High);
    // Nothing happens any more: ticks every 10 minutes for two days.
    let mut calmed = None;
    for k in 1..=288 {
        e.tick(at(20 + k * 10), &mut out);
        let v = e.level("m-0-0").expect("known");
        if v.level == RiskLevel::Normal && calmed.is_none() {
            calmed = Some(at(20 + k * 10));
        }
    }
    assert_eq!(out.len(), 1, "no new escalation while calming down");
    let calmed = calmed.expect("the mahalla calmed down");
    let max_idle = config.rules[0].max_idle.expect("shipped").to_chrono();
    // Not before the rule's idle time, its cooldown and the level's dwell.
    assert!(calmed >= at(20) + max_idle + config.rules[0].cooldown.to_chrono());
    assert!(calmed - raised.since.expect("raised") >= config.levels.min_dwell.to_chrono());
    assert!(e.raised().is_empty());
}

/// Five days of quiet background in a 3 × 3 grid, with fraud flags.
fn warm(e: &mut Engine, reg: &posbon_geo::Registry, out: &mut Vec<Escalation>) {
    let mut events = background(reg, 3, 5, 12.0, 1);
    let mut rng = common::Lcg(9);
    for k in 0..(5 * 9 * 8) {
        let t = (rng.next_f64() * 5.0 * 24.0 * 60.0) as i64;
        let p = point(
            rng.below(3),
            rng.below(3),
            0.0,
            (rng.next_f64() - 0.5) * 600.0,
        );
        events.push(enrich(
            reg,
            fraud(&format!("bgf-{k}"), at(t), p, FraudScheme::CardFraud, 2e6),
        ));
    }
    events.sort_by_key(|e| e.event.occurred_at());
    let mut next_tick = 5;
    for ev in &events {
        let t = ev.event.occurred_at().with_timezone(&chrono::Utc);
        while at(next_tick) <= t {
            e.tick(at(next_tick), out);
            next_tick += 5;
        }
        e.apply(ev, out);
    }
}

#[test]
fn a_fraud_wave_escalates_once_the_baseline_is_there() {
    let (mut e, reg) = engine(3);
    let mut out = Vec::new();
    warm(&mut e, &reg, &mut out);
    let after_warmup: Vec<_> = out
        .iter()
        .filter(|x| x.opened_at >= at(4 * 24 * 60))
        .collect();
    assert!(
        after_warmup.is_empty(),
        "quiet background escalated: {after_warmup:?}"
    );
    out.clear();
    let start = 5 * 24 * 60 + 600;
    for k in 0..20 {
        let ev = fraud(
            &format!("wave-{k}"),
            at(start + k * 2),
            point(2, 0, 0.0, 0.0),
            FraudScheme::ScamCall,
            3e6,
        );
        e.apply(&enrich(&reg, ev), &mut out);
    }
    let wave: Vec<_> = out.iter().filter(|x| x.rule == "fraud_wave").collect();
    assert_eq!(wave.len(), 1, "{out:?}");
    assert_eq!(wave[0].mahalla_id, "m-2-0");
    assert!(wave[0].opened_at <= at(start + 30), "{}", wave[0].opened_at);
    assert!(wave[0].score >= 5.0);
    let measure = wave[0].measure.as_ref().expect("measure");
    let rule = &e.config().rules[1];
    assert_eq!(rule.name, "fraud_wave");
    assert!(measure.value >= measure.threshold, "{measure:?}");
    assert_eq!(measure.threshold, rule.threshold);
    assert_eq!(measure.min_z, rule.min_z);
    let z = measure.z.expect("the baseline was ready");
    assert!(
        z >= rule.min_z.expect("fraud_wave has min_z"),
        "{measure:?}"
    );
    assert_eq!(wave[0].score, z);
    assert!(wave[0].counts.get("scam_call").copied().unwrap_or(0) >= 6);
    let view = e.rule("m-2-0", "fraud_wave").expect("rule view");
    assert!(view.open && view.satisfied && view.episodes == 1);
}

#[test]
fn a_burst_of_violence_raises_the_score_with_its_hot_cell() {
    let (mut e, reg) = engine(3);
    let mut out = Vec::new();
    warm(&mut e, &reg, &mut out);
    out.clear();
    let start = 5 * 24 * 60 + 600;
    let spot = point(1, 2, 100.0, 0.0);
    for k in 0..20 {
        let ev = incident(
            &format!("v{k}"),
            at(start + k * 3),
            spot,
            IncidentCategory::Assault,
            4,
        );
        e.apply(&enrich(&reg, ev), &mut out);
    }
    let score: Vec<_> = out.iter().filter(|x| x.rule == SCORE_RULE).collect();
    assert!(!score.is_empty(), "{out:?} {:?}", e.level("m-1-2"));
    let first = score[0];
    assert_eq!(first.mahalla_id, "m-1-2");
    assert_eq!(first.previous_level, RiskLevel::Normal);
    assert!(first.level >= RiskLevel::Elevated);
    assert!(first.score >= e.config().levels.elevated.entry);
    let entry = e
        .config()
        .levels
        .thresholds(first.level)
        .expect("a raised level")
        .entry;
    assert_eq!(
        first.measure,
        Some(RuleMeasure {
            name: MeasureName::Score,
            value: first.score,
            threshold: entry,
            z: None,
            min_z: None,
        })
    );
    assert_eq!(first.id, "esc:m-1-2:risk_score:1");
    assert!(first.evidence.iter().any(|id| id.starts_with('v')));
    assert!(first.counts.get("assault").copied().unwrap_or(0) >= 3);
    let hot = &first.hot_cells;
    assert!(!hot.is_empty(), "the burst's cell is hot");
    let cell = enrich(
        &reg,
        incident("probe", at(start), spot, IncidentCategory::Assault, 4),
    )
    .cell;
    assert_eq!(hot[0].cell, cell);
    assert!(hot[0].gi_z >= 1.96 && hot[0].events >= 3);
    assert_eq!(e.hot_cells("m-1-2").first().map(|h| h.cell), Some(cell));
    let view = e.cell("m-1-2", cell).expect("cell view");
    assert!(view.intensity > view.expected && view.score > 0.0);
}

#[test]
fn a_single_heavy_incident_is_not_a_situation() {
    let (mut e, reg) = engine(3);
    let mut out = Vec::new();
    warm(&mut e, &reg, &mut out);
    out.clear();
    let t = 5 * 24 * 60 + 600;
    let ev = incident(
        "h1",
        at(t),
        point(0, 0, 0.0, 0.0),
        IncidentCategory::Homicide,
        5,
    );
    e.apply(&enrich(&reg, ev), &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(e.level("m-0-0").expect("known").level, RiskLevel::Normal);
}

#[test]
fn state_stays_bounded_when_things_quieten() {
    let (mut e, reg) = engine(3);
    let mut out = Vec::new();
    warm(&mut e, &reg, &mut out);
    let busy = e.footprint();
    assert!(busy.cells > 0 && busy.recent_events > 0 && busy.baseline_days > 0);
    // Forty quiet days of ticks: everything older than the windows goes.
    for d in 1..=40 {
        e.tick(at((5 + d) * 24 * 60), &mut out);
    }
    let quiet = e.footprint();
    assert_eq!(quiet.recent_events, 0, "{quiet:?}");
    assert_eq!(quiet.cells, 0, "{quiet:?}");
    assert_eq!(quiet.baseline_days, 0, "{quiet:?}");
    assert_eq!(quiet.rule_hits, 0, "{quiet:?}");
    assert_eq!(quiet.rule_cells, 0, "{quiet:?}");
    // Episode counters survive, so ids never repeat.
    assert_eq!(quiet.mahallas, busy.mahallas);
}

#[test]
fn a_bad_configuration_is_refused_by_name() {
    let mut c = RiskConfig::default();
    c.levels.elevated.exit = 50.0;
    let e = Engine::new(c, registry(1)).expect_err("invalid");
    assert_eq!(e.key, "levels.elevated.exit");
}

#[test]
fn the_engine_can_move_between_threads() {
    fn send<T: Send + 'static>() {}
    send::<Engine>();
    send::<posbon_risk::EngineSnapshot>();
    send::<posbon_risk::MahallaState>();
}
