//! Telemetry: the spans of requests and steps (`span`), the tracing
//! subscriber, the OpenTelemetry providers behind them, and the flush that
//! runs at shutdown.
//!
//! Spans, log records and request metrics go to the OTLP endpoint, and log
//! lines to stdout and, when `LOKI_ADDRESS` is set, to Loki; every log line
//! and record names its trace and span. Every queue on the way out is
//! bounded: a slow or missing collector or Loki, or a stdout nobody reads
//! fast enough, costs dropped telemetry, which is counted and reported,
//! never memory and never a blocked request.
//! Thespian's own exporter, HTTP/2 and gRPC internals are kept out of
//! everything that is exported, so telemetry never feeds on itself.

mod backlog;
mod batching;
mod delivery;
mod log_line;
mod loki;
mod metrics;
mod resource;
mod span;

use std::{sync::Arc, time::Duration};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    logs::{BatchLogProcessor, SdkLoggerProvider},
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::{SpanProcessor, span_processor_with_async_runtime::BatchSpanProcessor},
};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter, Layer, filter::FilterExt, layer::SubscriberExt, registry::LookupSpan,
    util::SubscriberInitExt,
};

pub use batching::Batching;
pub use delivery::{Delivery, Exporter, Signal};
pub use loki::{Loki, LokiLayer};
pub(crate) use metrics::rpc_attributes;
pub use metrics::{Metrics, MetricsTemporality, ServedRequest};
pub use resource::ResourceAttributes;
pub use span::{SpanEvents, Tracer, current_ids};

/// How log lines on stdout look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    #[default]
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// What telemetry needs to know about this instance.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `service.name` on every span, log line and resource.
    pub service_name: String,
    /// The other attributes of the resource; `service_name` wins over a
    /// `service.name` among them.
    pub resource_attributes: ResourceAttributes,
    /// Where spans go over OTLP/gRPC; `None` exports nothing, but spans are
    /// still made, so log lines and responses carry trace ids.
    pub otlp_endpoint: Option<String>,
    /// The shape of stdout log lines.
    pub log_format: LogFormat,
    /// The `RUST_LOG` directives for events; spans are exported regardless.
    pub verbosity: String,
    /// Where log records go over OTLP/gRPC; `None` sends none.
    pub otlp_logs_endpoint: Option<String>,
    /// Where request metrics go over OTLP/gRPC; `None` records none.
    pub otlp_metrics_endpoint: Option<String>,
    /// How often metrics are exported.
    pub metric_export_interval: Duration,
    /// Whether metrics are reported as running totals or per interval.
    pub metrics_temporality: MetricsTemporality,
    /// A Loki to push log lines to, such as `http://localhost:3100`.
    pub loki_address: Option<String>,
    /// How spans and log records are batched for export.
    pub batching: Batching,
}

/// A layer of the subscriber, boxed so layers of different types stack.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// Keeps the providers alive; [`Telemetry::shutdown`] flushes them.
#[derive(Debug)]
pub struct Telemetry {
    /// Opens the spans of requests and steps, and owns the pipeline that
    /// exports them.
    tracer: Tracer,
    /// Makes and exports log records, when they go over OTLP.
    logger_provider: Option<SdkLoggerProvider>,
    /// Aggregates and exports request metrics, when they are on.
    meter_provider: Option<SdkMeterProvider>,
    /// Pushes log lines to Loki, when it is configured.
    loki: Option<Loki>,
    /// The request instruments, handed to the server and the executor.
    metrics: Metrics,
    /// Counts what was delivered, to report what was not.
    delivery: Delivery,
    /// Writes log lines to stdout off the request threads; dropping it
    /// flushes what is still queued.
    stdout: WorkerGuard,
    /// Counts the log lines stdout could not take in time.
    stdout_dropped: ErrorCounter,
    /// Reports dropped stdout lines while the instance runs.
    stdout_watch: tokio::task::JoinHandle<()>,
}

