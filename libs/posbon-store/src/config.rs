//! [`StoreConfig`]: which backend a service stores into, the `[store]`
//! section of every service's configuration, and [`open_store`].
//!
//! ```toml
//! [store]
//! path = "data/store"          # the embedded store (used when [store.tikv] is absent)
//!
//! [store.tikv]                 # a TiKV cluster instead
//! pd_endpoints = ["pd0:2379", "pd1:2379", "pd2:2379"]
//! # tls = { ca_path = "ca.pem", cert_path = "client.pem", key_path = "client-key.pem" }
//! ```
//!
//! With environment overrides: `POSBON__STORE__TIKV__PD_ENDPOINTS='["pd0:2379"]'`.

use posbon_model::Span;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use posbon_telemetry::Metrics;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError, StoreErrorKind};
use crate::{EmbeddedStore, Store, TikvStore};

/// Directory of the embedded store when the configuration names none.
pub const DEFAULT_STORE_PATH: &str = "data/store";

fn default_path() -> PathBuf {
    PathBuf::from(DEFAULT_STORE_PATH)
}

/// Where events are stored: the embedded store in `path`, or the TiKV
/// cluster of `tikv` when that is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the embedded store. Ignored when `tikv` is set.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// A TiKV cluster to store into instead of the embedded store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tikv: Option<TikvConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::embedded(DEFAULT_STORE_PATH)
    }
}

impl StoreConfig {
    /// The embedded store in directory `path`.
    pub fn embedded(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            tikv: None,
        }
    }

    /// The TiKV cluster whose PD answers at `pd_endpoints` (`host:port`),
    /// with default settings.
    pub fn tikv<S: Into<String>>(pd_endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            path: default_path(),
            tikv: Some(TikvConfig::new(pd_endpoints)),
        }
    }

    /// A short description for logs: `embedded data/store` or
    /// `tikv pd0:2379,pd1:2379`.
    pub fn describe(&self) -> String {
        match &self.tikv {
            Some(tikv) => format!("tikv {}", tikv.pd_endpoints.join(",")),
            None => format!("embedded {}", self.path.display()),
        }
    }
}

/// How to reach and use a TiKV cluster (the raw key-value API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TikvConfig {
    /// PD endpoints, `host:port` (an `http://` or `https://` prefix is
    /// accepted); one or more members of the PD cluster.
    pub pd_endpoints: Vec<String>,
    /// Mutual TLS towards PD and TiKV; plaintext when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TikvTlsConfig>,
    /// How long to wait for PD at start-up before giving up.
    pub connect_timeout: Span,
    /// Deadline of each gRPC call to PD or TiKV (the
    /// client's own retries of region errors happen within an operation).
    pub request_timeout: Span,
    /// Deadline of one attempt of a store operation (a whole batch put, one
    /// scan page).
    pub operation_timeout: Span,
    /// Attempts after the first when an operation fails in a retryable way
    /// (timeouts, unreachable stores, region errors the client gave up on).
    pub retries: u32,
    /// Delay before the first retry; doubled for each
    /// further retry.
    pub retry_backoff: Span,
    /// Bytes of keys and values per batch-put call; a larger batch is sent
    /// in several calls (the client splits each call further into 16 KiB
    /// requests per region).
    pub max_batch_bytes: usize,
    /// Keys read per scan call from one region (1..=10240, TiKV's limit).
    pub scan_batch: u32,
    /// Largest gRPC answer the client accepts, in bytes.
    pub max_response_bytes: usize,
}

impl Default for TikvConfig {
    fn default() -> Self {
        Self {
            pd_endpoints: Vec::new(),
            tls: None,
            connect_timeout: Span::from_secs(10),
            request_timeout: Span::from_secs(2),
            operation_timeout: Span::from_secs(30),
            retries: 3,
            retry_backoff: Span::from_millis(100),
            max_batch_bytes: 4 << 20,
            scan_batch: 1024,
            max_response_bytes: 64 << 20,
        }
    }
}

/// TLS files for PD and TiKV: the CA that signed the servers' certificates,
/// and this client's certificate and key (PEM). TiKV's TLS is mutual, so all
/// three are needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TikvTlsConfig {
    /// The CA certificate (PEM).
    pub ca_path: PathBuf,
    /// The client certificate (PEM).
    pub cert_path: PathBuf,
    /// The client's private key (PEM).
    pub key_path: PathBuf,
}

/// Most keys one TiKV scan may ask for.
pub(crate) const MAX_SCAN_BATCH: u32 = 10_240;

