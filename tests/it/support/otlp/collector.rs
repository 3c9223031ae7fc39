//! The collector side of the receiver: the three OTLP services, which note
//! every export request, answer as the test's [`Behaviour`] says, and
//! record what they accepted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Code, Request, Response, Status};

use super::{ReceivedLogRecord, ReceivedMetric, ReceivedSpan};
use crate::support::receiver::{self, Dump, list};

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

/// Everything a receiver was sent, in arrival order.
#[derive(Default)]
pub(super) struct Collected {
    /// The spans of accepted exports.
    pub spans: Vec<ReceivedSpan>,
    /// The log records of accepted exports.
    pub logs: Vec<ReceivedLogRecord>,
    /// The metrics of accepted exports, one entry per metric per export.
    pub metrics: Vec<ReceivedMetric>,
    /// The accepted trace export requests exactly as decoded.
    pub raw_traces: Vec<ExportTraceServiceRequest>,
    /// Every export request, accepted or not.
    pub requests: Vec<ExportRequest>,
}

impl Collected {
    /// How many export requests of each signal arrived.
    pub fn counts(&self) -> ExportCounts {
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

impl Dump for Collected {
    fn dump(&self) -> String {
        let mut out = self.summary();
        for (what, items) in [
            ("spans", list(&self.spans)),
            ("log records", list(&self.logs)),
            ("metrics", list(&self.metrics)),
        ] {
            let _ = write!(out, "\n  {what}:\n{items}");
        }
        out
    }
}

/// What the receiver collected and how it answers, shared by the three
/// services and the test.
pub(super) type Record = receiver::Record<Collected, Behaviour>;

/// The three OTLP services, recording into one [`Record`].
pub(super) struct Collector(pub Arc<Record>);

impl Collector {
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
            let mut c = self.0.lock();
            c.requests.push(ExportRequest {
                signal,
                metadata,
                items,
                accepted: false,
            });
            c.requests.len() - 1
        };
        self.0.bump();
        match self.0.behaviour() {
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
            let mut c = self.0.lock();
            c.requests[index].accepted = true;
            record(&mut c, request.into_inner());
        }
        self.0.bump();
        Ok(())
    }
}

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
        self.handle(Signal::Traces, request, items, |c, req| {
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
        self.handle(Signal::Logs, request, items, |c, req| {
            c.logs.extend(ReceivedLogRecord::flatten(&req));
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
        self.handle(Signal::Metrics, request, items, |c, req| {
            c.metrics.extend(ReceivedMetric::flatten(&req));
        })
        .await?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}
