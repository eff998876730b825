//! The one HTTP server every Posbon service runs: HTTP/1.1 and HTTP/2 with
//! upgrades (the live feed's WebSocket), HTTPS with rustls when a certificate
//! and key are configured (then `Strict-Transport-Security` on every answer),
//! and the limits a server on a police network needs: a connection cap, a
//! deadline for request headers (which is also the idle timeout between
//! requests on a kept-alive connection), a TLS handshake deadline and a
//! request-body deadline, so that a client that opens a connection and stops
//! sending holds nothing for long.
//!
//! The certificate and key are read again when their files change (checked
//! at most every [`HttpConfig::tls_reload`] on a new connection), so a
//! renewed certificate is served without a restart; a pair that does not load
//! is logged and the one before stays in use.
//!
//! Every request is measured (RED) and traced: `posbon_http_requests_total`
//! by route template, method and status, `posbon_http_request_seconds` by
//! route and method, `posbon_http_requests_in_flight`; a span `http` with
//! the same fields, whose parent is the caller's `traceparent` when it sends
//! one. The route is the template the guard matched
//! ([`posbon_auth::http::MatchedRoute`]), never the path with its ids;
//! requests no route matched count as `unmatched`.

use posbon_model::Span;
use std::future::Future as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::{HeaderValue, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

/// `[<service>.http]`: how the service's HTTP server runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Most connections open at once; further clients wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// A request's headers must arrive within this time of the connection
    /// opening or of the previous answer; a kept-alive connection idle for
    /// longer is closed.
    pub header_timeout: Span,
    /// A request body must arrive within this time (408 otherwise).
    pub body_timeout: Span,
    /// A TLS handshake must finish within this time.
    pub tls_handshake_timeout: Span,
    /// How often, at most, the certificate files are checked for changes
    /// (`0s`: on every new connection).
    #[serde(with = "posbon_model::span::zero_allowed")]
    pub tls_reload: Span,
    /// `max-age` of `Strict-Transport-Security` when serving HTTPS.
    #[serde(with = "posbon_model::span::zero_allowed")]
    pub hsts_max_age: Span,
    /// At shutdown, how long open connections (feeds) get to finish.
    pub shutdown_grace: Span,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            max_connections: 4096,
            header_timeout: Span::from_secs(15),
            body_timeout: Span::from_secs(60),
            tls_handshake_timeout: Span::from_secs(10),
            tls_reload: Span::from_secs(30),
            hsts_max_age: Span::from_secs(31_536_000),
            shutdown_grace: Span::from_secs(5),
        }
    }
}

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TLS settings are incomplete or do not load.
    #[error("https: {0}")]
    Tls(String),
    /// A limit is zero.
    #[error("http: {0}")]
    Invalid(String),
}

impl HttpConfig {
    /// Whether the server speaks HTTPS.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() || self.tls_key.is_some()
    }

    /// What `auth` must know of the transport: cookies carry `Secure` when
    /// the server speaks HTTPS.
    pub fn apply_to(&self, auth: &mut posbon_auth::AuthConfig) {
        if self.tls_enabled() {
            auth.secure_cookies = true;
        }
    }

    fn check(&self) -> Result<(), HttpError> {
        if self.max_connections == 0 {
            return Err(HttpError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
        ] {
            if value.is_zero() {
                return Err(HttpError::Invalid(format!("{name} must be above zero")));
            }
        }
        Ok(())
    }

    /// The certificate of `tls_cert` and `tls_key`, `None` without TLS.
    pub fn certificates(&self) -> Result<Option<Arc<Certificates>>, HttpError> {
        Ok(match self.tls_files()? {
            Some((cert, key)) => Some(Arc::new(Certificates::load(
                cert,
                key,
                self.tls_reload.to_std(),
            )?)),
            None => None,
        })
    }

    fn tls_files(&self) -> Result<Option<(&Path, &Path)>, HttpError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (Some(_), None) => Err(HttpError::Tls(
                "tls_cert is set but tls_key is not; give both or neither".into(),
            )),
            (None, Some(_)) => Err(HttpError::Tls(
                "tls_key is set but tls_cert is not; give both or neither".into(),
            )),
        }
    }
}

