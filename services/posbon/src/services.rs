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

/// Runs everything in one process until Ctrl-C or SIGTERM; `demo` adds the
/// simulated stream.
pub(crate) fn standalone(args: crate::cli::StandaloneArgs, demo: bool) -> anyhow::Result<()> {
    let overrides = posbon_standalone::Overrides {
        listen: args.listen,
        data: args.data,
        nats: args.nats,
        tikv: args.tikv,
        registry: args.registry,
        nats_creds: args.nats_creds,
        nats_replicas: args.nats_replicas,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        pg_listen: args.pg_listen,
    };
    let config = posbon_standalone::load_config(args.config.as_deref(), &overrides)?;
    posbon_service::run_service(
        if demo {
            "posbon-demo"
        } else {
            "posbon-standalone"
        },
        config,
        |c| &c.telemetry,
        move |config, shutdown| posbon_standalone::run(config, demo, shutdown),
    )
}
