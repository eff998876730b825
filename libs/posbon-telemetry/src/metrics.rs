//! Prometheus metrics registry with optional mirroring to OTLP.
//!
//! One file (1046 lines, 278 of them tests) because the registry, the series table (`Core`)
//! and the handle types (`CounterVec`, `Histogram`, ...) use each other's private fields;
//! apart, `Core` and the handles' fields would have to become `pub(crate)`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use prometheus_client::encoding::{
    EncodeLabel as _, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram as PromHistogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::error::TelemetryError;

/// `Content-Type` of [`Metrics::render`] output (Prometheus text format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `Content-Type` of [`Metrics::render_openmetrics`] output (OpenMetrics text 1.0.0).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram bucket bounds, in seconds, suited to request and processing latencies.
pub const DEFAULT_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Most label-value combinations one metric keeps; further new combinations are all
/// recorded in a single series whose label values are [`OVERFLOW_LABEL_VALUE`].
pub const MAX_SERIES_PER_METRIC: usize = 1_000;

/// Label value of the catch-all series used once a metric reaches
/// [`MAX_SERIES_PER_METRIC`].
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// Shared metrics registry: register instruments once at startup, record through the
/// returned handles, and serve [`Metrics::render`] on `/metrics`.
///
/// Cloning is cheap (an `Arc`); all clones share one registry. Instruments registered on a
/// `Metrics` created after [`init`](crate::init) enabled OTLP are also exported over OTLP.
///
/// Naming: `posbon_<thing>_<unit>` for gauges and histograms (e.g.
/// `posbon_process_latency_seconds`), `posbon_<thing>_<unit>_total` for counters (e.g.
/// `posbon_events_ingested_total`). Label names are fixed at registration; keep label
/// values bounded (no ids, no free text).
///
/// Create one per process and pass clones around: separate registries would expose (and
/// mirror to OTLP) the same names twice.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    meter: Option<Meter>,
}

struct State {
    registry: Registry,
    registered: HashMap<String, Registered>,
}

/// What was registered under a name, to make identical re-registration idempotent.
#[derive(Clone)]
enum Registered {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
}

