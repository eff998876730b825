//! The HTTP server: HTTPS with a real handshake (rustls on both sides), HSTS,
//! a renewed certificate served without a restart, and the limits that keep
//! a silent or slow client from holding the server.

use posbon_model::Span;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use posbon_service::client::{self, ClientError, Endpoint};
use posbon_service::http::{HttpConfig, serve};
use posbon_telemetry::Metrics;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/peer",
            get(
                |peer: axum::extract::ConnectInfo<std::net::SocketAddr>| async move {
                    peer.0.ip().to_string()
                },
            ),
        )
}

struct Server {
    port: u16,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(config: HttpConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { serve(listener, app(), &config, &Metrics::new(), stop).await }
        });
        Self { port, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .expect("joins")
            .expect("serves without error");
    }
}

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("posbon-http-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        Self { dir }
    }

    /// A self-signed certificate for localhost: written as the server's
    /// pair and returned as the CA file a client trusts.
    fn issue(&self, generation: u32) -> PathBuf {
        let issued = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("certificate");
        // Written beside, then renamed: a reload never sees half a file.
        let (cert, key) = (self.dir.join("cert.pem.new"), self.dir.join("key.pem.new"));
        std::fs::write(&cert, issued.cert.pem()).expect("cert");
        std::fs::write(&key, issued.signing_key.serialize_pem()).expect("key");
        std::fs::rename(&key, self.key()).expect("rename");
        std::fs::rename(&cert, self.cert()).expect("rename");
        let ca = self.dir.join(format!("ca-{generation}.pem"));
        std::fs::write(&ca, issued.cert.pem()).expect("ca");
        ca
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn config(&self) -> HttpConfig {
        HttpConfig {
            tls_cert: Some(self.cert()),
            tls_key: Some(self.key()),
            tls_reload: Span::ZERO,
            ..HttpConfig::default()
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn https(port: u16, ca: &Path) -> Endpoint {
    Endpoint::parse_with_ca(&format!("https://localhost:{port}"), Some(ca)).expect("endpoint")
}

#[tokio::test]
async fn https_serves_with_hsts_and_refuses_plain_http_and_unknown_issuers() {
    let pki = Pki::new("tls");
    let ca = pki.issue(1);
    let server = Server::start(pki.config()).await;

    let r = client::get(https(server.port, &ca), "/hello")
        .await
        .expect("https answers");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let hsts = r.header("strict-transport-security").expect("hsts");
    assert!(hsts.starts_with("max-age=31536000"), "{hsts}");

    // Plain HTTP to the HTTPS port gets no answer.
    let plain = client::get(Endpoint::local(server.port), "/hello").await;
    assert!(matches!(plain, Err(ClientError::Transport(_))), "{plain:?}");

    // A client that does not trust the certificate's issuer is refused by
    // its own side, with a message that says so.
    let untrusted = Endpoint::parse_with_ca(&format!("https://localhost:{}", server.port), None)
        .expect("endpoint");
    let e = client::get(untrusted, "/hello")
        .await
        .expect_err("unknown issuer");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // A renewed certificate is served on the next connection, no restart.
    let renewed = pki.issue(2);
    let r = client::get(https(server.port, &renewed), "/hello")
        .await
        .expect("the renewed certificate is served");
    assert_eq!(r.status, 200);
    let old = client::get(https(server.port, &ca), "/hello").await;
    assert!(old.is_err(), "the old issuer is no longer served: {old:?}");

    // A renewal that does not load leaves the last good pair in use.
    std::fs::write(pki.cert(), "not a certificate").expect("spoil");
    let r = client::get(https(server.port, &renewed), "/hello")
        .await
        .expect("the last good certificate stays in use");
    assert_eq!(r.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_has_no_hsts() {
    let server = Server::start(HttpConfig::default()).await;
    let r = client::get(Endpoint::local(server.port), "/hello")
        .await
        .expect("answers");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);
    server.stop().await;
}

/// Handlers see the client's address (what failed logins are counted by).
#[tokio::test]
async fn handlers_see_the_peers_address() {
    let server = Server::start(HttpConfig::default()).await;
    let r = client::get(Endpoint::local(server.port), "/peer")
        .await
        .expect("answers");
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), "127.0.0.1");
    server.stop().await;
}

#[tokio::test]
async fn half_a_tls_pair_or_a_bad_file_is_refused_by_name() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = HttpConfig {
        tls_cert: Some("/nonexistent/cert.pem".into()),
        ..HttpConfig::default()
    };
    let e = serve(
        listener,
        app(),
        &config,
        &Metrics::new(),
        CancellationToken::new(),
    )
    .await
    .expect_err("half a pair");
    assert!(e.to_string().contains("tls_key is not"), "{e}");

    let pki = Pki::new("bad");
    pki.issue(1);
    std::fs::write(
        pki.key(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("spoil");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let e = serve(
        listener,
        app(),
        &pki.config(),
        &Metrics::new(),
        CancellationToken::new(),
    )
    .await
    .expect_err("bad key");
    assert!(e.to_string().contains("key.pem"), "{e}");
}

/// Reads until the server closes the connection; what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    outcome
        .ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test]
async fn a_client_that_stops_sending_is_cut_off() {
    let server = Server::start(HttpConfig {
        header_timeout: Span::from_secs(1),
        body_timeout: Span::from_secs(1),
        ..HttpConfig::default()
    })
    .await;

    // Half a header, then silence.
    let mut half = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    half.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    assert!(
        read_until_closed(&mut half, Duration::from_secs(10))
            .await
            .is_some(),
        "a half-sent header is closed"
    );

    // A connection that never sends anything.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(10))
            .await
            .is_some()
    );

    // A kept-alive connection idle after its answer.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answered = read_until_closed(&mut idle, Duration::from_secs(10))
        .await
        .expect("closed when idle");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A body promised and not sent: 408.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        .await
        .expect("write");
    let answer = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let server = Server::start(HttpConfig {
        max_connections: 2,
        header_timeout: Span::from_secs(60),
        ..HttpConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("connect");
        // A full request and answer proves the server took the connection.
        c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(c);
    }
    let third = tokio::spawn(client::get(Endpoint::local(server.port), "/hello"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "the third client waits while two are held"
    );
    held.pop();
    let r = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .expect("joins")
        .expect("answers");
    assert_eq!(r.status, 200);
    drop(held);
    server.stop().await;
}

/// The event-stream reader resumes with `Last-Event-ID` when the server
/// drops the stream, and stops on a refusal.
#[tokio::test]
async fn an_event_stream_resumes_after_a_drop() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let app = Router::new().route(
        "/feed",
        get({
            let seen = seen.clone();
            move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let last = headers
                        .get("last-event-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    seen.lock().unwrap().push(last.clone());
                    // Each connection sends two events, split mid-line, and closes.
                    let body = match last.as_deref() {
                        None => "id: 1\ndata: one\n\nid: 2\nda".to_owned() + "ta: two\n\n",
                        Some("2") => "retry: 10\nid: 3\ndata: three\n\n".to_owned(),
                        Some(_) => return StatusCode::FORBIDDEN.into_response(),
                    };
                    ([("content-type", "text/event-stream")], body).into_response()
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { serve(listener, app, &HttpConfig::default(), &Metrics::new(), stop).await }
    });
    let mut source = client::EventSource::open(Endpoint::local(port), "/feed")
        .await
        .expect("opens");
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("in time")
            .expect("event");
        got.push((event.id.unwrap_or_default(), event.data));
    }
    assert_eq!(
        got,
        [("1", "one"), ("2", "two"), ("3", "three")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(source.reconnects(), 1);
    // The third connection resumes after 3 and is refused: the reader stops.
    let e = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(matches!(e, ClientError::Status { status: 403, .. }), "{e}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None, Some("2".to_owned()), Some("3".to_owned())]
    );
    stop.cancel();
    task.await.expect("joins").expect("serves");
}

/// Every request is counted by route template (not path), method and
/// status, timed, and a request no route matched is `unmatched`.
#[tokio::test]
async fn requests_are_measured_by_route_template() {
    use posbon_auth::{Access, Auth, Guarded};
    let store: posbon_store::Store = std::sync::Arc::new(posbon_store::MemoryStore::new());
    let auth = Auth::without_registry(store, Default::default()).expect("auth");
    let routes = Guarded::new(
        Router::new().route(
            "/v1/things/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>| async move { id }),
        ),
        [(axum::http::Method::GET, "/v1/things/{id}", Access::Public)],
    );
    let app = routes.into_router(auth);
    let metrics = Metrics::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (stop, metrics) = (stop.clone(), metrics.clone());
        async move { serve(listener, app, &HttpConfig::default(), &metrics, stop).await }
    });
    for id in ["a", "b", "c"] {
        let r = client::get(Endpoint::local(port), &format!("/v1/things/{id}"))
            .await
            .expect("get");
        assert_eq!(r.status, 200);
    }
    let r = client::get(Endpoint::local(port), "/nowhere")
        .await
        .expect("get");
    assert_eq!(r.status, 404);
    let text = metrics.render();
    assert!(
        text.contains(
            "posbon_http_requests_total{route=\"/v1/things/{id}\",method=\"GET\",status=\"200\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "posbon_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "posbon_http_request_seconds_count{route=\"/v1/things/{id}\",method=\"GET\"} 3"
        ),
        "{text}"
    );
    assert!(text.contains("posbon_http_requests_in_flight 0"), "{text}");
    stop.cancel();
    task.await.expect("join").expect("serve");
}
