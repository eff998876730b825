//! Command-line definitions (clap derive). Each subcommand is a variant of
//! [`Command`] with its own argument struct, so new commands (standalone,
//! demo, replay, tail, sql, report, mahallas, store) slot in as new variants.
//!
//! One file (about 730 lines) because it is the command-line grammar and its
//! `--help` texts and nothing else: what each command does lives in its own
//! module (`ops`, `identity`, `nats`, `simulate`, `services`).

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
    after_help = "Examples:\n  posbon demo                      (everything, with a simulated city, on http://127.0.0.1:8080/)\n  posbon standalone --data /var/lib/posbon\n  posbon simulate city --out tashkent.geojson\n  posbon simulate events --rate 20000 --duration 24h --out day.ndjson"
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
    /// Run the whole system in one process with a simulated city and event stream (a day in a few minutes).
    #[command(
        after_help = "Everything is served on one address (default http://127.0.0.1:8080/): the command-centre\npage, the live feed, SQL, POST /v1/events. Configuration as for `standalone`, plus [demo]\n(seed, rate_per_hour, history_days, day_minutes)."
    )]
    Demo(StandaloneArgs),
    /// Run ingest, indexer, escalator, reporter and API in one process on one address.
    #[command(
        after_help = "Configuration: embedded defaults, then --config FILE, then POSBON__<SECTION>__<KEY>\nenvironment variables, then these flags. Sections: [standalone] [ingest] [indexer]\n[escalator] [risk] [api] [store] [telemetry].\nExamples:\n  posbon standalone --data /var/lib/posbon\n  posbon standalone --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222 --tikv 10.0.0.5:2379"
    )]
    Standalone(StandaloneArgs),
    /// Generate synthetic mahalla registries and realistic event streams.
    Simulate(SimulateArgs),
    /// Ask the running system a SQL question (tables: events, incidents, camera_alerts, fraud_flags, escalations, mahallas, daily_reports).
    #[command(
        after_help = "Examples:\n  posbon sql \"SELECT mahalla_id, count(*) FROM incidents GROUP BY 1 ORDER BY 2 DESC LIMIT 10\"\n  posbon sql --format csv \"SELECT * FROM escalations\" > escalations.csv\n  echo \"SELECT count(*) FROM events\" | posbon sql -"
    )]
    Sql(SqlArgs),
    /// Print a stored report of the running system.
    #[command(arg_required_else_help = true)]
    Report(ReportArgs),
    /// Follow a live stream of the running system.
    #[command(arg_required_else_help = true)]
    Tail(TailArgs),
    /// Publish an NDJSON file of events to the running system, with progress and a summary.
    #[command(
        after_help = "Exit codes: 0 all lines accepted (or duplicates), 3 some lines rejected (the first ten are\nlisted on stderr), 1 an error.\nExample:\n  posbon simulate events --duration 6h --out six-hours.ndjson && posbon replay six-hours.ndjson"
    )]
    Replay(ReplayArgs),
    /// Work with mahalla registries.
    #[command(arg_required_else_help = true)]
    Mahallas(MahallasArgs),
    /// Work with event stores.
    #[command(arg_required_else_help = true)]
    Store(StoreArgs),
    /// Run the ingest service: validate, enrich and publish events from NATS and HTTP.
    #[command(
        after_help = "Configuration: embedded defaults, then --config FILE, then POSBON__INGEST__<KEY>\nenvironment variables (e.g. POSBON__INGEST__LISTEN=0.0.0.0:8081)."
    )]
    Ingest(ServiceArgs),
    /// Manage API tokens of the running system (admin).
    #[command(
        arg_required_else_help = true,
        after_help = "Examples:\n  export POSBON_TOKEN=$(cat data/admin.token)\n  posbon tokens create --name camera-gateway --role producer --expires-in-days 365\n  posbon tokens create --name chilonzor-desk --role operator --scope district:chilonzor\n  posbon tokens list\n  posbon tokens revoke 3f9a01c2b7de"
    )]
    Tokens(TokensArgs),
    /// Manage the page's users of the running system (admin).
    #[command(
        arg_required_else_help = true,
        after_help = "The password is read from stdin (first line) when --password-stdin is given; otherwise one\nis generated and printed once.\nExample:\n  posbon users add aziza --role supervisor --scope region:tashkent"
    )]
    Users(UsersArgs),
    /// Read and check the audit log of the running system (admin).
    #[command(arg_required_else_help = true)]
    Audit(AuditArgs),
    /// Silence paging (maintenance windows included) in the running system (supervisor).
    #[command(
        arg_required_else_help = true,
        after_help = "A silenced escalation is recorded and shown as always; only its pages are held back.\nExamples:\n  posbon silences add --district chilonzor --for 2h --reason \"camera maintenance\"\n  posbon silences add --mahalla chilonzor-017 --starts-at 2026-12-06T01:00:00+05:00 --for 4h --reason \"works\"\n  posbon silences list\n  posbon silences expire sil-3f9a01c2b7de4d10"
    )]
    Silences(SilencesArgs),
    /// Write a least-privilege nats-server configuration: one nkey user per service and producer class.
    #[command(
        after_help = "Writes DIR/nats.conf (run it as it is: nats-server -c DIR/nats.conf) and DIR/<user>.nk for
