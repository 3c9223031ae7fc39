//! One pipeline per signal: how spans, stdout log lines, OTLP log records,
//! metrics and Loki lines each leave the instance. Each function builds one
//! of them from the settings and adds its layer, if it has one, to the
//! subscriber's; [`Telemetry::build`](super::Telemetry::build) composes them.

use std::{sync::Arc, time::Duration};

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    logs::SdkLoggerProvider,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::SpanProcessor,
};
use tracing_subscriber::{EnvFilter, Layer, filter::FilterExt, registry::LookupSpan};

use super::{
    BoxedLayer, Delivery, LogFormat, Loki, TelemetrySettings, Tracer,
    collector::{Collector, Logs, Traces},
    filter::{events, plumbing, thespian_spans},
    log_line,
    log_queue::LogQueue,
    span_queue::SpanQueue,
    stdout,
};

/// How long one OTLP export may wait for the collector's answer.
const OTLP_TIMEOUT: Duration = Duration::from_secs(10);
/// The spans' way out: batched and exported over OTLP when an endpoint is
/// set. Without one, spans are still made, so log lines and answers carry
/// trace ids.
pub fn spans(
    settings: &TelemetrySettings,
    resource: &Resource,
    delivery: &Delivery,
) -> Result<Tracer, crate::Error> {
    let Some(endpoint) = &settings.otlp_endpoint else {
        return Ok(Tracer::new(None));
    };
    let collector = Collector::<Traces>::connect(&otlp_url(endpoint)?, OTLP_TIMEOUT)?;
    let processor: Arc<dyn SpanProcessor> = Arc::new(SpanQueue::start(
        collector,
        resource,
        &settings.batching,
        delivery.clone(),
    ));
    Ok(Tracer::new(Some(processor)))
}

/// Log lines on stdout, written by a thread of their own, so that a slow
/// reader never blocks a request (see [`stdout`](super::stdout)). Returns
/// the thread, which flushes when dropped, and the count of lines dropped.
pub fn stdout<S>(
    settings: &TelemetrySettings,
    layers: &mut Vec<BoxedLayer<S>>,
) -> Result<(stdout::Writer, stdout::Dropped), crate::Error>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let (writer, thread, dropped) = stdout::start(std::io::stdout(), stdout::BACKLOG_BYTES)
        .map_err(|e| format!("cannot start the thread that writes log lines: {e}"))?;
    let lines = match settings.log_format {
        LogFormat::Json => log_line::JsonLines::new(&settings.service_name, writer).boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let filter = EnvFilter::try_new(&settings.verbosity)?.and(plumbing(&settings.verbosity));
    layers.push(lines.with_filter(filter).boxed());
    Ok((thread, dropped))
}

/// Log records over OTLP, when they are on: events become records through
/// the tracing bridge, queued, batched and sent like spans.
pub fn otlp_logs<S>(
    settings: &TelemetrySettings,
    resource: &Resource,
    delivery: &Delivery,
    layers: &mut Vec<BoxedLayer<S>>,
) -> Result<Option<SdkLoggerProvider>, crate::Error>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some(endpoint) = &settings.otlp_logs_endpoint else {
        return Ok(None);
    };
    let collector = Collector::<Logs>::connect(&otlp_url(endpoint)?, OTLP_TIMEOUT)?;
    let processor = LogQueue::start(collector, resource, &settings.batching, delivery.clone());
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_log_processor(processor)
        .build();
    layers.push(
        OpenTelemetryTracingBridge::new(&provider)
            .with_filter(events(&settings.verbosity)?)
            .boxed(),
    );
    Ok(Some(provider))
}

/// Request metrics over OTLP, when they are on, exported every interval.
pub fn metrics(
    settings: &TelemetrySettings,
    resource: &Resource,
    delivery: &Delivery,
) -> Result<Option<SdkMeterProvider>, crate::Error> {
    let Some(endpoint) = &settings.otlp_metrics_endpoint else {
        return Ok(None);
    };
    let exporter = otlp(MetricExporter::builder().with_tonic(), endpoint)?
        .with_temporality(settings.metrics_temporality.into())
        .build()?;
    let reader = PeriodicReader::builder(delivery.metrics(exporter))
        .with_interval(settings.metric_export_interval)
        .build();
    Ok(Some(
        SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader)
            .build(),
    ))
}

/// Log lines pushed to Loki, when it is configured. The layer sees
/// Thespian's spans as well as the events, whatever the verbosity, since
/// each line carries the fields of the spans it happened in.
pub fn loki<S>(
    settings: &TelemetrySettings,
    layers: &mut Vec<BoxedLayer<S>>,
) -> Result<Option<Loki>, crate::Error>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some(address) = &settings.loki_address else {
        return Ok(None);
    };
    let (loki, layer) = Loki::start(address, &settings.service_name)?;
    layers.push(
        layer
            .with_filter(thespian_spans().or(events(&settings.verbosity)?))
            .boxed(),
    );
    Ok(Some(loki))
}

/// Points an SDK OTLP exporter builder (metrics', and poke's client
/// spans') at `endpoint`, with the timeout every export has. Only this much is
/// shared: each signal's builder is a type of its own, and `with_tonic`
/// and `build` are methods of each type rather than of a trait, so each
/// pipeline calls those itself.
pub(crate) fn otlp<B: WithExportConfig>(builder: B, endpoint: &str) -> Result<B, crate::Error> {
    Ok(builder
        .with_endpoint(otlp_url(endpoint)?)
        .with_timeout(OTLP_TIMEOUT))
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
