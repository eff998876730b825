//! Property tests: intensity does not depend on event order; replaying a log
//! gives identical escalations (also across a snapshot/restore and a mahalla
//! moved between engines); hysteresis never changes a level down sooner than
//! the dwell allows.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::{at, camera, enrich, fraud, incident, point, registry};
use posbon_geo::Registry;
use posbon_model::{
    Detection, EnrichedEvent, Escalation, FraudScheme, IncidentCategory, RiskLevel,
};
use posbon_risk::{Engine, EngineSnapshot, MahallaState, RiskConfig, Span};
use proptest::prelude::*;

const N: usize = 2;

/// A configuration that reacts within a short stream: one day of baseline.
fn config() -> RiskConfig {
    RiskConfig {
        min_baseline: Span::from_hours(20),
        ..RiskConfig::default()
    }
}

/// One input: an event or a tick.
#[derive(Debug, Clone)]
enum Input {
    Event(Box<EnrichedEvent>),
    Tick(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct Spec {
    minute: i64,
    row: usize,
    col: usize,
    dy: f64,
    dx: f64,
    what: u8,
    grade: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0i64..(3 * 24 * 60),
        0..N,
        0..N,
        -400.0f64..400.0,
        -300.0f64..300.0,
        0u8..6,
        1u8..=5,
    )
        .prop_map(|(minute, row, col, dy, dx, what, grade)| Spec {
            minute,
            row,
            col,
            dy,
            dx,
            what,
            grade,
        })
}

/// A burst: many events of one kind at one spot within an hour.
#[derive(Debug, Clone)]
struct Burst {
    minute: i64,
    row: usize,
    col: usize,
    what: u8,
    size: usize,
}

fn burst() -> impl Strategy<Value = Burst> {
    (24 * 60i64..(3 * 24 * 60), 0..N, 0..N, 0u8..3, 4usize..25).prop_map(
        |(minute, row, col, what, size)| Burst {
            minute,
            row,
            col,
            what,
            size,
        },
    )
}

fn event(reg: &Registry, id: String, s: &Spec) -> EnrichedEvent {
    let t = at(s.minute);
    let p = point(s.row, s.col, s.dy, s.dx);
    let e = match s.what {
        0 => incident(&id, t, p, IncidentCategory::Theft, s.grade),
        1 => incident(&id, t, p, IncidentCategory::Assault, s.grade),
        2 => incident(&id, t, p, IncidentCategory::Homicide, s.grade),
        3 => camera(
            &id,
            t,
            p,
            Detection::DrugHandoff,
            0.55 + 0.09 * f64::from(s.grade),
        ),
        4 => camera(&id, t, p, Detection::Loitering, 0.9),
        _ => fraud(
            &id,
            t,
            p,
            FraudScheme::ScamCall,
            1e5 * f64::from(s.grade).powi(4),
        ),
    };
    enrich(reg, e)
}

/// Background events plus bursts, in time order, with a tick every 10 minutes.
fn stream(reg: &Registry, specs: &[Spec], bursts: &[Burst]) -> Vec<Input> {
    let mut events: Vec<EnrichedEvent> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| event(reg, format!("e{i}"), s))
        .collect();
    for (b, burst) in bursts.iter().enumerate() {
        for k in 0..burst.size {
            let s = Spec {
                minute: burst.minute + (k as i64 * 53) % 60,
                row: burst.row,
                col: burst.col,
                dy: (k as f64 * 37.0) % 60.0,
                dx: (k as f64 * 23.0) % 60.0,
                what: [1, 3, 5][usize::from(burst.what)],
                grade: 5,
            };
            events.push(event(reg, format!("b{b}-{k}"), &s));
        }
    }
    events.sort_by(|a, b| {
        a.event
            .occurred_at()
            .cmp(&b.event.occurred_at())
            .then_with(|| a.event.id().cmp(b.event.id()))
    });
    let mut inputs = Vec::new();
    let mut next = 10;
    for e in events {
        let t = e.event.occurred_at().with_timezone(&Utc);
        while at(next) <= t {
            inputs.push(Input::Tick(at(next)));
            next += 10;
        }
        inputs.push(Input::Event(Box::new(e)));
    }
    while next <= 4 * 24 * 60 {
        inputs.push(Input::Tick(at(next)));
        next += 10;
    }
    inputs
}

