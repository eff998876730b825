//! The mutation runner: seeds, mutations, a worker thread with a time
//! budget, crash files and the summary.
//!
//! One worker thread runs the inputs of a target, each under
//! `catch_unwind`; the runner waits for each result with a deadline. A panic
//! is recorded (deduplicated by its location) and fuzzing goes on; an input
//! that outlives [`Options::timeout`], or during which the process grows
//! beyond [`Options::rss_limit_mb`], ends the target: its worker cannot be
//! stopped and is left behind. Every finding is written to
//! `<artifacts>/<target>/{crash,hang,oom}-<hash>`.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::mutate::mutate;
use crate::{Features, Target};

/// The crate's folder: where `corpus/`, `regressions/` and `artifacts/`
/// are.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to fuzz each target.
    pub duration: Duration,
    /// At most this many executions per target (`None`: no bound).
    pub max_execs: Option<u64>,
    /// Seed of the mutation PRNG: the same seed and corpus give the same
    /// inputs in the same order.
    pub seed: u64,
    /// Folders whose `<target>/` subfolder holds seed inputs.
    pub corpus_dirs: Vec<PathBuf>,
    /// Where findings go (`<artifacts>/<target>/`); `None` keeps them in
    /// memory only.
    pub artifacts_dir: Option<PathBuf>,
    /// Also write every input with a new feature to the first corpus folder.
    pub grow_corpus: bool,
    /// Time budget of one input.
    pub timeout: Duration,
    /// Largest input made by mutation (seeds larger than this are kept as
    /// they are).
    pub max_len: usize,
    /// Most inputs kept in memory per target.
    pub max_corpus: usize,
    /// The process may not grow beyond this many MiB of resident memory
    /// while an input runs (0: no limit).
    pub rss_limit_mb: u64,
    /// Stack of the worker thread, in bytes (tokio's worker threads, where
    /// the services parse, have 2 MiB).
    pub stack_bytes: usize,
    /// Most distinct panics recorded before a target is given up.
    pub max_crashes: usize,
    /// Print progress to stderr.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        let dir = fuzz_dir();
        Options {
            duration: Duration::from_secs(60),
            max_execs: None,
            seed: 0,
            corpus_dirs: vec![dir.join("corpus"), dir.join("regressions")],
            artifacts_dir: Some(dir.join("artifacts")),
            grow_corpus: false,
            timeout: Duration::from_secs(2),
            max_len: 16 << 10,
            max_corpus: 4096,
            rss_limit_mb: 4096,
            stack_bytes: 2 << 20,
            max_crashes: 16,
            verbose: false,
        }
    }
}

/// What went wrong with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// The target panicked (a bug, or a broken invariant).
    Panic,
    /// The input ran longer than the time budget.
    Hang,
    /// The process grew beyond the memory limit while the input ran.
    Oom,
}

impl FindingKind {
    /// The prefix of its artifact file.
    pub fn prefix(self) -> &'static str {
        match self {
            FindingKind::Panic => "crash",
            FindingKind::Hang => "hang",
            FindingKind::Oom => "oom",
        }
    }
}

/// One input that broke a target.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Panic, hang or memory.
    pub kind: FindingKind,
    /// The panic message with its location, or what the budget was.
    pub message: String,
    /// Where the panic was raised (`file:line:column`), for deduplication.
    pub location: String,
    /// The backtrace of a panic.
    pub backtrace: String,
    /// The input.
    pub input: Vec<u8>,
    /// The file the input was written to.
    pub artifact: Option<PathBuf>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({} byte input)",
            self.kind.prefix(),
            self.message,
            self.input.len()
        )
    }
}

/// What fuzzing one target did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Inputs run.
    pub execs: u64,
    /// Time spent.
    pub elapsed: Duration,
    /// Seed inputs read.
    pub seeds: usize,
    /// Inputs in memory at the end.
    pub corpus: usize,
    /// Distinct features seen (see [`Target::run`]).
    pub features: usize,
    /// Distinct findings (panics deduplicated by location).
    pub findings: Vec<Finding>,
    /// The slowest input that did not hang: its time and length.
    pub slowest: (Duration, usize),
    /// Where the slowest input was written, when it took 100 ms or more.
    pub slowest_file: Option<PathBuf>,
}