the users admin, standalone, ingest, indexer, escalator, reporter, api, producer-police,
producer-camera, producer-fraud and command-centre (mode 0600). Each service then takes
[nats] credentials_file = \"DIR/<user>.nk\" (or posbon standalone --nats-creds DIR/standalone.nk);
the admin creates the streams once with posbon nats-streams.
Example:
  posbon nats-config --out /etc/nats/posbon --listen 0.0.0.0:4222 --tls-dir /etc/nats/tls"
    )]
    NatsConfig(NatsConfigArgs),
    /// Create or update Posbon's JetStream streams, as the NATS admin user.
    #[command(after_help = "Example:
  posbon nats-streams --nats nats://10.0.0.1:4222 --nats-creds /etc/nats/posbon/admin.nk")]
    NatsStreams(NatsStreamsArgs),
    /// Run the indexer service: store every event of the EVENTS stream by H3 cell.
    #[command(
        after_help = "Configuration: embedded defaults, then --config FILE, then POSBON__INDEXER__<KEY>\nand POSBON__STORE__<KEY> environment variables (e.g. POSBON__STORE__PATH=/var/lib/posbon)."
    )]
    Indexer(ServiceArgs),
}

/// Default address of a running Posbon.
const API: &str = "http://127.0.0.1:8080";

/// `posbon sql`.
#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// The query (read-only SQL); `-` reads it from stdin.
    pub(crate) query: String,
    /// Where the running system is, and the token to use.
    #[command(flatten)]
    pub(crate) target: ApiTarget,
    /// Output: an aligned table, JSON, CSV, Parquet or GeoJSON (rows with lat and lng, an H3 cell or WKT become features); redirect Parquet to a file.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv", "parquet", "geojson"])]
    pub(crate) format: String,
}

/// `posbon report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(subcommand)]
    pub(crate) what: ReportCommand,
}

/// Which report.
#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// The daily situation report of a date (Asia/Tashkent days).
    #[command(
        after_help = "Examples:\n  posbon report daily --date 2026-11-27\n  posbon report daily --date 2026-11-27 --scope district:chilonzor --format csv"
    )]
    Daily(ReportDailyArgs),
}

/// `posbon report daily`.
#[derive(Debug, Args)]
pub(crate) struct ReportDailyArgs {
    /// The day, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) date: String,
    /// nation, region:<id>, district:<id> or mahalla:<id>.
    #[arg(long, default_value = "nation")]
    pub(crate) scope: String,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "csv", "html"])]
    pub(crate) format: String,
    /// Generate (or regenerate) the report now instead of reading the stored one.
    #[arg(long)]
    pub(crate) generate: bool,
    /// Where the running system is, and the token to use.
    #[command(flatten)]
    pub(crate) target: ApiTarget,
}

