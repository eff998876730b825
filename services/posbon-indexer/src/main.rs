//! `posbon-indexer [--config FILE]`: the indexer service on its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc malloc was the top of the pipeline's profile (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stores every event of the EVENTS stream by H3 cell, acknowledging only after durable writes.
#[derive(Debug, Parser)]
#[command(name = "posbon-indexer", version)]
struct Args {
    /// TOML configuration file; POSBON__INDEXER__<KEY> and POSBON__STORE__<KEY> override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match posbon_indexer::serve::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match posbon_telemetry::init("posbon-indexer", &config.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot set up telemetry: {e}");
            return ExitCode::from(1);
        }
    };
    match posbon_indexer::serve::serve(config, posbon_service::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "indexer stopped");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
