//! `posbon ingest` and `posbon indexer`: the services, run from the CLI with
//! their own configuration and telemetry.

use anyhow::Context;

use crate::cli::ServiceArgs;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs the ingest service until Ctrl-C or SIGTERM.
pub(crate) fn ingest(args: ServiceArgs) -> anyhow::Result<()> {
    let config = posbon_ingest::serve::load_config(args.config.as_deref())?;
    runtime()?.block_on(async {
        let _telemetry = posbon_telemetry::init("posbon-ingest", &config.telemetry)
            .map_err(|e| anyhow::anyhow!("cannot set up telemetry: {e}"))?;
        posbon_ingest::serve::serve(config, posbon_service::shutdown_signal()).await
    })
}

/// Runs the indexer service until Ctrl-C or SIGTERM.
pub(crate) fn indexer(args: ServiceArgs) -> anyhow::Result<()> {
    let config = posbon_indexer::serve::load_config(args.config.as_deref())?;
    runtime()?.block_on(async {
        let _telemetry = posbon_telemetry::init("posbon-indexer", &config.telemetry)
            .map_err(|e| anyhow::anyhow!("cannot set up telemetry: {e}"))?;
        posbon_indexer::serve::serve(config, posbon_service::shutdown_signal()).await
    })
}
