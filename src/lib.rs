//! Thespian: a gRPC service that acts out configured pretend work and reports
//! it as OpenTelemetry telemetry. A handful of instances, each with its own
//! `SERVICE_NAME` and config, make a pretend microservice ecosystem of any
//! shape to point an observability stack at.
//!
//! How the crate is laid out, from the wire inwards:
//!
//! - [`cli`]: the command line and environment, the one way every setting
//!   comes in, and the subcommands.
//! - [`server`]: the gRPC server (the three methods, reflection, health) and
//!   graceful shutdown.
//! - [`control`]: the control API that starts and stops scenarios on a
//!   live instance, and `thespian scenario`, which drives it.
//! - [`admission`]: how many requests are acted out at once, and the
//!   queue for a slot (`MAX_IN_FLIGHT`, `MAX_QUEUE`).
//! - [`config`]: reads a config document and lowers it into the behaviour
//!   model, with errors that name the JSON path.
//! - [`ecosystem`]: one file describing a whole pretend ecosystem, lowered
//!   into one config per service for each place it runs.
//! - [`behaviour`]: the behaviour model: the step vocabulary, and a tree of
//!   steps per method.
//! - [`script`]: Rhai scripts that build that tree afresh on every request,
//!   sandboxed, limited and reloaded when they change.
//! - [`executor`]: the one interpreter of that model, a span for each step
//!   that has one.
//! - [`incident`]: which scenarios are active, started and stopped by
//!   their schedules or the control API.
//! - [`client`]: outbound calls, one cached connection per target.
//! - [`connection`]: an HTTP/2 connection to another Thespian, written to
//!   from each request's own task; `client` and `poke` share it.
//! - [`propagation`]: trace context and baggage in gRPC metadata, in the
//!   formats `OTEL_PROPAGATORS` names.
//! - [`relay`]: what a request passes on to its calls: the hop count that
//!   stops call cycles, and `x-request-id`.
//! - [`deadline`]: the caller's `grpc-timeout`, and the budget it sets.
//! - [`attempts`]: which attempt of a retried call a request is.
//! - [`failure`]: why a request failed, and the one place that becomes a
//!   gRPC status.
//! - [`span_count`]: how many spans a request made across its call tree,
//!   reported on its answer.
//! - [`telemetry`]: the spans of requests and steps, the tracing subscriber,
//!   one pipeline per signal (OTLP spans, log records and metrics, stdout,
//!   Loki) and the flush at shutdown.
//! - [`health`]: a health-check client for container probes.
//! - [`poke`]: a load generator: shaped traffic over weighted targets, a
//!   client span per request, and a check that a backend kept every span.
//! - [`fleet`]: `thespian up`, a whole ecosystem as local processes.
//! - [`render`]: `thespian render`, an ecosystem written out for Docker
//!   Compose, Kubernetes or AWS ECS.
//! - [`proto`]: the generated gRPC code.

pub mod admission;
pub mod attempts;
pub mod behaviour;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod control;
pub mod deadline;
pub mod ecosystem;
pub mod executor;
pub mod failure;
pub mod fleet;
pub mod health;
pub mod incident;
pub mod poke;
pub mod propagation;
pub mod proto;
pub mod relay;
pub mod render;
pub mod script;
pub mod server;
pub mod span_count;
pub mod telemetry;

/// The `user-agent` of Thespian's own calls and exports, so a target's or
/// a collector's logs name Thespian and its version.
pub(crate) const USER_AGENT: &str = concat!("thespian/", env!("CARGO_PKG_VERSION"));

/// The error type at the edges of the crate, where the only thing left to do
/// with an error is to show it.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `address` with `http://` in front when it names no scheme: every
/// address Thespian takes (call targets, the OTLP endpoint, Loki) may be
/// written as a bare `host:port`, as Compose files and sidecars write them.
pub fn with_http_scheme(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

/// An error and its causes on one line, each cause that adds something
/// after a colon: "transport error" alone says nothing of the refused
/// connection behind it.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}