/// `posbon tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    #[command(subcommand)]
    pub(crate) what: TailCommand,
}

/// What to follow.
#[derive(Debug, Subcommand)]
pub(crate) enum TailCommand {
    /// The live escalation feed: one line per escalation opened or updated.
    #[command(
        after_help = "Columns: sequence, opened|updated, level, status, mahalla, rule, opened at (UTC), id.\nExamples:\n  posbon tail alerts --region tashkent --min-level high\n  posbon tail alerts --since 0 --json | jq ."
    )]
    Alerts(TailAlertsArgs),
}

/// `posbon tail alerts`.
#[derive(Debug, Args)]
pub(crate) struct TailAlertsArgs {
    /// Only this region (id).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Only this district (id).
    #[arg(long)]
    pub(crate) district: Option<String>,
    /// Only this mahalla (id).
    #[arg(long)]
    pub(crate) mahalla: Option<String>,
    /// Only this level and above: normal, elevated, high, critical.
    #[arg(long)]
    pub(crate) min_level: Option<String>,
    /// Start after this feed sequence (0: everything kept) instead of with what comes next.
    #[arg(long)]
    pub(crate) since: Option<u64>,
    /// Print each record as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Where the running system is, and the token to use.
    #[command(flatten)]
    pub(crate) target: ApiTarget,
}

/// `posbon replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// NDJSON file of events (one per line).
    pub(crate) file: PathBuf,
    /// Lines per HTTP request.
    #[arg(long, default_value_t = 1000)]
    pub(crate) batch: usize,
    /// Where the running system is, and the token to use.
    #[command(flatten)]
    pub(crate) target: ApiTarget,
}

/// `posbon mahallas`.
#[derive(Debug, Args)]
pub(crate) struct MahallasArgs {
    #[command(subcommand)]
    pub(crate) what: MahallasCommand,
}

/// What to do with a registry.
#[derive(Debug, Subcommand)]
pub(crate) enum MahallasCommand {
    /// Validate a mahalla registry (GeoJSON) and install it in a data directory.
    #[command(
        after_help = "The registry is checked as every service checks it (geometry, overlaps, hierarchy), then\ncopied to DATA/mahallas.geojson, which `posbon standalone --data DATA` uses from its next\nstart. Examples:\n  posbon mahallas load uzbekistan.geojson --data /var/lib/posbon\n  posbon mahallas load draft.geojson --check"
    )]
    Load(MahallasLoadArgs),
    /// Make a registry the one every service of a deployment must load.
    #[command(
        after_help = "Each service records the digest of its registry in the store at its first start and refuses
to start with another. To change the registry of a deployment: stop every service, adopt the
new file, then start them all with it. Example:
  posbon mahallas adopt uzbekistan.geojson --store tikv:10.0.0.5:2379"
    )]
    Adopt(MahallasAdoptArgs),
}

/// `posbon mahallas adopt`.
#[derive(Debug, Args)]
pub(crate) struct MahallasAdoptArgs {
    /// Registry GeoJSON.
    pub(crate) file: PathBuf,
    /// The store: embedded:PATH or tikv:PD_ENDPOINT[,PD_ENDPOINT...].
    #[arg(long)]
    pub(crate) store: String,
}

/// `posbon mahallas load`.
#[derive(Debug, Args)]
pub(crate) struct MahallasLoadArgs {
    /// Registry GeoJSON.
    pub(crate) file: PathBuf,
    /// Data directory to install it in.
    #[arg(long, default_value = "data")]
    pub(crate) data: PathBuf,
    /// Only validate; install nothing.
    #[arg(long)]
    pub(crate) check: bool,
}

/// `posbon store`.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    #[command(subcommand)]
    pub(crate) what: StoreCommand,
}

