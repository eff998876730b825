//! Fuzzes every target for a bounded time, so that CI fuzzes on every run:
//! 5 s per target, or `POSBON_FUZZ_SECS`. The seed changes from run to run
//! (it is printed; `POSBON_FUZZ_SEED` fixes it); a finding fails the test
//! with its input, which is also written to `fuzz/artifacts/<target>/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use posbon_fuzz::runner::{self, Options};

fn env_number(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

fn fuzz_for_a_while(name: &str) {
    let target = posbon_fuzz::target(name).expect("a target");
    let secs = env_number("POSBON_FUZZ_SECS").unwrap_or(5.0);
    let seed = env_number("POSBON_FUZZ_SEED").map_or_else(
        || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        },
        |s| s as u64,
    );
    let opts = Options {
        duration: Duration::from_secs_f64(secs),
        seed,
        ..Options::default()
    };
    let report = runner::fuzz(target, &opts);
    eprintln!("{report} seed {seed}");
    assert!(report.execs > 0, "{name}: nothing ran");
    if let Some(f) = report.findings.first() {
        let shown: String = String::from_utf8_lossy(&f.input)
            .chars()
            .take(2000)
            .collect();
        panic!(
            "{name} (seed {seed}): {f}\n{}\ninput {:?}{}\nreproduce: cargo run -p posbon-fuzz -- repro {name} {}",
            runner::short_backtrace(&f.backtrace),
            shown,
            if f.input.len() > 2000 { " (cut)" } else { "" },
            f.artifact
                .as_ref()
                .map_or_else(|| "<file>".to_owned(), |p| p.display().to_string()),
        );
    }
}

#[test]
fn event_json() {
    fuzz_for_a_while("event_json");
}

#[test]
fn compact() {
    fuzz_for_a_while("compact");
}

#[test]
fn registry_geojson() {
    fuzz_for_a_while("registry_geojson");
}

#[test]
fn escalation_action() {
    fuzz_for_a_while("escalation_action");
}

#[test]
fn sql_request() {
    fuzz_for_a_while("sql_request");
}

#[test]
fn config_toml() {
    fuzz_for_a_while("config_toml");
}