fn run(engine: &mut Engine, inputs: &[Input], out: &mut Vec<Escalation>) {
    for input in inputs {
        match input {
            Input::Event(e) => engine.apply(e, out),
            Input::Tick(t) => engine.tick(*t, out),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialises")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The decayed intensity of every mahalla and cell, and every baseline,
    /// are the same whatever order the events arrive in.
    #[test]
    fn intensity_does_not_depend_on_event_order(
        specs in prop::collection::vec(spec(), 1..80),
        order in prop::collection::vec(any::<u32>(), 80),
    ) {
        let reg = registry(N);
        let events: Vec<EnrichedEvent> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| event(&reg, format!("e{i}"), s))
            .collect();
        let mut shuffled: Vec<(u32, &EnrichedEvent)> =
            events.iter().enumerate().map(|(i, e)| (order[i], e)).collect();
        shuffled.sort_by_key(|(k, _)| *k);
        let mut sorted: Vec<&EnrichedEvent> = events.iter().collect();
        sorted.sort_by_key(|e| e.event.occurred_at());
        let mut a = Engine::new(config(), reg.clone()).expect("valid");
        let mut b = Engine::new(config(), reg.clone()).expect("valid");
        let mut out = Vec::new();
        for e in &sorted {
            a.apply(e, &mut out);
        }
        for (_, e) in &shuffled {
            b.apply(e, &mut out);
        }
        prop_assert_eq!(a.clock(), b.clock());
        for m in reg.mahallas() {
            let (va, vb) = (a.level(&m.id).expect("known"), b.level(&m.id).expect("known"));
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-12);
            prop_assert!(close(va.intensity, vb.intensity), "{} {} vs {}", m.id, va.intensity, vb.intensity);
            prop_assert!(close(va.events, vb.events));
            // Baselines are integer sums: exactly equal.
            let sa: Option<serde_json::Value> = a.export_mahalla(&m.id).map(|s| serde_json::to_value(s).expect("json"));
            let sb: Option<serde_json::Value> = b.export_mahalla(&m.id).map(|s| serde_json::to_value(s).expect("json"));
            prop_assert_eq!(sa.as_ref().map(|s| &s["baseline"]), sb.as_ref().map(|s| &s["baseline"]));
            if let (Some(sa), Some(sb)) = (&sa, &sb) {
                let cells = |s: &serde_json::Value| -> Vec<String> {
                    s["cells"].as_array().into_iter().flatten().map(|c| c["cell"].to_string()).collect()
                };
                prop_assert_eq!(cells(sa), cells(sb));
                for c in cells(sa) {
                    let id = posbon_model::CellId::new(c.parse().expect("u64")).expect("cell");
                    let (ca, cb) = (a.cell(&m.id, id).expect("cell"), b.cell(&m.id, id).expect("cell"));
                    prop_assert!(close(ca.intensity, cb.intensity));
                }
            }
        }
    }

    /// The same inputs give the same escalations and the same state, bit for
    /// bit; and so does carrying on from a snapshot or after moving a mahalla
    /// to another engine.
    #[test]
    fn replaying_a_log_gives_identical_escalations(
        specs in prop::collection::vec(spec(), 20..150),
        bursts in prop::collection::vec(burst(), 1..5),
        cut in 0.2f64..0.8,
    ) {
        let reg = registry(N);
        let inputs = stream(&reg, &specs, &bursts);
        let mut first = Engine::new(config(), reg.clone()).expect("valid");
        let mut out1 = Vec::new();
        run(&mut first, &inputs, &mut out1);
        let mut second = Engine::new(config(), reg.clone()).expect("valid");
        let mut out2 = Vec::new();
        run(&mut second, &inputs, &mut out2);
        prop_assert_eq!(&out1, &out2);
        prop_assert_eq!(json(&first.snapshot()), json(&second.snapshot()));
        let ids: std::collections::BTreeSet<&str> = out1.iter().map(|e| e.id.as_str()).collect();
        prop_assert_eq!(ids.len(), out1.len(), "escalation ids are unique");

        // Snapshot at the cut, through JSON, restore, carry on.
        let k = (inputs.len() as f64 * cut) as usize;
        let mut before = Engine::new(config(), reg.clone()).expect("valid");
        let mut out3 = Vec::new();
        run(&mut before, &inputs[..k], &mut out3);
        let snap: EngineSnapshot = serde_json::from_str(&json(&before.snapshot())).expect("reads back");
        let mut after = Engine::restore(config(), reg.clone(), snap).expect("restores");
        run(&mut after, &inputs[k..], &mut out3);
        prop_assert_eq!(&out1, &out3);
        prop_assert_eq!(json(&first.snapshot()), json(&after.snapshot()));

        // Move mahalla m-0-0 to another engine at the cut.
        let moved = "m-0-0";
        let mut home = Engine::new(config(), reg.clone()).expect("valid");
        let mut out_home = Vec::new();
        run(&mut home, &inputs[..k], &mut out_home);
        let mut away = Engine::new(config(), reg.clone()).expect("valid");
        let mut out_away = Vec::new();
        if let Some(state) = home.remove_mahalla(moved) {
            let state: MahallaState = serde_json::from_str(&json(&state)).expect("reads back");
            away.import_mahalla(moved, state).expect("imports");
        }
        for input in &inputs[k..] {
            match input {
                Input::Event(e) if e.mahalla_id.as_deref() == Some(moved) => away.apply(e, &mut out_away),
                Input::Event(e) => home.apply(e, &mut out_home),
                Input::Tick(t) => {
                    home.tick(*t, &mut out_home);
                    away.tick(*t, &mut out_away);
                }
            }
        }
        // The mahalla's escalations are the same as in one engine, as long as
        // no cell rule mixes its events with a neighbour's (this grid's
        // mahallas are 1 km apart; bursts stay inside one mahalla).
        let of = |v: &[Escalation], m: &str| -> Vec<Escalation> {
            v.iter().filter(|e| e.mahalla_id == m).cloned().collect()
        };
        let mut split: Vec<Escalation> = of(&out_home, moved);
        split.extend(of(&out_away, moved));
        prop_assert_eq!(of(&out1, moved), split);
    }

    /// A level only comes down once it has been held for the dwell.
    #[test]
    fn levels_never_come_down_before_the_dwell(
        specs in prop::collection::vec(spec(), 20..120),
        bursts in prop::collection::vec(burst(), 1..6),
    ) {
        let reg = registry(N);
        let inputs = stream(&reg, &specs, &bursts);
        let cfg = config();
        let dwell = cfg.levels.min_dwell.to_chrono();
        let mut engine = Engine::new(cfg, reg.clone()).expect("valid");
        let mut out = Vec::new();
        let mut last: BTreeMap<String, (RiskLevel, Option<DateTime<Utc>>)> = BTreeMap::new();
        for input in &inputs {
            match input {
                Input::Event(e) => engine.apply(e, &mut out),
                Input::Tick(t) => engine.tick(*t, &mut out),
            }
            let now = engine.clock().expect("clock");
            for m in reg.mahallas() {
                let v = engine.level(&m.id).expect("known");
                let (prev, changed) = last.get(&m.id).cloned().unwrap_or((RiskLevel::Normal, None));
                if v.level != prev {
                    if v.level < prev {
                        let since = changed.expect("a raised level has a change time");
                        prop_assert!(now - since >= dwell, "{} down after {:?}", m.id, now - since);
                    }
                    last.insert(m.id.clone(), (v.level, Some(now)));
                }
            }
        }
        // Every escalation raised or kept the level, never lowered it.
        for e in &out {
            prop_assert!(e.level >= e.previous_level);
        }
    }
}

