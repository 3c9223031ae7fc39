//! Pushes log lines to Loki through tracing-loki, behind a bounded stage
//! that drops and counts, so a slow or missing Loki costs lost lines, never
//! memory, request latency or a flood of warnings.
//!
//! tracing-loki formats each line (a JSON object of the event's fields, the
//! fields of the spans it happened in, `_spans`, `_target` and so on) and
//! pushes it, snappy-compressed, from a background task. Used as it comes,
//! that task would not do for Thespian:
//!
//! - its queue has no limit: while Loki is down or slow it keeps every line
//!   (it drops them only after half a minute of failures), and a push that
//!   never gets an answer is waited on forever;
//! - it logs every failed push as an error, through whatever subscriber is
//!   current;
//! - it makes a new `tracing` dispatcher on every poll, and each new
//!   dispatcher makes `tracing` ask every subscriber about every callsite
//!   again, so waking it for every line costs more than the line.
//!
//! So lines go to Loki in *sessions*: a tracing-loki layer and task that
//! take at most [`SESSION_LINES`](admission::SESSION_LINES) lines (fewer than its channel holds, so
//! the channel never drops a line uncounted) for at most [`SESSION_AGE`](admission::SESSION_AGE),
//! then are asked to push what they hold and stop. A session that fails a
//! push, or has not finished [`PUSH_TIMEOUT`] after it stopped taking
//! lines, is dropped with its lines. At most [`MAX_SESSIONS`] are alive,
//! so at most that many times [`SESSION_LINES`](admission::SESSION_LINES) lines are held; a line
//! that finds no session with room is dropped and counted. After a failure
//! no session is opened until a growing wait has passed; the first failure
//! is a warning, the rest are debug events, and a delivered session after
//! failures says so. Each task is polled at most once per [`POLL_PACE`].
//!
//! The parts: a [`session`] is one tracing-loki layer and task;
//! [`admission`] keeps the line of sessions and gives each log line to
//! one; the [`supervisor`] opens, retires and reaps sessions; [`pacing`]
//! runs each task. This file holds the settings and the public face,
//! [`Loki`] and [`LokiLayer`]. The tests in `contract` pin what all this
//! relies on in how tracing-loki works inside.

mod admission;
#[cfg(test)]
mod contract;
#[cfg(test)]
mod loopback;
mod pacing;
mod session;
mod supervisor;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{sync::oneshot, task::JoinHandle};
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, FieldSet, Value},
    span::{Attributes, Id, Record},
};
use tracing_core::{callsite::DefaultCallsite, metadata::Kind};
use tracing_loki::url::Url;
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

use admission::Shared;
use session::open;
use supervisor::Supervisor;

/// How long a session may take to push its lines once it stops taking them.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions alive at once: taking lines, waiting as the spare, or pushing.
/// With [`SESSION_LINES`](admission::SESSION_LINES), this bounds the lines held for Loki.
const MAX_SESSIONS: usize = 8;

/// The wait after a first failure before lines are taken again; it doubles
/// with each further failure, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between attempts while Loki keeps failing.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How often the supervisor looks at its sessions when nothing wakes it.
const TICK: Duration = Duration::from_millis(100);

/// How long shutdown waits for the last lines to be pushed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The target of Thespian's own messages about delivery.
const TARGET: &str = "thespian::telemetry";

/// Pushes lines to one Loki; [`Loki::shutdown`] pushes what is left.
#[derive(Debug)]
pub struct Loki {
    /// The state shared with the layer.
    shared: Arc<Shared>,
    /// Tells the supervisor to push what is left and stop.
    stop: oneshot::Sender<()>,
    /// Opens, retires and reaps sessions.
    supervisor: JoinHandle<()>,
}

/// The subscriber layer that hands each event to the session taking lines.
#[derive(Debug)]
pub struct LokiLayer {
    shared: Arc<Shared>,
}

impl Loki {
    /// Checks `address` and starts pushing to it, with `service_name` as
    /// the `service_name` label. Must run inside a tokio runtime.
    pub fn start(address: &str, service_name: &str) -> Result<(Loki, LokiLayer), crate::Error> {
        let url = push_base(address)?;
        let builder = tracing_loki::builder()
            .label("service_name", service_name)
            .map_err(|e| format!("cannot use `{service_name}` as a Loki label: {e}"))?
            .extra_field("service", service_name)
            .map_err(|e| format!("cannot add the service to Loki lines: {e}"))?;
        // Opening one session now checks the URL before serving starts.
        let first = open(&builder, &url)
            .map_err(|e| format!("LOKI_ADDRESS `{address}` cannot be used: {e}"))?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel();
        let supervisor = Supervisor::new(Arc::clone(&shared), builder, url);
        let supervisor = tokio::spawn(supervisor.run(first, stopped));
        let layer = LokiLayer {
            shared: Arc::clone(&shared),
        };
        Ok((
            Loki {
                shared,
                stop,
                supervisor,
            },
            layer,
        ))
    }

