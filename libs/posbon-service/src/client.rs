//! The HTTP client of the CLI and the end-to-end tests, on reqwest with
//! rustls: `http://` and `https://` Posbon addresses, the API token on every
//! request, an extra certificate authority for a cluster's own CA
//! ([`Endpoint::with_ca_file`], `POSBON_CA_FILE`), and [`EventSource`], a
//! Server-Sent Events reader that resumes with `Last-Event-ID` when the feed
//! drops.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address or a setting is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No answer: connection refused, TLS refused, timed out, cut.
    #[error("{0}")]
    Transport(String),
    /// The server answered with an error status (for [`EventSource`]).
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The body, as text.
        body: String,
    },
}

/// An HTTP response: status, lower-case headers, body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A Posbon HTTP server (`http://host:port` or `https://host:port`), the API
/// token every request carries (`Authorization: Bearer`), and the client
/// that reaches it.
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

fn build_client(extra_ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    posbon_auth::tls::http_client(extra_ca).map_err(ClientError::Invalid)
}

impl Endpoint {
    /// `http://127.0.0.1:port`.
    pub fn local(port: u16) -> Self {
        Self::parse(&format!("http://127.0.0.1:{port}")).expect("a local address parses")
    }

    /// Parses `http://host:port`, `https://host:port` (a trailing `/` is
    /// ignored) or `host:port` (plain HTTP). The CA file named by
    /// `POSBON_CA_FILE`, when set, is trusted besides the system's roots.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let ca = std::env::var_os("POSBON_CA_FILE").filter(|v| !v.is_empty());
        Self::parse_with_ca(url, ca.as_deref().map(Path::new))
    }

    /// [`Endpoint::parse`], trusting the certificates of the PEM file `ca`
    /// besides the system's roots (a cluster's own certificate authority).
    pub fn parse_with_ca(url: &str, ca: Option<&Path>) -> Result<Self, ClientError> {
        let (scheme, rest) = match url.split_once("://") {
            Some(("http", rest)) => ("http", rest),
            Some(("https", rest)) => ("https", rest),
            Some((other, _)) => {
                return Err(ClientError::Invalid(format!(
                    "{url}: the scheme must be http or https, not {other}"
                )));
            }
            None => ("http", url),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || !rest.contains(':') {
            return Err(ClientError::Invalid(format!(
                "{url}: expected http://HOST:PORT or https://HOST:PORT"
            )));
        }
        let base = format!("{scheme}://{rest}");
        reqwest::Url::parse(&base).map_err(|e| ClientError::Invalid(format!("{url}: {e}")))?;
        Ok(Self {
            base,
            token: None,
            client: build_client(ca)?,
        })
    }

    /// The same server, with `token` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// `scheme://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn builder(&self, method: &str, path: &str) -> Result<reqwest::RequestBuilder, ClientError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Invalid(format!("{method} is not an HTTP method")))?;
        let mut builder = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        Ok(builder)
    }
}

impl From<u16> for Endpoint {
    fn from(port: u16) -> Self {
        Self::local(port)
    }
}

/// The error and the errors beneath it on one line.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(chain(&e))
}

