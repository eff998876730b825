//! Process-wide setup: log subscriber, OpenTelemetry providers and their shutdown.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber, span};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

use crate::config::{DEFAULT_LOG_LEVEL, LogFormat, TelemetryConfig};
use crate::error::TelemetryError;

/// Standard variable naming the OTLP collector when the config does not.
const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Instrumentation scope name for spans and metrics produced by Posbon code.
const SCOPE: &str = "posbon";

/// Set once a global subscriber was installed by [`init`] or [`init_for_tests`].
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Meter of the OTLP meter provider while [`init`] has OTLP enabled; read by
/// [`Metrics::new`](crate::Metrics::new) to mirror instruments to OTLP.
static OTLP_METER: RwLock<Option<opentelemetry::metrics::Meter>> = RwLock::new(None);

pub(crate) fn otlp_meter() -> Option<opentelemetry::metrics::Meter> {
    OTLP_METER
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

fn set_otlp_meter(meter: Option<opentelemetry::metrics::Meter>) {
    *OTLP_METER.write().unwrap_or_else(PoisonError::into_inner) = meter;
}

/// Keeps the telemetry pipeline alive; flushes and shuts it down when dropped.
///
/// Hold it in `main` for the lifetime of the process. Dropping it exports pending spans and
/// a final metrics snapshot, waiting at most
/// [`TelemetryConfig::shutdown_timeout`]; an unreachable collector cannot stall shutdown
/// beyond that bound. The drop blocks the calling thread while it waits, so drop the guard
/// at the very end of `main` (after the runtime's work is done). Logging keeps working
/// after the drop.
#[must_use = "dropping the guard shuts telemetry export down"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    runtime: Option<tokio::runtime::Runtime>,
    otlp_endpoint: Option<String>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Whether traces and metrics are exported over OTLP.
    pub fn otlp_enabled(&self) -> bool {
        self.meter_provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let tracer_provider = self.tracer_provider.take();
        let meter_provider = self.meter_provider.take();
        if meter_provider.is_some() {
            set_otlp_meter(None);
        }
        shutdown_providers(tracer_provider, meter_provider, self.shutdown_timeout);
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so it is safe even when dropped inside an async context.
            runtime.shutdown_background();
        }
    }
}

/// Flushes and shuts the providers down on a helper thread, waiting at most `timeout`.
///
/// The SDK's own shutdown waits on export threads with fixed internal timeouts and the
/// exporter retries with backoff; the helper thread bounds the total regardless.
fn shutdown_providers(
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    timeout: Duration,
) {
    if tracer_provider.is_none() && meter_provider.is_none() {
        return;
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("posbon-telemetry-shutdown".to_owned())
        .spawn(move || {
            if let Some(provider) = tracer_provider
                && let Err(error) = provider.shutdown_with_timeout(timeout)
            {
                tracing::warn!(%error, "trace provider shutdown failed");
            }
            if let Some(provider) = meter_provider
                && let Err(error) = provider.shutdown_with_timeout(timeout)
            {
                tracing::warn!(%error, "meter provider shutdown failed");
            }
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            if done_rx.recv_timeout(timeout).is_err() {
                tracing::warn!(
                    timeout_ms = timeout.as_millis(),
                    "telemetry shutdown timed out, pending telemetry dropped"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "cannot spawn telemetry shutdown thread"),
    }
}

/// Resolved log output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogStyle {
    Json,
    Text { ansi: bool },
}

impl LogStyle {
    fn resolve(format: LogFormat, stderr_is_terminal: bool) -> Self {
        match format {
            LogFormat::Json => Self::Json,
            LogFormat::Text => Self::Text {
                ansi: stderr_is_terminal,
            },
            LogFormat::Auto if stderr_is_terminal => Self::Text { ansi: true },
            LogFormat::Auto => Self::Json,
        }
    }
}

/// The log layer used by [`init`], writing to `writer`.
///
/// JSON lines carry the OpenTelemetry `trace_id`/`span_id` of the innermost span that has
/// them, so logs can be joined with traces.
pub(crate) fn log_layer<S, W>(style: LogStyle, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match style {
        LogStyle::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonWithTraceIds(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            ))
            .with_writer(writer)
            .and_then(TraceIdLayer::default())
            .boxed(),
        LogStyle::Text { ansi } => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    }
}

/// OpenTelemetry ids of a tracing span (`None` if it has no valid OpenTelemetry span),
/// cached in the span's extensions when it is first entered.
#[derive(Debug, Clone, Copy)]
struct TraceIds(Option<(TraceId, SpanId)>);

/// Records [`TraceIds`] for entered spans. Looks them up on enter rather than on creation:
/// resolving the OpenTelemetry context starts the span, after which `set_parent` would no
/// longer work.
#[derive(Default)]
struct TraceIdLayer {
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_enter(&self, id: &span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let ids = tracing_opentelemetry::get_otel_context(id, &dispatch).and_then(|cx| {
            let span_context = cx.span().span_context().clone();
            span_context
                .is_valid()
                .then(|| (span_context.trace_id(), span_context.span_id()))
        });
        span.extensions_mut().insert(TraceIds(ids));
    }
}

/// The JSON event format plus top-level `trace_id` and `span_id` fields.
struct JsonWithTraceIds(Format<Json>);

impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx.event_scope().and_then(|mut scope| {
            scope.find_map(|span| span.extensions().get::<TraceIds>().and_then(|ids| ids.0))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_suffix("}\n") {
            Some(object) => writeln!(
                writer,
                "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
            ),
            None => writer.write_str(&line),
        }
    }
}

/// Filter directives: non-empty `RUST_LOG` wins over the configured level.
fn log_filter(config_level: &str) -> Result<EnvFilter, TelemetryError> {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| {
            if config_level.trim().is_empty() {
                DEFAULT_LOG_LEVEL.to_owned()
            } else {
                config_level.to_owned()
            }
        });
    let filter =
        EnvFilter::try_new(&directives).map_err(|source| TelemetryError::InvalidLogFilter {
            directives: directives.clone(),
            source,
        })?;
    // The SDK logs routine lifecycle events at INFO; keep them out unless asked for.
    Ok(match "opentelemetry=warn".parse() {
        Ok(quiet) if !directives.contains("opentelemetry") => filter.add_directive(quiet),
        _ => filter,
    })
}