/// What to do with stores.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy everything (events, indexes, checkpoints, escalations, reports) from one store to another.
    #[command(
        after_help = "Stores: embedded:PATH or tikv:PD_ENDPOINT[,PD_ENDPOINT...]. Stop the writers first.\nExample:\n  posbon store copy --from embedded:data/store --to tikv:10.0.0.5:2379,10.0.0.6:2379"
    )]
    Copy(StoreCopyArgs),
    /// Delete what is older than its table's retention ([retention] in --config; defaults otherwise).
    #[command(
        after_help = "Retention (days, 0 keeps forever): incident_days 1825, camera_alert_days 90,\nfraud_flag_days 365, escalation_days 730 (closed escalations, by when they closed).\nThe services run the same deletion daily; stop an embedded store's process first.\nExamples:\n  posbon store prune --store embedded:data/store --dry-run\n  posbon store prune --store tikv:10.0.0.5:2379 --config posbon.toml"
    )]
    Prune(StorePruneArgs),
    /// Lift the stored fraud flags' pseudonyms to the newest key of a pseudonym key file (after rolling in a new key).
    #[command(
        after_help = "Rolling in a new key: put a new line `<id> <secret>` at the top of ingest's pseudonym key\nfile (keep the old lines), restart ingest, then run this (and again once INGEST is drained).\nOld and new flags of one account then join again. Idempotent.\nExample:\n  posbon store rekey-pseudonyms --store tikv:10.0.0.5:2379 --key-file /etc/posbon/pseudonym.key"
    )]
    RekeyPseudonyms(StoreRekeyArgs),
}

/// `posbon store rekey-pseudonyms`.
#[derive(Debug, Args)]
pub(crate) struct StoreRekeyArgs {
    /// The store: embedded:PATH or tikv:PD_ENDPOINT[,PD_ENDPOINT...].
    #[arg(long)]
    pub(crate) store: String,
    /// Ingest's pseudonym key file (newest key first).
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: PathBuf,
    /// Count what would be rewritten, write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `posbon store prune`.
#[derive(Debug, Args)]
pub(crate) struct StorePruneArgs {
    /// The store: embedded:PATH or tikv:PD_ENDPOINT[,PD_ENDPOINT...].
    #[arg(long)]
    pub(crate) store: String,
    /// A configuration file whose [retention] section gives the days (other sections are ignored).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Look at every event, not only those since the last run.
    #[arg(long)]
    pub(crate) full: bool,
}

/// `posbon store copy`.
#[derive(Debug, Args)]
pub(crate) struct StoreCopyArgs {
    /// Source store.
    #[arg(long)]
    pub(crate) from: String,
    /// Target store.
    #[arg(long)]
    pub(crate) to: String,
}

/// Arguments of `standalone` and `demo`.
#[derive(Debug, Args)]
pub(crate) struct StandaloneArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Address of every HTTP endpoint [default: 127.0.0.1:8080].
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// Data directory (the embedded store lives in DIR/store) [default: data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Use this NATS server (comma-separated URLs) instead of the in-memory bus.
    #[arg(long, value_name = "URLS")]
    pub(crate) nats: Option<String>,
    /// Connect to NATS as this user: a .creds file or an nkey seed file (posbon nats-config writes them).
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_creds: Option<PathBuf>,
    /// Replicas of each stream (1..=5) [default: 3 on a NATS cluster of three or more servers, else 1].
    #[arg(long, value_name = "N", requires = "nats")]
    pub(crate) nats_replicas: Option<usize>,
    /// Use this TiKV cluster (comma-separated PD endpoints) instead of the embedded store.
    #[arg(long, value_name = "PD_ENDPOINTS")]
    pub(crate) tikv: Option<String>,
    /// Mahalla registry GeoJSON [default: the simulated Tashkent registry].
    #[arg(long, value_name = "FILE")]
    pub(crate) registry: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); re-read when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Also serve SQL over the PostgreSQL protocol on this address (psql, Grafana, DBeaver; log in with an API token as the password, or a user's name and password; TLS with --tls-cert).
    #[arg(long, value_name = "ADDR")]
    pub(crate) pg_listen: Option<String>,
}

