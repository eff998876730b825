//! `posbon-reporter [--config FILE]`: the daily report service on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc, like every Posbon binary (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str = "Makes the daily situation report after each local midnight (Asia/Tashkent), \
stores it, publishes it on posbon.reports.daily and serves GET /v1/reports/daily.";

#[derive(Debug, Parser)]
#[command(name = "posbon-reporter", version, about = ABOUT)]
struct Args {
    /// TOML configuration file; POSBON__<SECTION>__<KEY> environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    posbon_service::service_main(
        "posbon-reporter",
        posbon_reporter::serve::load_config(args.config.as_deref()),
        |c| &c.telemetry,
        posbon_reporter::serve::serve,
    )
}