/// Which spans become OpenTelemetry spans: INFO and above, except the exporter's own
/// transport stack (exporting those would feed back into the exporter).
///
/// Independent of the log filter, so trace context propagates even when logs are quiet.
fn otel_span_filter() -> Targets {
    [
        "h2",
        "hyper",
        "hyper_util",
        "tonic",
        "tower",
        "opentelemetry",
    ]
    .into_iter()
    .fold(
        Targets::new().with_default(LevelFilter::INFO),
        |targets, target| targets.with_target(target, LevelFilter::OFF),
    )
}

/// The configured OTLP endpoint: config first, then the standard environment variable.
///
/// `Some(None)` means "enabled through the environment": the exporter then reads the
/// standard variables itself (including the per-signal ones).
fn otlp_target(config: &TelemetryConfig) -> Option<Option<String>> {
    match config.otlp_endpoint.as_deref().map(str::trim) {
        Some(endpoint) if !endpoint.is_empty() => Some(Some(endpoint.to_owned())),
        _ => std::env::var(OTLP_ENDPOINT_ENV)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .map(|_| None),
    }
}

fn sampler(ratio: f64) -> Result<Sampler, TelemetryError> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(TelemetryError::InvalidConfig(format!(
            "trace_sample_ratio {ratio} is outside 0.0..=1.0"
        )));
    }
    let root = if ratio >= 1.0 {
        Sampler::AlwaysOn
    } else {
        Sampler::TraceIdRatioBased(ratio)
    };
    Ok(Sampler::ParentBased(Box::new(root)))
}

/// OTLP exporters and the runtime that drives their gRPC channels.
struct Otlp {
    runtime: tokio::runtime::Runtime,
    span_exporter: opentelemetry_otlp::SpanExporter,
    metric_exporter: opentelemetry_otlp::MetricExporter,
}

fn build_otlp(endpoint: Option<&str>) -> Result<Otlp, TelemetryError> {
    // The tonic channel spawns its connection tasks on the runtime current at build time,
    // and the SDK exports from its own threads. A private runtime keeps export independent
    // of the application's runtime flavor (a current-thread runtime blocked in `drop` could
    // otherwise never drive the final export) and lets `init` run outside any runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("posbon-otlp")
        .enable_all()
        .build()
        .map_err(TelemetryError::Runtime)?;
    let exporters = {
        let _entered = runtime.enter();
        build_exporters(endpoint)
    };
    match exporters {
        Ok((span_exporter, metric_exporter)) => Ok(Otlp {
            runtime,
            span_exporter,
            metric_exporter,
        }),
        Err(error) => {
            // Dropping a runtime blocks, which panics inside an async context.
            runtime.shutdown_background();
            Err(error)
        }
    }
}

fn build_exporters(
    endpoint: Option<&str>,
) -> Result<
    (
        opentelemetry_otlp::SpanExporter,
        opentelemetry_otlp::MetricExporter,
    ),
    TelemetryError,
