//! A blocking face for tests on the one HTTP client of the project
//! (`posbon_service::client`, reqwest): synchronous tests (the browser test
//! and its chromedriver) call it from any thread, inside a tokio runtime or
//! not.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use posbon_service::client::{self, Endpoint};

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "response ({}) is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// The runtime the requests run on: one worker, for the whole test process,
/// so that pooled connections outlive any caller's runtime.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-http")
            .enable_all()
            .build()
            .expect("the test HTTP runtime")
    })
}

/// The client for `addr`, made once.
fn endpoint(addr: &str) -> Result<Endpoint, String> {
    static ENDPOINTS: OnceLock<Mutex<HashMap<String, Endpoint>>> = OnceLock::new();
    let mut endpoints = ENDPOINTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = endpoints.get(addr) {
        return Ok(e.clone());
    }
    let e = Endpoint::parse(addr).map_err(|e| e.to_string())?;
    endpoints.insert(addr.to_owned(), e.clone());
    Ok(e)
}

/// Sends one request to `addr` (`host:port` or `http://host:port`) and
/// reads the whole answer within `timeout`.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let to = endpoint(addr)?;
    let (m, p, b) = (method.to_owned(), path.to_owned(), body.to_vec());
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let _ = tx.send(client::send(to, &m, &p, &h, &b, timeout).await);
    });
    let answer = rx
        .recv()
        .map_err(|_| format!("{method} {path}: the request task died"))?;
    let r = answer.map_err(|e| format!("{method} {path}: {e}"))?;
    Ok(Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    })
}

/// `GET path` with a 30 s timeout.
pub fn get(addr: &str, path: &str) -> Result<Response, String> {
    request(addr, "GET", path, &[], &[], Duration::from_secs(30))
}

/// `POST path` with a JSON body and a 30 s timeout.
pub fn post_json(addr: &str, path: &str, body: &serde_json::Value) -> Result<Response, String> {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
        Duration::from_secs(30),
    )
}

/// A free TCP port on 127.0.0.1 (bound and released: another process may
/// take it first, so callers retry on a bind failure).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
