//! Every target over every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`: the seeds must stay harmless, and every
//! crash once found and fixed must stay fixed.

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
