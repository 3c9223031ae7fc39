//! Telemetry: the spans of requests and steps (`span`, with what is logged
//! inside them as span events, `span_events`), the tracing
//! subscriber, the OpenTelemetry providers behind them, and the flush that
//! runs at shutdown. [`Telemetry::build`] composes one pipeline per signal
//! (`pipeline`) from the plain [`TelemetrySettings`] the command line
//! hands down: the resource they all carry (`resource`), how spans and
//! log records are batched (`batching`) and queued for export
//! (`export_queue`, with `span_queue` and `log_queue` for each signal),
//! spans and log records written straight into OTLP's wire format as they
//! end (`span_wire`, `log_wire`, with the pieces both need in `wire`)
//! for the collector's services (`collector`), and what each destination
//! takes (`filter`).
//!
//! Spans, log records and request metrics go to the OTLP endpoint, and log
//! lines to stdout and, when `LOKI_ADDRESS` is set, to Loki; every log line
//! and record names its trace and span. Every queue on the way out is
//! bounded: a slow or missing collector or Loki, or a stdout nobody reads
//! fast enough, costs dropped telemetry, which is counted and reported,
//! never memory and never a blocked request.
//! Thespian's own exporter, HTTP/2 and gRPC internals are kept out of
//! everything that is exported, so telemetry never feeds on itself.

mod batching;
mod collector;
mod delivery;
mod export_queue;
mod filter;
mod log_line;
mod log_queue;
mod log_wire;
mod loki;
mod metrics;
mod overflow;
mod pipeline;
mod resource;
mod span;
mod span_events;
mod span_queue;
mod span_wire;
mod stdout;
mod wire;

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::{logs::SdkLoggerProvider, metrics::SdkMeterProvider};
use tracing_subscriber::{
    Layer, layer::SubscriberExt, registry::LookupSpan, util::SubscriberInitExt,
};

pub use batching::Batching;
pub use delivery::{Delivery, Exporter, Signal};
pub use loki::{Loki, LokiLayer};
pub(crate) use metrics::rpc_attributes;
pub use metrics::{Metrics, MetricsTemporality, ServedRequest};
pub(crate) use pipeline::otlp;
pub use resource::ResourceAttributes;
pub use span::{Tracer, current_ids};
pub use span_events::SpanEvents;

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
    stdout: stdout::Writer,
    /// Counts the log lines stdout could not take in time.
    stdout_dropped: stdout::Dropped,
    /// Reports dropped stdout lines while the instance runs.
    stdout_watch: tokio::task::JoinHandle<()>,
}

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
        let tracer = pipeline::spans(settings, &resource, &delivery)?;
        let mut layers = vec![
            SpanEvents
                .with_filter(filter::events(&settings.verbosity)?)
                .boxed(),
        ];
        let (stdout, stdout_dropped) = pipeline::stdout(settings, &mut layers)?;
        let logger_provider = pipeline::otlp_logs(settings, &resource, &delivery, &mut layers)?;
        let meter_provider = pipeline::metrics(settings, &resource, &delivery)?;
        let metrics = meter_provider
            .as_ref()
            .map(|provider| Metrics::new(&provider.meter("thespian")))
            .unwrap_or_default();
        let loki = pipeline::loki(settings, &mut layers)?;

        let telemetry = Telemetry {
            tracer,
            logger_provider,
            meter_provider,
            loki,
            metrics,
            delivery,
            stdout,
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
async fn report_stdout_drops(counter: stdout::Dropped) {
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
