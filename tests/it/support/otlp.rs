//! An in-process OTLP/gRPC collector for integration tests.
//!
//! Thespian's telemetry is only proven by *receiving* it: a test starts an
//! [`OtlpReceiver`], points the service's OTLP exporter at
//! [`OtlpReceiver::endpoint`], drives the service, and then waits for the
//! spans, log records and metrics it expects with [`OtlpReceiver::wait_for_spans`]
//! and friends. The receiver implements the real collector services
//! (`TraceService`, `LogsService`, `MetricsService`) from `opentelemetry-proto`,
//! so whatever arrives has gone through the genuine wire format, and it
//! flattens the nested OTLP messages into plain structs (ids as lowercase hex,
//! attributes in a map) so that assertions stay short.
//!
//! A receiver can also play a bad collector ([`Behaviour::Unavailable`],
//! [`Behaviour::Delay`], ...) so tests can show that a slow or failing
//! collector never breaks the service.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
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
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, exemplar, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};

/// Re-exported so tests can check a sum's or histogram's temporality.
pub use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
/// Re-exported so tests can compare a span's kind without spelling the proto path.
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
/// Re-exported so tests can compare a span's status without spelling the proto path.
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

/// How long the `wait_for_*` helpers are usually given: generous, because CI
/// machines are small, but a passing test returns as soon as data arrives.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// How many items a timeout panic prints, so a flood of telemetry does not
/// bury the message.
const DUMP_LIMIT: usize = 200;

// ---------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------

/// How the receiver answers export requests: lets a test play a healthy,
/// slow or failing collector (and switch between them with
/// [`OtlpReceiver::set_behaviour`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Record the data and answer OK at once, like a healthy collector.
    #[default]
    Accept,
    /// Wait this long, then record the data and answer OK, like an overloaded
    /// collector. A client that gives up before then leaves nothing recorded.
    Delay(Duration),
    /// Answer `UNAVAILABLE` and record nothing, like a collector that is down
    /// behind a load balancer.
    Unavailable,
    /// Answer with this gRPC status code and record nothing.
    Reject(Code),
}

/// Which OTLP signal an export request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `TraceService/Export`.
    Traces,
    /// `LogsService/Export`.
    Logs,
    /// `MetricsService/Export`.
    Metrics,
}

/// One export request as it arrived, whatever the receiver then answered: lets
/// tests check that the service *tried* to export (e.g. to a failing
/// collector) and which gRPC metadata (headers) it sent.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// The signal of the request.
    pub signal: Signal,
    /// The gRPC metadata (HTTP/2 headers) that could be read as text, keyed
    /// by lowercase name.
    pub metadata: BTreeMap<String, String>,
    /// When the request reached the receiver.
    pub received_at: Instant,
    /// How many items (spans, log records or metrics) the request carried.
    pub items: usize,
    /// Whether the receiver answered OK and recorded the data (false for a
    /// rejected request, or a delayed one still in flight or abandoned).
    pub accepted: bool,
}

/// How many export requests of each signal arrived (accepted or not): lets a
/// test wait for the service to have tried exporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Trace export requests.
    pub traces: usize,
    /// Log export requests.
    pub logs: usize,
    /// Metric export requests.
    pub metrics: usize,
}

impl ExportCounts {
    /// All export requests, whatever their signal.
    pub fn total(&self) -> usize {
        self.traces + self.logs + self.metrics
    }
}

// ---------------------------------------------------------------------------
// Flattened values
// ---------------------------------------------------------------------------

/// An OTLP `AnyValue` as a plain enum, so attributes can be compared and
/// printed without unwrapping nested protobuf options.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string value.
    Str(String),
    /// A boolean value.
    Bool(bool),
    /// An integer value.
    I64(i64),
    /// A floating point value.
    F64(f64),
    /// An array of values.
    Array(Vec<Value>),
    /// A key-value list.
    Map(BTreeMap<String, Value>),
    /// A byte string.
    Bytes(Vec<u8>),
    /// An `AnyValue` with nothing set (or a profiling-only string index).
    Empty,
}

