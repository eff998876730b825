//! Command-line definitions (clap derive). Each subcommand is a variant of
//! [`Command`] with its own argument struct, so new commands (standalone,
//! demo, replay, tail, sql, report, mahallas, store) slot in as new variants.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Posbon: stream processing and geospatial alerting for the mahallas of Uzbekistan.
#[derive(Debug, Parser)]
#[command(
    name = "posbon",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
#[command(
    after_help = "Examples:\n  posbon simulate city --out tashkent.geojson\n  posbon simulate events --rate 20000 --duration 24h --out day.ndjson"
)]
pub(crate) struct Cli {
    /// Print nothing but errors on stderr.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate synthetic mahalla registries and realistic event streams.
    Simulate(SimulateArgs),
    /// Run the ingest service: validate, enrich and publish events from NATS and HTTP.
    #[command(
        after_help = "Configuration: embedded defaults, then --config FILE, then POSBON__INGEST__<KEY>\nenvironment variables (e.g. POSBON__INGEST__LISTEN=0.0.0.0:8081)."
    )]
    Ingest(ServiceArgs),
    /// Run the indexer service: store every event of the EVENTS stream by H3 cell.
    #[command(
        after_help = "Configuration: embedded defaults, then --config FILE, then POSBON__INDEXER__<KEY>\nand POSBON__STORE__<KEY> environment variables (e.g. POSBON__STORE__PATH=/var/lib/posbon)."
    )]
    Indexer(ServiceArgs),
}

/// Arguments of a service command.
#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
}

/// `posbon simulate`.
#[derive(Debug, Args)]
#[command(arg_required_else_help = true)]
pub(crate) struct SimulateArgs {
    #[command(subcommand)]
    pub(crate) what: SimulateCommand,
}

/// What to simulate.
#[derive(Debug, Subcommand)]
pub(crate) enum SimulateCommand {
    /// Write a synthetic registry of Tashkent city (12 districts, about 600 mahallas) as GeoJSON.
    #[command(
        after_help = "Examples:\n  posbon simulate city --out tashkent.geojson\n  posbon simulate city --seed 7 --mahallas 300 > small-city.geojson"
    )]
    City(CityArgs),
    /// Write a synthetic national registry (14 regions, about 9,500 mahallas) as GeoJSON.
    #[command(
        after_help = "Examples:\n  posbon simulate national --out uzbekistan.geojson\n  posbon simulate national --mahallas 2000 --seed 3 --out small.geojson"
    )]
    National(NationalArgs),
    /// Write a realistic NDJSON event stream over a registry, with its ground truth.
    #[command(
        after_help = "Examples:\n  posbon simulate events --duration 7d --out week.ndjson   (truth: week.ndjson.truth.json)\n  posbon simulate events --registry uzbekistan.geojson --rate 20000 --duration 24h --out day.ndjson\n  posbon simulate events --bad-fraction 0.05 --duration 6h | head"
    )]
    Events(EventsArgs),
}

/// `posbon simulate city`.
#[derive(Debug, Args)]
pub(crate) struct CityArgs {
    /// Seed of the random generator: same seed, same bytes.
    #[arg(long, default_value_t = posbon_sim::DEFAULT_SEED)]
    pub(crate) seed: u64,
    /// Number of mahallas.
    #[arg(long, default_value_t = posbon_sim::DEFAULT_CITY_MAHALLAS)]
    pub(crate) mahallas: usize,
    /// Output file (default: stdout).
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
}

/// `posbon simulate national`.
#[derive(Debug, Args)]
pub(crate) struct NationalArgs {
    /// Seed of the random generator: same seed, same bytes.
    #[arg(long, default_value_t = posbon_sim::DEFAULT_SEED)]
    pub(crate) seed: u64,
    /// Number of mahallas (the result is within a few percent of it).
    #[arg(long, default_value_t = posbon_sim::DEFAULT_NATIONAL_MAHALLAS)]
    pub(crate) mahallas: usize,
    /// Output file (default: stdout).
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
}

/// `posbon simulate events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Registry GeoJSON to simulate over (default: the city registry with the default seed, generated in-process).
    #[arg(long)]
    pub(crate) registry: Option<PathBuf>,
    /// Mean number of events per hour of event time, all kinds together (averaged over a week: hours and weekdays follow daily and weekly cycles).
    #[arg(long, default_value_t = posbon_sim::DEFAULT_RATE_PER_HOUR)]
    pub(crate) rate: f64,
    /// Length of the stream in event time: a number and a unit (s, m, h, d, w), e.g. 90m, 24h, 7d, 1d12h.
    #[arg(long, default_value = "24h")]
    pub(crate) duration: String,
    /// Seed of the random generator: same seed, same bytes; event ids are sim-<seed>-<n>.
    #[arg(long, default_value_t = posbon_sim::DEFAULT_SEED)]
    pub(crate) seed: u64,
    /// Event time of the first event, RFC 3339 (events carry +05:00, Asia/Tashkent).
    #[arg(long, default_value = "2026-11-01T00:00:00+05:00")]
    pub(crate) start: String,
    /// Output file (default: stdout).
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
    /// Ground-truth JSON (injected hotspots and fraud waves, bad lines); default <out>.truth.json, none when writing to stdout.
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
    /// Fraction of lines (0..0.5) that are malformed on purpose, each with a defect the validator must reject.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) bad_fraction: f64,
    /// Allow events later than the current time (the validator rejects them).
    #[arg(long)]
    pub(crate) allow_future: bool,
}