impl Report {
    /// Executions per second.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<18} execs {:>9}  execs/s {:>8.0}  crashes {:>2}  corpus {:>5} (seeds {}, features {})  slowest {} ms ({} bytes)",
            self.target,
            self.execs,
            self.execs_per_sec(),
            self.findings.len(),
            self.corpus,
            self.seeds,
            self.features,
            self.slowest.0.as_millis(),
            self.slowest.1,
        )
    }
}

// ---------------------------------------------------------------------------
// Panics: captured on the worker thread, silent
// ---------------------------------------------------------------------------

/// A panic caught on the worker thread; the backtrace is resolved only
/// when the panic is new.
struct Caught {
    message: String,
    location: String,
    backtrace: Option<std::backtrace::Backtrace>,
}

impl Caught {
    fn into_finding(self, input: Vec<u8>) -> Finding {
        Finding {
            kind: FindingKind::Panic,
            message: format!("{} at {}", self.message, self.location),
            location: self.location,
            backtrace: self.backtrace.map(|b| b.to_string()).unwrap_or_default(),
            input,
            artifact: None,
        }
    }
}

thread_local! {
    /// Set while a target runs on this thread: its panics are captured
    /// instead of printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that captures the panics of running
/// targets and passes every other panic to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let message = info
                    .payload_as_str()
                    .unwrap_or("(a panic without a message)")
                    .to_owned();
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let backtrace = Some(std::backtrace::Backtrace::force_capture());
                CAUGHT.with(|c| {
                    *c.borrow_mut() = Some(Caught {
                        message,
                        location,
                        backtrace,
                    })
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs the target on `data` on this thread, capturing a panic.
fn run_caught(target: &Target, data: &[u8]) -> Result<Features, Caught> {
    install_panic_hook();
    CAPTURING.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(data)));
    CAPTURING.with(|c| c.set(false));
    result.map_err(|_| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| Caught {
                message: "(a panic the hook did not see)".to_owned(),
                location: String::new(),
                backtrace: None,
            })
    })
}

// ---------------------------------------------------------------------------
// The worker thread
// ---------------------------------------------------------------------------

struct Done {
    result: Result<Features, Caught>,
    took: Duration,
}

struct Worker {
    to: mpsc::Sender<Vec<u8>>,
    from: mpsc::Receiver<Done>,
}

impl Worker {
    fn spawn(target: &'static Target, stack_bytes: usize) -> std::io::Result<Worker> {
        let (to, inputs) = mpsc::channel::<Vec<u8>>();
        let (results, from) = mpsc::channel();
        thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            .stack_size(stack_bytes)
            .spawn(move || {
                for input in inputs {
                    let started = Instant::now();
                    let result = run_caught(target, &input);
                    let done = Done {
                        result,
                        took: started.elapsed(),
                    };
                    if results.send(done).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker { to, from })
    }

    /// Runs one input with a deadline; `Err` on a hang or a memory overrun
    /// (the worker is then stuck and must be dropped).
    fn run(&self, input: &[u8], opts: &Options) -> Result<Done, (FindingKind, String)> {
        if self.to.send(input.to_vec()).is_err() {
            return Err((FindingKind::Panic, "the worker thread died".to_owned()));
        }
        let started = Instant::now();
        let slice = opts.timeout.min(Duration::from_millis(100));
        loop {
            match self.from.recv_timeout(slice) {
                Ok(done) => return Ok(done),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err((FindingKind::Panic, "the worker thread died".to_owned()));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if started.elapsed() >= opts.timeout {
                return Err((
                    FindingKind::Hang,
                    format!(
                        "input still running after {} ms (time budget)",
                        opts.timeout.as_millis()
                    ),
                ));
            }
            if let Some(rss) = rss_mb().filter(|&m| opts.rss_limit_mb > 0 && m > opts.rss_limit_mb)
            {
                return Err((
                    FindingKind::Oom,
                    format!(
                        "resident memory {rss} MiB, over the {} MiB limit",
                        opts.rss_limit_mb
                    ),
                ));
            }
        }
    }
}

/// Resident memory of the process, in MiB (Linux).
pub fn rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

// ---------------------------------------------------------------------------
// Inputs and artifacts
// ---------------------------------------------------------------------------

/// A short stable hash of an input, for file names.
pub fn input_hash(data: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The files directly in `dir`, sorted, dot files left out; none when it
/// does not exist.
pub fn input_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n != "README.md")
        })
        .collect();
    files.sort();
    files
}

