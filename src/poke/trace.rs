//! Poke's own spans: each request it sends is a client span, exported over
//! OTLP under its own `service.name` (`poke` unless told otherwise), whose
//! context travels with the request. Traces then start at the load
//! generator, and a service graph shows where the traffic comes from.
//!
//! Unlike an instance, poke keeps no per-request memory budget, so its spans
//! are plain `tracing` spans bridged to OpenTelemetry by
//! `tracing-opentelemetry`, as the design has it for client-side code.

use clap::{Args, ValueEnum};
use opentelemetry::trace::{SpanContext, Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::{
    Resource,
    trace::{
        BatchConfig, Sampler, SdkTracerProvider,
        span_processor_with_async_runtime::BatchSpanProcessor,
    },
};
use tonic::metadata::MetadataMap;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{filter::Targets, layer::SubscriberExt as _};

use crate::{
    behaviour::{MethodName, Target},
    failure::code_name,
    propagation::{Propagation, Propagators},
};

/// The `tracing` target of poke's request spans: the only spans its
/// subscriber bridges, so the spans and events of tonic and h2 cost nothing.
const SPAN_TARGET: &str = "thespian::poke::request";

/// How poke traces its requests.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// Send requests with no client span and no trace context, for the fastest run: each
    /// request then starts its own trace at the instance it calls.
    #[arg(long)]
    pub no_traces: bool,

    /// The `service.name` poke's client spans are exported under.
    #[arg(long, env = "POKE_SERVICE_NAME", default_value = "poke")]
    pub poke_service_name: String,

    /// Which of poke's traces are recorded and exported.
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER",
        value_enum,
        ignore_case = true,
        default_value_t = SamplerName::ParentbasedAlwaysOn
    )]
    pub otel_traces_sampler: SamplerName,

    /// The fraction of traces `traceidratio` and `parentbased_traceidratio` record, from
    /// 0 to 1 [default: 1].
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_parser = parse_fraction)]
    pub otel_traces_sampler_arg: Option<f64>,
}

/// The samplers `OTEL_TRACES_SAMPLER` may name, as the specification
/// spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SamplerName {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A fraction of traces, by trace id.
    Traceidratio,
    /// As the parent says, else every trace; poke's spans have no parent.
    ParentbasedAlwaysOn,
    /// As the parent says, else none.
    ParentbasedAlwaysOff,
    /// As the parent says, else a fraction by trace id.
    ParentbasedTraceidratio,
}

impl TraceArgs {
    /// The SDK sampler these settings name.
    fn sampler(&self) -> Sampler {
        let ratio = || Sampler::TraceIdRatioBased(self.otel_traces_sampler_arg.unwrap_or(1.0));
        match self.otel_traces_sampler {
            SamplerName::AlwaysOn => Sampler::AlwaysOn,
            SamplerName::AlwaysOff => Sampler::AlwaysOff,
            SamplerName::Traceidratio => ratio(),
            SamplerName::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerName::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerName::ParentbasedTraceidratio => Sampler::ParentBased(Box::new(ratio())),
        }
    }
}

/// Where poke's spans go and how their context travels, from the shared
/// settings.
#[derive(Debug)]
pub struct TraceExport {
    /// The OTLP/gRPC endpoint, or `None` when span export is off (context
    /// still travels).
    pub endpoint: Option<String>,
    /// The header formats of trace context.
    pub propagators: Propagators,
    /// How spans are batched on their way out.
    pub batch: BatchConfig,
}

/// Poke's tracing, installed for the run.
pub(super) struct ClientTracing {
    propagation: Propagation,
    provider: SdkTracerProvider,
}

impl ClientTracing {
    /// Installs poke's span pipeline as the process's `tracing`
    /// subscriber, unless `--no-traces` says not to trace.
    pub(super) fn install(
        args: &TraceArgs,
        export: TraceExport,
    ) -> Result<Option<ClientTracing>, crate::Error> {
        if args.no_traces {
            return Ok(None);
        }
        let mut provider = SdkTracerProvider::builder()
            .with_sampler(args.sampler())
            .with_resource(
                Resource::builder()
                    .with_service_name(args.poke_service_name.clone())
                    .build(),
            );
        if let Some(endpoint) = &export.endpoint {
            let exporter =
                crate::telemetry::otlp(SpanExporter::builder().with_tonic(), endpoint)?.build()?;
            let processor =
                BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
                    .with_batch_config(export.batch)
                    .build();
            provider = provider.with_span_processor(processor);
        }
        let provider = provider.build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("thespian.poke"))
            .with_location(false)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false);
        let subscriber = tracing_subscriber::registry()
            .with(Targets::new().with_target(SPAN_TARGET, tracing::Level::INFO))
            .with(layer);
        tracing::subscriber::set_global_default(subscriber)?;
        Ok(Some(ClientTracing {
            propagation: Propagation::new(&export.propagators),
            provider,
        }))
    }

    /// Opens the client span of one request to `method` on `target`, and
    /// writes its context into the request's `metadata`.
    pub(super) fn open(
        &self,
        target: &Target,
        method: MethodName,
        metadata: &mut MetadataMap,
    ) -> RequestSpan {
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "poke",
            otel.name = method.span_name(),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = "thespian.Thespian",
            rpc.method = method.as_str(),
            server.address = target.host(),
            server.port = target.port(),
        );
        let cx = span.context();
        self.propagation.inject(&cx, metadata);
        RequestSpan {
            span_context: cx.span().span_context().clone(),
            span,
        }
    }

    /// Exports the spans still queued and stops the pipeline.
    pub(super) async fn shutdown(&self) {
        // The batch processor's shutdown blocks on its task; that task needs
        // the runtime's other threads.
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

/// The client span of one request.
pub(super) struct RequestSpan {
    span: tracing::Span,
    /// Its ids, and whether it is sampled.
    pub(super) span_context: SpanContext,
}

impl RequestSpan {
    /// Ends the span with the status the request answered.
    pub(super) fn end(self, code: tonic::Code) {
        self.span.set_attribute("rpc.grpc.status_code", code as i64);
        if code != tonic::Code::Ok {
            self.span.set_status(Status::error(code_name(code)));
        }
        drop(self.span);
    }
}

/// Reads a fraction from 0 to 1.
fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{text}` is not a fraction from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_are_named_as_the_specification_has_them() {
        let args = |name: SamplerName, arg| TraceArgs {
            no_traces: false,
            poke_service_name: "poke".into(),
            otel_traces_sampler: name,
            otel_traces_sampler_arg: arg,
        };
        assert!(matches!(
            args(SamplerName::Traceidratio, Some(0.25)).sampler(),
            Sampler::TraceIdRatioBased(r) if r == 0.25
        ));
        assert!(matches!(
            args(SamplerName::ParentbasedAlwaysOff, None).sampler(),
            Sampler::ParentBased(_)
        ));
        assert_eq!(
            SamplerName::from_str("parentbased_traceidratio", true),
            Ok(SamplerName::ParentbasedTraceidratio)
        );
        assert!(parse_fraction("1.5").is_err());
    }
}