impl Value {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value (no conversion from doubles
    /// or strings, so a test notices an attribute of the wrong type).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is a double value (integers are *not* converted,
    /// so a test notices an attribute of the wrong type).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn from_proto(value: Option<&AnyValue>) -> Value {
        let Some(inner) = value.and_then(|v| v.value.as_ref()) else {
            return Value::Empty;
        };
        match inner {
            any_value::Value::StringValue(s) => Value::Str(s.clone()),
            any_value::Value::BoolValue(b) => Value::Bool(*b),
            any_value::Value::IntValue(i) => Value::I64(*i),
            any_value::Value::DoubleValue(f) => Value::F64(*f),
            any_value::Value::ArrayValue(a) => Value::Array(
                a.values
                    .iter()
                    .map(|v| Value::from_proto(Some(v)))
                    .collect(),
            ),
            any_value::Value::KvlistValue(kv) => Value::Map(attributes_map(&kv.values)),
            any_value::Value::BytesValue(b) => Value::Bytes(b.clone()),
            any_value::Value::StringValueStrindex(_) => Value::Empty,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F64(x) => write!(f, "{x:?}"),
            Value::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Value::Map(map) => write!(f, "{}", Attributes(map.clone())),
            Value::Bytes(b) => write!(f, "0x{}", hex(b)),
            Value::Empty => write!(f, "<empty>"),
        }
    }
}

/// Attributes by key, with typed getters: the shape every flattened item
/// (span, event, log record, data point, resource) carries its attributes in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(pub BTreeMap<String, Value>);

impl Attributes {
    /// The value under `key`, of whatever type.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Whether `key` is present at all.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The string under `key`, if present and a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The integer under `key`, if present and an integer.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// The double under `key`, if present and a double.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// The boolean under `key`, if present and a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// Whether every `(key, string value)` pair is present: handy to pick a
    /// data point or span by its labels.
    pub fn has_all(&self, pairs: &[(&str, &str)]) -> bool {
        pairs.iter().all(|(k, v)| self.str(k) == Some(*v))
    }

    /// The number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }
}

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        write!(f, "}}")
    }
}

/// Gives a flattened item the `attr*` shortcuts, so a test writes
/// `span.attr_str("k")` instead of `span.attributes.str("k")`.
macro_rules! attribute_shortcuts {
    ($ty:ty) => {
        impl $ty {
            /// The attribute under `key`, of whatever type.
            pub fn attr(&self, key: &str) -> Option<&Value> {
                self.attributes.get(key)
            }

            /// The string attribute under `key`.
            pub fn attr_str(&self, key: &str) -> Option<&str> {
                self.attributes.str(key)
            }

            /// The integer attribute under `key`.
            pub fn attr_i64(&self, key: &str) -> Option<i64> {
                self.attributes.i64(key)
            }

            /// The double attribute under `key`.
            pub fn attr_f64(&self, key: &str) -> Option<f64> {
                self.attributes.f64(key)
            }

            /// The boolean attribute under `key`.
            pub fn attr_bool(&self, key: &str) -> Option<bool> {
                self.attributes.bool(key)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Spans
// ---------------------------------------------------------------------------

/// One received span, flattened with its resource and scope, so a test can
/// assert on it without walking `ResourceSpans`/`ScopeSpans`.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// All resource attributes.
    pub resource: Attributes,
    /// The instrumentation scope's name.
    pub scope_name: String,
    /// The trace id as 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id as 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id as lowercase hex, or empty for a root span.
    pub parent_span_id: String,
    /// The W3C trace state, as sent.
    pub trace_state: String,
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// Start time in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End time in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// The status code (`Unset` when no status was sent).
    pub status_code: StatusCode,
    /// The status message.
    pub status_message: String,
    /// The span's attributes.
    pub attributes: Attributes,
    /// The span's events, in order.
    pub events: Vec<ReceivedEvent>,
    /// The span's links, in order.
    pub links: Vec<ReceivedLink>,
    /// Attributes the SDK had to drop (limits): should usually be 0.
    pub dropped_attributes_count: u32,
}

attribute_shortcuts!(ReceivedSpan);

impl ReceivedSpan {
    /// Whether this span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// The span's duration (zero if the end is before the start).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(
            self.end_time_unix_nano
                .saturating_sub(self.start_time_unix_nano),
        )
    }

    /// The first event with this name.
    pub fn event(&self, name: &str) -> Option<&ReceivedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    fn flatten(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for rs in &request.resource_spans {
            let (resource, service_name) = flatten_resource(rs.resource.as_ref());
            for ss in &rs.scope_spans {
                let scope_name = scope_name(ss.scope.as_ref());
                for span in &ss.spans {
                    let (status_code, status_message) = match &span.status {
                        Some(s) => (
                            StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset),
                            s.message.clone(),
                        ),
                        None => (StatusCode::Unset, String::new()),
                    };
                    out.push(ReceivedSpan {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        trace_state: span.trace_state.clone(),
                        name: span.name.clone(),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        start_time_unix_nano: span.start_time_unix_nano,
                        end_time_unix_nano: span.end_time_unix_nano,
                        status_code,
                        status_message,
                        attributes: Attributes(attributes_map(&span.attributes)),
                        events: span
                            .events
                            .iter()
                            .map(|e| ReceivedEvent {
                                name: e.name.clone(),
                                time_unix_nano: e.time_unix_nano,
                                attributes: Attributes(attributes_map(&e.attributes)),
                            })
                            .collect(),
                        links: span
                            .links
                            .iter()
                            .map(|l| ReceivedLink {
                                trace_id: hex(&l.trace_id),
                                span_id: hex(&l.span_id),
                                attributes: Attributes(attributes_map(&l.attributes)),
                            })
                            .collect(),
                        dropped_attributes_count: span.dropped_attributes_count,
                    });
                }
            }
        }
        out
    }
}