impl Registered {
    fn label_names(&self) -> &'static [&'static str] {
        match self {
            Self::Counter(vec) => vec.core.label_names,
            Self::Gauge(vec) => vec.core.label_names,
            Self::Histogram(vec) => vec.core.label_names,
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Metrics")
            .field("metrics", &state.registered.len())
            .field("otlp", &self.inner.meter.is_some())
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates an empty registry. Instruments are mirrored to OTLP when [`init`](crate::init)
    /// enabled OTLP export before this call.
    pub fn new() -> Self {
        Self::build(crate::init::otlp_meter())
    }

    /// Creates an empty registry whose instruments are also recorded through `meter`
    /// (e.g. a meter of your own `SdkMeterProvider`).
    pub fn with_meter(meter: Meter) -> Self {
        Self::build(Some(meter))
    }

    fn build(meter: Option<Meter>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    registry: Registry::default(),
                    registered: HashMap::new(),
                }),
                meter,
            }),
        }
    }

    /// Whether instruments of this registry are mirrored to OTLP.
    pub fn otlp_enabled(&self) -> bool {
        self.inner.meter.is_some()
    }

    /// Registers a counter without labels. `name` must end in `_total`.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, TelemetryError> {
        Ok(self.counter_vec(name, help, &[])?.with_labels(&[]))
    }

    /// Registers a counter family with the given label names. `name` must end in `_total`.
    ///
    /// Registering the same name again with the same labels returns the existing family.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        label_names: &'static [&'static str],
    ) -> Result<CounterVec, TelemetryError> {
        validate(name, label_names, Kind::Counter)?;
        let base = name.strip_suffix("_total").unwrap_or(name);
        self.register(name, label_names, |state, meter| {
            let core = Core::new(name, label_names, meter.is_some(), PromCounter::default);
            // prometheus-client appends `_total` to counters itself.
            state
                .registry
                .register(base, help, Exposed(Arc::clone(&core)));
            if let Some(meter) = meter {
                let observed = Arc::clone(&core);
                // OpenTelemetry names counters without `_total`; Prometheus-compatible
                // backends add it back when translating the monotonic sum.
                let _ = meter
                    .u64_observable_counter(base.to_owned())
                    .with_description(help.to_owned())
                    .with_callback(move |observer| {
                        observed.for_each(|metric, attributes| {
                            observer.observe(metric.get(), attributes);
                        });
                    })
                    .build();
            }
            Registered::Counter(CounterVec { core })
        })
        .and_then(|registered| match registered {
            Registered::Counter(vec) => Ok(vec),
            _ => Err(TelemetryError::MetricConflict(name.to_owned())),
        })
    }

    /// Registers a gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, TelemetryError> {
        Ok(self.gauge_vec(name, help, &[])?.with_labels(&[]))
    }

    /// Registers a gauge family with the given label names.
    ///
    /// Registering the same name again with the same labels returns the existing family.
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        label_names: &'static [&'static str],
    ) -> Result<GaugeVec, TelemetryError> {
        validate(name, label_names, Kind::Gauge)?;
        self.register(name, label_names, |state, meter| {
            let core = Core::new(name, label_names, meter.is_some(), PromGauge::default);
            state
                .registry
                .register(name, help, Exposed(Arc::clone(&core)));
            if let Some(meter) = meter {
                let observed = Arc::clone(&core);
                let _ = meter
                    .i64_observable_gauge(name.to_owned())
                    .with_description(help.to_owned())
                    .with_callback(move |observer| {
                        observed.for_each(|metric, attributes| {
                            observer.observe(metric.get(), attributes);
                        });
                    })
                    .build();
            }
            Registered::Gauge(GaugeVec { core })
        })
        .and_then(|registered| match registered {
            Registered::Gauge(vec) => Ok(vec),
            _ => Err(TelemetryError::MetricConflict(name.to_owned())),
        })
    }

    /// Registers a histogram without labels with the given upper bucket bounds
    /// (e.g. [`DEFAULT_LATENCY_BUCKETS`]; `+Inf` is implicit).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, TelemetryError> {
        Ok(self
            .histogram_vec(name, help, buckets, &[])?
            .with_labels(&[]))
    }

    /// Registers a histogram family with the given bucket bounds and label names.
    ///
    /// Registering the same name again with the same buckets and labels returns the
    /// existing family.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        label_names: &'static [&'static str],
    ) -> Result<HistogramVec, TelemetryError> {
        validate(name, label_names, Kind::Histogram)?;
        let valid_buckets = !buckets.is_empty()
            && buckets.iter().all(|bound| bound.is_finite())
            && buckets.windows(2).all(|pair| pair[0] < pair[1]);
        if !valid_buckets {
            return Err(TelemetryError::InvalidBuckets(name.to_owned()));
        }
        let buckets: Arc<[f64]> = buckets.into();
        let vec = self.register(name, label_names, |state, meter| {
            let bounds = Arc::clone(&buckets);
            let core = Core::new(name, label_names, meter.is_some(), move || {
                PromHistogram::new(bounds.iter().copied())
            });
            state
                .registry
                .register(name, help, Exposed(Arc::clone(&core)));
            let otel = meter.map(|meter| {
                meter
                    .f64_histogram(name.to_owned())
                    .with_description(help.to_owned())
                    .with_boundaries(buckets.to_vec())
                    .build()
            });
            Registered::Histogram(HistogramVec {
                core,
                otel,
                buckets: Arc::clone(&buckets),
            })
        })?;
        match vec {
            Registered::Histogram(vec) if vec.buckets == buckets => Ok(vec),
            _ => Err(TelemetryError::MetricConflict(name.to_owned())),
        }
    }

    /// Registers under `name`, or returns what is already registered there when its label
    /// names match (the caller checks the kind and buckets).
    fn register(
        &self,
        name: &str,
        label_names: &[&str],
        create: impl FnOnce(&mut State, Option<&Meter>) -> Registered,
    ) -> Result<Registered, TelemetryError> {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        if let Some(existing) = state.registered.get(name) {
            return if existing.label_names() == label_names {
                Ok(existing.clone())
            } else {
                Err(TelemetryError::MetricConflict(name.to_owned()))
            };
        }
        let registered = create(state, self.inner.meter.as_ref());
        state.registered.insert(name.to_owned(), registered.clone());
        Ok(registered)
    }

    /// Gives access to the underlying `prometheus-client` registry, e.g. to register a
    /// custom collector. Metrics added this way are rendered but not mirrored to OTLP, and
    /// their names are not checked against those registered through `Metrics`.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut state.registry)
    }

    /// Renders all metrics in the Prometheus text exposition format (version 0.0.4); serve
    /// it with [`PROMETHEUS_CONTENT_TYPE`].
    pub fn render(&self) -> String {
        self.encode(prometheus_client::encoding::prometheus_text::encode)
    }

    /// Renders all metrics in the OpenMetrics text format (ends with `# EOF`); serve it with
    /// [`OPENMETRICS_CONTENT_TYPE`].
    pub fn render_openmetrics(&self) -> String {
        self.encode(prometheus_client::encoding::text::encode)
    }

    fn encode(&self, encode: fn(&mut String, &Registry) -> fmt::Result) -> String {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        if encode(&mut out, &state.registry).is_err() {
            tracing::warn!("metrics encoding failed, output truncated");
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Checks a metric name and its label names.
fn validate(name: &str, label_names: &[&str], kind: Kind) -> Result<(), TelemetryError> {
    let mut chars = name.chars();
    let valid = name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(invalid_name(
            name,
            "use ascii letters, digits and underscores, starting with a letter",
        ));
    }
    match (kind, name.strip_suffix("_total")) {
        (Kind::Counter, None | Some("")) => {
            return Err(invalid_name(name, "counter names must end in _total"));
        }
        (Kind::Gauge | Kind::Histogram, Some(_)) => {
            return Err(invalid_name(name, "only counter names may end in _total"));
        }
        _ => {}
    }
    for (index, label) in label_names.iter().enumerate() {
        let mut chars = label.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !label.starts_with("__")
            && !(kind == Kind::Histogram && *label == "le")
            && !label_names[..index].contains(label);
        if !valid {
            return Err(TelemetryError::InvalidLabelName {
                metric: name.to_owned(),
                label: (*label).to_owned(),
            });
        }
    }
    Ok(())
}

fn invalid_name(name: &str, reason: &'static str) -> TelemetryError {
    TelemetryError::InvalidMetricName {
        name: name.to_owned(),
        reason,
    }
}

/// One label-value combination of a metric family.
struct Series<M> {
    values: Box<[Box<str>]>,
    metric: M,
    /// The same labels as OpenTelemetry attributes; empty unless mirrored to OTLP.
    attributes: Arc<[KeyValue]>,
}

#[derive(Default)]
struct SeriesSet<M> {
    /// In creation order, so the exposition output is stable.
    list: Vec<Series<M>>,
    /// Hash of the label values to indexes into `list`.
    index: HashMap<u64, Vec<usize>>,
}

/// State shared by a family, its handles, the registry and the OTLP callback.
struct Core<M> {
    name: String,
    label_names: &'static [&'static str],
    mirrored: bool,
    new_metric: Box<dyn Fn() -> M + Send + Sync>,
    series: RwLock<SeriesSet<M>>,
    overflowed: AtomicBool,
}

