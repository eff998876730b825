//! `posbon-ingest [--config FILE]`: the ingest service on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc malloc was the top of the pipeline's profile (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str = "Validates, enriches and publishes events from NATS (posbon.ingest.<kind>) and HTTP (POST /v1/events).";

#[derive(Debug, Parser)]
#[command(name = "posbon-ingest", version, about = ABOUT)]
struct Args {
    /// TOML configuration file; POSBON__<SECTION>__<KEY> environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    posbon_service::service_main(
        "posbon-ingest",
        posbon_ingest::serve::load_config(args.config.as_deref()),
        |c| &c.telemetry,
        posbon_ingest::serve::serve,
    )
}