impl fmt::Display for ReceivedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "span {:?} [{}] kind={:?} status={:?}",
            self.name,
            self.service_name.as_deref().unwrap_or("<no service.name>"),
            self.kind,
            self.status_code,
        )?;
        if !self.status_message.is_empty() {
            write!(f, "({:?})", self.status_message)?;
        }
        write!(
            f,
            " trace={} span={} parent={} dur={:?} attrs={}",
            self.trace_id,
            self.span_id,
            if self.parent_span_id.is_empty() {
                "-"
            } else {
                &self.parent_span_id
            },
            self.duration(),
            self.attributes,
        )?;
        for e in &self.events {
            write!(f, "\n      event {:?} {}", e.name, e.attributes)?;
        }
        for l in &self.links {
            write!(f, "\n      link trace={} span={}", l.trace_id, l.span_id)?;
        }
        Ok(())
    }
}

/// One span event, flattened.
#[derive(Clone, Debug)]
pub struct ReceivedEvent {
    /// The event name (for events bridged from `tracing`, often the message).
    pub name: String,
    /// When the event happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The event's attributes.
    pub attributes: Attributes,
}

attribute_shortcuts!(ReceivedEvent);

/// One span link, flattened.
#[derive(Clone, Debug)]
pub struct ReceivedLink {
    /// The linked trace id as lowercase hex.
    pub trace_id: String,
    /// The linked span id as lowercase hex.
    pub span_id: String,
    /// The link's attributes.
    pub attributes: Attributes,
}

/// Queries over a batch of received spans, so tests can navigate a trace
/// (`spans.only_named("x")`, `spans.children_of(&root)`) in one line.
pub trait SpansExt {
    /// All spans with this name.
    fn named(&self, name: &str) -> Vec<&ReceivedSpan>;
    /// The single span with this name; panics with a dump unless there is
    /// exactly one.
    fn only_named(&self, name: &str) -> &ReceivedSpan;
    /// The spans whose parent is `parent`.
    fn children_of(&self, parent: &ReceivedSpan) -> Vec<&ReceivedSpan>;
    /// The spans of one trace.
    fn in_trace(&self, trace_id: &str) -> Vec<&ReceivedSpan>;
}

impl SpansExt for [ReceivedSpan] {
    fn named(&self, name: &str) -> Vec<&ReceivedSpan> {
        self.iter().filter(|s| s.name == name).collect()
    }

    fn only_named(&self, name: &str) -> &ReceivedSpan {
        let found = self.named(name);
        if found.len() != 1 {
            panic!(
                "expected exactly one span named {name:?}, found {}; received spans:\n{}",
                found.len(),
                dump(self),
            );
        }
        found[0]
    }

    fn children_of(&self, parent: &ReceivedSpan) -> Vec<&ReceivedSpan> {
        self.iter()
            .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
            .collect()
    }