/// The scheme a client uses to reach a server with this configuration.
pub fn scheme(config: &HttpConfig) -> &'static str {
    if config.tls_enabled() {
        "https"
    } else {
        "http"
    }
}

/// Reads a PEM certificate chain and its private key into a rustls server
/// configuration (ALPN h2 and http/1.1).
pub fn load_tls(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, HttpError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| HttpError::Tls(format!("cannot read tls_cert {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| HttpError::Tls(format!("tls_cert {} is not PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(HttpError::Tls(format!(
            "tls_cert {} holds no certificate",
            cert.display()
        )));
    }
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        HttpError::Tls(format!(
            "tls_key {} holds no usable private key: {e}",
            key_path.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HttpError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| {
        HttpError::Tls(format!(
            "tls_cert {} and tls_key {} do not make a usable pair: {e}",
            cert.display(),
            key_path.display()
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS configuration in use, read again when the files change (at
/// most every [`HttpConfig::tls_reload`]): the HTTP server's, and the
/// PostgreSQL front end's, which serves the same certificate.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    state: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<rustls::ServerConfig>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Certificates {
    /// Reads `cert` and `key`, to be read again `every` so often when they
    /// change.
    pub fn load(cert: &Path, key: &Path, every: Duration) -> Result<Self, HttpError> {
        let stamp = (modified(cert), modified(key));
        let config = Arc::new(load_tls(cert, key)?);
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            every,
            state: Mutex::new(Loaded {
                config,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration to accept the next connection with.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= self.every {
            state.checked = Instant::now();
            let stamp = (modified(&self.cert), modified(&self.key));
            if stamp != state.stamp {
                state.stamp = stamp;
                match load_tls(&self.cert, &self.key) {
                    Ok(config) => {
                        tracing::info!(cert = %self.cert.display(), "tls certificate reloaded");
                        state.config = Arc::new(config);
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "the changed tls certificate does not load; serving the one before"
                    ),
                }
            }
        }
        state.config.clone()
    }
}

/// The request metrics of one process.
#[derive(Clone)]
struct Red {
    requests: posbon_telemetry::CounterVec,
    seconds: posbon_telemetry::HistogramVec,
    in_flight: posbon_telemetry::Gauge,
}

impl Red {
    fn new(metrics: &posbon_telemetry::Metrics) -> Result<Self, anyhow::Error> {
        Ok(Self {
            requests: metrics.counter_vec(
                "posbon_http_requests_total",
                "HTTP requests answered, by route template, method and status",
                &["route", "method", "status"],
            )?,
            seconds: metrics.histogram_vec(
                "posbon_http_request_seconds",
                "Time to answer an HTTP request (to the response's head; streams such as the feed count until they start)",
                &[0.001, 0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0],
                &["route", "method"],
            )?,
            in_flight: metrics.gauge(
                "posbon_http_requests_in_flight",
                "HTTP requests being answered now",
            )?,
        })
    }
}

/// Measures and traces one request.
async fn observe(
    red: Red,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use posbon_telemetry::OpenTelemetrySpanExt as _;
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http",
        http.method = %method,
        http.route = tracing::field::Empty,
        http.status = tracing::field::Empty,
    );
    let parent = posbon_telemetry::extract_context(
        request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    );
    let _ = span.set_parent(parent);
    red.in_flight.inc();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    red.in_flight.dec();
    let route = response
        .extensions()
        .get::<posbon_auth::http::MatchedRoute>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_owned();
    let status = response.status().as_u16().to_string();
    span.record("http.route", route.as_str());
    span.record("http.status", status.as_str());
    red.requests.with_labels(&[&route, &method, &status]).inc();
    red.seconds
        .with_labels(&[&route, &method])
        .observe_duration(started.elapsed());
    response
}

/// Serves `app` on `listener` until `shutdown`, then gives open connections
/// [`HttpConfig::shutdown_grace`] to finish. Requests are measured in
/// `metrics` (module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &HttpConfig,
    metrics: &posbon_telemetry::Metrics,
    shutdown: CancellationToken,
) -> Result<(), anyhow::Error> {
    config.check()?;
    let tls = config.certificates()?;
    let body_timeout = config.body_timeout.to_std();
    let red = Red::new(metrics)?;
    let mut app = app
        .layer(axum::middleware::from_fn(move |request, next| {
            body_deadline(body_timeout, request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            observe(red.clone(), request, next)
        }));
    if tls.is_some() {
        let hsts = HeaderValue::from_str(&format!(
            "max-age={}; includeSubDomains",
            config.hsts_max_age.secs()
        ))
        .map_err(|e| anyhow::anyhow!("hsts header: {e}"))?;
        app = app.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            hsts,
        ));
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout.to_std())
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.header_timeout.to_std())
        .keep_alive_timeout(config.header_timeout.to_std())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024);
    let builder = Arc::new(builder);
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let handshake = config.tls_handshake_timeout.to_std();
    let first_byte = config.header_timeout.to_std();
    let mut full_logged = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !full_logged {
                    tracing::warn!(
                        max_connections = config.max_connections,
                        "connection limit reached; new clients wait"
                    );
                    full_logged = true;
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        full_logged = false;
        let _ = tcp.set_nodelay(true);
        // Handlers that count by client (failed logins) read the peer's
        // address as axum's ConnectInfo.
        let service = TowerToHyperService::new(tower_http::add_extension::AddExtension::new(
            app.clone(),
            axum::extract::ConnectInfo(peer),
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = match tls {
                None => {
                    let io = FirstByteDeadline::new(tcp, first_byte);
                    serve_io(&builder, io, service, watcher).await
                }
                Some(certificates) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(certificates.current());
                    let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    };
                    let io = FirstByteDeadline::new(stream, first_byte);
                    serve_io(&builder, io, service, watcher).await
                }
            };
            if let Err(e) = outcome {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = config.shutdown_grace.to_std();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            grace = %config.shutdown_grace,
            "open connections closed at the end of the shutdown grace"
        );
    }
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The application of one connection: the router, with the peer's address.
type Connected = tower_http::add_extension::AddExtension<
    Router,
    axum::extract::ConnectInfo<std::net::SocketAddr>,
>;

async fn serve_io<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<Connected>,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    watcher.watch(conn.into_owned()).await
}

/// A connection that must send its first byte before a deadline: until a
/// protocol is chosen (HTTP/1.1 or HTTP/2), no header timeout runs, so a
/// client that connects and says nothing would otherwise be held forever.
struct FirstByteDeadline<I> {
    inner: I,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> FirstByteDeadline<I> {
    fn new(inner: I, within: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstByteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match (&polled, self.deadline.as_mut()) {
            (Poll::Ready(Ok(())), Some(_)) if buf.filled().len() > before => {
                self.deadline = None;
                polled
            }
            (Poll::Pending, Some(deadline)) => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request within the header timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
            _ => polled,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstByteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Gives the request body `within` to arrive; a handler that was still
/// reading it when the time ran out is answered 408, whatever it made of the
/// cut body.
async fn body_deadline(
    within: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        axum::body::Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(within)),
            fired: fired.clone(),
        })
    });
    let response = next.run(request).await;
    if fired.load(Ordering::Relaxed) {
        return posbon_auth::http::error(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            &format!(
                "the request body did not arrive within {} s",
                within.as_secs()
            ),
        );
    }
    response
}

struct DeadlineBody {
    inner: axum::body::Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.fired.store(true, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