/// Targets whose events would describe the exporter's own work: exporting
/// them would make one export cause the next.
const INTERNAL_TARGETS: [&str; 7] = [
    "h2",
    "hyper",
    "tonic",
    "tower",
    "opentelemetry",
    "reqwest",
    "tracing_loki",
];

/// How many log lines may wait for a slow stdout before new ones are
/// dropped and counted: a few megabytes at most.
const STDOUT_BACKLOG: usize = 16_384;
/// How often lines dropped by a slow stdout are reported while running.
const STDOUT_REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long shutdown waits for stdout to take the last log lines.
const STDOUT_FLUSH_WAIT: Duration = Duration::from_secs(2);
/// How often metrics are exported unless `OTEL_METRIC_EXPORT_INTERVAL`
/// says otherwise: more often than the standard minute, so a dashboard
/// follows a test while it runs.
pub const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(15);

impl Telemetry {
    /// Builds the providers and installs the global subscriber. Must run
    /// inside a multi-thread tokio runtime, which must stay up until
    /// [`Telemetry::shutdown`] has returned.
    pub fn install(settings: &TelemetrySettings) -> Result<Telemetry, crate::Error> {
        let (telemetry, layers) = Telemetry::build(settings)?;
        tracing_subscriber::registry().with(layers).try_init()?;
        Ok(telemetry)
    }