> {
    let mut spans = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    let mut metrics = opentelemetry_otlp::MetricExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        spans = spans.with_endpoint(endpoint);
        metrics = metrics.with_endpoint(endpoint);
    }
    let span_exporter = spans
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            signal: "traces",
            source,
        })?;
    let metric_exporter = metrics
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            signal: "metrics",
            source,
        })?;
    Ok((span_exporter, metric_exporter))
}

/// Installs logging, tracing and metrics export for this process.
///
/// * Logs go to stderr through `tracing`, as JSON lines or text (see
///   [`TelemetryConfig::log_format`]), filtered by `RUST_LOG` or
///   [`TelemetryConfig::log_level`].
/// * Every INFO-or-above span gets an OpenTelemetry span context and the W3C
///   `TraceContextPropagator` is installed globally, so [`inject_context`](crate::inject_context)
///   and [`extract_context`](crate::extract_context) work with or without export.
/// * When [`TelemetryConfig::otlp_endpoint`] or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans
///   (batched) and metrics (periodic) are exported over OTLP/gRPC with a `service.name`
///   resource of `service_name`; [`Metrics`](crate::Metrics) created afterwards are mirrored
///   to OTLP. Otherwise nothing is exported and no exporter threads are started.
///
/// Works inside or outside a tokio runtime. Fails with
/// [`TelemetryError::AlreadyInitialized`] on a second call (or after [`init_for_tests`] or
/// any other global subscriber).
pub fn init(
    service_name: &str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = log_filter(&config.log_level)?;
    let sampler = sampler(config.trace_sample_ratio)?;
    let style = LogStyle::resolve(config.log_format, std::io::stderr().is_terminal());
    let shutdown_timeout = config.shutdown_timeout.to_std();

    if INITIALIZED
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Err(TelemetryError::AlreadyInitialized);
    }
    let result = install(
        service_name,
        config,
        filter,
        sampler,
        style,
        shutdown_timeout,
    );
    if result.is_err() {
        INITIALIZED.store(false, Ordering::SeqCst);
    }
    result
}

fn install(
    service_name: &str,
    config: &TelemetryConfig,
    filter: EnvFilter,
    sampler: Sampler,
    style: LogStyle,
    shutdown_timeout: Duration,
) -> Result<TelemetryGuard, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let target = otlp_target(config);
    let otlp = target
        .as_ref()
        .map(|endpoint| build_otlp(endpoint.as_deref()))
        .transpose()?;

    let mut tracer_builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sampler);
    let mut meter_provider = None;
    let mut runtime = None;
    if let Some(otlp) = otlp {
        tracer_builder = tracer_builder.with_batch_exporter(otlp.span_exporter);
        let mut reader = PeriodicReader::builder(otlp.metric_exporter);
        if let Some(interval) = config.metrics_export_interval {
            reader = reader.with_interval(interval.to_std());
        }
        meter_provider = Some(
            SdkMeterProvider::builder()
                .with_resource(resource)
                .with_reader(reader.build())
                .build(),
        );
        runtime = Some(otlp.runtime);
    }
    let tracer_provider = tracer_builder.build();

    let subscriber = Registry::default()
        .with(log_layer(style, std::io::stderr).with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer_provider.tracer(SCOPE))
                .with_filter(otel_span_filter()),
        );
    if subscriber.try_init().is_err() {
        shutdown_providers(Some(tracer_provider), meter_provider, shutdown_timeout);
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
        return Err(TelemetryError::AlreadyInitialized);
    }

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    if let Some(provider) = &meter_provider {
        opentelemetry::global::set_meter_provider(provider.clone());
        set_otlp_meter(Some(provider.meter(SCOPE)));
    }

    let otlp_endpoint = target.map(|endpoint| {
        endpoint.unwrap_or_else(|| std::env::var(OTLP_ENDPOINT_ENV).unwrap_or_default())
    });
    tracing::info!(
        service = service_name,
        otlp_endpoint = otlp_endpoint.as_deref().unwrap_or("none"),
        "telemetry initialized"
    );
    Ok(TelemetryGuard {
        tracer_provider: Some(tracer_provider),
        meter_provider,
        runtime,
        otlp_endpoint,
        shutdown_timeout,
    })
}

