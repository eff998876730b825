//! Posbon over the PostgreSQL wire protocol: psql, Grafana's PostgreSQL
//! data source, DBeaver, Power BI, psycopg and JDBC query the same read-only
//! SQL engine as `POST /v1/sql`, with the same identities, limits, row and
//! column scoping and audit.
//!
//! * **Log-in**: the password is an API token (`psb_…`, any user name; or an
//!   identity provider's JWT when `[auth.oidc]` is set) or a local user's own
//!   password, checked by [`posbon_auth::Auth::caller_of_password`] with the
//!   page's lock-out after failed attempts. The role needs `read_sql`. With a
//!   certificate configured, a connection without TLS is refused before the
//!   password is asked for. The database is `posbon`; another name is
//!   refused. A revoked token or removed user ends the connection's next
//!   statement.
//! * **Queries**: simple and extended protocol (parameters `$1`, prepared
//!   statements, binary or text results), one engine per connection scoped
//!   to the caller ([`posbon_sql::SqlEngine::for_access`]) with `pg_catalog`
//!   and `information_schema` describing only the tables the caller may
//!   query. Every query runs within the engine's limits (time, rows,
//!   memory, admission) and is audited as `sql` with `"via": "pg"`.
//!   `statement_timeout` may shorten the time limit, never lengthen it.
//! * **Session statements**: `BEGIN`/`COMMIT`/`ROLLBACK` (read-only
//!   transactions), `SET`/`RESET`/`SHOW` of the parameters drivers set
//!   (`application_name`, `extra_float_digits`, `statement_timeout`,
//!   `search_path`, UTC `TimeZone`, UTF8, ISO dates); anything that writes is
//!   refused with SQLSTATE `25006`.
//! * **Cancel requests** stop the running query (`57014`).
//!
//! Errors carry the SQLSTATE of [`posbon_sql::SqlError::sqlstate`].

mod handler;
mod information_schema;
mod session;
mod settings;
mod statement;

use std::sync::Arc;
use std::time::Duration;

use posbon_auth::Auth;
use posbon_service::http::Certificates;
use posbon_sql::SqlEngine;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::handler::{Handlers, Shared};

/// `[pg]`: the PostgreSQL front end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    /// Address to serve the PostgreSQL protocol on (`127.0.0.1:5432`);
    /// absent: not served.
    pub listen: Option<String>,
    /// Connections served at once; one more is closed at once with a log
    /// line (PostgreSQL's `max_connections`).
    pub max_connections: usize,
    /// Serve a non-loopback address without TLS (passwords and tokens in
    /// clear: only behind a network that encrypts, such as a TLS-terminating
    /// proxy that speaks PostgreSQL). Without it, such a configuration stops
    /// the service at start.
    pub allow_cleartext: bool,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_connections: 64,
            allow_cleartext: false,
        }
    }
}

/// A PostgreSQL front end, ready to serve.
pub struct PgServer {
    handlers: Arc<Handlers>,
    tls: Option<Arc<Certificates>>,
    max_connections: usize,
}

impl PgServer {
    /// A server over `engine` for the identities of `auth`. With `tls` (the
    /// HTTP server's certificate), connections must use TLS.
    pub fn new(
        engine: Arc<SqlEngine>,
        auth: Arc<Auth>,
        tls: Option<Arc<Certificates>>,
        config: &PgConfig,
    ) -> Self {
        let shared = Arc::new(Shared {
            engine,
            auth,
            require_tls: tls.is_some(),
            connections: Arc::new(pgwire::api::ConnectionManager::new()),
            keys: pgwire::api::RandomPidSecretKeyGenerator::default(),
        });
        Self {
            handlers: Arc::new(Handlers::new(shared)),
            tls,
            max_connections: config.max_connections.max(1),
        }
    }

    /// Serves connections from `listener` until `shutdown`; open
    /// connections end with it.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        if let Ok(address) = listener.local_addr() {
            if self.tls.is_none() && !address.ip().is_loopback() {
                tracing::warn!(
                    %address,
                    "postgresql is served without TLS on a non-loopback address (pg.allow_cleartext)"
                );
            }
            tracing::info!(%address, tls = self.tls.is_some(), "postgresql protocol served");
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(self.max_connections));
        let connections = tokio_util::task::TaskTracker::new();
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a postgresql connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::warn!(
                    %peer,
                    max_connections = self.max_connections,
                    "postgresql connection refused: pg.max_connections reached"
                );
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.tls.as_ref().map(|c| {
                let mut config = rustls_config(c);
                config.alpn_protocols = vec![b"postgresql".to_vec()];
                tokio_rustls::TlsAcceptor::from(Arc::new(config))
            });
            let handlers = Arc::clone(&self.handlers);
            let stop = shutdown.clone();
            connections.spawn(async move {
                let _permit = permit;
                tokio::select! {
                    done = pgwire::tokio::process_socket(tcp, acceptor, handlers) => {
                        if let Err(e) = done {
                            tracing::debug!(%peer, error = %e, "postgresql connection ended with an error");
                        }
                    }
                    () = stop.cancelled() => {}
                }
            });
        }
        connections.close();
        connections.wait().await;
    }
}

fn rustls_config(certificates: &Certificates) -> tokio_rustls::rustls::ServerConfig {
    (*certificates.current()).clone()
}

/// Binds `config.listen`; `None` when no address is configured. A
/// non-loopback address without TLS (`tls` false) is refused unless
/// `allow_cleartext`.
pub async fn bind(config: &PgConfig, tls: bool) -> anyhow::Result<Option<TcpListener>> {
    let Some(listen) = config.listen.as_deref().filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for postgresql on {listen}: {e}"))?;
    let address = listener.local_addr()?;
    if !tls && !address.ip().is_loopback() && !config.allow_cleartext {
        anyhow::bail!(
            "refusing to serve postgresql on {address} without TLS: passwords and tokens would \
             cross the network in clear; give a certificate (tls_cert and tls_key) or set \
             pg.allow_cleartext = true"
        );
    }
    Ok(Some(listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cleartext_off_loopback_is_refused_unless_allowed() {
        let mut config = PgConfig {
            listen: Some("0.0.0.0:0".into()),
            ..PgConfig::default()
        };
        let refused = bind(&config, false).await.expect_err("cleartext");
        assert!(refused.to_string().contains("allow_cleartext"), "{refused}");
        assert!(bind(&config, true).await.expect("tls").is_some());
        config.allow_cleartext = true;
        assert!(bind(&config, false).await.expect("allowed").is_some());
        config.listen = Some("127.0.0.1:0".into());
        config.allow_cleartext = false;
        assert!(bind(&config, false).await.expect("loopback").is_some());
        config.listen = None;
        assert!(bind(&config, false).await.expect("off").is_none());
    }
}
