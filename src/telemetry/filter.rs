//! What each destination of telemetry takes: events at the configured
//! verbosity, and Thespian's own plumbing (exporters, HTTP/2, gRPC
//! internals) kept out of everything exported, so telemetry never feeds on
//! itself.

use tracing_subscriber::{EnvFilter, filter::FilterExt, layer::Filter, registry::LookupSpan};

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

/// Every span Thespian itself makes, whatever the verbosity.
pub fn thespian_spans<S>() -> impl Filter<S> {
    tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_span() && metadata.target().starts_with("thespian")
    })
}

/// Events at the configured verbosity, less Thespian's plumbing.
pub fn events<S>(verbosity: &str) -> Result<impl Filter<S> + use<S>, crate::Error>
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

/// Lets Thespian's plumbing reach stdout only when `RUST_LOG` names it: a
/// failing exporter logs every batch, and Thespian already reports each
/// outage once.
pub fn plumbing<S>(verbosity: &str) -> impl Filter<S> + use<S> {
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
