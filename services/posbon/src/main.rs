//! The posbon command line: `posbon <command> [options]`.
//!
//! Exit codes: 0 success, 1 runtime error, 2 usage error. Errors are printed
//! on one line to stderr.

mod cli;
mod identity;
mod nats;
mod ops;
mod progress;
mod services;
mod simulate;
mod table;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc malloc was the top of the pipeline's profile (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit code 0; usage errors to
            // stderr with exit code 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Simulate(args) => with_cli_telemetry(cli.quiet, || simulate::run(args, cli.quiet)),
        Command::Sql(args) => ops::sql(args),
        Command::Report(args) => match args.what {
            cli::ReportCommand::Daily(a) => ops::report_daily(a),
        },
        Command::Tail(args) => match args.what {
            cli::TailCommand::Alerts(a) => ops::tail_alerts(a),
        },
        Command::Replay(args) => match ops::replay(args, cli.quiet) {
            Ok(0) => Ok(()),
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Mahallas(args) => match args.what {
            cli::MahallasCommand::Load(a) => ops::mahallas_load(a),
            cli::MahallasCommand::Adopt(a) => ops::mahallas_adopt(a),
        },
        Command::Store(args) => match args.what {
            cli::StoreCommand::Copy(a) => ops::store_copy(a, cli.quiet),
            cli::StoreCommand::Prune(a) => ops::store_prune(a),
            cli::StoreCommand::RekeyPseudonyms(a) => ops::store_rekey(a),
        },
        Command::Tokens(args) => identity::tokens(args.what),
        Command::Users(args) => identity::users(args.what),
        Command::Silences(args) => identity::silences(args.what),
        Command::Audit(args) => match identity::audit(args.what) {
            Ok(0) => Ok(()),
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Demo(args) => services::standalone(args, true),
        Command::Standalone(args) => services::standalone(args, false),
        Command::Ingest(args) => services::ingest(args),
        Command::Indexer(args) => services::indexer(args),
        Command::NatsConfig(args) => nats::nats_config(args, cli.quiet),
        Command::NatsStreams(args) => {
            with_cli_telemetry(cli.quiet, || nats::nats_streams(args, cli.quiet))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                ops::say("cli.error", &[("message", &format!("{e:#}"))])
            );
            ExitCode::from(1)
        }
    }
}

/// Runs `f` with the telemetry of a command-line tool: warnings and errors
/// only; the tool's own progress lines are user output on stderr.
fn with_cli_telemetry(quiet: bool, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let telemetry = posbon_telemetry::TelemetryConfig {
        log_level: if quiet { "error" } else { "warn" }.to_owned(),
        ..posbon_telemetry::TelemetryConfig::default()
    };
    let _guard = posbon_telemetry::init("posbon", &telemetry)
        .map_err(|e| anyhow::anyhow!("cannot set up telemetry: {e}"))?;
    f()
}

/// A closed stdout (e.g. `posbon simulate events | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<posbon_sim::SimError>()
                .is_some_and(|s| matches!(s, posbon_sim::SimError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}