    fn in_trace(&self, trace_id: &str) -> Vec<&ReceivedSpan> {
        self.iter().filter(|s| s.trace_id == trace_id).collect()
    }
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// One received log record, flattened with its resource and scope.
#[derive(Clone, Debug)]
pub struct ReceivedLogRecord {
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// All resource attributes.
    pub resource: Attributes,
    /// The instrumentation scope's name.
    pub scope_name: String,
    /// The body as text: the string itself for a string body, the printed
    /// value for any other body, empty when there is none.
    pub body: String,
    /// The body as sent, if any.
    pub body_value: Option<Value>,
    /// The severity text (e.g. `INFO`).
    pub severity_text: String,
    /// The severity number (OTLP `SeverityNumber`, e.g. 9 for INFO).
    pub severity_number: i32,
    /// The event name, if one was set.
    pub event_name: String,
    /// The trace id as lowercase hex, or empty when logged outside a trace.
    pub trace_id: String,
    /// The span id as lowercase hex, or empty when logged outside a span.
    pub span_id: String,
    /// Event time in nanoseconds since the Unix epoch (0 if not set).
    pub time_unix_nano: u64,
    /// Observed time in nanoseconds since the Unix epoch.
    pub observed_time_unix_nano: u64,
    /// The record's attributes.
    pub attributes: Attributes,
}

attribute_shortcuts!(ReceivedLogRecord);

impl ReceivedLogRecord {
    fn flatten(request: &ExportLogsServiceRequest) -> Vec<ReceivedLogRecord> {
        let mut out = Vec::new();
        for rl in &request.resource_logs {
            let (resource, service_name) = flatten_resource(rl.resource.as_ref());
            for sl in &rl.scope_logs {
                let scope_name = scope_name(sl.scope.as_ref());
                for record in &sl.log_records {
                    let body_value = record.body.as_ref().map(|b| Value::from_proto(Some(b)));
                    let body = match &body_value {
                        Some(Value::Str(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    out.push(ReceivedLogRecord {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        body,
                        body_value,
                        severity_text: record.severity_text.clone(),
                        severity_number: record.severity_number,
                        event_name: record.event_name.clone(),
                        trace_id: hex(&record.trace_id),
                        span_id: hex(&record.span_id),
                        time_unix_nano: record.time_unix_nano,
                        observed_time_unix_nano: record.observed_time_unix_nano,
                        attributes: Attributes(attributes_map(&record.attributes)),
                    });
                }
            }
        }
        out
    }
}

impl fmt::Display for ReceivedLogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log {} {:?} [{}] trace={} span={} attrs={}",
            if self.severity_text.is_empty() {
                "<no severity>"
            } else {
                &self.severity_text
            },
            self.body,
            self.service_name.as_deref().unwrap_or("<no service.name>"),
            if self.trace_id.is_empty() {
                "-"
            } else {
                &self.trace_id
            },
            if self.span_id.is_empty() {
                "-"
            } else {
                &self.span_id
            },
            self.attributes,
        )
    }
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// What kind of data a metric carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge of numbers.
    Gauge,
    /// A sum (counter or up-down counter) of numbers.
    Sum,
    /// An explicit-bucket histogram.
    Histogram,
    /// An exponential histogram.
    ExponentialHistogram,
    /// A summary.
    Summary,
    /// No data was set.
    Empty,
}

/// A number data point's value, kept as sent so a test can tell integer
/// from double instruments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer value (`as_int`).
    Int(i64),
    /// A double value (`as_double`).
    Double(f64),
}

impl Number {
    /// The value as a double, whatever it was sent as.
    pub fn as_f64(&self) -> f64 {
        match *self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

/// One exemplar of a data point: mainly so tests can check that metrics link
/// back to traces.
#[derive(Clone, Debug)]
pub struct ReceivedExemplar {
    /// The trace id as lowercase hex, or empty.
    pub trace_id: String,
    /// The span id as lowercase hex, or empty.
    pub span_id: String,
    /// The measured value, if any.
    pub value: Option<Number>,
    /// When it was measured, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The attributes filtered out of the data point's attributes.
    pub filtered_attributes: Attributes,
}

/// One data point of any metric kind, flattened: the fields that do not
/// apply to the metric's kind are `None` or empty.
#[derive(Clone, Debug)]
pub struct DataPoint {
    /// The data point's attributes.
    pub attributes: Attributes,
    /// Start of the aggregation interval, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End of the aggregation interval, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// For gauges and sums: the value.
    pub value: Option<Number>,
    /// For histograms and summaries: how many measurements.
    pub count: Option<u64>,
    /// For histograms and summaries: the sum of the measurements, if sent.
    pub sum: Option<f64>,
    /// For histograms: the smallest measurement, if sent.
    pub min: Option<f64>,
    /// For histograms: the largest measurement, if sent.
    pub max: Option<f64>,
    /// For explicit-bucket histograms: the count in each bucket.
    pub bucket_counts: Vec<u64>,
    /// For explicit-bucket histograms: the bucket boundaries.
    pub explicit_bounds: Vec<f64>,
    /// The exemplars attached to the point.
    pub exemplars: Vec<ReceivedExemplar>,
}

attribute_shortcuts!(DataPoint);

impl DataPoint {
    fn empty(attributes: &[KeyValue], start: u64, time: u64, exemplars: &[Exemplar]) -> DataPoint {
        DataPoint {
            attributes: Attributes(attributes_map(attributes)),
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: None,
            count: None,
            sum: None,
            min: None,
            max: None,
            bucket_counts: Vec::new(),
            explicit_bounds: Vec::new(),
            exemplars: exemplars.iter().map(flatten_exemplar).collect(),
        }
    }

    /// The value of a gauge or sum point as a double.
    pub fn value_f64(&self) -> Option<f64> {
        self.value.as_ref().map(Number::as_f64)
    }
}

impl fmt::Display for DataPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attributes)?;
        if let Some(v) = &self.value {
            write!(f, " value={v:?}")?;
        }
        if let Some(c) = self.count {
            write!(f, " count={c}")?;
        }
        if let Some(s) = self.sum {
            write!(f, " sum={s:?}")?;
        }
        if !self.exemplars.is_empty() {
            let ids: Vec<&str> = self.exemplars.iter().map(|e| e.trace_id.as_str()).collect();
            write!(f, " exemplar_traces={ids:?}")?;
        }
        Ok(())
    }
}

