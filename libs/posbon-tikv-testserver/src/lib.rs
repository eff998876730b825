//! A PD + TiKV gRPC test server for the raw API of tikv-client 0.4, over an
//! in-memory ordered map.
//!
//! TiKV and PD cannot be installed on the machines Posbon is built on, so
//! its TiKV backend is tested against this server. One plaintext HTTP/2
//! port hosts both services:
//!
//! * `pdpb.PD`: `GetMembers` (this server is the only member and the
//!   leader), `GetRegion`, `GetRegionByID`, `GetStore`, `GetAllStores`.
//!   `Tso` answers `Unimplemented`, which the raw API tolerates (it never asks
//!   for a timestamp).
//! * `tikvpb.Tikv`: `RawGet`, `RawBatchGet`, `RawPut`, `RawBatchPut`,
//!   `RawDelete`, `RawBatchDelete`, `RawDeleteRange`, `RawScan`,
//!   `RawBatchScan`, with TiKV's semantics (scans stop at the region's edge,
//!   batch gets return only the keys that exist, at most 10,240 rows per
//!   scan).
//!
//! The key space is cut into regions at configurable split keys (at least
//! three regions by default), all led by one store at this server's address.
//! Every TiKV request is checked as TiKV checks it: the region must exist,
//! the request's region epoch must be current, and its keys must lie in the
//! region; otherwise the answer carries the region error TiKV would send
//! (`region_not_found`, `epoch_not_match`, `key_not_in_region`), and the
//! client asks PD again and retries. Regions can be split while clients run
//! ([`TestServer::split`]) and epoch errors injected
//! ([`TestServer::inject_epoch_not_match`]) to exercise those retries.
//!
//! Connections get TCP_NODELAY, as TiKV's and PD's do, so a call costs
//! what the server's work costs, not a delayed ACK.
//!
//! The messages are hand-written prost structs with the field numbers of
//! kvproto, limited to what the raw API touches; the services are routed by
//! hand through `tonic::server::Grpc` (no build script, no protoc). What the
//! client asks for and why is in `TIKV-PROTOCOL-NOTES.md` of the project's
//! shared notes.
//!
//! The last region always has an empty end key, as in a real cluster, so the
//! `scan` defect of tikv-client 0.4 at the last region (it starts over from
//! the beginning of the key space) shows here as it does against TiKV; the
//! crate's tests reproduce it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), posbon_tikv_testserver::Error> {
//! use posbon_tikv_testserver::{TestServer, TestServerOptions};
//!
//! let server = TestServer::start(TestServerOptions::default()).await?;
//! let pd = server.pd_endpoint(); // "127.0.0.1:PORT", for RawClient::new(vec![pd])
//! # drop(pd);
//! # Ok(()) }
//! ```

mod cluster;
mod grpc;
mod proto;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::cluster::Cluster;
pub use crate::cluster::RegionInfo;

/// Split keys of [`TestServerOptions::default`]: four regions,
/// `["", "e")`, `["e", "i")`, `["i", "t")` and `["t", "")`, so checkpoints,
/// events by cell, the id index and events by time (Posbon's key prefixes)
/// each live in their own region, and the last region holds data.
pub const DEFAULT_SPLIT_KEYS: [&[u8]; 3] = [b"e", b"i", b"t"];

/// How to start a [`TestServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestServerOptions {
    /// Address to listen on; port 0 picks a free port. An unspecified IP
    /// (`0.0.0.0`) listens everywhere and advertises `127.0.0.1`.
    pub listen: SocketAddr,
    /// Keys at which the key space is split into regions (order and
    /// repetitions do not matter; the empty key is ignored). `n` distinct keys
    /// make `n + 1` regions.
    pub split_keys: Vec<Vec<u8>>,
    /// Serve PD and TiKV over TLS, as a cluster with `security` configured
    /// does; `None` serves plain gRPC.
    pub tls: Option<TestServerTls>,
}

/// TLS of a [`TestServer`] (PEM): its certificate and key, and the CA whose
/// client certificates it requires (mutual TLS, as TiKV's `security`
/// section does when `ca-path` is set).
#[derive(Clone, PartialEq, Eq)]
pub struct TestServerTls {
    /// The server's certificate chain.
    pub cert_pem: Vec<u8>,
    /// The server's private key.
    pub key_pem: Vec<u8>,
    /// The CA that signed the clients' certificates; a client without one is refused.
    pub client_ca_pem: Vec<u8>,
}

impl std::fmt::Debug for TestServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServerTls").finish_non_exhaustive()
    }
}

impl Default for TestServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            split_keys: DEFAULT_SPLIT_KEYS.iter().map(|k| k.to_vec()).collect(),
            tls: None,
        }
    }
}

/// Errors of [`TestServer::start`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate, key or CA was refused.
    #[error("tls: {0}")]
    Tls(String),
}