/// `posbon nats-config`.
#[derive(Debug, Args)]
pub(crate) struct NatsConfigArgs {
    /// Directory to write nats.conf and the credentials files into (nats.conf must not exist yet).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Address the server listens on for clients.
    #[arg(long, default_value = "0.0.0.0:4222", value_name = "ADDR")]
    pub(crate) listen: String,
    /// Directory with server.pem and server-key.pem (TLS), and optionally ca.pem (then clients must present a certificate it signed).
    #[arg(long, value_name = "DIR")]
    pub(crate) tls_dir: Option<PathBuf>,
    /// JetStream's storage directory on the server.
    #[arg(long, default_value = "/var/lib/nats/jetstream", value_name = "DIR")]
    pub(crate) store_dir: String,
    /// Escalator shards (escalator.shard_count): each has its own durable consumer.
    #[arg(long, default_value_t = 1)]
    pub(crate) escalator_shards: u32,
    /// Flush every JetStream write to disk before it is acknowledged (sync_interval: always), so that acknowledged events survive a power loss; costs one fsync per write.
    #[arg(long)]
    pub(crate) sync_always: bool,
}

/// `posbon nats-streams`.
#[derive(Debug, Args)]
pub(crate) struct NatsStreamsArgs {
    /// NATS URLs (comma-separated).
    #[arg(long, value_name = "URLS")]
    pub(crate) nats: String,
    /// The admin user's .creds or nkey seed file.
    #[arg(long, value_name = "FILE")]
    pub(crate) nats_creds: Option<PathBuf>,
    /// Replicas of each stream (1..=5); existing streams are updated to it [default: 3 on a NATS cluster of three or more servers, else 1].
    #[arg(long, value_name = "N")]
    pub(crate) replicas: Option<usize>,
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
    /// Score the risk model on a simulated stream against its ground truth (recall of injected hotspots and waves, false escalations).
    #[command(
        after_help = "An injected hotspot or fraud wave counts as found when its mahalla escalates within two hours of\nevent time of its start; a false escalation is one in a mahalla-day with nothing injected.\nExamples:\n  posbon simulate evaluate --seed 7\n  posbon simulate evaluate --seed 42 --days 14 --registry uzbekistan.geojson"
    )]
    Evaluate(EvaluateArgs),
}

/// `posbon simulate evaluate`.
#[derive(Debug, Args)]
pub(crate) struct EvaluateArgs {
    /// Seed of the simulated stream.
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
    /// Mean events per hour over the registry.
    #[arg(long, default_value_t = 2000.0)]
    pub(crate) rate: f64,
    /// Days that build the baselines (not scored).
    #[arg(long, default_value_t = 4)]
    pub(crate) warmup_days: u32,
    /// Days scored after the warm-up.
    #[arg(long, default_value_t = 7)]
    pub(crate) days: u32,
    /// Registry GeoJSON (default: the simulated Tashkent registry).
    #[arg(long)]
    pub(crate) registry: Option<PathBuf>,
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
    /// Ground-truth JSON (injected hotspots and fraud waves, planted situations, bad lines); default <out>.truth.json, none when writing to stdout.
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
    /// Fraction of lines (0..0.5) that are malformed on purpose, each with a defect the validator must reject.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) bad_fraction: f64,
    /// Plant this many difficult mahallas: their place-based offences rise four-fold (by at least 6 a day) for the last --difficult-days of the stream (written to the ground truth).
    #[arg(long, default_value_t = 0)]
    pub(crate) difficult: usize,
    /// Days at the end of the stream the difficult mahallas are difficult.
    #[arg(long, default_value_t = 7)]
    pub(crate) difficult_days: i64,
    /// Plant this many quiet mahallas: no offence in them over the whole stream (long crime-free streaks).
    #[arg(long, default_value_t = 0)]
    pub(crate) quiet_mahallas: usize,
    /// Plant this many districts whose offences repeat near each other more often (0.6 follow-ups within 60 m per offence instead of 0.25 within 200 m).
    #[arg(long, default_value_t = 0)]
    pub(crate) repeat_districts: usize,
    /// Allow events later than the current time (the validator rejects them).
    #[arg(long)]
    pub(crate) allow_future: bool,
}