fn write_artifact(dir: &Path, finding: &Finding) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(
        "{}-{}",
        finding.kind.prefix(),
        input_hash(&finding.input)
    ));
    std::fs::write(&path, &finding.input)?;
    Ok(path)
}

/// Runs one input on the current thread, with the same panic capture as the
/// fuzzer (no time budget: for `repro` and the regression tests).
pub fn run_input(target: &Target, data: &[u8]) -> Result<Features, Box<Finding>> {
    run_caught(target, data).map_err(|c| Box::new(c.into_finding(data.to_vec())))
}

/// Runs one input in a worker thread with the time budget of `opts`.
pub fn run_input_bounded(
    target: &'static Target,
    data: &[u8],
    opts: &Options,
) -> Result<Features, Box<Finding>> {
    let failed = |kind, message| {
        Box::new(Finding {
            kind,
            message,
            location: String::new(),
            backtrace: String::new(),
            input: data.to_vec(),
            artifact: None,
        })
    };
    let worker = Worker::spawn(target, opts.stack_bytes).map_err(|e| {
        failed(
            FindingKind::Panic,
            format!("cannot start a worker thread: {e}"),
        )
    })?;
    match worker.run(data, opts) {
        Ok(Done { result: Ok(f), .. }) => Ok(f),
        Ok(Done { result: Err(c), .. }) => Err(Box::new(c.into_finding(data.to_vec()))),
        Err((kind, message)) => Err(failed(kind, message)),
    }
}

// ---------------------------------------------------------------------------
// Fuzzing
// ---------------------------------------------------------------------------

