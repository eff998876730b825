//! Posbon telemetry: one call at the start of every binary sets up structured logs,
//! OpenTelemetry traces and metrics, and W3C trace-context propagation; a [`Metrics`]
//! registry feeds the `/metrics` endpoint.
//!
//! ```no_run
//! use posbon_telemetry::{Metrics, TelemetryConfig, DEFAULT_LATENCY_BUCKETS};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Usually a section of the service config file.
//! let config = TelemetryConfig::default();
//! // Keep the guard until exit: dropping it flushes and stops OTLP export.
//! let _telemetry = posbon_telemetry::init("posbon-ingest", &config)?;
//!
//! // Create after `init` so the instruments are mirrored to OTLP when it is enabled.
//! let metrics = Metrics::new();
//! let ingested = metrics.counter_vec(
//!     "posbon_events_ingested_total",
//!     "Events accepted from the bus.",
//!     &["topic"],
//! )?;
//! let latency = metrics.histogram(
//!     "posbon_event_process_duration_seconds",
//!     "Time to process one event.",
//!     DEFAULT_LATENCY_BUCKETS,
//! )?;
//!
//! // Resolve label values once, record cheaply in the hot path.
//! let positions = ingested.with_labels(&["positions"]);
//! positions.inc();
//! latency.observe(0.012);
//!
//! // GET /metrics → `Content-Type: PROMETHEUS_CONTENT_TYPE`, body `metrics.render()`.
//! let body = metrics.render();
//! assert!(body.contains("posbon_events_ingested_total{topic=\"positions\"} 1"));
//!
//! // Carry the trace across NATS: inject into outgoing headers...
//! let span = tracing::info_span!("publish");
//! let headers = posbon_telemetry::inject_context(&span);
//! // ...and continue it on the consumer side.
//! use posbon_telemetry::OpenTelemetrySpanExt as _;
//! let consumer = tracing::info_span!("consume");
//! let _ = consumer.set_parent(posbon_telemetry::extract_context(
//!     headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! # Logs
//!
//! `tracing` events go to stderr as JSON lines when stderr is not a terminal and as
//! human-readable text when it is ([`TelemetryConfig::log_format`] overrides). The filter
//! comes from `RUST_LOG`, else [`TelemetryConfig::log_level`] (default `info`).
//!
//! # Traces
//!
//! Every INFO-or-above span becomes an OpenTelemetry span (independently of the log
//! filter), so trace context flows through a service even when it exports nothing. With
//! an OTLP endpoint (config `otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`), spans are
//! batched and exported over OTLP/gRPC with a `service.name` resource; without one no
//! exporter or background thread is started. [`inject_context`] / [`extract_context`]
//! move the W3C `traceparent`/`tracestate` through any key/value carrier such as NATS
//! headers.
//!
//! # Metrics: how they reach Prometheus and OTLP
//!
//! The source of truth is a `prometheus-client` registry inside [`Metrics`]: counters and
//! gauges are atomics, histograms are `prometheus-client` histograms, and
//! [`Metrics::render`] encodes them as Prometheus text for scraping.
//!
//! When OTLP is enabled, every instrument is mirrored to the OpenTelemetry meter of the
//! OTLP pipeline (a `PeriodicReader` pushing to the collector):
//!
//! * counters and gauges are registered as *observable* OpenTelemetry instruments whose
//!   callbacks read the same atomics at each export: no extra cost per recording and the
//!   two outputs cannot disagree;
//! * histograms are recorded twice, into the `prometheus-client` histogram and into an
//!   OpenTelemetry histogram with the same bucket bounds and attributes, because the SDK
//!   has no observable histogram and `prometheus-client` does not expose bucket counts.
//!
//! Why not the other way round (OpenTelemetry instruments, Prometheus text from a pull
//! reader)? In `opentelemetry_sdk` 0.33 the `ManualReader` and custom `MetricReader`s sit
//! behind the `experimental_metrics_custom_reader` feature and there is no maintained
//! Prometheus text encoder for SDK data; the bridge above uses only stable APIs and keeps
//! `/metrics` independent of the OTLP pipeline.
//!
//! Counters are named `posbon_<thing>_<unit>_total` (enforced suffix; the OpenTelemetry
//! instrument drops `_total`, which Prometheus-compatible backends add back). Label names
//! are fixed at registration; label values should come from small fixed sets, and a
//! metric keeps at most [`MAX_SERIES_PER_METRIC`] series before folding new ones into an
//! overflow series.
//!
//! # Runtime and shutdown
//!
//! OTLP export runs on a private one-thread tokio runtime, so [`init`] works in or out of
//! an async context and with any runtime flavor. Dropping the [`TelemetryGuard`] flushes
//! pending spans and a final metrics snapshot, bounded by
//! [`TelemetryConfig::shutdown_timeout`] even when the collector is unreachable.

mod config;
mod error;
mod init;
mod metrics;
mod propagation;

pub use config::{DEFAULT_LOG_LEVEL, LogFormat, TelemetryConfig};
pub use error::TelemetryError;
pub use init::{TelemetryGuard, init, init_for_tests};
pub use metrics::{
    Counter, CounterVec, DEFAULT_LATENCY_BUCKETS, Gauge, GaugeVec, Histogram, HistogramVec,
    MAX_SERIES_PER_METRIC, Metrics, OPENMETRICS_CONTENT_TYPE, OVERFLOW_LABEL_VALUE,
    PROMETHEUS_CONTENT_TYPE,
};
pub use propagation::{extract_context, inject_context};

/// Re-export so callers can name [`opentelemetry::Context`] without their own dependency.
pub use opentelemetry;
/// Re-export: `span.set_parent(extract_context(..))` and `span.context()`.
pub use tracing_opentelemetry::OpenTelemetrySpanExt;