impl<M: Clone> Core<M> {
    fn new(
        name: &str,
        label_names: &'static [&'static str],
        mirrored: bool,
        new_metric: impl Fn() -> M + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            label_names,
            mirrored,
            new_metric: Box::new(new_metric),
            series: RwLock::new(SeriesSet {
                list: Vec::new(),
                index: HashMap::new(),
            }),
            overflowed: AtomicBool::new(false),
        })
    }

    fn hash(values: &[&str]) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        for value in values {
            value.hash(&mut hasher);
        }
        hasher.finish()
    }

    fn find(set: &SeriesSet<M>, hash: u64, values: &[&str]) -> Option<(M, Arc<[KeyValue]>)> {
        set.index.get(&hash)?.iter().find_map(|&index| {
            let series = &set.list[index];
            series
                .values
                .iter()
                .map(|value| &**value)
                .eq(values.iter().copied())
                .then(|| (series.metric.clone(), Arc::clone(&series.attributes)))
        })
    }

    /// The series for `values`, created on first use. Allocation-free when it exists.
    fn get_or_create(&self, values: &[&str]) -> (M, Arc<[KeyValue]>) {
        debug_assert_eq!(
            values.len(),
            self.label_names.len(),
            "label values must match the registered label names {:?}",
            self.label_names
        );
        if values.len() != self.label_names.len() {
            // Release builds: pad or truncate rather than panic.
            let fixed: Vec<&str> = (0..self.label_names.len())
                .map(|index| values.get(index).copied().unwrap_or(""))
                .collect();
            return self.get_or_create(&fixed);
        }
        let hash = Self::hash(values);
        {
            let set = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = Self::find(&set, hash, values) {
                return found;
            }
        }
        let mut set = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = Self::find(&set, hash, values) {
            return found;
        }
        if set.list.len() >= MAX_SERIES_PER_METRIC {
            let overflow = vec![OVERFLOW_LABEL_VALUE; values.len()];
            let overflow_hash = Self::hash(&overflow);
            if let Some(found) = Self::find(&set, overflow_hash, &overflow) {
                return found;
            }
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    metric = %self.name,
                    labels = ?self.label_names,
                    max_series = MAX_SERIES_PER_METRIC,
                    "metric label cardinality limit reached, using overflow series"
                );
            }
            return Self::insert(&mut set, overflow_hash, &overflow, self);
        }
        Self::insert(&mut set, hash, values, self)
    }

    fn insert(
        set: &mut SeriesSet<M>,
        hash: u64,
        values: &[&str],
        core: &Self,
    ) -> (M, Arc<[KeyValue]>) {
        let attributes: Arc<[KeyValue]> = if core.mirrored {
            core.label_names
                .iter()
                .zip(values)
                .map(|(name, value)| KeyValue::new(*name, (*value).to_owned()))
                .collect()
        } else {
            Arc::new([])
        };
        let metric = (core.new_metric)();
        set.index.entry(hash).or_default().push(set.list.len());
        set.list.push(Series {
            values: values.iter().map(|value| Box::from(*value)).collect(),
            metric: metric.clone(),
            attributes: Arc::clone(&attributes),
        });
        (metric, attributes)
    }

    fn for_each(&self, mut f: impl FnMut(&M, &[KeyValue])) {
        let set = self.series.read().unwrap_or_else(PoisonError::into_inner);
        for series in &set.list {
            f(&series.metric, &series.attributes);
        }
    }
}

