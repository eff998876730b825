//! `tikv-testserver --listen ADDR [--split KEY ...]`: the PD + TiKV test
//! server as its own process, so Posbon can be started against it by hand
//! (`posbon standalone --tikv ADDR`). Prints the PD endpoint it serves on
//! the first line of stdout, then serves until killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use posbon_tikv_testserver::{DEFAULT_SPLIT_KEYS, TestServer, TestServerOptions, parse_key};

/// A PD + TiKV gRPC test server for tikv-client's raw API, over an in-memory
/// ordered map. Data lives as long as the process.
#[derive(Debug, Parser)]
#[command(name = "tikv-testserver", version)]
struct Args {
    /// Address to listen on (PD and TiKV share it); port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:2379")]
    listen: SocketAddr,
    /// A key at which to split the key space into regions; repeat for more.
    /// `\xNN` stands for a byte. Default: e, i and t (four regions).
    #[arg(long = "split", value_name = "KEY", value_parser = parse_key)]
    split: Vec<Vec<u8>>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let split_keys = if args.split.is_empty() {
        DEFAULT_SPLIT_KEYS.iter().map(|k| k.to_vec()).collect()
    } else {
        args.split
    };
    let server = match TestServer::start(TestServerOptions {
        listen: args.listen,
        split_keys,
    })
    .await
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("tikv-testserver: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.pd_endpoint());
    eprintln!(
        "tikv-testserver: PD and TiKV on {} with {} regions; stop with ctrl-c",
        server.pd_endpoint(),
        server.regions().len()
    );
    tokio::select! {
        result = server.wait() => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tikv-testserver: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
