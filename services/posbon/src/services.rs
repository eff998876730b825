//! `posbon ingest` and `posbon indexer`: the services, run from the CLI with
//! their own configuration and telemetry.

use crate::cli::ServiceArgs;

/// Runs the ingest service until Ctrl-C or SIGTERM.
pub(crate) fn ingest(args: ServiceArgs) -> anyhow::Result<()> {
    let config = posbon_ingest::serve::load_config(args.config.as_deref())?;
    posbon_service::run_service(
        "posbon-ingest",
        config,
        |c| &c.telemetry,
        posbon_ingest::serve::serve,
    )
}

/// Runs the indexer service until Ctrl-C or SIGTERM.
pub(crate) fn indexer(args: ServiceArgs) -> anyhow::Result<()> {
    let config = posbon_indexer::serve::load_config(args.config.as_deref())?;
    posbon_service::run_service(
        "posbon-indexer",
        config,
        |c| &c.telemetry,
        posbon_indexer::serve::serve,
    )
}