/// Registry adapter encoding every series of a [`Core`].
struct Exposed<M>(Arc<Core<M>>);

impl<M> fmt::Debug for Exposed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposed")
            .field("labels", &self.0.label_names)
            .finish_non_exhaustive()
    }
}

impl<M> EncodeMetric for Exposed<M>
where
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let set = self.0.series.read().unwrap_or_else(PoisonError::into_inner);
        for series in &set.list {
            let labels = SeriesLabels {
                names: self.0.label_names,
                values: &series.values,
            };
            series.metric.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

struct SeriesLabels<'a> {
    names: &'static [&'static str],
    values: &'a [Box<str>],
}

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        for (name, value) in self.names.iter().zip(self.values) {
            (*name, &**value).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A counter family (labels fixed at registration); see [`Metrics::counter_vec`].
#[derive(Clone)]
pub struct CounterVec {
    core: Arc<Core<PromCounter>>,
}

impl fmt::Debug for CounterVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CounterVec")
            .field("labels", &self.core.label_names)
            .finish_non_exhaustive()
    }
}

impl CounterVec {
    /// The counter for these label values (in registration order), created at zero on
    /// first use. Keep the handle for hot paths; the lookup itself does not allocate once
    /// the series exists.
    pub fn with_labels(&self, values: &[&str]) -> Counter {
        Counter {
            inner: self.core.get_or_create(values).0,
        }
    }
}

