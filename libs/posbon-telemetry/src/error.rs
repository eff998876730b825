//! Error type of this crate.

/// Errors from [`init`](crate::init) and metric registration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// Telemetry (or another global `tracing` subscriber) was already installed in this process.
    #[error("telemetry already initialized")]
    AlreadyInitialized,
    /// The log filter from `RUST_LOG` or the config could not be parsed.
    #[error("invalid log filter {directives:?}: {source}")]
    InvalidLogFilter {
        /// The offending filter directives.
        directives: String,
        /// The parse error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A config value is out of range.
    #[error("invalid telemetry config: {0}")]
    InvalidConfig(String),
    /// An OTLP exporter could not be built (bad endpoint, unsupported protocol, ...).
    #[error("building otlp {signal} exporter: {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The background runtime that drives the OTLP exporters could not be started.
    #[error("starting otlp exporter runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A metric name is not a valid Prometheus/OpenTelemetry name or breaks the naming rules.
    #[error("invalid metric name {name:?}: {reason}")]
    InvalidMetricName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A label name is invalid, reserved or duplicated.
    #[error("invalid label name {label:?} for metric {metric:?}")]
    InvalidLabelName {
        /// The metric being registered.
        metric: String,
        /// The rejected label name.
        label: String,
    },
    /// Histogram buckets are empty, not finite or not strictly increasing.
    #[error("invalid histogram buckets for metric {0:?}: need finite, strictly increasing bounds")]
    InvalidBuckets(String),
    /// A metric with this name is already registered with a different kind, labels or buckets.
    #[error("metric {0:?} already registered with a different definition")]
    MetricConflict(String),
}
