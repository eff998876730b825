//! Event streams: determinism, validity, the category mix, quiet mahallas,
//! bad lines and ground truth.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use h3o::LatLng;
use posbon_model::{Detection, ErrorCode, Event, IncidentCategory, Limits, parse_event};
use posbon_sim::{
    CityOptions, Defect, EventOptions, EventStream, InjectionKind, Origin, SimBody, SimItem,
    SimRegistry, city_registry, parse_duration, write_ndjson,
};

fn registry() -> Arc<SimRegistry> {
    static REG: OnceLock<Arc<SimRegistry>> = OnceLock::new();
    REG.get_or_init(|| {
        let city = city_registry(&CityOptions::default()).expect("city");
        Arc::new(SimRegistry::from_generated(&city).expect("registry"))
    })
    .clone()
}

fn options(seed: u64, rate: f64, duration: &str, bad: f64) -> EventOptions {
    EventOptions {
        seed,
        rate_per_hour: rate,
        duration: parse_duration(duration).expect("duration"),
        bad_fraction: bad,
        situations: Default::default(),
        ..EventOptions::default()
    }
}

fn bytes(opts: &EventOptions) -> Vec<u8> {
    let mut stream = EventStream::new(registry(), opts).expect("stream");
    let mut out = Vec::new();
    write_ndjson(&mut stream, &mut out).expect("write");
    out
}

fn now_after(opts: &EventOptions) -> DateTime<Utc> {
    (opts.end() + TimeDelta::hours(1)).with_timezone(&Utc)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = bytes(&options(1, 60.0, "12h", 0.05));
    let b = bytes(&options(1, 60.0, "12h", 0.05));
    assert_eq!(a, b);
    let c = bytes(&options(2, 60.0, "12h", 0.05));
    assert_ne!(a, c);
    assert!(a.len() > 10_000);
}

#[test]
fn bad_lines_do_not_change_the_valid_events() {
    let valid_only = |bad: f64| -> Vec<String> {
        EventStream::new(registry(), &options(5, 50.0, "6h", bad))
            .expect("stream")
            .filter(|i| matches!(i.body, SimBody::Valid { .. }))
            .map(|i| i.line)
            .collect()
    };
    assert_eq!(valid_only(0.0), valid_only(0.3));
}

#[test]
fn every_valid_line_parses_in_time_order_with_unique_ids() {
    let opts = options(3, 200.0, "2d", 0.0);
    let now = now_after(&opts);
    let limits = Limits::default();
    let t = Instant::now();
    let items: Vec<SimItem> = EventStream::new(registry(), &opts)
        .expect("stream")
        .collect();
    eprintln!("{} events in {:?}", items.len(), t.elapsed());
    let expected = 200.0 * 48.0;
    assert!(
        (items.len() as f64 - expected).abs() / expected < 0.15,
        "{} events",
        items.len()
    );
    let mut ids = HashSet::new();
    let mut last = opts.start;
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for item in &items {
        let parsed = parse_event(item.line.as_bytes(), &limits, now)
            .unwrap_or_else(|e| panic!("line {} rejected: {e}\n{}", item.line_no, item.line));
        let SimBody::Valid { event, .. } = &item.body else {
            panic!("bad line without bad fraction")
        };
        assert_eq!(&parsed, event.as_ref());
        assert!(
            ids.insert(parsed.id().to_owned()),
            "duplicate id {}",
            parsed.id()
        );
        assert!(item.at >= last, "out of order at line {}", item.line_no);
        assert!(item.at >= opts.start && item.at < opts.end());
        assert_eq!(parsed.occurred_at(), item.at);
        assert_eq!(parsed.occurred_at().offset().local_minus_utc(), 5 * 3600);
        last = item.at;
        *kinds.entry(parsed.kind().as_str()).or_default() += 1;
    }
    eprintln!("kinds: {kinds:?}");
    assert_eq!(kinds.len(), 3);
    assert!(
        items
            .first()
            .is_some_and(|i| i.line.contains("\"sim-3-0\""))
    );
}

