//! W3C trace-context propagation over plain key/value headers (e.g. NATS message headers).

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Serializes the trace context of `span` into header pairs (`traceparent`, and
/// `tracestate` when non-empty) using the globally installed propagator.
///
/// Returns an empty vector when the span is disabled or telemetry was not initialized
/// (no propagator and no OpenTelemetry layer installed).
///
/// ```
/// # posbon_telemetry::init_for_tests();
/// let span = tracing::info_span!("publish");
/// let headers = posbon_telemetry::inject_context(&span);
/// assert!(headers.iter().any(|(k, _)| k == "traceparent"));
/// ```
pub fn inject_context(span: &tracing::Span) -> Vec<(String, String)> {
    let cx = span.context();
    let mut headers = Vec::with_capacity(2);
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut VecInjector(&mut headers));
    });
    headers
}

/// Rebuilds a remote trace context from header pairs using the globally installed
/// propagator. Header names are matched case-insensitively.
///
/// Attach it to a span with
/// [`OpenTelemetrySpanExt::set_parent`](crate::OpenTelemetrySpanExt::set_parent) so the
/// span continues the remote trace. When no valid context is present the returned context
/// is empty and the span starts a new trace.
///
/// ```
/// use posbon_telemetry::OpenTelemetrySpanExt as _;
/// # posbon_telemetry::init_for_tests();
/// let headers = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")];
/// let span = tracing::info_span!("handle");
/// let _ = span.set_parent(posbon_telemetry::extract_context(headers));
/// ```
pub fn extract_context<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Context {
    let extractor = PairExtractor(headers.into_iter().collect());
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&extractor))
}

struct VecInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for VecInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

struct PairExtractor<'a>(Vec<(&'a str, &'a str)>);

impl Extractor for PairExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| *value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;

    #[test]
    fn trace_id_survives_inject_extract() {
        crate::init_for_tests();
        let span = tracing::info_span!("producer");
        let sent = span.context().span().span_context().clone();
        assert!(sent.is_valid(), "span has an otel context");

        let headers = inject_context(&span);
        let traceparent = headers
            .iter()
            .find(|(k, _)| k == "traceparent")
            .map(|(_, v)| v.clone())
            .expect("traceparent injected");
        assert!(traceparent.contains(&sent.trace_id().to_string()));

        // Transport may change header case.
        let received = extract_context(headers.iter().map(|(k, v)| {
            (
                if k == "traceparent" {
                    "TraceParent"
                } else {
                    k.as_str()
                },
                v.as_str(),
            )
        }));
        let remote = received.span().span_context().clone();
        assert!(remote.is_remote());
        assert_eq!(remote.trace_id(), sent.trace_id());
        assert_eq!(remote.span_id(), sent.span_id());
        assert!(remote.is_sampled());

        // A consumer span parented on the remote context joins the same trace.
        let consumer = tracing::info_span!("consumer");
        consumer
            .set_parent(received)
            .expect("parent can be set before the span starts");
        assert_eq!(
            consumer.context().span().span_context().trace_id(),
            sent.trace_id()
        );
    }

    #[test]
    fn extract_without_headers_is_empty() {
        crate::init_for_tests();
        let cx = extract_context(std::iter::empty());
        assert!(!cx.span().span_context().is_valid());
        let cx = extract_context([("traceparent", "garbage")]);
        assert!(!cx.span().span_context().is_valid());
    }
}
