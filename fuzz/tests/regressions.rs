//! Every target over every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`: the seeds must stay harmless, and every
//! crash once found and fixed must stay fixed.
//!
//! `fuzz/known/<target>/` holds crashes that are understood but not fixed
//! yet (in crates this crate may not change); they are left out here on
//! purpose and listed in the crate's report until they move to
//! `regressions/`.

use std::time::Duration;

use posbon_fuzz::TARGETS;
use posbon_fuzz::runner::{self, Options, fuzz_dir, input_files};

#[test]
fn every_corpus_and_regression_input_passes() {
    let opts = Options {
        // Debug builds on a busy machine: generous, a hang still shows.
        timeout: Duration::from_secs(10),
        ..Options::default()
    };
    let dir = fuzz_dir();
    let mut failures = Vec::new();
    let mut count = 0;
    for target in TARGETS {
        let corpus = input_files(&dir.join("corpus").join(target.name));
        assert!(!corpus.is_empty(), "{}: no seed corpus", target.name);
        let regressions = input_files(&dir.join("regressions").join(target.name));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("read an input");
            count += 1;
            if let Err(f) = runner::run_input_bounded(target, &data, &opts) {
                failures.push(format!(
                    "{} {}: {f}\n{}",
                    target.name,
                    file.display(),
                    runner::short_backtrace(&f.backtrace)
                ));
            }
        }
    }
    assert!(count > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The known findings (`fuzz/known/`) are left out by the targets' guards:
/// they run through the targets quickly, so the bounded fuzzing does not
/// trip on them again.
#[test]
fn the_targets_leave_the_known_findings_out() {
    let dir = fuzz_dir().join("known");
    for target in TARGETS {
        for file in input_files(&dir.join(target.name)) {
            let data = std::fs::read(&file).expect("read an input");
            let started = std::time::Instant::now();
            runner::run_input(target, &data).expect("a known finding is left out");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{}: {} is not left out",
                target.name,
                file.display()
            );
        }
    }
}

/// The known SQL findings still take more than 2 s to parse (run by hand
/// with `--ignored`: when this fails, the parser got its fix; move the files
/// to `fuzz/regressions/sql_request/` and drop the guards of the target).
#[test]
#[ignore = "slow by design: each known input spends 2 s to show it still hangs"]
fn the_known_sql_findings_still_hang() {
    for file in input_files(&fuzz_dir().join("known").join("sql_request")) {
        let data = std::fs::read_to_string(&file).expect("read an input");
        let query = serde_json::from_str::<serde_json::Value>(&data)
            .ok()
            .and_then(|v| v["query"].as_str().map(str::to_owned))
            .unwrap_or(data);
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(posbon_fuzz::parse_sql(&query));
        });
        assert!(
            wait.recv_timeout(Duration::from_secs(2)).is_err(),
            "{} parsed in under 2 s: the parser is fixed",
            file.display()
        );
    }
}
