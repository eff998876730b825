//! `posbon-escalator [--config FILE]`: the escalator on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc, like every Posbon binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str = "Keeps the risk state of its mahallas from the EVENTS stream and publishes escalations to ALERTS.";

#[derive(Debug, Parser)]
#[command(name = "posbon-escalator", version, about = ABOUT)]
struct Args {
    /// TOML configuration file; POSBON__<SECTION>__<KEY> environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    posbon_service::service_main(
        "posbon-escalator",
        posbon_escalator::serve::load_config(args.config.as_deref()),
        |c| &c.telemetry,
        posbon_escalator::serve::serve,
    )
}
