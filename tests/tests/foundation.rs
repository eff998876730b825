//! The foundation end to end: the `posbon` binary generates the Tashkent
//! registry and an event stream with malformed lines; the registry loads in
//! posbon-geo, every line is judged by posbon-model exactly as the ground truth
//! says, and every valid event lands in a mahalla of the city.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use chrono::Utc;
use posbon_geo::{Registry, RegistryOptions, Resolution};
use posbon_model::{Limits, parse_events};
use posbon_tests::{NATS_INSTALL_HINT, nats_server_bin, posbon_bin};
use serde_json::Value;

fn run(args: &[&str]) {
    let out = Command::new(posbon_bin())
        .args(args)
        .output()
        .expect("posbon runs");
    assert!(
        out.status.success(),
        "posbon {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn simulated_city_and_events_pass_through_model_and_geography() {
    let dir = tempfile::tempdir().expect("temp dir");
    let city = dir.path().join("tashkent.geojson");
    let events = dir.path().join("events.ndjson");
    let truth = dir.path().join("events.truth.json");
    let (city_s, events_s, truth_s) = (
        city.to_str().expect("utf-8 path"),
        events.to_str().expect("utf-8 path"),
        truth.to_str().expect("utf-8 path"),
    );
    run(&["-q", "simulate", "city", "--out", city_s]);
    #[rustfmt::skip]
    run(&["-q", "simulate", "events", "--registry", city_s, "--rate", "4000", "--duration", "6h",
          "--seed", "11", "--bad-fraction", "0.02", "--out", events_s, "--truth", truth_s]);

    let registry = Registry::from_path(&city, &RegistryOptions::default()).expect("city loads");
    assert_eq!(registry.districts().len(), 12);
    assert!(
        registry.mahallas().len() >= 540,
        "{}",
        registry.mahallas().len()
    );

    let truth: Value =
        serde_json::from_slice(&std::fs::read(&truth).expect("truth file")).expect("truth json");
    let bad: HashMap<u64, Option<String>> = truth["bad_lines"]
        .as_array()
        .expect("bad_lines")
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().expect("line"),
                b["code"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert!(bad.len() > 100, "{} bad lines", bad.len());

    let bytes = std::fs::read(&events).expect("events file");
    // The whole file as one batch: no item limit for this check.
    let limits = Limits {
        max_batch_items: usize::MAX,
        ..Limits::default()
    };
    let items = parse_events(&bytes, &limits, Utc::now());
    let mut points = Vec::new();
    let mut valid = 0u64;
    for item in &items {
        let line = item.line as u64;
        match (&item.result, bad.get(&line)) {
            (Ok(event), None | Some(None)) => {
                valid += 1;
                points.push((event.location().lat, event.location().lng));
            }
            (Err(errors), Some(Some(code))) => assert!(
                errors.codes().iter().any(|c| c.as_str() == code),
                "line {line}: expected {code}, got {errors}"
            ),
            (Ok(_), Some(Some(code))) => panic!("line {line} was accepted, truth says {code}"),
            (Err(errors), _) => panic!("line {line} was rejected but is not bad: {errors}"),
        }
    }
    assert_eq!(
        valid,
        truth["valid_events"].as_u64().expect("valid_events") + duplicates(&bad)
    );

    let mut located = Vec::new();
    registry.locate_many(&points, &mut located);
    let mut districts = BTreeSet::new();
    for (&(lat, lng), found) in points.iter().zip(&located) {
        let found = found.as_ref().expect("valid coordinates");
        let mahalla = found
            .mahalla
            .unwrap_or_else(|| panic!("simulated event at {lat}, {lng} is in no mahalla"));
        districts.insert(registry.mahalla(mahalla).district_id.clone());
        assert_eq!(
            found.cell,
            posbon_geo::LatLng::new(lat, lng)
                .expect("valid")
                .to_cell(Resolution::Ten)
        );
    }
    assert_eq!(
        districts.len(),
        12,
        "events in every district: {districts:?}"
    );
}

/// Duplicate-id lines parse (the store deduplicates them), so they count as
/// valid lines here but not as valid events in the truth file.
fn duplicates(bad: &HashMap<u64, Option<String>>) -> u64 {
    bad.values().filter(|code| code.is_none()).count() as u64
}

#[test]
fn the_pinned_nats_server_is_installed() {
    let bin = nats_server_bin();
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {NATS_INSTALL_HINT}", bin.display()));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains("v2.15.1"),
        "{} is {version:?}, the tests need 2.15.1; {NATS_INSTALL_HINT}",
        bin.display()
    );
}