/// A monotonically increasing counter; recording is one atomic add.
#[derive(Clone, Debug)]
pub struct Counter {
    inner: PromCounter,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inner.inc();
    }

    /// Adds `value`.
    pub fn inc_by(&self, value: u64) {
        self.inner.inc_by(value);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.inner.get()
    }
}

/// A gauge family (labels fixed at registration); see [`Metrics::gauge_vec`].
#[derive(Clone)]
pub struct GaugeVec {
    core: Arc<Core<PromGauge>>,
}

impl fmt::Debug for GaugeVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GaugeVec")
            .field("labels", &self.core.label_names)
            .finish_non_exhaustive()
    }
}

impl GaugeVec {
    /// The gauge for these label values (in registration order), created at zero on first
    /// use.
    pub fn with_labels(&self, values: &[&str]) -> Gauge {
        Gauge {
            inner: self.core.get_or_create(values).0,
        }
    }
}

/// A value that goes up and down; recording is one atomic operation.
#[derive(Clone, Debug)]
pub struct Gauge {
    inner: PromGauge,
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: i64) {
        self.inner.set(value);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.inner.inc();
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.inner.dec();
    }

    /// Adds `delta` (may be negative).
    pub fn add(&self, delta: i64) {
        self.inner.inc_by(delta);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.inner.get()
    }
}

/// A histogram family (buckets and labels fixed at registration); see
/// [`Metrics::histogram_vec`].
#[derive(Clone)]
pub struct HistogramVec {
    core: Arc<Core<PromHistogram>>,
    otel: Option<opentelemetry::metrics::Histogram<f64>>,
    buckets: Arc<[f64]>,
}

impl fmt::Debug for HistogramVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramVec")
            .field("labels", &self.core.label_names)
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

impl HistogramVec {
    /// The histogram for these label values (in registration order), created empty on
    /// first use.
    pub fn with_labels(&self, values: &[&str]) -> Histogram {
        let (inner, attributes) = self.core.get_or_create(values);
        Histogram {
            inner,
            otel: self.otel.clone().map(|histogram| OtelHistogram {
                histogram,
                attributes,
            }),
        }
    }
}

/// A distribution of observed values in fixed buckets.
#[derive(Clone)]
pub struct Histogram {
    inner: PromHistogram,
    otel: Option<OtelHistogram>,
}

