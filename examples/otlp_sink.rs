//! A live OTLP/gRPC collector that only counts what it receives: spans
//! (and failed spans), log records and metric data points, so
//! `scripts/bench.sh` can tell when every span of a load has arrived.
//!
//! ```text
//! cargo run --release --example otlp_sink -- [--port N] [--delay-ms N] [--counts FILE]
//! ```
//!
//! It prints the address it serves on. With `--counts FILE` it rewrites FILE
//! (atomically) every 100 ms with one `name=count` line per counter. With
//! `--delay-ms N` every export waits N ms before it is accepted, like an
//! overloaded collector.

mod counts;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{
            ExportLogsServiceRequest, ExportLogsServiceResponse,
            logs_service_server::{LogsService, LogsServiceServer},
        },
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    metrics::v1::metric::Data,
    trace::v1::status::StatusCode,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::Server};

/// Large enough for any batch an SDK sends; gRPC's 4 MiB default would
/// refuse big ones and make the exporter look broken.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What arrived so far.
#[derive(Debug, Default)]
struct Counts {
    /// Spans received.
    spans: AtomicU64,
    /// Spans whose status is ERROR: requests that failed.
    error_spans: AtomicU64,
    /// Log records received.
    log_records: AtomicU64,
    /// Metric data points received, of every kind.
    metric_points: AtomicU64,
    /// Export requests per signal, to see batching at work.
    trace_exports: AtomicU64,
    /// Log export requests.
    log_exports: AtomicU64,
    /// Metric export requests.
    metric_exports: AtomicU64,
}

impl Counts {
    /// The counters as `name=count` lines.
    fn to_lines(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "spans={}\nerror_spans={}\nlog_records={}\nmetric_points={}\n\
             trace_exports={}\nlog_exports={}\nmetric_exports={}\n",
            load(&self.spans),
            load(&self.error_spans),
            load(&self.log_records),
            load(&self.metric_points),
            load(&self.trace_exports),
            load(&self.log_exports),
            load(&self.metric_exports),
        )
    }
}

/// The three collector services, sharing one set of counters.
#[derive(Debug, Clone)]
struct Sink {
    /// Shared with the counts writer.
    counts: Arc<Counts>,
    /// How long each export waits before it is accepted.
    delay: Duration,
}

impl Sink {
    async fn accept(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.accept().await;
        let spans = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans);
        let (mut all, mut failed) = (0, 0);
        for span in spans {
            all += 1;
            if span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32)
            {
                failed += 1;
            }
        }
        self.counts.spans.fetch_add(all, Ordering::Relaxed);
        self.counts.error_spans.fetch_add(failed, Ordering::Relaxed);
        self.counts.trace_exports.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.accept().await;
        let records: usize = request
            .get_ref()
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        self.counts
            .log_records
            .fetch_add(records as u64, Ordering::Relaxed);
        self.counts.log_exports.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.accept().await;
        let points: usize = request
            .get_ref()
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                Some(Data::Summary(s)) => s.data_points.len(),
                None => 0,
            })
            .sum();
        self.counts
            .metric_points
            .fetch_add(points as u64, Ordering::Relaxed);
        self.counts.metric_exports.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The command line, read by hand to keep the example self-contained.
struct Options {
    /// The port to serve on; 0 lets the OS choose.
    port: u16,
    /// How long each export waits.
    delay: Duration,
    /// Where the counts are written, if anywhere.
    counts: Option<PathBuf>,
}

fn options() -> Result<Options, thespian::Error> {
    let mut options = Options {
        port: 0,
        delay: Duration::ZERO,
        counts: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => options.port = value()?.parse()?,
            "--delay-ms" => options.delay = Duration::from_millis(value()?.parse()?),
            "--counts" => options.counts = Some(value()?.into()),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: otlp_sink [--port N] [--delay-ms N] [--counts FILE]"
                )
                .into());
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), thespian::Error> {
    let options = options()?;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
        .await
        .map_err(|e| format!("cannot listen on port {}: {e}", options.port))?;
    println!("listening on {}", listener.local_addr()?);

    let sink = Sink {
        counts: Arc::default(),
        delay: options.delay,
    };
    if let Some(path) = options.counts {
        let written = Arc::clone(&sink.counts);
        tokio::spawn(counts::write_counts(path, move || written.to_lines()));
    }
    Server::builder()
        .add_service(TraceServiceServer::new(sink.clone()).max_decoding_message_size(MAX_MESSAGE))
        .add_service(LogsServiceServer::new(sink.clone()).max_decoding_message_size(MAX_MESSAGE))
        .add_service(MetricsServiceServer::new(sink).max_decoding_message_size(MAX_MESSAGE))
        // Accepted as Thespian's server accepts: Nagle's algorithm off.
        .serve_with_incoming_shutdown(thespian::server::accept_without_delay(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
