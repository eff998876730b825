//! `posbon-indexer [--config FILE]`: the indexer service on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc malloc was the top of the pipeline's profile (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str =
    "Stores every event of the EVENTS stream by H3 cell, acknowledging only after durable writes.";

#[derive(Debug, Parser)]
#[command(name = "posbon-indexer", version, about = ABOUT)]
struct Args {
    /// TOML configuration file; POSBON__<SECTION>__<KEY> environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    posbon_service::service_main(
        "posbon-indexer",
        posbon_indexer::serve::load_config(args.config.as_deref()),
        |c| &c.telemetry,
        posbon_indexer::serve::serve,
    )
}