#[derive(Clone)]
struct OtelHistogram {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Arc<[KeyValue]>,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("otlp", &self.otel.is_some())
            .finish_non_exhaustive()
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: f64) {
        self.inner.observe(value);
        if let Some(otel) = &self.otel {
            otel.histogram.record(value, &otel.attributes);
        }
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal structural check of the Prometheus text format: every sample line belongs to
    /// a family announced by `# HELP` and `# TYPE`, and has a numeric value.
    fn assert_valid_exposition(text: &str) {
        let mut families: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                families.push((name.to_owned(), String::new()));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                let kind = parts.next().unwrap();
                let last = families.last_mut().expect("TYPE after HELP");
                assert_eq!(last.0, name, "TYPE follows its HELP");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                last.1 = kind.to_owned();
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line}");
                let (series, value) = line.rsplit_once(' ').expect("sample has a value");
                value.parse::<f64>().expect("numeric sample value");
                let name = series.split('{').next().unwrap();
                let (family, kind) = families.last().expect("sample after TYPE");
                let ok = match kind.as_str() {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| name == format!("{family}{suffix}")),
                    _ => name == family,
                };
                assert!(ok, "sample {name} outside its family {family}");
            }
        }
    }

    #[test]
    fn counter_renders_with_labels_and_value() {
        let metrics = Metrics::new();
        let events = metrics
            .counter_vec(
                "posbon_events_ingested_total",
                "Events accepted from the bus",
                &["topic", "result"],
            )
            .unwrap();
        events.with_labels(&["positions", "ok"]).inc_by(3);
        events.with_labels(&["positions", "ok"]).inc();
        events.with_labels(&["alerts", "rejected"]).inc();
        let total = metrics
            .counter("posbon_restarts_total", "Restarts")
            .unwrap();

        let text = metrics.render();
        assert_valid_exposition(&text);
        assert!(
            text.contains("# HELP posbon_events_ingested_total Events accepted from the bus"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE posbon_events_ingested_total counter"),
            "{text}"
        );
        assert!(
            text.contains("posbon_events_ingested_total{topic=\"positions\",result=\"ok\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("posbon_events_ingested_total{topic=\"alerts\",result=\"rejected\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("posbon_restarts_total 0\n"), "{text}");
        assert!(!text.contains("_total_total"), "{text}");
        assert!(!text.contains("# EOF"), "prometheus text has no EOF marker");
        assert_eq!(total.get(), 0);

        let open = metrics.render_openmetrics();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(
            open.contains("# TYPE posbon_events_ingested counter"),
            "{open}"
        );
        assert!(
            open.contains("posbon_events_ingested_total{topic=\"positions\",result=\"ok\"} 4"),
            "{open}"
        );
    }

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let metrics = Metrics::new();
        let latency = metrics
            .histogram_vec(
                "posbon_process_duration_seconds",
                "Processing time",
                &[0.01, 0.1, 1.0],
                &["stage"],
            )
            .unwrap();
        let enrich = latency.with_labels(&["enrich"]);
        enrich.observe(0.0078125);
        enrich.observe(0.0625);
        enrich.observe_duration(Duration::from_millis(500));
        enrich.observe(7.0);

        let text = metrics.render();
        assert_valid_exposition(&text);
        assert!(
            text.contains("# TYPE posbon_process_duration_seconds histogram"),
            "{text}"
        );
        for (le, count) in [("0.01", 1), ("0.1", 2), ("1", 3), ("+Inf", 4)] {
            let line = format!(
                "posbon_process_duration_seconds_bucket{{stage=\"enrich\",le=\"{le}\"}} {count}\n"
            );
            assert!(text.contains(&line), "missing {line} in {text}");
        }
        assert!(
            text.contains("posbon_process_duration_seconds_count{stage=\"enrich\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("posbon_process_duration_seconds_sum{stage=\"enrich\"} 7.5703125\n"),
            "{text}"
        );
    }

    #[test]
    fn gauge_goes_up_and_down() {
        let metrics = Metrics::new();
        let lag = metrics
            .gauge_vec(
                "posbon_consumer_lag_messages",
                "Pending messages",
                &["stream"],
            )
            .unwrap();
        let gauge = lag.with_labels(&["events"]);
        gauge.set(10);
        gauge.inc();
        gauge.add(-4);
        gauge.dec();
        assert_eq!(gauge.get(), 6);
        let text = metrics.render();
        assert_valid_exposition(&text);
        assert!(
            text.contains("# TYPE posbon_consumer_lag_messages gauge"),
            "{text}"
        );
        assert!(
            text.contains("posbon_consumer_lag_messages{stream=\"events\"} 6\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        let vec = metrics
            .counter_vec("posbon_odd_total", "Odd", &["value"])
            .unwrap();
        vec.with_labels(&["a\"b\\c\nd"]).inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"posbon_odd_total{value="a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn handles_share_series() {
        let metrics = Metrics::new();
        let vec = metrics
            .counter_vec("posbon_shared_total", "Shared", &["k"])
            .unwrap();
        let a = vec.with_labels(&["x"]);
        let b = metrics
            .clone()
            .counter_vec("posbon_shared_total", "Shared", &["k"])
            .unwrap()
            .with_labels(&["x"]);
        a.inc();
        b.inc();
        assert_eq!(a.get(), 2);
        assert_eq!(metrics.render().matches("posbon_shared_total{").count(), 1);
    }

    #[test]
    fn registration_rules() {
        let metrics = Metrics::new();
        let invalid = |result: Result<CounterVec, TelemetryError>| {
            matches!(result, Err(TelemetryError::InvalidMetricName { .. }))
        };
        assert!(invalid(metrics.counter_vec(
            "posbon_events",
            "no suffix",
            &[]
        )));
        assert!(invalid(metrics.counter_vec("_total", "empty base", &[])));
        assert!(invalid(metrics.counter_vec(
            "9lives_total",
            "digit first",
            &[]
        )));
        assert!(invalid(metrics.counter_vec(
            "posbon-events_total",
            "dash",
            &[]
        )));
        assert!(matches!(
            metrics.gauge("posbon_queue_total", "gauge with counter suffix"),
            Err(TelemetryError::InvalidMetricName { .. })
        ));
        assert!(matches!(
            metrics.counter_vec("posbon_a_total", "dup label", &["x", "x"]),
            Err(TelemetryError::InvalidLabelName { .. })
        ));
        assert!(matches!(
            metrics.counter_vec("posbon_b_total", "reserved", &["__name"]),
            Err(TelemetryError::InvalidLabelName { .. })
        ));
        assert!(matches!(
            metrics.histogram_vec("posbon_c_seconds", "le", &[1.0], &["le"]),
            Err(TelemetryError::InvalidLabelName { .. })
        ));
        for buckets in [&[][..], &[1.0, 1.0], &[2.0, 1.0], &[1.0, f64::NAN]] {
            assert!(matches!(
                metrics.histogram("posbon_d_seconds", "buckets", buckets),
                Err(TelemetryError::InvalidBuckets(_))
            ));
        }

        metrics.counter_vec("posbon_e_total", "e", &["x"]).unwrap();
        assert!(matches!(
            metrics.counter_vec("posbon_e_total", "e", &["y"]),
            Err(TelemetryError::MetricConflict(_))
        ));
        metrics.gauge("posbon_f", "f").unwrap();
        assert!(matches!(
            metrics.histogram("posbon_f", "f", &[1.0]),
            Err(TelemetryError::MetricConflict(_))
        ));
        metrics.histogram("posbon_g_seconds", "g", &[1.0]).unwrap();
        assert!(matches!(
            metrics.histogram("posbon_g_seconds", "g", &[2.0]),
            Err(TelemetryError::MetricConflict(_))
        ));
        metrics.histogram("posbon_g_seconds", "g", &[1.0]).unwrap();
        assert_valid_exposition(&metrics.render());
    }

    #[test]
    fn cardinality_is_capped() {
        let metrics = Metrics::new();
        let vec = metrics
            .counter_vec("posbon_many_total", "Many", &["id"])
            .unwrap();
        for id in 0..MAX_SERIES_PER_METRIC + 10 {
            vec.with_labels(&[&id.to_string()]).inc();
        }
        let overflow = vec.with_labels(&[OVERFLOW_LABEL_VALUE]);
        assert_eq!(overflow.get(), 10);
        let text = metrics.render();
        assert_eq!(
            text.matches("posbon_many_total{").count(),
            MAX_SERIES_PER_METRIC + 1
        );
        // Existing series keep working past the cap.
        vec.with_labels(&["0"]).inc();
        assert_eq!(vec.with_labels(&["0"]).get(), 2);
    }

    #[test]
    fn no_otlp_without_init() {
        assert!(!Metrics::new().otlp_enabled());
    }
}