impl TikvConfig {
    /// Default settings for the cluster whose PD answers at `pd_endpoints`.
    pub fn new<S: Into<String>>(pd_endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            pd_endpoints: pd_endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks the settings, naming the first one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let invalid = |what: String| Err(StoreError::invalid(format!("store.tikv.{what}")));
        if self.pd_endpoints.is_empty() {
            return invalid("pd_endpoints is empty: name at least one pd host:port".into());
        }
        for (i, endpoint) in self.pd_endpoints.iter().enumerate() {
            let bare = endpoint
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            if bare.is_empty() || bare.contains(char::is_whitespace) || bare.contains('/') {
                return invalid(format!("pd_endpoints[{i}] {endpoint:?} is not a host:port"));
            }
            if self.pd_endpoints[..i].contains(endpoint) {
                return invalid(format!("pd_endpoints[{i}] {endpoint:?} is listed twice"));
            }
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("operation_timeout", self.operation_timeout),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be above zero"));
            }
        }
        for (name, value) in [
            ("max_batch_bytes", self.max_batch_bytes as u64),
            ("max_response_bytes", self.max_response_bytes as u64),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be above 0"));
            }
        }
        if !(1..=MAX_SCAN_BATCH).contains(&self.scan_batch) {
            return invalid(format!(
                "scan_batch {} is outside 1..={MAX_SCAN_BATCH}",
                self.scan_batch
            ));
        }
        if let Some(tls) = &self.tls {
            for (name, path) in [
                ("ca_path", &tls.ca_path),
                ("cert_path", &tls.cert_path),
                ("key_path", &tls.key_path),
            ] {
                if let Err(e) = std::fs::File::open(path) {
                    return invalid(format!("tls.{name} {}: {e}", path.display()));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout.to_std()
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout.to_std()
    }

    pub(crate) fn operation_timeout(&self) -> Duration {
        self.operation_timeout.to_std()
    }

    /// The delay before retry number `attempt` (1-based), capped at 10 s.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(16);
        Duration::from_millis(
            u64::try_from(self.retry_backoff.millis())
                .unwrap_or(0)
                .saturating_mul(factor)
                .min(10_000),
        )
    }
}

/// Opens the store `config` names: the TiKV backend when `config.tikv` is
/// set (failing with a [`StoreErrorKind::Unavailable`] error that names the
/// endpoints when PD cannot be reached), else the embedded store in
/// `config.path`.
pub async fn open_store(config: &StoreConfig) -> Result<Store> {
    open(config, None).await
}

/// [`open_store`], with the backend's latency histograms and error counters
/// registered in `metrics` (`posbon_store_operation_seconds{backend, op}`,
/// `posbon_store_errors_total{backend, op, kind}`,
/// `posbon_store_retries_total{backend, op}`). The embedded backend has no
/// metrics of its own.
pub async fn open_store_with_metrics(config: &StoreConfig, metrics: &Metrics) -> Result<Store> {
    open(config, Some(metrics)).await
}

async fn open(config: &StoreConfig, metrics: Option<&Metrics>) -> Result<Store> {
    match &config.tikv {
        Some(tikv) => Ok(Arc::new(TikvStore::connect(tikv, metrics).await?)),
        None => {
            let path = config.path.clone();
            let opened = match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || open_embedded(&path))
                    .await
                    .map_err(|_| {
                        StoreError::new(StoreErrorKind::Unavailable, "store open task failed")
                    })?,
                Err(_) => open_embedded(&path),
            };
            Ok(Arc::new(opened?))
        }
    }
}

fn open_embedded(path: &Path) -> Result<EmbeddedStore> {
    EmbeddedStore::open(path).map_err(|e| {
        StoreError::with_source(
            e.kind(),
            format!("cannot open the embedded store at {}", path.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> std::result::Result<StoreConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn sections_parse_with_defaults() {
        let embedded = parse("path = \"x/y\"").expect("embedded");
        assert_eq!(embedded, StoreConfig::embedded("x/y"));
        let tikv =
            parse("[tikv]\npd_endpoints = [\"a:2379\", \"b:2379\"]\nretries = 5").expect("tikv");
        let expected = TikvConfig {
            retries: 5,
            ..TikvConfig::new(["a:2379", "b:2379"])
        };
        assert_eq!(tikv.tikv, Some(expected));
        assert_eq!(tikv.path, PathBuf::from(DEFAULT_STORE_PATH));
        assert_eq!(tikv.describe(), "tikv a:2379,b:2379");
        let error = parse("[tikv]\npd_endpoint = [\"a:1\"]").expect_err("typo");
        assert!(error.contains("pd_endpoint"), "{error}");
        let error = parse("paht = \"x\"").expect_err("typo");
        assert!(error.contains("paht"), "{error}");
        let error = parse("[tikv.tls]\nca_path = \"a\"").expect_err("incomplete tls");
        assert!(error.contains("cert_path"), "{error}");
    }

    #[test]
    fn validation_names_the_setting() {
        let check =
            |config: TikvConfig| config.validate().expect_err("invalid").message().to_owned();
        assert!(check(TikvConfig::default()).contains("pd_endpoints is empty"));
        assert!(check(TikvConfig::new(["a:1", "a:1"])).contains("pd_endpoints[1]"));
        assert!(check(TikvConfig::new(["a b:1"])).contains("pd_endpoints[0]"));
        let batch = TikvConfig {
            scan_batch: 20_000,
            ..TikvConfig::new(["a:1"])
        };
        assert!(check(batch).contains("scan_batch"));
        let zero = TikvConfig {
            operation_timeout: Span::ZERO,
            ..TikvConfig::new(["a:1"])
        };
        assert!(check(zero).contains("operation_timeout"));
        let tls = TikvConfig {
            tls: Some(TikvTlsConfig {
                ca_path: "/nonexistent/ca.pem".into(),
                cert_path: "/nonexistent/c.pem".into(),
                key_path: "/nonexistent/k.pem".into(),
            }),
            ..TikvConfig::new(["a:1"])
        };
        assert!(check(tls).contains("tls.ca_path /nonexistent/ca.pem"));
        TikvConfig::new(["http://a:1", "b:2"])
            .validate()
            .expect("valid");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = TikvConfig::new(["a:1"]);
        assert_eq!(config.backoff(1), Duration::from_millis(100));
        assert_eq!(config.backoff(3), Duration::from_millis(400));
        assert_eq!(config.backoff(60), Duration::from_secs(10));
    }
}
