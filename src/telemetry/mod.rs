//! Telemetry: the tracing subscriber, the OpenTelemetry providers behind it,
//! and the flush that runs at shutdown.
//!
//! Spans go to the OTLP endpoint through a batch processor whose queue is
//! bounded: a slow or missing collector costs dropped spans, which are
//! counted and reported, never memory. Log lines go to stdout.
//! Thespian's own exporter, HTTP/2 and gRPC internals are kept out of
//! everything that is exported, so telemetry never feeds on itself.

mod delivery;
mod log_line;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing_subscriber::{
    EnvFilter, Layer, filter::FilterExt, layer::SubscriberExt, registry::LookupSpan,
    util::SubscriberInitExt,
};

pub use delivery::Delivery;

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
    /// Where spans go over OTLP/gRPC; `None` exports nothing, but spans are
    /// still made, so log lines and responses carry trace ids.
    pub otlp_endpoint: Option<String>,
    /// The shape of stdout log lines.
    pub log_format: LogFormat,
    /// The `RUST_LOG` directives for events; spans are exported regardless.
    pub verbosity: String,
}

/// A layer of the subscriber, boxed so layers of different types stack.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// Keeps the providers alive; [`Telemetry::shutdown`] flushes them.
#[derive(Debug)]
pub struct Telemetry {
    /// Makes and exports spans.
    tracer_provider: SdkTracerProvider,
    /// Counts what was delivered, to report what was not.
    delivery: Delivery,
}

/// Targets whose events would describe the exporter's own work: exporting
/// them would make one export cause the next.
const INTERNAL_TARGETS: [&str; 6] = ["h2", "hyper", "tonic", "tower", "opentelemetry", "reqwest"];

/// The batch queue when `OTEL_BSP_MAX_QUEUE_SIZE` is not set: deep enough
/// to ride out a burst of tens of thousands of requests, bounded so a dead
/// collector costs at most a few tens of megabytes.
const DEFAULT_QUEUE: usize = 65_536;
/// The batch size when `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` is not set.
const DEFAULT_BATCH: usize = 2_048;
/// The batch delay when `OTEL_BSP_SCHEDULE_DELAY` is not set.
const DEFAULT_DELAY: Duration = Duration::from_millis(200);

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
    /// tests can scope a subscriber to one server.
    pub fn build<S>(
        settings: &TelemetrySettings,
    ) -> Result<(Telemetry, Vec<BoxedLayer<S>>), crate::Error>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        let delivery = Delivery::default();
        let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource);
        if let Some(endpoint) = &settings.otlp_endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(10))
                .build()?;
            let processor = BatchSpanProcessor::builder(delivery.wrap(exporter))
                .with_batch_config(batch_config())
                .build();
            tracer_provider = tracer_provider.with_span_processor(processor);
        }
        let tracer_provider = tracer_provider.build();

        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer_provider.tracer("thespian"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(thespian_spans().or(events(&settings.verbosity)?));

        let stdout = match settings.log_format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .event_format(log_line::JsonLines::new(&settings.service_name))
                .boxed(),
            LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
        }
        .with_filter(EnvFilter::try_new(&settings.verbosity)?);

        let telemetry = Telemetry {
            tracer_provider,
            delivery,
        };
        Ok((telemetry, vec![spans.boxed(), stdout.boxed()]))
    }

    /// Exports what is still queued, then stops the providers. Runs the
    /// blocking flush off the async threads, so the exporter, which needs
    /// the runtime, can make progress meanwhile.
    pub async fn shutdown(self) {
        let Telemetry {
            tracer_provider,
            delivery,
        } = self;
        let flushed = tokio::task::spawn_blocking(move || {
            let _ = tracer_provider.force_flush();
            tracer_provider.shutdown()
        })
        .await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!("telemetry did not shut down cleanly: {e}");
        }
        delivery.report_totals();
    }
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

/// The batch settings: the standard `OTEL_BSP_*` variables where set,
/// otherwise defaults sized for bursts.
fn batch_config() -> opentelemetry_sdk::trace::BatchConfig {
    let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut builder = BatchConfigBuilder::default();
    if from_env("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        builder = builder.with_max_queue_size(DEFAULT_QUEUE);
    }
    if from_env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").is_none() {
        builder = builder.with_max_export_batch_size(DEFAULT_BATCH);
    }
    if from_env("OTEL_BSP_SCHEDULE_DELAY").is_none() {
        builder = builder.with_scheduled_delay(DEFAULT_DELAY);
    }
    builder.build()
}