    /// Builds the providers and the layers without installing them, so
    /// tests can scope a subscriber to one server. Like
    /// [`Telemetry::install`], must run inside a tokio runtime: pushing to
    /// Loki runs as tasks.
    pub fn build<S>(
        settings: &TelemetrySettings,
    ) -> Result<(Telemetry, Vec<BoxedLayer<S>>), crate::Error>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let resource = resource::resource(&settings.service_name, &settings.resource_attributes);
        let delivery = Delivery::default();
        let spans: Option<Arc<dyn SpanProcessor>> = match &settings.otlp_endpoint {
            Some(endpoint) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(otlp_url(endpoint)?)
                    .with_timeout(Duration::from_secs(10))
                    .build()?;
                // The SDK's default batch processor runs on a thread of its
                // own and allocates and touches every slot of its queue up
                // front: 24 MB for 65,536 spans, resident from the first
                // second. This one runs as a task on the runtime, over a
                // tokio channel that grows only as spans wait, with the same
                // bound, and costs the same CPU per span (see
                // `scripts/bench.sh`).
                let processor = BatchSpanProcessor::builder(
                    delivery.spans(exporter),
                    opentelemetry_sdk::runtime::Tokio,
                )
                .with_batch_config(settings.batching.spans())
                .build();
                let mut processor = backlog::Backlog::new(
                    processor,
                    settings.batching.span_capacity(),
                    delivery.clone(),
                );
                processor.set_resource(&resource);
                Some(Arc::new(processor))
            }
            None => None,
        };
        let tracer = Tracer::new(spans);
        let span_events = SpanEvents.with_filter(events(&settings.verbosity)?);

        // A pipe that is read slowly (a stalled log shipper, a paused
        // terminal) must not block the threads that serve requests, so
        // lines are written by a thread of their own, batched, and dropped
        // once too many wait.
        let (writer, stdout_guard) = NonBlockingBuilder::default()
            .buffered_lines_limit(STDOUT_BACKLOG)
            .lossy(true)
            .thread_name("thespian-stdout")
            .finish(std::io::BufWriter::new(std::io::stdout()));
        let stdout_dropped = writer.error_counter();
        let stdout = match settings.log_format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(writer)
                // JSON lines never print span fields, so spans are not
                // formatted into text that nobody reads: that cost a few
                // percent of the CPU and ~200 bytes per live span.
                .fmt_fields(tracing_subscriber::fmt::format::debug_fn(|_, _, _| Ok(())))
                .event_format(log_line::JsonLines::new(&settings.service_name))
                .boxed(),
            LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        }
        .with_filter(EnvFilter::try_new(&settings.verbosity)?.and(plumbing(&settings.verbosity)));
        let mut layers = vec![span_events.boxed(), stdout.boxed()];

        let logger_provider = match &settings.otlp_logs_endpoint {
            Some(endpoint) => {
                let exporter = opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(otlp_url(endpoint)?)
                    .with_timeout(Duration::from_secs(10))
                    .build()?;
                let processor = BatchLogProcessor::builder(delivery.logs(exporter))
                    .with_batch_config(settings.batching.logs())
                    .build();
                let provider = SdkLoggerProvider::builder()
                    .with_resource(resource.clone())
                    .with_log_processor(processor)
                    .build();
                layers.push(
                    OpenTelemetryTracingBridge::new(&provider)
                        .with_filter(events(&settings.verbosity)?)
                        .boxed(),
                );
                Some(provider)
            }
            None => None,
        };

        let meter_provider = match &settings.otlp_metrics_endpoint {
            Some(endpoint) => {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(otlp_url(endpoint)?)
                    .with_timeout(Duration::from_secs(10))
                    .with_temporality(settings.metrics_temporality.into())
                    .build()?;
                let reader = PeriodicReader::builder(delivery.metrics(exporter))
                    .with_interval(settings.metric_export_interval)
                    .build();
                Some(
                    SdkMeterProvider::builder()
                        .with_resource(resource)
                        .with_reader(reader)
                        .build(),
                )
            }
            None => None,
        };
        let metrics = meter_provider
            .as_ref()
            .map(|provider| Metrics::new(&provider.meter("thespian")))
            .unwrap_or_default();

        let loki = match &settings.loki_address {
            Some(address) => {
                let (loki, layer) = Loki::start(address, &settings.service_name)?;
                layers.push(
                    layer
                        .with_filter(thespian_spans().or(events(&settings.verbosity)?))
                        .boxed(),
                );
                Some(loki)
            }
            None => None,
        };

        let telemetry = Telemetry {
            tracer,
            logger_provider,
            meter_provider,
            loki,
            metrics,
            delivery,
            stdout: stdout_guard,
            stdout_watch: tokio::spawn(report_stdout_drops(stdout_dropped.clone())),
            stdout_dropped,
        };
        Ok((telemetry, layers))
    }

    /// Opens the spans of requests and steps; hand it to the server's
    /// executor.
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// The request instruments, to hand to the server and the executor;
    /// they record nothing when metrics are off.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Exports what is still queued, then stops the providers. Runs the
    /// blocking flush off the async threads, so the exporter, which needs
    /// the runtime, can make progress meanwhile.
    pub async fn shutdown(self) {
        let Telemetry {
            tracer,
            logger_provider,
            meter_provider,
            loki,
            metrics: _,
            delivery,
            stdout,
            stdout_dropped,
            stdout_watch,
        } = self;
        stdout_watch.abort();
        let flushed = tokio::task::spawn_blocking(move || {
            let mut outcome = tracer.shutdown();
            // Metrics first: their last export is the last word on requests.
            if let Some(meter_provider) = meter_provider {
                outcome = outcome.and(meter_provider.shutdown());
            }
            if let Some(logger_provider) = logger_provider {
                let _ = logger_provider.force_flush();
                outcome = outcome.and(logger_provider.shutdown());
            }
            outcome
        });
        // Loki pushes from the async threads, meanwhile.
        let (flushed, ()) = tokio::join!(flushed, async {
            if let Some(loki) = loki {
                loki.shutdown().await;
            }
        });
        if let Ok(Err(e)) = flushed {
            tracing::warn!("telemetry did not shut down cleanly: {e}");
        }
        delivery.report_totals();
        let dropped = stdout_dropped.dropped_lines();
        if dropped > 0 {
            tracing::warn!(
                target: "thespian::telemetry",
                dropped = dropped as i64,
                "{dropped} log lines were dropped because stdout could not keep up"
            );
        }
        // Dropping the guard waits for the stdout thread to write what is
        // queued; a stdout that nobody reads must not hold up the exit.
        let (flushed, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(stdout);
            let _ = flushed.send(());
        });
        let _ = done.recv_timeout(STDOUT_FLUSH_WAIT);
    }
}