/// One received metric (from one export), flattened with its resource and
/// scope. Cumulative metrics are exported again and again, so the same name
/// shows up once per export: see [`OtlpReceiver::latest_metric`].
#[derive(Clone, Debug)]
pub struct ReceivedMetric {
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// All resource attributes.
    pub resource: Attributes,
    /// The instrumentation scope's name (the meter's name).
    pub scope_name: String,
    /// The metric name.
    pub name: String,
    /// The metric description.
    pub description: String,
    /// The metric unit.
    pub unit: String,
    /// What kind of data it carried.
    pub kind: MetricKind,
    /// For sums: whether monotonic.
    pub is_monotonic: Option<bool>,
    /// For sums and histograms: the temporality.
    pub temporality: Option<AggregationTemporality>,
    /// The data points.
    pub data_points: Vec<DataPoint>,
}

impl ReceivedMetric {
    /// The first data point whose attributes include all these string pairs
    /// (pass `&[]` for the first point).
    pub fn point_with(&self, pairs: &[(&str, &str)]) -> Option<&DataPoint> {
        self.data_points
            .iter()
            .find(|p| p.attributes.has_all(pairs))
    }

    /// The trace ids of all exemplars of all data points.
    pub fn exemplar_trace_ids(&self) -> Vec<String> {
        self.data_points
            .iter()
            .flat_map(|p| p.exemplars.iter())
            .filter(|e| !e.trace_id.is_empty())
            .map(|e| e.trace_id.clone())
            .collect()
    }

    fn flatten(request: &ExportMetricsServiceRequest) -> Vec<ReceivedMetric> {
        let mut out = Vec::new();
        for rm in &request.resource_metrics {
            let (resource, service_name) = flatten_resource(rm.resource.as_ref());
            for sm in &rm.scope_metrics {
                let scope_name = scope_name(sm.scope.as_ref());
                for m in &sm.metrics {
                    let mut metric = ReceivedMetric {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        name: m.name.clone(),
                        description: m.description.clone(),
                        unit: m.unit.clone(),
                        kind: MetricKind::Empty,
                        is_monotonic: None,
                        temporality: None,
                        data_points: Vec::new(),
                    };
                    fill_metric_data(&mut metric, m.data.as_ref());
                    out.push(metric);
                }
            }
        }
        out
    }
}

fn number_points(
    points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
) -> Vec<DataPoint> {
    points
        .iter()
        .map(|p| {
            let mut dp = DataPoint::empty(
                &p.attributes,
                p.start_time_unix_nano,
                p.time_unix_nano,
                &p.exemplars,
            );
            dp.value = p.value.map(|v| match v {
                number_data_point::Value::AsInt(i) => Number::Int(i),
                number_data_point::Value::AsDouble(d) => Number::Double(d),
            });
            dp
        })
        .collect()
}

fn fill_metric_data(metric: &mut ReceivedMetric, data: Option<&metric::Data>) {
    let temporality = |t: i32| {
        Some(AggregationTemporality::try_from(t).unwrap_or(AggregationTemporality::Unspecified))
    };
    match data {
        None => {}
        Some(metric::Data::Gauge(g)) => {
            metric.kind = MetricKind::Gauge;
            metric.data_points = number_points(&g.data_points);
        }
        Some(metric::Data::Sum(s)) => {
            metric.kind = MetricKind::Sum;
            metric.is_monotonic = Some(s.is_monotonic);
            metric.temporality = temporality(s.aggregation_temporality);
            metric.data_points = number_points(&s.data_points);
        }
        Some(metric::Data::Histogram(h)) => {
            metric.kind = MetricKind::Histogram;
            metric.temporality = temporality(h.aggregation_temporality);
            metric.data_points = h
                .data_points
                .iter()
                .map(|p| {
                    let mut dp = DataPoint::empty(
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        &p.exemplars,
                    );
                    dp.count = Some(p.count);
                    dp.sum = p.sum;
                    dp.min = p.min;
                    dp.max = p.max;
                    dp.bucket_counts = p.bucket_counts.clone();
                    dp.explicit_bounds = p.explicit_bounds.clone();
                    dp
                })
                .collect();
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            metric.kind = MetricKind::ExponentialHistogram;
            metric.temporality = temporality(h.aggregation_temporality);
            metric.data_points = h
                .data_points
                .iter()
                .map(|p| {
                    let mut dp = DataPoint::empty(
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        &p.exemplars,
                    );
                    dp.count = Some(p.count);
                    dp.sum = p.sum;
                    dp.min = p.min;
                    dp.max = p.max;
                    dp
                })
                .collect();
        }
        Some(metric::Data::Summary(s)) => {
            metric.kind = MetricKind::Summary;
            metric.data_points = s
                .data_points
                .iter()
                .map(|p| {
                    let mut dp = DataPoint::empty(
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        &[],
                    );
                    dp.count = Some(p.count);
                    dp.sum = Some(p.sum);
                    dp
                })
                .collect();
        }
    }
}

