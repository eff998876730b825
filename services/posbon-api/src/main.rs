//! `posbon-api [--config FILE]`: the API service on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc, like every Posbon binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str = "Serves the live escalation feed, the escalation lifecycle, the map data, SQL and reports over HTTP.";

#[derive(Debug, Parser)]
#[command(name = "posbon-api", version, about = ABOUT)]
struct Args {
    /// TOML configuration file; POSBON__<SECTION>__<KEY> environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    posbon_service::service_main(
        "posbon-api",
        posbon_api::serve::load_config(args.config.as_deref()),
        |c| &c.telemetry,
        posbon_api::serve::serve,
    )
}