#[test]
fn cyber_and_fraud_are_42_percent_of_offences_over_a_week() {
    let opts = options(11, 60.0, "7d", 0.0);
    let (mut cyber, mut offences) = (0usize, 0usize);
    let mut by_hour_fraud = [0usize; 24];
    let mut by_hour_night = [0usize; 24];
    for item in EventStream::new(registry(), &opts).expect("stream") {
        let SimBody::Valid { event, .. } = item.body else {
            continue;
        };
        let hour = chrono::Timelike::hour(&item.at) as usize;
        match event.as_ref() {
            Event::FraudFlag(_) => {
                cyber += 1;
                offences += 1;
                by_hour_fraud[hour] += 1;
            }
            Event::Incident(i) => {
                offences += 1;
                match i.category {
                    IncidentCategory::Fraud | IncidentCategory::Cybercrime => cyber += 1,
                    IncidentCategory::Assault | IncidentCategory::Hooliganism => {
                        by_hour_night[hour] += 1
                    }
                    _ => {}
                }
            }
            Event::CameraAlert(_) => {}
        }
    }
    let share = cyber as f64 / offences as f64;
    eprintln!("cyber+fraud share {share:.3} of {offences} offences");
    assert!((share - 0.42).abs() < 0.04, "share {share}");
    // Daily cycles: fraud by day, assaults and hooliganism by night.
    let day = |h: &[usize; 24]| h[10..18].iter().sum::<usize>();
    let night = |h: &[usize; 24]| h[20..24].iter().chain(&h[0..4]).sum::<usize>();
    assert!(
        day(&by_hour_fraud) > 2 * night(&by_hour_fraud),
        "{by_hour_fraud:?}"
    );
    assert!(
        night(&by_hour_night) > day(&by_hour_night),
        "{by_hour_night:?}"
    );
}

#[test]
fn most_mahallas_are_quiet_for_a_day() {
    let reg = registry();
    let opts = options(4, 40.0, "24h", 0.0);
    let mut seen = HashSet::new();
    for item in EventStream::new(reg.clone(), &opts).expect("stream") {
        if let SimBody::Valid { mahalla, .. } = item.body {
            seen.insert(mahalla);
        }
    }
    let quiet = 1.0 - seen.len() as f64 / reg.len() as f64;
    eprintln!(
        "{:.1}% of {} mahallas had no event in a day at 40/h",
        quiet * 100.0,
        reg.len()
    );
    assert!(quiet > 0.5, "only {quiet} quiet");
}

#[test]
fn bad_lines_are_rejected_with_the_defect_the_truth_names() {
    let opts = options(9, 60.0, "24h", 0.2);
    let now = now_after(&opts);
    let limits = Limits::default();
    let mut stream = EventStream::new(registry(), &opts).expect("stream");
    let items: Vec<SimItem> = stream.by_ref().collect();
    let truth = stream.truth().clone();
    let bad_share = truth.bad_lines.len() as f64 / items.len() as f64;
    assert!((bad_share - 0.2).abs() < 0.04, "bad share {bad_share}");
    let by_line: HashMap<u64, &SimItem> = items.iter().map(|i| (i.line_no, i)).collect();
    let mut defects = HashSet::new();
    for bad in &truth.bad_lines {
        let item = by_line[&bad.line];
        let SimBody::Bad { defect } = item.body else {
            panic!("line {} is not bad", bad.line)
        };
        assert_eq!(defect, bad.defect);
        defects.insert(defect);
        let result = parse_event(item.line.as_bytes(), &limits, now);
        match defect.expected_code() {
            None => {
                // A duplicate id: valid, but the id repeats an earlier line's.
                let event =
                    result.unwrap_or_else(|e| panic!("duplicate line {} rejected: {e}", bad.line));
                let earlier = by_line[&bad.duplicate_of_line.expect("original")];
                assert!(earlier.line_no < item.line_no);
                let SimBody::Valid {
                    event: original, ..
                } = &earlier.body
                else {
                    panic!("not valid")
                };
                assert_eq!(event.id(), original.id());
                assert_ne!(&event, original.as_ref());
            }
            Some(code) => {
                let errors = result
                    .err()
                    .unwrap_or_else(|| panic!("line {} ({defect}) accepted", bad.line));
                assert!(
                    errors.has_code(code),
                    "line {} ({defect}): expected {code}, got {errors}",
                    bad.line
                );
                assert_eq!(bad.code.as_deref(), Some(code.as_str()));
                if let Some(path) = &bad.path
                    && code != ErrorCode::MalformedJson
                {
                    assert!(
                        errors.has_path(path),
                        "line {} ({defect}): no error at {path}: {errors}",
                        bad.line
                    );
                }
            }
        }
    }
    for d in Defect::ALL {
        assert!(defects.contains(&d), "defect {d} never produced");
    }
    // Oversized lines really are over 64 KiB; long ids over 128 bytes.
    assert!(items.iter().any(|i| matches!(
        i.body,
        SimBody::Bad {
            defect: Defect::PayloadTooLarge
        }
    ) && i.line.len() > 65_536));
    // Valid lines are still all valid.
    let valid = items
        .iter()
        .filter(|i| matches!(i.body, SimBody::Valid { .. }))
        .count() as u64;
    assert_eq!(valid, truth.valid_events);
}

