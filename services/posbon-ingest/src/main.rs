//! `posbon-ingest [--config FILE]`: the ingest service on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc malloc was the top of the pipeline's profile (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Validates, enriches and publishes events from NATS (posbon.ingest.<kind>) and HTTP (POST /v1/events).
#[derive(Debug, Parser)]
#[command(name = "posbon-ingest", version)]
struct Args {
    /// TOML configuration file; POSBON__INGEST__<KEY> environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match posbon_ingest::serve::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match posbon_telemetry::init("posbon-ingest", &config.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot set up telemetry: {e}");
            return ExitCode::from(1);
        }
    };
    match posbon_ingest::serve::serve(config, posbon_service::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ingest stopped");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