/// Installs a subscriber for tests, once per process; later calls are no-ops.
///
/// Logs go to the libtest capture writer (shown only for failing tests), filtered by
/// `RUST_LOG` or `debug`. Spans get OpenTelemetry contexts and the W3C propagator is
/// installed, so trace-context propagation can be tested; nothing is exported. Does nothing
/// if [`init`] already ran; a later [`init`] returns
/// [`TelemetryError::AlreadyInitialized`].
pub fn init_for_tests() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if INITIALIZED
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let filter =
            log_filter("debug").unwrap_or_else(|_| EnvFilter::new(LevelFilter::DEBUG.to_string()));
        let tracer_provider = SdkTracerProvider::builder().build();
        let installed = Registry::default()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer_provider.tracer(SCOPE))
                    .with_filter(otel_span_filter()),
            )
            .try_init()
            .is_ok();
        if installed {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            opentelemetry::global::set_tracer_provider(tracer_provider);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Self;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// Runs `emit` under the same layers as `init` (log layer + OpenTelemetry layer, no
    /// export), capturing the log output.
    fn capture<R>(style: LogStyle, emit: impl FnOnce() -> R) -> (String, R) {
        let out = Captured::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = Registry::default()
            .with(log_layer(style, out.clone()).with_filter(EnvFilter::new("info")))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("test"))
                    .with_filter(otel_span_filter()),
            );
        let result = tracing::subscriber::with_default(subscriber, emit);
        (
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            result,
        )
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let (text, trace_id) = capture(LogStyle::Json, || {
            let span = tracing::info_span!("ingest", topic = "events");
            let _entered = span.enter();
            tracing::info!(count = 3, "batch stored");
            tracing::warn!(reason = "quote \" and\nnewline", "odd input");
            tracing::debug!("filtered out");
            drop(_entered);
            tracing::info!("outside any span");
            span.context().span().span_context().trace_id()
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        for line in &lines {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is json");
        }
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "batch stored");
        assert_eq!(first["count"], 3);
        assert_eq!(first["span"]["name"], "ingest");
        assert_eq!(first["span"]["topic"], "events");
        assert!(first["timestamp"].is_string());
        assert_eq!(first["trace_id"], trace_id.to_string());
        assert_eq!(first["span_id"].as_str().map(str::len), Some(16));
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["reason"], "quote \" and\nnewline");
        assert_eq!(second["trace_id"], trace_id.to_string());
        let third: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(third["message"], "outside any span");
        assert!(third.get("trace_id").is_none());
    }

    #[test]
    fn otel_spans_do_not_depend_on_the_log_filter() {
        let out = Captured::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = Registry::default()
            .with(log_layer(LogStyle::Json, out.clone()).with_filter(EnvFilter::new("error")))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("test"))
                    .with_filter(otel_span_filter()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("quiet");
            assert!(span.context().span().span_context().is_valid());
            let noisy = tracing::debug_span!("too_detailed");
            assert!(!noisy.context().span().span_context().is_valid());
            let _entered = span.enter();
            tracing::error!("shown");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn text_logs_are_not_json() {
        let (text, ()) = capture(LogStyle::Text { ansi: false }, || {
            tracing::info!(count = 3, "batch stored");
        });
        assert!(text.contains("INFO"), "{text}");
        assert!(text.contains("batch stored count=3"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }

    #[test]
    fn log_style_resolution() {
        assert_eq!(LogStyle::resolve(LogFormat::Auto, false), LogStyle::Json);
        assert_eq!(
            LogStyle::resolve(LogFormat::Auto, true),
            LogStyle::Text { ansi: true }
        );
        assert_eq!(LogStyle::resolve(LogFormat::Json, true), LogStyle::Json);
        assert_eq!(
            LogStyle::resolve(LogFormat::Text, false),
            LogStyle::Text { ansi: false }
        );
    }

    #[test]
    fn invalid_config_is_rejected_before_installing() {
        assert!(matches!(
            sampler(1.5),
            Err(TelemetryError::InvalidConfig(_))
        ));
        assert!(sampler(0.25).is_ok());
        assert!(EnvFilter::try_new("[[[").is_err());
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let config: TelemetryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, TelemetryConfig::default());
        let config: TelemetryConfig = serde_json::from_str(
            r#"{"log_format":"text","log_level":"debug","trace_sample_ratio":0.5}"#,
        )
        .unwrap();
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.log_level, "debug");
        assert!(serde_json::from_str::<TelemetryConfig>(r#"{"log_formatt":"text"}"#).is_err());
        assert!(serde_json::from_str::<TelemetryConfig>(r#"{"log_format":"xml"}"#).is_err());
    }

    #[test]
    fn otlp_target_prefers_config() {
        let config = TelemetryConfig {
            otlp_endpoint: Some(" http://collector:4317 ".to_owned()),
            ..TelemetryConfig::default()
        };
        assert_eq!(
            otlp_target(&config),
            Some(Some("http://collector:4317".to_owned()))
        );
    }

    #[test]
    fn init_after_test_init_fails_without_panicking() {
        init_for_tests();
        init_for_tests();
        let result = init("posbon-test", &TelemetryConfig::default());
        assert!(matches!(result, Err(TelemetryError::AlreadyInitialized)));
    }
}