    /// Pushes what is held, waiting at most a few seconds, then reports
    /// how many lines never reached Loki, if any.
    pub async fn shutdown(self) {
        let Loki {
            shared,
            stop,
            supervisor,
        } = self;
        let _ = stop.send(());
        let _ = supervisor.await;
        let undelivered = shared.undelivered.load(Ordering::Relaxed);
        if undelivered > 0 {
            tracing::warn!(
                target: TARGET,
                undelivered = undelivered as i64,
                "{undelivered} log lines were not delivered to Loki"
            );
        }
    }
}

/// Turns `LOKI_ADDRESS` into the base URL tracing-loki appends
/// `loki/api/v1/push` to, keeping any path prefix a proxy needs. A bare
/// `host:port` means `http://host:port`, as it does for the OTLP endpoint.
fn push_base(address: &str) -> Result<Url, crate::Error> {
    let mut url = Url::parse(&crate::with_http_scheme(address.trim()))
        .map_err(|e| format!("LOKI_ADDRESS `{address}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!(
            "LOKI_ADDRESS `{address}` must be an http:// or https:// URL, such as http://localhost:3100"
        )
        .into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The fields Thespian adds to the innermost span of each line, so every
/// line names its trace and span. Never dispatched: it only gives tracing-
/// loki's own span bookkeeping a shape to record.
static IDS: Metadata<'static> = Metadata::new(
    "loki line ids",
    TARGET,
    Level::TRACE,
    None,
    None,
    None,
    FieldSet::new(
        &["trace_id", "span_id"],
        tracing_core::identify_callsite!(&IDS_CALLSITE),
    ),
    Kind::SPAN,
);

static IDS_CALLSITE: DefaultCallsite = DefaultCallsite::new(&IDS);

impl<S> Layer<S> for LokiLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(session) = self.shared.admit() else {
            return;
        };
        let loki = &session.layer;
        if let Some(scope) = ctx.event_scope(event) {
            let mut leaf = None;
            for span in scope {
                // tracing-loki keeps each span's fields in the span; it
                // only looks at the spans of lines it is given, so they are
                // registered here, empty, the first time a line needs them.
                let none: [(&Field, Option<&dyn Value>); 0] = [];
                let empty = IDS.fields().value_set(&none);
                Layer::<S>::on_new_span(
                    loki,
                    &Attributes::new(&IDS, &empty),
                    &span.id(),
                    ctx.clone(),
                );
                leaf.get_or_insert_with(|| span.id());
            }
            if let Some(leaf) = leaf {
                record_ids(loki, &leaf, ctx.clone());
            }
        }
        Layer::<S>::on_event(loki, event, ctx);
    }
}

/// Records the trace and span ids of the OpenTelemetry span the line is
/// logged in as fields of the `tracing` span `id` in tracing-loki's
/// bookkeeping, just before the line is formatted, so the line carries them.
/// A request's lines all happen inside its one `tracing` span, and the ids
/// recorded are those of the step that logs each line.
fn record_ids<S>(loki: &tracing_loki::Layer, id: &Id, ctx: Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(ids) = super::current_ids() else {
        return;
    };
    let (trace_id, span_id) = (ids.trace_id(), ids.span_id());
    let fields = IDS.fields();
    let (Some(trace_field), Some(span_field)) = (fields.field("trace_id"), fields.field("span_id"))
    else {
        return;
    };
    let values = [
        (&trace_field, Some(&trace_id as &dyn Value)),
        (&span_field, Some(&span_id as &dyn Value)),
    ];
    let values = fields.value_set(&values);
    Layer::<S>::on_record(loki, id, &Record::new(&values), ctx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_addresses_keep_their_path_prefix() {
        assert_eq!(
            push_base("http://localhost:3100").unwrap().as_str(),
            "http://localhost:3100/"
        );
        assert_eq!(
            push_base("https://logs.example/tenant-a")
                .unwrap()
                .join("loki/api/v1/push")
                .unwrap()
                .as_str(),
            "https://logs.example/tenant-a/loki/api/v1/push"
        );
    }

    #[test]
    fn a_loki_address_without_a_scheme_is_plain_http() {
        assert_eq!(
            push_base("loki:3100").unwrap().as_str(),
            "http://loki:3100/"
        );
    }

    #[test]
    fn loki_addresses_that_are_not_http_urls_are_refused() {
        assert!(push_base("ftp://localhost:3100").is_err());
        assert!(push_base("not a url").is_err());
    }
}
