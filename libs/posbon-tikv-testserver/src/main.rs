//! `tikv-testserver --listen ADDR [--split KEY ...]`: the PD + TiKV test
//! server as its own process, so Posbon can be started against it by hand
//! (`posbon standalone --tikv ADDR`). Prints the PD endpoint it serves on
//! the first line of stdout, then serves until killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use posbon_tikv_testserver::{
    DEFAULT_SPLIT_KEYS, TestServer, TestServerOptions, TestServerTls, parse_key,
};

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
    /// Serve over TLS with this PEM certificate (with --tls-key and --tls-client-ca).
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_client_ca"])]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The PEM CA whose client certificates are accepted (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let split_keys = if args.split.is_empty() {
        DEFAULT_SPLIT_KEYS.iter().map(|k| k.to_vec()).collect()
    } else {
        args.split
    };
    let tls = match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
        (Some(cert), Some(key), Some(ca)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            match (read(cert), read(key), read(ca)) {
                (Ok(cert_pem), Ok(key_pem), Ok(client_ca_pem)) => Some(TestServerTls {
                    cert_pem,
                    key_pem,
                    client_ca_pem,
                }),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    eprintln!("tikv-testserver: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let server = match TestServer::start(TestServerOptions {
        listen: args.listen,
        split_keys,
        tls,
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