fn flatten_exemplar(e: &Exemplar) -> ReceivedExemplar {
    ReceivedExemplar {
        trace_id: hex(&e.trace_id),
        span_id: hex(&e.span_id),
        value: e.value.map(|v| match v {
            exemplar::Value::AsInt(i) => Number::Int(i),
            exemplar::Value::AsDouble(d) => Number::Double(d),
        }),
        time_unix_nano: e.time_unix_nano,
        filtered_attributes: Attributes(attributes_map(&e.filtered_attributes)),
    }
}

impl fmt::Display for ReceivedMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metric {:?} [{}] {:?} unit={:?} points={}",
            self.name,
            self.service_name.as_deref().unwrap_or("<no service.name>"),
            self.kind,
            self.unit,
            self.data_points.len(),
        )?;
        for p in &self.data_points {
            write!(f, "\n      {p}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Lowercase hex of a byte string (ids are compared as hex in tests).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn attributes_map(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), Value::from_proto(kv.value.as_ref())))
        .collect()
}

fn flatten_resource(resource: Option<&Resource>) -> (Attributes, Option<String>) {
    let attrs = Attributes(
        resource
            .map(|r| attributes_map(&r.attributes))
            .unwrap_or_default(),
    );
    let service_name = attrs.str("service.name").map(str::to_owned);
    (attrs, service_name)
}

fn scope_name(scope: Option<&InstrumentationScope>) -> String {
    scope.map(|s| s.name.clone()).unwrap_or_default()
}

fn dump<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "    (nothing)".to_owned();
    }
    let skip = items.len().saturating_sub(DUMP_LIMIT);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("    ... {skip} earlier items left out ...\n"));
    }
    for (i, item) in items.iter().enumerate().skip(skip) {
        out.push_str(&format!("    #{i}: {item}\n"));
    }
    out
}

// ---------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Collected {
    spans: Vec<ReceivedSpan>,
    logs: Vec<ReceivedLogRecord>,
    metrics: Vec<ReceivedMetric>,
    raw_traces: Vec<ExportTraceServiceRequest>,
    raw_logs: Vec<ExportLogsServiceRequest>,
    raw_metrics: Vec<ExportMetricsServiceRequest>,
    requests: Vec<ExportRequest>,
}

impl Collected {
    fn counts(&self) -> ExportCounts {
        let mut c = ExportCounts::default();
        for r in &self.requests {
            match r.signal {
                Signal::Traces => c.traces += 1,
                Signal::Logs => c.logs += 1,
                Signal::Metrics => c.metrics += 1,
            }
        }
        c
    }

    fn summary(&self) -> String {
        let c = self.counts();
        let accepted = self.requests.iter().filter(|r| r.accepted).count();
        format!(
            "export requests: {} traces, {} logs, {} metrics ({} accepted); \
             collected {} spans, {} log records, {} metrics",
            c.traces,
            c.logs,
            c.metrics,
            accepted,
            self.spans.len(),
            self.logs.len(),
            self.metrics.len(),
        )
    }
}

struct Shared {
    collected: Mutex<Collected>,
    behaviour: Mutex<Behaviour>,
    /// Bumped on every request arrival and every recorded export, so waiters
    /// wake up without polling.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Collected> {
        // A panicking test thread must not hide the data from the next one.
        self.collected.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// The common path of all three services: note the request, behave as
    /// configured, then record the data.
    async fn handle<R>(
        &self,
        signal: Signal,
        request: Request<R>,
        items: usize,
        record: impl FnOnce(&mut Collected, R),
    ) -> Result<(), Status> {
        let metadata = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let index = {
            let mut c = self.lock();
            c.requests.push(ExportRequest {
                signal,
                metadata,
                received_at: Instant::now(),
                items,
                accepted: false,
            });
            c.requests.len() - 1
        };
        self.bump();
        let behaviour = *self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        match behaviour {
            Behaviour::Accept => {}
            Behaviour::Delay(d) => tokio::time::sleep(d).await,
            Behaviour::Unavailable => {
                return Err(Status::unavailable("test receiver is playing unavailable"));
            }
            Behaviour::Reject(code) => {
                return Err(Status::new(code, "test receiver is rejecting exports"));
            }
        }
        {
            let mut c = self.lock();
            c.requests[index].accepted = true;
            record(&mut c, request.into_inner());
        }
        self.bump();
        Ok(())
    }
}

