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

mod collector;
mod logs;
mod metrics;
mod spans;
mod tree;
mod value;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use tokio_stream::wrappers::TcpListenerStream;

use crate::support::DEFAULT_WAIT;
use crate::support::receiver::{Dump as _, Server};
use collector::{Collected, Collector, Record};

pub use collector::{Behaviour, ExportCounts, ExportRequest};
pub use logs::ReceivedLogRecord;
pub use metrics::{MetricKind, Number, ReceivedMetric};
/// Re-exported so tests can check a sum's or histogram's temporality.
pub use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
/// Re-exported so tests can compare a span's kind without spelling the proto path.
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
/// Re-exported so tests can compare a span's status without spelling the proto path.
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
pub use spans::{ReceivedSpan, SpansExt};
pub use tree::SpanTree;
pub use value::{Attributed, Value};

/// An OTLP/gRPC collector listening on `127.0.0.1` on a free port, recording
/// everything exported to it. Dropping it stops the server.
pub struct OtlpReceiver {
    server: Server,
    record: Arc<Record>,
}

impl OtlpReceiver {
    /// Starts a healthy receiver (must be called inside a tokio runtime).
    pub async fn start() -> OtlpReceiver {
        OtlpReceiver::start_with(Behaviour::Accept).await
    }

    /// Starts a receiver that answers as `behaviour` says, e.g.
    /// `OtlpReceiver::start_with(Behaviour::Unavailable)`.
    pub async fn start_with(behaviour: Behaviour) -> OtlpReceiver {
        let record = Arc::new(Record::new(behaviour));
        let server = Server::start("OTLP test receiver", |listener, shutdown| {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Collector(record.clone())))
                .add_service(LogsServiceServer::new(Collector(record.clone())))
                .add_service(MetricsServiceServer::new(Collector(record.clone())))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        })
        .await;
        OtlpReceiver { server, record }
    }

    /// The URL to give an OTLP/gRPC exporter: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes how later requests are answered, e.g. to let a "down"
    /// collector come back.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.record.set_behaviour(behaviour);
    }

    /// Stops the server and waits until it no longer accepts connections,
    /// so a test can check that the service copes with a collector that
    /// went away. Recorded data stays readable.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// All spans received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.record.lock().spans.clone()
    }

    /// All log records received so far, in arrival order.
    pub fn log_records(&self) -> Vec<ReceivedLogRecord> {
        self.record.lock().logs.clone()
    }

    /// The most recently received export of the metric called `name`: for
    /// cumulative metrics, the current totals.
    pub fn latest_metric(&self, name: &str) -> Option<ReceivedMetric> {
        self.record
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
        self.record.lock().raw_traces.clone()
    }

    /// Every export request that arrived, accepted or not, in order.
    pub fn requests(&self) -> Vec<ExportRequest> {
        self.record.lock().requests.clone()
    }

    /// How many export requests of each signal arrived, accepted or not.
    pub fn export_requests(&self) -> ExportCounts {
        self.record.lock().counts()
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

    /// Waits for the server span of trace `trace_id`, which ends last, and
    /// returns the trace's spans: a request's whole trace, once answered.
    pub async fn wait_for_answered_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.wait_for_trace(
            trace_id,
            |trace| trace.iter().any(|s| s.kind == SpanKind::Server),
            DEFAULT_WAIT,
        )
        .await
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
        self.record
            .assert_never(
                &self.name(),
                "spans",
                |c| c.spans.clone(),
                predicate,
                window,
            )
            .await
    }

    /// A multi-line dump of everything received, for custom failure messages.
    pub fn dump(&self) -> String {
        self.record.lock().dump()
    }

    /// What a timeout's panic calls this receiver.
    fn name(&self) -> String {
        format!("OTLP receiver at {}", self.endpoint())
    }

    async fn wait_until<T>(
        &self,
        what: &str,
        snapshot: impl Fn(&Collected) -> Vec<T>,
        predicate: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Vec<T> {
        self.record
            .wait_until(&self.name(), what, snapshot, predicate, timeout)
            .await
    }
}
