//! Message headers: an ordered list of name/value pairs, with the names Posbon uses.

use std::sync::Arc;

use crate::error::{BusError, BusResult};

/// The JetStream de-duplication id: the event id, or the escalation id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// W3C trace context: the trace and parent span.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace context: vendor state, present when non-empty.
pub const TRACESTATE: &str = "tracestate";
/// DLQ: the stable snake_case code of why the message was rejected (e.g. `malformed_json`,
/// `out_of_range`, `unknown_kind`); several codes are joined with `,`.
pub const REJECT_CODE: &str = "Posbon-Reject-Code";
/// DLQ: a human-readable reason, naming the field (e.g. `location.lat: 91.2 is out of range
/// -90..90`); several problems are joined with `; `.
pub const REJECT_REASON: &str = "Posbon-Reject-Reason";
/// DLQ: the subject the rejected message arrived on (`posbon.ingest.<kind>`), or `http` for
/// the HTTP endpoint.
pub const ORIGINAL_SUBJECT: &str = "Posbon-Original-Subject";
/// DLQ: the position of the rejected item in the producer's body (0-based: 0 for a single
/// event, the array or NDJSON index otherwise).
pub const BATCH_INDEX: &str = "Posbon-Batch-Index";
/// DLQ: the service that rejected the message (e.g. `posbon-ingest`).
pub const REJECTED_BY: &str = "Posbon-Rejected-By";
/// DLQ: what was taken out of the kept payload, when something was: a fraud
/// flag's `account_ref` is pseudonymised (`account_ref pseudonymised`), or a
/// payload that mentions one but cannot be parsed is not kept
/// (`payload removed: ...`).
pub const REDACTED: &str = "Posbon-Redacted";
/// DEAD_LETTER: the rejected payload was longer than a dead letter keeps; the
/// value is its full length in bytes, the payload holds its start.
pub const TRUNCATED: &str = "Posbon-Truncated";
/// EVENTS: how the event is encoded: `application/vnd.posbon.event+compact` (the compact
/// binary form, what ingest publishes by default) or `application/json` (also when the
/// header is absent); see `posbon_model::EventEncoding`.
pub const CONTENT_TYPE: &str = "Content-Type";
/// ALERTS: what the message is: `opened` (an escalation, from the escalator; also when the
/// header is absent) or `updated` (an escalation record after a lifecycle step or a
/// re-notification, from the API).
pub const ALERT_TYPE: &str = "Posbon-Alert-Type";