impl From<ClientError> for std::io::Error {
    fn from(e: ClientError) -> Self {
        let kind = match e {
            ClientError::Invalid(_) => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

/// Sends one request and reads the whole response (at most 60 s).
pub async fn request(
    to: impl Into<Endpoint>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ClientError> {
    let headers: &[(&str, &str)] = match content_type {
        Some(ct) => &[("content-type", ct)],
        None => &[],
    };
    send(to, method, path, headers, body, Duration::from_secs(60)).await
}

/// Sends one request with extra `headers` and reads the whole response
/// within `timeout`.
pub async fn send(
    to: impl Into<Endpoint>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, ClientError> {
    let to = to.into();
    let mut builder = to
        .builder(method, path)?
        .timeout(timeout)
        .body(body.to_vec());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.bytes().await.map_err(transport)?.to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `GET path`.
pub async fn get(to: impl Into<Endpoint>, path: &str) -> Result<Response, ClientError> {
    request(to, "GET", path, None, b"").await
}

/// `POST path` with a JSON body.
pub async fn post_json(
    to: impl Into<Endpoint>,
    path: &str,
    body: &serde_json::Value,
) -> Result<Response, ClientError> {
    request(
        to,
        "POST",
        path,
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `id:` (the last one seen in the stream when this event had none).
    pub id: Option<String>,
    /// `event:`; `message` when not given.
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// The event-stream parser of the HTML standard: lines end in LF, CRLF or
/// CR, however the bytes are split into chunks; `data` lines accumulate;
/// a blank line dispatches; comments and unknown fields are ignored.
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    after_cr: bool,
    data: Option<String>,
    event: String,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl EventParser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        out.push(event);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The last `id:` seen (what `Last-Event-ID` resumes from).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The server's last `retry:` advice.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Forgets a half-received line and event (after a dropped connection).
    pub fn reset_partial(&mut self) {
        self.line.clear();
        self.after_cr = false;
        self.data = None;
        self.event.clear();
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take()?;
            let event = std::mem::take(&mut self.event);
            return Some(Event {
                id: self.last_id.clone(),
                event: if event.is_empty() {
                    "message".to_owned()
                } else {
                    event
                },
                data,
            });
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        None
    }
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// A live event stream that reconnects by itself: when the connection drops
/// it waits (1 s, doubling to 30 s, or the server's `retry:`), asks again with
/// `Last-Event-ID`, and goes on from the next event. A refusal (4xx) ends it.
pub struct EventSource {
    to: Endpoint,
    path: String,
    parser: EventParser,
    body: Option<Body>,
    ready: std::collections::VecDeque<Event>,
    reconnects: u64,
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("to", &self.to)
            .field("path", &self.path)
            .field("last_id", &self.parser.last_id())
            .field("reconnects", &self.reconnects)
            .finish()
    }
}

impl EventSource {
    /// Opens `path` on `to`; an error status or no connection is an error
    /// here (the first connection is not retried).
    pub async fn open(to: Endpoint, path: &str) -> Result<Self, ClientError> {
        let mut source = Self {
            to,
            path: path.to_owned(),
            parser: EventParser::default(),
            body: None,
            ready: Default::default(),
            reconnects: 0,
        };
        source.connect().await?;
        Ok(source)
    }

    /// How many times the stream was reopened.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let mut builder = self
            .to
            .builder("GET", &self.path)?
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = self.parser.last_id() {
            builder = builder.header("Last-Event-ID", id);
        }
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Status { status, body });
        }
        self.body = Some(Box::pin(response.bytes_stream()));
        Ok(())
    }

    /// The next event, reconnecting as often as it takes.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        let mut wait = Duration::from_secs(1);
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let chunk = match self.body.as_mut() {
                Some(body) => body.next().await,
                None => None,
            };
            match chunk {
                Some(Ok(bytes)) => {
                    wait = Duration::from_secs(1);
                    self.ready.extend(self.parser.feed(&bytes));
                }
                dropped => {
                    if let Some(Err(e)) = dropped {
                        tracing::warn!(error = %chain(&e), "the event stream dropped; reconnecting");
                    } else if self.body.is_some() {
                        tracing::warn!("the server closed the event stream; reconnecting");
                    }
                    self.body = None;
                    self.parser.reset_partial();
                    tokio::time::sleep(self.parser.retry().unwrap_or(wait)).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                    self.reconnects += 1;
                    match self.connect().await {
                        Ok(()) => {}
                        Err(e @ ClientError::Status { status, .. })
                            if (400..500).contains(&status) =>
                        {
                            return Err(e);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot reopen the event stream"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_parse_the_same() {
        let text = "retry: 5000\r\n: comment\nid: 7\nevent: update\ndata: {\"a\":\ndata: 1}\n\nid: 8\rdata: two\r\n\r\ndata\n\n";
        let whole = EventParser::default().feed(text.as_bytes());
        assert_eq!(
            whole,
            vec![
                Event {
                    id: Some("7".into()),
                    event: "update".into(),
                    data: "{\"a\":\n1}".into()
                },
                Event {
                    id: Some("8".into()),
                    event: "message".into(),
                    data: "two".into()
                },
                Event {
                    id: Some("8".into()),
                    event: "message".into(),
                    data: String::new()
                },
            ]
        );
        for split in 0..text.len() {
            let mut parser = EventParser::default();
            let mut got = parser.feed(&text.as_bytes()[..split]);
            got.extend(parser.feed(&text.as_bytes()[split..]));
            assert_eq!(got, whole, "split at {split}");
            assert_eq!(parser.retry(), Some(Duration::from_secs(5)));
        }
        for size in 1..4 {
            let mut parser = EventParser::default();
            let got: Vec<Event> = text
                .as_bytes()
                .chunks(size)
                .flat_map(|c| parser.feed(c))
                .collect();
            assert_eq!(got, whole, "chunks of {size}");
        }
    }

    #[test]
    fn addresses_parse_or_say_why_not() {
        assert_eq!(
            Endpoint::parse("https://a.example:8443/").unwrap().base(),
            "https://a.example:8443"
        );
        assert_eq!(
            Endpoint::parse("127.0.0.1:8080").unwrap().base(),
            "http://127.0.0.1:8080"
        );
        let e = Endpoint::parse("ftp://a:1").unwrap_err().to_string();
        assert!(e.contains("http or https"), "{e}");
        let e = Endpoint::parse("http://a:1/v1").unwrap_err().to_string();
        assert!(e.contains("expected"), "{e}");
        let e = Endpoint::parse_with_ca("https://a:1", Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