#[test]
fn injected_hotspots_and_waves_are_in_the_stream() {
    let reg = registry();
    let opts = options(21, 100.0, "3d", 0.0);
    let mut stream = EventStream::new(reg.clone(), &opts).expect("stream");
    let items: Vec<SimItem> = stream.by_ref().collect();
    let truth = stream.truth().clone();
    let events: HashMap<&str, (&Event, usize, Origin)> = items
        .iter()
        .filter_map(|i| match &i.body {
            SimBody::Valid {
                event,
                mahalla,
                origin,
            } => Some((event.id(), (event.as_ref(), *mahalla, *origin))),
            SimBody::Bad { .. } => None,
        })
        .collect();
    let hotspots = truth
        .injections
        .iter()
        .filter(|i| i.kind == InjectionKind::DrugHandoffHotspot)
        .count();
    let waves = truth
        .injections
        .iter()
        .filter(|i| i.kind == InjectionKind::FraudWave)
        .count();
    eprintln!("{hotspots} hotspots, {waves} fraud waves");
    assert!(hotspots >= 1 && waves >= 1);
    for (k, inj) in truth.injections.iter().enumerate() {
        assert!(
            inj.event_ids.len() >= 5,
            "injection {k} has {} events",
            inj.event_ids.len()
        );
        assert!(!inj.cells.is_empty());
        for id in &inj.event_ids {
            let (event, mahalla, origin) = events[id.as_str()];
            assert_eq!(origin, Origin::Injected(k));
            assert_eq!(reg.mahallas()[mahalla].id, inj.mahalla_id);
            assert!(event.occurred_at() >= inj.start && event.occurred_at() < inj.end);
            let loc = event.location();
            let cell = LatLng::new(loc.lat, loc.lng)
                .expect("latlng")
                .to_cell(posbon_sim::TRUTH_RESOLUTION);
            assert!(
                inj.cells.contains(&cell.to_string()),
                "event {id} outside the injection's cells"
            );
            match (inj.kind, event) {
                (InjectionKind::DrugHandoffHotspot, Event::CameraAlert(c)) => {
                    assert_eq!(c.detection, Detection::DrugHandoff);
                    assert!(c.confidence >= 0.8);
                    assert_eq!(Some(&c.camera_id), inj.camera_id.as_ref());
                }
                (InjectionKind::FraudWave, Event::FraudFlag(f)) => {
                    assert_eq!(Some(f.scheme.as_str()), inj.scheme.as_deref());
                }
                other => panic!("unexpected event for injection: {other:?}"),
            }
        }
        if inj.kind == InjectionKind::DrugHandoffHotspot {
            assert_eq!(inj.cells.len(), 7, "a cell and its six neighbours");
        }
    }
    // Near repeats exist and stay within 200 m (plus rounding) of some
    // earlier event of the same mahalla.
    let near = items
        .iter()
        .filter(|i| {
            matches!(
                i.body,
                SimBody::Valid {
                    origin: Origin::NearRepeat,
                    ..
                }
            )
        })
        .count();
    assert!(near > 10, "{near} near repeats");
    // Every event lies inside the mahalla it was placed in.
    for item in &items {
        if let SimBody::Valid { event, mahalla, .. } = &item.body {
            let loc = event.location();
            assert!(
                reg.mahallas()[*mahalla].contains(loc.lat, loc.lng),
                "line {}",
                item.line_no
            );
        }
    }
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("24h").expect("24h"), TimeDelta::hours(24));
    assert_eq!(parse_duration("7d").expect("7d"), TimeDelta::days(7));
    assert_eq!(parse_duration("90m").expect("90m"), TimeDelta::minutes(90));
    assert_eq!(
        parse_duration("1d12h").expect("1d12h"),
        TimeDelta::hours(36)
    );
    assert_eq!(parse_duration("2w").expect("2w"), TimeDelta::days(14));
    for bad in ["", "24", "h", "-1h", "0h", "1y", "1.5h"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn options_are_checked() {
    assert!(EventStream::new(registry(), &options(1, 0.0, "1h", 0.0)).is_err());
    assert!(EventStream::new(registry(), &options(1, 10.0, "1h", 0.9)).is_err());
    assert!(EventStream::new(registry(), &options(1, f64::NAN, "1h", 0.0)).is_err());
}

#[test]
fn planted_situations_are_in_the_stream_and_the_truth() {
    let opts = EventOptions {
        situations: posbon_sim::Situations {
            difficult: 3,
            difficult_days: 4,
            quiet: 20,
            repeat_districts: 2,
        },
        ..options(9, 150.0, "10d", 0.0)
    };
    let mut stream = EventStream::new(registry(), &opts).expect("stream");
    let items: Vec<SimItem> = stream.by_ref().collect();
    let truth = stream.truth().situations.clone();
    assert_eq!(truth.difficult.len(), 3);
    assert_eq!(truth.quiet.len(), 20);
    assert_eq!(truth.repeat_districts.len(), 2);
    let mahallas = registry();
    let quiet: HashSet<&str> = truth.quiet.iter().map(String::as_str).collect();
    let mut before: HashMap<&str, u64> = HashMap::new();
    let mut after: HashMap<&str, u64> = HashMap::new();
    let (mut repeats, mut place) = (HashMap::new(), HashMap::new());
    for item in &items {
        let SimBody::Valid {
            event,
            mahalla,
            origin,
        } = &item.body
        else {
            continue;
        };
        let m = &mahallas.mahallas()[*mahalla];
        let offence = matches!(**event, Event::Incident(_) | Event::FraudFlag(_));
        // A quiet mahalla has no offence at all.
        assert!(
            !(offence && quiet.contains(m.id.as_str())),
            "an offence in quiet mahalla {}",
            m.id
        );
        if let Event::Incident(i) = &**event {
            for d in &truth.difficult {
                if d.mahalla_id == m.id {
                    let side = if item.at >= d.from {
                        &mut after
                    } else {
                        &mut before
                    };
                    *side.entry(d.mahalla_id.as_str()).or_default() += 1;
                }
            }
            if !matches!(
                i.category,
                IncidentCategory::Fraud | IncidentCategory::Cybercrime
            ) {
                let repeat_district = truth.repeat_districts.contains(&m.district);
                *place.entry(repeat_district).or_insert(0u64) += 1;
                if *origin == Origin::NearRepeat {
                    *repeats.entry(repeat_district).or_insert(0u64) += 1;
                }
            }
        }
    }
    // A difficult mahalla's daily incidents after its rise are several
    // times those before.
    for d in &truth.difficult {
        let days_after = 4.0;
        let days_before = 6.0;
        let rate_after = after.get(d.mahalla_id.as_str()).copied().unwrap_or(0) as f64 / days_after;
        let rate_before =
            before.get(d.mahalla_id.as_str()).copied().unwrap_or(0) as f64 / days_before;
        assert!(
            rate_after >= 2.0 * rate_before.max(1.0),
            "{}: {rate_before:.1} a day before, {rate_after:.1} after",
            d.mahalla_id
        );
    }
    // Near repeats make up a larger share of place-based incidents in the
    // repeat districts.
    let share = |k: bool| repeats[&k] as f64 / place[&k] as f64;
    assert!(
        share(true) > 1.5 * share(false),
        "near-repeat share {:.3} in repeat districts, {:.3} elsewhere",
        share(true),
        share(false)
    );
    // Without situations, nothing is planted.
    let plain = EventStream::new(registry(), &options(9, 150.0, "1d", 0.0)).expect("stream");
    assert!(plain.truth().situations.is_empty());
}