/// Message headers as an ordered list of `(name, value)` pairs.
///
/// Lookups ignore ASCII case. Order is kept by the in-memory bus but not by NATS (which
/// groups values by name), so do not depend on it across names. Names are visible ASCII
/// without `:`; values must not contain CR or LF ([`Headers::validate`], checked on publish).
///
/// ```
/// use posbon_bus::Headers;
///
/// let headers = Headers::new()
///     .with_msg_id("evt-1")
///     .with("Posbon-Reject-Code", "malformed_json");
/// assert_eq!(headers.msg_id(), Some("evt-1"));
/// assert_eq!(headers.get("nats-msg-id"), Some("evt-1"));
/// ```
///
/// Cloning is cheap: the pairs are shared until one of the copies changes
/// (a bus hands each delivery the headers it stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pairs: Arc<Vec<(String, String)>>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// No headers, with room for `capacity` pairs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            pairs: Arc::new(Vec::with_capacity(capacity)),
        }
    }

    /// Sets the de-duplication id ([`MSG_ID`]), replacing any previous one.
    pub fn with_msg_id(mut self, id: impl Into<String>) -> Self {
        self.insert(MSG_ID, id);
        self
    }

    /// Adds the W3C trace context of the current `tracing` span (see
    /// [`Headers::with_trace_context_of`]).
    pub fn with_trace_context(self) -> Self {
        self.with_trace_context_of(&tracing::Span::current())
    }

    /// Adds the W3C trace context (`traceparent`, `tracestate`) of `span`, replacing any
    /// previous one. Adds nothing when the span has no OpenTelemetry context (telemetry not
    /// initialized, or the span is disabled).
    pub fn with_trace_context_of(mut self, span: &tracing::Span) -> Self {
        let injected = posbon_telemetry::inject_context(span);
        if !injected.is_empty() {
            self.remove(TRACEPARENT);
            self.remove(TRACESTATE);
            Arc::make_mut(&mut self.pairs).extend(injected);
        }
        self
    }

    /// Appends a pair (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.append(name, value);
        self
    }

    /// Appends a pair, keeping earlier values of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        Arc::make_mut(&mut self.pairs).push((name.into(), value.into()));
    }

    /// Sets `name` to `value`, removing earlier values of that name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        Arc::make_mut(&mut self.pairs).push((name, value.into()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        if self
            .pairs
            .iter()
            .any(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            Arc::make_mut(&mut self.pairs).retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        }
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The de-duplication id ([`MSG_ID`]).
    pub fn msg_id(&self) -> Option<&str> {
        self.get(MSG_ID)
    }

    /// The remote trace context carried by these headers, to parent a consumer span with
    /// [`posbon_telemetry::OpenTelemetrySpanExt::set_parent`]. Empty when there is none.
    pub fn trace_context(&self) -> posbon_telemetry::opentelemetry::Context {
        posbon_telemetry::extract_context(self.iter())
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Bytes the pairs take on the wire, about: each name and value with its
    /// `: ` and line end.
    pub fn wire_size(&self) -> usize {
        self.iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Checks that every name is non-empty visible ASCII without `:` and no value contains
    /// CR or LF, as the NATS protocol requires.
    pub fn validate(&self) -> BusResult<()> {
        for (name, value) in self.pairs.iter() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(BusError::invalid(format!("invalid header name {name:?}")));
            }
            if value.contains(['\r', '\n']) {
                return Err(BusError::invalid(format!(
                    "invalid value of header {name}: contains a line break"
                )));
            }
        }
        Ok(())
    }
}

impl From<Vec<(String, String)>> for Headers {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self {
            pairs: Arc::new(pairs),
        }
    }
}

impl From<Headers> for Vec<(String, String)> {
    fn from(headers: Headers) -> Self {
        Arc::unwrap_or_clone(headers.pairs)
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self {
            pairs: Arc::new(
                iter.into_iter()
                    .map(|(name, value)| (name.into(), value.into()))
                    .collect(),
            ),
        }
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        fn pair(entry: &(String, String)) -> (&str, &str) {
            (entry.0.as_str(), entry.1.as_str())
        }
        self.pairs.iter().map(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_and_append_keeps() {
        let mut headers = Headers::new().with("A", "1").with("a", "2");
        assert_eq!(headers.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
        headers.insert("A", "3");
        assert_eq!(headers.get_all("a").collect::<Vec<_>>(), ["3"]);
        let headers = headers.with_msg_id("x").with_msg_id("y");
        assert_eq!(headers.msg_id(), Some("y"));
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn validation() {
        assert!(
            Headers::new()
                .with("Ok-Name", "any value")
                .validate()
                .is_ok()
        );
        assert!(Headers::new().with("bad:name", "v").validate().is_err());
        assert!(Headers::new().with("bad name", "v").validate().is_err());
        assert!(Headers::new().with("", "v").validate().is_err());
        assert!(Headers::new().with("n", "a\r\nb").validate().is_err());
    }

    #[test]
    fn trace_context_round_trip() {
        use posbon_telemetry::opentelemetry::trace::TraceContextExt as _;
        posbon_telemetry::init_for_tests();
        let span = tracing::info_span!("producer");
        let headers = Headers::new().with_trace_context_of(&span);
        assert!(headers.get(TRACEPARENT).is_some());
        let cx = headers.trace_context();
        assert!(cx.span().span_context().is_valid());
        // Injecting again replaces rather than duplicates.
        let headers = headers.with_trace_context_of(&span);
        assert_eq!(headers.get_all(TRACEPARENT).count(), 1);
    }
}