/// Fuzzes `target` for `opts.duration` and reports what happened.
pub fn fuzz(target: &'static Target, opts: &Options) -> Report {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ name_seed(target.name));
    let mut report = Report {
        target: target.name,
        execs: 0,
        elapsed: Duration::ZERO,
        seeds: 0,
        corpus: 0,
        features: 0,
        findings: Vec::new(),
        slowest: (Duration::ZERO, 0),
        slowest_file: None,
    };
    let mut slowest_input = Vec::new();

    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for dir in &opts.corpus_dirs {
        for file in input_files(&dir.join(target.name)) {
            if let Ok(bytes) = std::fs::read(&file) {
                seeds.push(bytes);
            }
        }
    }
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    report.seeds = seeds.len();
    let max_len = seeds
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(opts.max_len);

    let artifacts = opts.artifacts_dir.as_ref().map(|d| d.join(target.name));
    // The input that is running, for when the process dies outright.
    let current = artifacts.as_ref().and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        File::create(dir.join("current-input")).ok()
    });
    let grow_dir = opts
        .corpus_dirs
        .first()
        .filter(|_| opts.grow_corpus)
        .map(|d| d.join(target.name));

    let mut worker = match Worker::spawn(target, opts.stack_bytes) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("{}: cannot start a worker thread: {e}", target.name);
            None
        }
    };
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut seeds_kept = 0;
    let mut crash_sites: HashSet<String> = HashSet::new();
    let mut queue = seeds.into_iter();
    let mut last_progress = Instant::now();

    while let Some(w) = worker.as_ref() {
        if started.elapsed() >= opts.duration || opts.max_execs.is_some_and(|m| report.execs >= m) {
            break;
        }
        // Seeds first, then mutations of what the corpus holds.
        let (input, is_seed) = match queue.next() {
            Some(seed) => (seed, true),
            None if corpus.is_empty() => (Vec::new(), false),
            None => {
                let mut input = corpus[rng.random_range(0..corpus.len())].clone();
                let other = &corpus[rng.random_range(0..corpus.len())];
                mutate(&mut rng, &mut input, other, target.dictionary, max_len);
                (input, false)
            }
        };
        if let Some(file) = &current {
            // Best effort: a failed write only loses the post-mortem.
            let _ = file.set_len(0).and_then(|()| file.write_all_at(&input, 0));
        }
        report.execs += 1;
        match w.run(&input, opts) {
            Ok(Done {
                result: Ok(features),
                took,
            }) => {
                if took > report.slowest.0 {
                    report.slowest = (took, input.len());
                    slowest_input.clone_from(&input);
                }
                let mut new = false;
                for f in &features {
                    new |= seen.insert(*f);
                }
                if new
                    && !is_seed
                    && let Some(dir) = &grow_dir
                {
                    let _ = std::fs::create_dir_all(dir)
                        .and_then(|()| std::fs::write(dir.join(input_hash(&input)), &input));
                }
                if is_seed {
                    corpus.push(input);
                    seeds_kept = corpus.len();
                } else if new && corpus.len() < opts.max_corpus {
                    corpus.push(input);
                } else if new && corpus.len() > seeds_kept {
                    // Full: the new input takes the place of an earlier find
                    // (never of a seed), so the corpus keeps moving.
                    let i = rng.random_range(seeds_kept..corpus.len());
                    corpus[i] = input;
                }
            }
            Ok(Done {
                result: Err(caught),
                ..
            }) => {
                if crash_sites.insert(caught.location.clone()) {
                    let mut finding = caught.into_finding(input);
                    record(&mut finding, artifacts.as_deref(), target, opts);
                    report.findings.push(finding);
                    if report.findings.len() >= opts.max_crashes {
                        break;
                    }
                }
            }
            Err((kind, message)) => {
                let mut finding = Finding {
                    kind,
                    message,
                    location: String::new(),
                    backtrace: String::new(),
                    input,
                    artifact: None,
                };
                record(&mut finding, artifacts.as_deref(), target, opts);
                report.findings.push(finding);
                // The worker is stuck in the input: leave it behind.
                worker = None;
            }
        }
        if opts.verbose && last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "{}: {} execs, corpus {}, {} s",
                target.name,
                report.execs,
                corpus.len(),
                started.elapsed().as_secs()
            );
        }
        if report.execs.is_multiple_of(4096)
            && let Some(rss) = rss_mb().filter(|&m| opts.rss_limit_mb > 0 && m > opts.rss_limit_mb)
        {
            eprintln!(
                "{}: resident memory {rss} MiB over the {} MiB limit between inputs; stopping",
                target.name, opts.rss_limit_mb
            );
            break;
        }
    }
    if worker.is_some()
        && let Some(dir) = &artifacts
    {
        // Finished normally: nothing to look at after a crash of the process.
        let _ = std::fs::remove_file(dir.join("current-input"));
    }
    if report.slowest.0 >= Duration::from_millis(100)
        && let Some(dir) = &artifacts
    {
        let path = dir.join("slowest-input");
        if std::fs::write(&path, &slowest_input).is_ok() {
            report.slowest_file = Some(path);
        }
    }
    report.elapsed = started.elapsed();
    report.corpus = corpus.len();
    report.features = seen.len();
    report
}

/// A per-target part of the PRNG seed, so that `run all` does not mutate
/// every target the same way.
fn name_seed(name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// Writes the finding's input and prints how to reproduce it.
fn record(finding: &mut Finding, dir: Option<&Path>, target: &Target, opts: &Options) {
    if let Some(dir) = dir {
        match write_artifact(dir, finding) {
            Ok(path) => finding.artifact = Some(path),
            Err(e) => eprintln!("{}: cannot write the input: {e}", target.name),
        }
    }
    if opts.verbose {
        eprintln!("\n==== {} {finding}", target.name);
        if !finding.backtrace.is_empty() {
            eprintln!("{}", short_backtrace(&finding.backtrace));
        }
        match &finding.artifact {
            Some(path) => eprintln!(
                "input written to {}\nreproduce: cargo run -p posbon-fuzz -- repro {} {}\n",
                path.display(),
                target.name,
                path.display()
            ),
            None => eprintln!("input: {:?}\n", String::from_utf8_lossy(&finding.input)),
        }
    }
}

/// The frames of a backtrace that are in Posbon's code, with the panic
/// machinery and the runner left out.
pub fn short_backtrace(backtrace: &str) -> String {
    let lines: Vec<&str> = backtrace.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let ours = t.contains("posbon") && !t.contains("posbon_fuzz::runner");
        if ours && !t.starts_with("at ") {
            out.push(t.to_owned());
            if let Some(at) = lines
                .get(i + 1)
                .map(|l| l.trim())
                .filter(|l| l.starts_with("at "))
            {
                out.push(format!("    {at}"));
            }
        }
    }
    out.join("\n")
}