/// Where the running system is, how to trust it, and the token to use.
#[derive(Debug, Args)]
pub(crate) struct ApiTarget {
    /// Address of the running system (posbon standalone or posbon-api): http://HOST:PORT or https://HOST:PORT.
    #[arg(long, default_value = API, env = "POSBON_API")]
    pub(crate) api: String,
    /// API token (`posbon tokens create` makes one; the first start writes an admin token to <data>/admin.token).
    #[arg(long, env = "POSBON_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// PEM file of a certificate authority to trust for https, besides the system's (a cluster's own CA).
    #[arg(long, env = "POSBON_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// `posbon tokens`.
#[derive(Debug, Args)]
pub(crate) struct TokensArgs {
    #[command(subcommand)]
    pub(crate) what: TokensCommand,
}

/// What to do with tokens.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Make a token; it is printed once and never again.
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// producer, analyst, operator, supervisor or admin.
        #[arg(long)]
        role: String,
        /// region:<id>, district:<id> or mahalla:<id>; repeat for more (none: the whole country).
        #[arg(long)]
        scope: Vec<String>,
        /// Days until it stops working (none: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// List tokens (without secrets).
    List {
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The token's id.
        id: String,
        #[command(flatten)]
        api: ApiTarget,
    },
}

/// `posbon silences`.
#[derive(Debug, Args)]
pub(crate) struct SilencesArgs {
    #[command(subcommand)]
    pub(crate) what: SilencesCommand,
}

/// What to do with silences.
#[derive(Debug, Subcommand)]
pub(crate) enum SilencesCommand {
    /// Hold back pages of the escalations that match, for a while.
    Add {
        /// Region ids; repeat for more.
        #[arg(long)]
        region: Vec<String>,
        /// District ids; repeat for more.
        #[arg(long)]
        district: Vec<String>,
        /// Mahalla ids; repeat for more.
        #[arg(long)]
        mahalla: Vec<String>,
        /// Rule names; repeat for more.
        #[arg(long)]
        rule: Vec<String>,
        /// Levels (elevated, high, critical); repeat for more.
        #[arg(long)]
        level: Vec<String>,
        /// When it starts (RFC 3339); absent: now.
        #[arg(long)]
        starts_at: Option<String>,
        /// How long it lasts from its start: 90m, 2h, 1d12h (at most 90 days).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why (kept in the record and the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// List silences in force (and ended ones with --all).
    List {
        /// Ended silences too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// End a silence now.
    Expire {
        /// The silence's id.
        id: String,
        #[command(flatten)]
        api: ApiTarget,
    },
}

/// `posbon users`.
#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    pub(crate) what: UsersCommand,
}

/// What to do with users.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user of the page.
    Add {
        /// Login name.
        name: String,
        /// analyst, operator, supervisor or admin.
        #[arg(long)]
        role: String,
        /// region:<id>, district:<id> or mahalla:<id>; repeat for more (none: the whole country).
        #[arg(long)]
        scope: Vec<String>,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// List users.
    List {
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Remove a user (their sessions end with them).
    Remove {
        /// Login name.
        name: String,
        #[command(flatten)]
        api: ApiTarget,
    },
}

/// `posbon audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    pub(crate) what: AuditCommand,
}

/// What to do with the audit log.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute the hash chain: exit 0 when whole, 4 when a record was changed or removed.
    Verify {
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Print audit records as JSON lines.
    List {
        /// Records after this sequence.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        api: ApiTarget,
    },
}