struct Collector(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let items = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0
            .handle(Signal::Traces, request, items, |c, req| {
                c.spans.extend(ReceivedSpan::flatten(&req));
                c.raw_traces.push(req);
            })
            .await?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let items = request
            .get_ref()
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        self.0
            .handle(Signal::Logs, request, items, |c, req| {
                c.logs.extend(ReceivedLogRecord::flatten(&req));
                c.raw_logs.push(req);
            })
            .await?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let items = request
            .get_ref()
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len())
            .sum();
        self.0
            .handle(Signal::Metrics, request, items, |c, req| {
                c.metrics.extend(ReceivedMetric::flatten(&req));
                c.raw_metrics.push(req);
            })
            .await?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC collector listening on `127.0.0.1` on a free port, recording
/// everything exported to it. Dropping it stops the server.
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl OtlpReceiver {
    /// Starts a healthy receiver (must be called inside a tokio runtime).
    pub async fn start() -> OtlpReceiver {
        OtlpReceiver::start_with(Behaviour::Accept).await
    }

    /// Starts a receiver that answers as `behaviour` says, e.g.
    /// `OtlpReceiver::start_with(Behaviour::Unavailable)`.
    pub async fn start_with(behaviour: Behaviour) -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP test receiver to 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of OTLP receiver");
        let shared = Arc::new(Shared {
            collected: Mutex::new(Collected::default()),
            behaviour: Mutex::new(behaviour),
            changed: watch::channel(0).0,
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(shared.clone())))
            .add_service(LogsServiceServer::new(Collector(shared.clone())))
            .add_service(MetricsServiceServer::new(Collector(shared.clone())))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown_rx.await;
            });
        let server = tokio::spawn(server);
        OtlpReceiver {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            server: Some(server),
        }
    }

    /// The URL to give an OTLP/gRPC exporter: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes how later requests are answered, e.g. to let a "down"
    /// collector come back.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Stops the server and waits (at most 5 s) until it no longer accepts
    /// connections, so a test can check that the service copes with a
    /// collector that went away. Recorded data stays readable.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// All spans received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.lock().spans.clone()
    }

    /// All log records received so far, in arrival order.
    pub fn log_records(&self) -> Vec<ReceivedLogRecord> {
        self.shared.lock().logs.clone()
    }

    /// All metrics received so far, one entry per metric per export, in
    /// arrival order.
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.shared.lock().metrics.clone()
    }

    /// The most recently received export of the metric called `name`: for
    /// cumulative metrics, the current totals.
    pub fn latest_metric(&self, name: &str) -> Option<ReceivedMetric> {
        self.shared
            .lock()
            .metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .cloned()
    }

    /// The accepted trace export requests exactly as decoded, for assertions
    /// the flattened view cannot express.
    pub fn raw_trace_requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.shared.lock().raw_traces.clone()
    }

    /// The accepted log export requests exactly as decoded.
    pub fn raw_log_requests(&self) -> Vec<ExportLogsServiceRequest> {
        self.shared.lock().raw_logs.clone()
    }

    /// The accepted metric export requests exactly as decoded.
    pub fn raw_metric_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.shared.lock().raw_metrics.clone()
    }

    /// Every export request that arrived, accepted or not, in order.
    pub fn requests(&self) -> Vec<ExportRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many export requests of each signal arrived, accepted or not.
    pub fn export_requests(&self) -> ExportCounts {
        self.shared.lock().counts()
    }

    /// Waits until `predicate` holds for all spans received so far and
    /// returns them; panics with a dump of what arrived if `timeout` passes
    /// first. Wakes on every export, never sleeps blindly.
    pub async fn wait_for_spans(
        &self,
        predicate: impl FnMut(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        self.wait_until("spans", |c| c.spans.clone(), predicate, timeout)
            .await
    }

    /// Waits until `predicate` holds for the spans of trace `trace_id`
    /// received so far and returns those spans; panics with a dump of what
    /// arrived if `timeout` passes first.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        mut predicate: impl FnMut(&[&ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        self.wait_for_spans(|s| predicate(&s.in_trace(trace_id)), timeout)
            .await
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    /// Waits for a span called `name` and returns the first one.
    pub async fn wait_for_span(&self, name: &str, timeout: Duration) -> ReceivedSpan {
        let spans = self
            .wait_until(
                &format!("a span named {name:?}"),
                |c| c.spans.clone(),
                |s| s.iter().any(|s| s.name == name),
                timeout,
            )
            .await;
        spans
            .into_iter()
            .find(|s| s.name == name)
            .expect("predicate held")
    }

    /// Waits until `predicate` holds for all log records received so far
    /// and returns them; panics with a dump on timeout.
    pub async fn wait_for_log_records(
        &self,
        predicate: impl FnMut(&[ReceivedLogRecord]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedLogRecord> {
        self.wait_until("log records", |c| c.logs.clone(), predicate, timeout)
            .await
    }

    /// Waits for a log record whose body contains `text` and returns the
    /// first one.
    pub async fn wait_for_log_containing(
        &self,
        text: &str,
        timeout: Duration,
    ) -> ReceivedLogRecord {
        let logs = self
            .wait_until(
                &format!("a log record whose body contains {text:?}"),
                |c| c.logs.clone(),
                |l| l.iter().any(|l| l.body.contains(text)),
                timeout,
            )
            .await;
        logs.into_iter()
            .find(|l| l.body.contains(text))
            .expect("predicate held")
    }

    /// Waits until `predicate` holds for all metrics received so far and
    /// returns them; panics with a dump on timeout.
    pub async fn wait_for_metrics(
        &self,
        predicate: impl FnMut(&[ReceivedMetric]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedMetric> {
        self.wait_until("metrics", |c| c.metrics.clone(), predicate, timeout)
            .await
    }

    /// Waits for a metric called `name` and returns its latest export.
    pub async fn wait_for_metric(&self, name: &str, timeout: Duration) -> ReceivedMetric {
        let metrics = self
            .wait_until(
                &format!("a metric named {name:?}"),
                |c| c.metrics.clone(),
                |m| m.iter().any(|m| m.name == name),
                timeout,
            )
            .await;
        metrics
            .into_iter()
            .rev()
            .find(|m| m.name == name)
            .expect("predicate held")
    }

    /// Waits until `predicate` holds for the request counts (accepted or
    /// not), e.g. to see that the service tried a failing collector.
    pub async fn wait_for_requests(
        &self,
        mut predicate: impl FnMut(ExportCounts) -> bool,
        timeout: Duration,
    ) -> ExportCounts {
        self.wait_until(
            "export requests",
            |c| vec![c.counts()],
            |c: &[ExportCounts]| predicate(c[0]),
            timeout,
        )
        .await[0]
    }

    /// Watches for `window` and panics if `predicate` ever holds for the
    /// spans received: for "this must not be exported" checks.
    pub async fn assert_spans_never(
        &self,
        predicate: impl FnMut(&[ReceivedSpan]) -> bool,
        window: Duration,
    ) {
        self.assert_never("spans", |c| c.spans.clone(), predicate, window)
            .await
    }

    /// Watches for `window` and panics if `predicate` ever holds for the log
    /// records received.
    pub async fn assert_log_records_never(
        &self,
        predicate: impl FnMut(&[ReceivedLogRecord]) -> bool,
        window: Duration,
    ) {
        self.assert_never("log records", |c| c.logs.clone(), predicate, window)
            .await
    }

    /// A one-line summary of everything received, for custom failure messages.
    pub fn summary(&self) -> String {
        self.shared.lock().summary()
    }

    /// A multi-line dump of everything received, for custom failure messages.
    pub fn dump(&self) -> String {
        let c = self.shared.lock();
        format!(
            "{}\n  spans:\n{}  log records:\n{}  metrics:\n{}",
            c.summary(),
            dump(&c.spans),
            dump(&c.logs),
            dump(&c.metrics),
        )
    }

    async fn wait_until<T: Clone>(
        &self,
        what: &str,
        snapshot: impl Fn(&Collected) -> Vec<T>,
        mut predicate: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Vec<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            // Mark the current version seen *before* looking, so an export
            // landing in between still wakes the next `changed()`.
            changed.borrow_and_update();
            let items = snapshot(&self.shared.lock());
            if predicate(&items) {
                return items;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => {
                    let items = snapshot(&self.shared.lock());
                    if predicate(&items) {
                        return items;
                    }
                    panic!(
                        "OTLP receiver at {}: timed out after {timeout:?} waiting for {what}\n{}",
                        self.endpoint(),
                        self.dump(),
                    );
                }
            }
        }
    }

    async fn assert_never<T: Clone>(
        &self,
        what: &str,
        snapshot: impl Fn(&Collected) -> Vec<T>,
        mut predicate: impl FnMut(&[T]) -> bool,
        window: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + window;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let items = snapshot(&self.shared.lock());
            if predicate(&items) {
                panic!(
                    "OTLP receiver at {}: unexpected {what} arrived\n{}",
                    self.endpoint(),
                    self.dump(),
                );
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