#[test]
fn the_property_streams_do_escalate() {
    // Guard against vacuous properties: a typical stream raises levels and
    // lets them down again.
    let reg: Arc<Registry> = registry(N);
    let specs: Vec<Spec> = (0..100)
        .map(|i| Spec {
            minute: (i * 43) % (3 * 24 * 60),
            row: (i % 2) as usize,
            col: ((i / 2) % 2) as usize,
            dy: 0.0,
            dx: 0.0,
            what: (i % 6) as u8,
            grade: (1 + i % 5) as u8,
        })
        .collect();
    let bursts = vec![
        Burst {
            minute: 50 * 60,
            row: 0,
            col: 0,
            what: 0,
            size: 24,
        },
        Burst {
            minute: 40 * 60,
            row: 1,
            col: 1,
            what: 1,
            size: 6,
        },
        Burst {
            minute: 55 * 60,
            row: 0,
            col: 1,
            what: 2,
            size: 20,
        },
    ];
    let inputs = stream(&reg, &specs, &bursts);
    let mut engine = Engine::new(config(), reg.clone()).expect("valid");
    let mut out = Vec::new();
    run(&mut engine, &inputs, &mut out);
    let rules: std::collections::BTreeSet<&str> = out.iter().map(|e| e.rule.as_str()).collect();
    assert!(rules.contains("drug_handoff_cluster"), "{out:?}");
    assert!(rules.contains("risk_score"), "{out:?}");
    assert!(rules.contains("fraud_wave"), "{out:?}");
    assert!(
        engine.levels().all(|(_, l)| l == RiskLevel::Normal),
        "all calm at the end"
    );
}