/// Warns, every [`STDOUT_REPORT_EVERY`], of the stdout lines dropped since
/// the last look. The warning reaches OTLP logs and Loki while the stall
/// lasts, which is when an operator needs it; stdout itself is the one
/// place it may not get through.
async fn report_stdout_drops(counter: ErrorCounter) {
    let mut reported = 0;
    let mut ticks = tokio::time::interval(STDOUT_REPORT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let dropped = counter.dropped_lines();
        if dropped > reported {
            tracing::warn!(
                target: "thespian::telemetry",
                dropped = (dropped - reported) as i64,
                total = dropped as i64,
                "{} log lines were dropped in the last {} s because stdout could not keep up",
                dropped - reported,
                STDOUT_REPORT_EVERY.as_secs()
            );
            reported = dropped;
        }
    }
}

/// The OTLP endpoint as the exporter wants it. A bare `host:port`, as
/// users write for `tempo:4317`, means plaintext `http://host:port`, as it
/// does for call targets. `https://` is refused with the reason: Thespian
/// exports over plaintext gRPC, and a collector or mesh sidecar beside it
/// is where TLS belongs.
fn otlp_url(endpoint: &str) -> Result<String, crate::Error> {
    let endpoint = endpoint.trim();
    if endpoint.starts_with("https://") {
        return Err(format!(
            "the OTLP endpoint `{endpoint}` uses https, but Thespian exports over plaintext \
             gRPC: give an http:// address, and add TLS in a collector or sidecar beside it"
        )
        .into());
    }
    Ok(crate::with_http_scheme(endpoint))
}

/// Every span Thespian itself makes, whatever the verbosity.
fn thespian_spans<S>() -> impl tracing_subscriber::layer::Filter<S> {
    tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_span() && metadata.target().starts_with("thespian")
    })
}

/// Events at the configured verbosity, less Thespian's plumbing.
fn events<S>(
    verbosity: &str,
) -> Result<impl tracing_subscriber::layer::Filter<S> + use<S>, crate::Error>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let level = EnvFilter::try_new(verbosity)?;
    Ok(level.and(tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_event()
            && !INTERNAL_TARGETS
                .iter()
                .any(|internal| metadata.target().starts_with(internal))
    })))
}

/// Lets Thespian's plumbing (exporters, HTTP/2, gRPC internals) reach
/// stdout only when `RUST_LOG` names it: a failing exporter logs every
/// batch, and Thespian already reports each outage once.
fn plumbing<S>(verbosity: &str) -> impl tracing_subscriber::layer::Filter<S> + use<S> {
    let named = INTERNAL_TARGETS
        .iter()
        .any(|internal| verbosity.contains(internal));
    tracing_subscriber::filter::filter_fn(move |metadata| {
        named
            || !INTERNAL_TARGETS
                .iter()
                .any(|internal| metadata.target().starts_with(internal))
    })
}

#[cfg(test)]
mod tests {
    use super::otlp_url;

    #[test]
    fn an_otlp_endpoint_without_a_scheme_is_plaintext_http() {
        assert_eq!(otlp_url("tempo:4317").unwrap(), "http://tempo:4317");
        assert_eq!(
            otlp_url(" http://localhost:4317 ").unwrap(),
            "http://localhost:4317"
        );
    }

    #[test]
    fn an_https_otlp_endpoint_is_refused_with_the_reason() {
        let refused = otlp_url("https://tempo:4317").unwrap_err().to_string();
        assert!(refused.contains("https://tempo:4317") && refused.contains("plaintext"));
    }
}
