//! Telemetry configuration, deserialized from the service config file.

use posbon_model::Span;
use serde::Deserialize;

/// Default log filter when neither `RUST_LOG` nor [`TelemetryConfig::log_level`] says otherwise.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON lines when stderr is not a terminal, human-readable text when it is.
    #[default]
    Auto,
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable text (colored when stderr is a terminal).
    Text,
}

/// Telemetry settings shared by every Posbon binary.
///
/// All fields are optional in the config file; unknown fields are rejected.
///
/// ```
/// let config: posbon_telemetry::TelemetryConfig =
///     serde_json::from_str(r#"{"log_format": "json", "otlp_endpoint": "http://collector:4317"}"#)
///         .expect("valid config");
/// assert_eq!(config.log_level, "info");
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Log filter directives (`tracing_subscriber::EnvFilter` syntax, e.g. `info` or
    /// `posbon=debug,info`). `RUST_LOG`, when set and non-empty, takes precedence.
    pub log_level: String,
    /// Log line format: `auto` (default), `json` or `text`.
    pub log_format: LogFormat,
    /// OTLP/gRPC collector endpoint, e.g. `http://otel-collector:4317`. When unset, the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT` variable is used; when neither is set (or both
    /// are empty) no traces or metrics are exported.
    pub otlp_endpoint: Option<String>,
    /// Fraction (0.0 to 1.0) of new root traces that are sampled. Spans with a remote or
    /// local parent follow the parent's sampling decision.
    pub trace_sample_ratio: f64,
    /// Interval between OTLP metric exports (`30s`). When unset, the standard
    /// `OTEL_METRIC_EXPORT_INTERVAL` variable or the SDK default (60 s) applies.
    pub metrics_export_interval: Option<Span>,
    /// Upper bound (`5s`) on flushing and shutting down the exporters when the
    /// [`TelemetryGuard`](crate::TelemetryGuard) is dropped.
    pub shutdown_timeout: Span,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            log_format: LogFormat::Auto,
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            metrics_export_interval: None,
            shutdown_timeout: Span::from_secs(5),
        }
    }
}
