//! End-to-end OTLP export: `init` with an endpoint pointing at an in-process gRPC
//! collector (the generated `opentelemetry-proto` tonic services), then check what arrives.
//!
//! One test per binary because `init` installs process-global state.

use posbon_model::Span;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use posbon_telemetry::{Metrics, OpenTelemetrySpanExt as _, TelemetryConfig, TelemetryError};
use tonic::codec::CompressionEncoding;

#[derive(Clone, Default)]
struct Collector {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces
            .lock()
            .expect("collector lock")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics
            .lock()
            .expect("collector lock")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn string_attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(value) => Some(value.as_str()),
            _ => None,
        }
    })
}

#[test]
fn spans_and_metrics_reach_the_collector() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let collector = Collector::default();
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    server.spawn(
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(collector.clone())
                    .accept_compressed(CompressionEncoding::Gzip),
            )
            .add_service(
                MetricsServiceServer::new(collector.clone())
                    .accept_compressed(CompressionEncoding::Gzip),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let config = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{addr}")),
        // Only the final export at shutdown should carry metrics.
        metrics_export_interval: Some(Span::from_minutes(10)),
        ..TelemetryConfig::default()
    };
    let guard = posbon_telemetry::init("posbon-otlp-test", &config).unwrap();
    assert!(guard.otlp_enabled());
    assert!(matches!(
        posbon_telemetry::init("posbon-otlp-test", &config),
        Err(TelemetryError::AlreadyInitialized)
    ));

    let metrics = Metrics::new();
    assert!(metrics.otlp_enabled());
    metrics
        .counter_vec(
            "posbon_events_ingested_total",
            "Events ingested",
            &["topic"],
        )
        .unwrap()
        .with_labels(&["positions"])
        .inc_by(5);
    metrics
        .gauge("posbon_consumer_lag_messages", "Lag")
        .unwrap()
        .set(7);
    let latency = metrics
        .histogram("posbon_process_duration_seconds", "Latency", &[0.1, 1.0])
        .unwrap();
    latency.observe(0.05);
    latency.observe(0.5);

    let (trace_id, span_id) = {
        let span = tracing::info_span!("process_batch", topic = "positions");
        let _entered = span.enter();
        tracing::info!("inside the span");
        let cx = span.context();
        let span_context = cx.span().span_context().clone();
        (span_context.trace_id(), span_context.span_id())
    };

    let started = Instant::now();
    drop(guard);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );

    // Traces: the span arrives with its ids and the service.name resource.
    let traces = collector.traces.lock().unwrap().clone();
    let resource_spans = traces
        .iter()
        .flat_map(|request| &request.resource_spans)
        .find(|rs| {
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .any(|span| span.name == "process_batch")
        })
        .expect("process_batch span exported");
    let resource = resource_spans.resource.as_ref().expect("resource");
    assert_eq!(
        string_attr(&resource.attributes, "service.name"),
        Some("posbon-otlp-test")
    );
    let span = resource_spans
        .scope_spans
        .iter()
        .flat_map(|ss| &ss.spans)
        .find(|span| span.name == "process_batch")
        .unwrap();
    assert_eq!(span.trace_id, trace_id.to_bytes().to_vec());
    assert_eq!(span.span_id, span_id.to_bytes().to_vec());
    assert_eq!(string_attr(&span.attributes, "topic"), Some("positions"));

    // Metrics: the final snapshot mirrors the Prometheus registry.
    let requests = collector.metrics.lock().unwrap().clone();
    let resource_metrics: Vec<_> = requests.iter().flat_map(|r| &r.resource_metrics).collect();
    assert!(!resource_metrics.is_empty(), "metrics exported");
    let resource = resource_metrics[0].resource.as_ref().expect("resource");
    assert_eq!(
        string_attr(&resource.attributes, "service.name"),
        Some("posbon-otlp-test")
    );
    let exported: Vec<_> = resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .collect();
    let find = |name: &str| {
        exported
            .iter()
            .rev()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("metric {name} exported"))
    };

    match find("posbon_events_ingested").data.as_ref().unwrap() {
        metric::Data::Sum(sum) => {
            assert!(sum.is_monotonic);
            let point = &sum.data_points[0];
            assert_eq!(point.value, Some(number_data_point::Value::AsInt(5)));
            assert_eq!(string_attr(&point.attributes, "topic"), Some("positions"));
        }
        other => panic!("counter exported as {other:?}"),
    }
    match find("posbon_consumer_lag_messages").data.as_ref().unwrap() {
        metric::Data::Gauge(gauge) => {
            assert_eq!(
                gauge.data_points[0].value,
                Some(number_data_point::Value::AsInt(7))
            );
        }
        other => panic!("gauge exported as {other:?}"),
    }
    match find("posbon_process_duration_seconds")
        .data
        .as_ref()
        .unwrap()
    {
        metric::Data::Histogram(histogram) => {
            let point = &histogram.data_points[0];
            assert_eq!(point.count, 2);
            assert_eq!(point.explicit_bounds, vec![0.1, 1.0]);
            assert_eq!(point.bucket_counts, vec![1, 1, 0]);
        }
        other => panic!("histogram exported as {other:?}"),
    }

    // The Prometheus side saw the same values.
    let text = metrics.render();
    assert!(
        text.contains("posbon_events_ingested_total{topic=\"positions\"} 5"),
        "{text}"
    );
}