/// A running PD + TiKV test server. Stops when dropped (or with
/// [`TestServer::stop`]); must be started inside a tokio runtime.
pub struct TestServer {
    address: SocketAddr,
    cluster: Arc<Cluster>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Binds `options.listen` and serves PD and TiKV on it until stopped.
    pub async fn start(options: TestServerOptions) -> Result<TestServer, Error> {
        let bind = |source| Error::Bind {
            addr: options.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(bind)?;
        let mut address = listener.local_addr().map_err(bind)?;
        if address.ip().is_unspecified() {
            address.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let cluster = Arc::new(Cluster::new(address.to_string(), &options.split_keys));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            use tonic::transport::{Certificate, Identity, ServerTlsConfig};
            builder = builder
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                        .client_ca_root(Certificate::from_pem(&tls.client_ca_pem)),
                )
                .map_err(|e| Error::Tls(e.to_string()))?;
        }
        let server = builder
            .add_service(grpc::PdService(Arc::clone(&cluster)))
            .add_service(grpc::TikvService(Arc::clone(&cluster)));
        // TCP_NODELAY on every accepted connection, as TiKV and PD (gRPC)
        // set it. `serve_with_incoming*` ignores the builder's `tcp_nodelay`,
        // so it is set here; without it Nagle's algorithm held parts of
        // answers back until the client's delayed ACK, about 40 ms per call,
        // and a scan of a few thousand small calls took minutes.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(async move {
            server
                .serve_with_incoming_shutdown(incoming, async move {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(TestServer {
            address,
            cluster,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// [`TestServer::start`] on a free local port with the key space split
    /// into regions at `split_keys`: what most tests need.
    pub async fn with_splits(split_keys: Vec<Vec<u8>>) -> Result<TestServer, Error> {
        Self::start(TestServerOptions {
            split_keys,
            ..TestServerOptions::default()
        })
        .await
    }

    /// The PD endpoint to give the client: `host:port` (tikv-client adds
    /// `http://`). TiKV is served on the same address.
    pub fn pd_endpoint(&self) -> String {
        self.address.to_string()
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The current region layout, in key order.
    pub fn regions(&self) -> Vec<RegionInfo> {
        self.cluster.regions()
    }

    /// Splits the region that holds `key` at `key`, raising the epoch
    /// version of both halves, as a TiKV split does: clients holding the old
    /// region get `epoch_not_match` and ask PD again. False when `key` is
    /// empty or already starts a region.
    pub fn split(&self, key: &[u8]) -> bool {
        self.cluster.split(key)
    }

    /// The next `count` TiKV requests that carry a current epoch are answered
    /// with `epoch_not_match`, and the region's epoch version is raised each
    /// time, as if it had just changed. The client asks PD for the region
    /// again and resends.
    pub fn inject_epoch_not_match(&self, count: u32) {
        self.cluster.inject_epoch_not_match(count);
    }

    /// From now on, raw puts and deletes of a key starting with `prefix`
    /// (for a range delete: its start key) fail with a TiKV error (a write error the client does
    /// not retry), until [`TestServer::clear_write_failures`]. Other writes
    /// go through. For tests of partial batch failures.
    pub fn fail_writes_under(&self, prefix: &[u8]) {
        self.cluster.fail_writes_under(Some(prefix.to_vec()));
    }

    /// Ends [`TestServer::fail_writes_under`].
    pub fn clear_write_failures(&self) {
        self.cluster.fail_writes_under(None);
    }

    /// How many calls of a method (e.g. `RawScan`, `GetRegion`) were served.
    pub fn calls(&self, method: &str) -> u64 {
        self.cluster.calls(method)
    }

    /// How many TiKV requests were answered with a region error.
    pub fn region_errors(&self) -> u64 {
        self.cluster.region_errors()
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.cluster.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops serving and waits until the port is closed.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the server fails (it does not stop otherwise): for the
    /// `tikv-testserver` binary.
    pub async fn wait(mut self) -> Result<(), tonic::transport::Error> {
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Parses a key given on a command line: UTF-8 text in which `\xNN` stands
/// for the byte `0xNN` and `\\` for a backslash.
pub fn parse_key(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            b'\\' if bytes.get(i + 1) == Some(&b'x') => {
                let hex = text
                    .get(i + 2..i + 4)
                    .ok_or_else(|| format!("{text:?}: \\x needs two hex digits"))?;
                let byte = u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("{text:?}: \\x{hex} is not a hex byte"))?;
                out.push(byte);
                i += 4;
            }
            b'\\' => return Err(format!("{text:?}: only \\xNN and \\\\ are escapes")),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_escapes() {
        assert_eq!(parse_key("t").as_deref(), Ok(&b"t"[..]));
        assert_eq!(parse_key(r"e\x00\xff").as_deref(), Ok(&b"e\x00\xff"[..]));
        assert_eq!(parse_key(r"a\\b").as_deref(), Ok(&b"a\\b"[..]));
        assert!(parse_key(r"\x0").is_err());
        assert!(parse_key(r"\xzz").is_err());
        assert!(parse_key(r"\n").is_err());
    }
}
