//! A minimal HTTP/1.1 client for the CLI and the end-to-end tests: one request
//! per connection (`Connection: close`), plain HTTP to a Posbon address, no
//! HTTP library. [`Endpoint`] parses `http://host:port`; [`lines`] follows a
//! streaming response (the live feed) line by line.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An HTTP response: status, lower-case headers, body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
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

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&body[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
}

/// Where a Posbon HTTP server listens (`host:port`), and the API token
/// every request carries (`Authorization: Bearer`).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    /// The API token, if any.
    pub token: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

impl Endpoint {
    /// `127.0.0.1:port`.
    pub fn local(port: u16) -> Self {
        Self {
            address: format!("127.0.0.1:{port}"),
            token: None,
        }
    }

    /// The same server, with `token` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Parses `http://host:port`, `http://host:port/` or `host:port`; HTTPS is
    /// refused (put a TLS-terminating proxy's plain side here).
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(format!(
                "{url}: https is not supported by this client; use the plain http address"
            ));
        }
        let rest = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || !rest.contains(':') {
            return Err(format!("{url}: expected http://HOST:PORT"));
        }
        Ok(Self {
            address: rest.to_owned(),
            token: None,
        })
    }
}

impl From<u16> for Endpoint {
    fn from(port: u16) -> Self {
        Self::local(port)
    }
}

async fn send(
    to: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<tokio::net::TcpStream> {
    let mut stream = tokio::net::TcpStream::connect(to.address.as_str()).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        to.address,
        body.len()
    );
    if let Some(token) = &to.token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    Ok(stream)
}

/// Sends one request and reads the whole response (at most 60 s).
pub async fn request(
    to: impl Into<Endpoint>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Response> {
    let to = to.into();
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    let mut stream = send(&to, method, path, &headers, body).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "response timed out"))??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `GET path`.
pub async fn get(to: impl Into<Endpoint>, path: &str) -> std::io::Result<Response> {
    request(to, "GET", path, None, b"").await
}

/// `POST path` with a JSON body.
pub async fn post_json(
    to: impl Into<Endpoint>,
    path: &str,
    body: &serde_json::Value,
) -> std::io::Result<Response> {
    request(
        to,
        "POST",
        path,
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await
}

/// `GET path` with `headers`, returning the status and the lines of the
/// body as they arrive (for Server-Sent Events). Chunk-size lines of a chunked
/// body are passed through as they are; SSE readers ignore lines they do not
/// know.
pub async fn lines(
    to: &Endpoint,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(
    u16,
    tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
)> {
    use tokio::io::AsyncBufReadExt as _;
    let stream = send(to, "GET", path, headers, b"").await?;
    let mut reader = tokio::io::BufReader::new(stream).lines();
    let status_line = reader
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status"))?;
    while let Some(line) = reader.next_line().await? {
        if line.is_empty() {
            break;
        }
    }
    Ok((status, reader))
}
