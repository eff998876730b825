//! `posbon-fuzz`: fuzzes Posbon's parsers on the stable toolchain.
//!
//! ```text
//! posbon-fuzz run <target|all> [--secs N] [--seed S] [--corpus DIR] [--grow]
//!                 [--artifacts DIR] [--timeout-ms N] [--max-len N] [--rss-limit-mb N]
//!                 [--stack-kb N] [--quiet]
//! posbon-fuzz repro <target> <file>...
//! posbon-fuzz list
//! ```
//!
//! Exit status: 0 when nothing was found, 1 on a finding, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use posbon_fuzz::runner::{self, Options};
use posbon_fuzz::{TARGETS, Target};

const USAGE: &str = "\
usage:
  posbon-fuzz run <target|all> [options]   fuzz one target or every target in turn
  posbon-fuzz repro <target> <file>...     run inputs once (e.g. a crash file)
  posbon-fuzz list                         the targets

options of run:
  --secs N           seconds per target (default 60)
  --execs N          at most N inputs per target
  --seed S           seed of the mutations (default 0)
  --corpus DIR       seed inputs from DIR/<target>/ (default fuzz/corpus and
                     fuzz/regressions); may be repeated
  --grow             write inputs with a new feature to the first corpus DIR
  --artifacts DIR    where findings go (default fuzz/artifacts)
  --timeout-ms N     time budget of one input (default 2000)
  --max-len N        largest mutated input in bytes (default 16384)
  --rss-limit-mb N   memory limit while an input runs (default 4096; 0: none)
  --stack-kb N       stack of the worker thread (default 2048, as tokio's)
  --quiet            no progress and no finding details on stderr
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => match parse_run(&args[1..]) {
            Ok((targets, opts)) => run(&targets, &opts),
            Err(e) => usage_error(&e),
        },
        Some("repro") => match args.get(1).map(|name| (name, posbon_fuzz::target(name))) {
            Some((_, Some(target))) if args.len() > 2 => repro(target, &args[2..]),
            Some((name, None)) => usage_error(&format!("unknown target {name:?}")),
            _ => usage_error("repro needs a target and a file"),
        },
        Some("list") => {
            for t in TARGETS {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage_error("expected run, repro or list"),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("posbon-fuzz: {message}\n\n{USAGE}");
    ExitCode::from(2)
}

fn parse_run(args: &[String]) -> Result<(Vec<&'static Target>, Options), String> {
    let mut opts = Options {
        verbose: true,
        ..Options::default()
    };
    let mut targets = Vec::new();
    let mut corpus: Vec<PathBuf> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs {what}"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{arg}: {v:?} is not a whole number"))
        };
        match arg.as_str() {
            "--secs" => {
                let v = value("a number of seconds")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--secs: {v:?} is not a number of seconds"))?;
                opts.duration = Duration::from_secs_f64(secs);
            }
            "--execs" => opts.max_execs = Some(number(value("a count")?)?),
            "--seed" => opts.seed = number(value("a number")?)?,
            "--corpus" => corpus.push(PathBuf::from(value("a folder")?)),
            "--grow" => opts.grow_corpus = true,
            "--artifacts" => opts.artifacts_dir = Some(PathBuf::from(value("a folder")?)),
            "--timeout-ms" => {
                opts.timeout = Duration::from_millis(number(value("milliseconds")?)?.max(1));
            }
            "--max-len" => opts.max_len = number(value("bytes")?)? as usize,
            "--rss-limit-mb" => opts.rss_limit_mb = number(value("MiB")?)?,
            "--stack-kb" => opts.stack_bytes = (number(value("KiB")?)? as usize).max(64) << 10,
            "--quiet" => opts.verbose = false,
            "all" => targets.extend(TARGETS.iter()),
            name if !name.starts_with('-') => match posbon_fuzz::target(name) {
                Some(t) => targets.push(t),
                None => return Err(format!("unknown target {name:?}")),
            },
            other => return Err(format!("unknown option {other}")),
        }
    }
    if targets.is_empty() {
        return Err("run needs a target or all".to_owned());
    }
    if !corpus.is_empty() {
        opts.corpus_dirs = corpus;
    }
    Ok((targets, opts))
}

fn run(targets: &[&'static Target], opts: &Options) -> ExitCode {
    eprintln!(
        "posbon-fuzz: {} target(s), {:.0} s each, seed {}",
        targets.len(),
        opts.duration.as_secs_f64(),
        opts.seed
    );
    let mut reports = Vec::new();
    for target in targets {
        let report = runner::fuzz(target, opts);
        eprintln!("{report}");
        reports.push(report);
    }
    println!("\nsummary (seed {}):", opts.seed);
    for r in &reports {
        println!("{r}");
    }
    let findings: Vec<_> = reports
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r.target, f)))
        .collect();
    if findings.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!("\nfindings:");
    for (target, f) in findings {
        println!("  {target}: {f}");
        if let Some(path) = &f.artifact {
            println!(
                "    reproduce: cargo run -p posbon-fuzz -- repro {target} {}",
                path.display()
            );
        }
    }
    ExitCode::from(1)
}

fn repro(target: &'static Target, files: &[String]) -> ExitCode {
    let mut failed = false;
    for file in files {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{file}: {e}");
                failed = true;
                continue;
            }
        };
        let opts = Options::default();
        match runner::run_input_bounded(target, &data, &opts) {
            Ok(features) => println!("{file}: ok ({} features)", features.len()),
            Err(f) => {
                failed = true;
                println!("{file}: {f}");
                if !f.backtrace.is_empty() {
                    println!("{}", runner::short_backtrace(&f.backtrace));
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
