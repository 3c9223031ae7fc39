//! What the Loki stage relies on in how tracing-loki 0.2.7 works inside,
//! pinned by tests that drive the real crate against a loopback Loki, so
//! an upgrade that changes any of it fails here rather than in production:
//!
//! - the channel between its layer and its task holds 512 lines, and a
//!   line that finds it full is dropped, not waited for, so a session of
//!   [`SESSION_LINES`](super::admission::SESSION_LINES) always fits, with room left for the stop request;
//! - once stopped, its task pushes what it holds to the base URL plus
//!   `loki/api/v1/push`, path prefix kept, and then finishes;
//! - a failed push is an ERROR event with an `error` field naming the
//!   failure, logged during the poll through whichever subscriber is
//!   current on the polling thread: [`Paced`] reads it from there;
//! - it keeps each span's fields in the span, recorded through its own
//!   `on_new_span` and `on_record`, and adds those of every span a line
//!   happened in, innermost last, to the line, with their names in
//!   `_spans`: [`LokiLayer`](super::LokiLayer) records trace and span ids
//!   that way.
//!
//! Not pinned: that its task spins once every sender is gone, which is
//! why a session keeps its layer until the task ends; a test of it could
//! only hang.

use std::{
    future::Future,
    ops::Range,
    pin::pin,
    sync::{Arc, Mutex, atomic::Ordering},
    task::Poll,
    time::Duration,
};

use axum::http::StatusCode;
use futures::FutureExt;
use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use tokio::time::timeout;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber, field::Visit, span};
use tracing_subscriber::layer::SubscriberExt;

use super::{
    Loki, admission::SESSION_LINES, loopback::LoopbackLoki, pacing::Paced, push_base,
    session::Outcome,
};

/// How long a test waits for what it expects before it fails; a passing
/// test is done as soon as it happens.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn tracing_lokis_channel_holds_512_lines_and_drops_those_that_find_it_full() {
    let loki = LoopbackLoki::start("", StatusCode::NO_CONTENT).await;
    let (layer, controller, task) = session_parts(&loki);
    // The task is not running yet, as while it waits for its next poll.
    log(layer, 0..600);
    let task = tokio::spawn(task);
    timeout(PATIENCE, controller.shutdown()).await.unwrap();
    timeout(PATIENCE, task).await.unwrap().unwrap();
    assert_eq!(loki.numbers(), (0..512).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_session_never_takes_more_lines_than_tracing_lokis_channel_holds() {
    const { assert!(SESSION_LINES < 512) };
    // A path prefix shows the push goes to the base URL plus the API path.
    let loki = LoopbackLoki::start("/tenant-a", StatusCode::NO_CONTENT).await;
    let (layer, controller, task) = session_parts(&loki);
    log(layer, 0..SESSION_LINES as u64);
    // A full session's lines leave room for the request to stop, so the
    // supervisor never waits to make it.
    assert!(
        controller.shutdown().now_or_never().is_some(),
        "the channel had no room left after {SESSION_LINES} lines"
    );
    // Once stopped, the task pushes every line it holds and finishes.
    let outcome = timeout(PATIENCE, Paced::new(task)).await.unwrap();
    assert!(matches!(outcome, Outcome::Delivered), "{outcome:?}");
    assert_eq!(
        loki.numbers(),
        (0..SESSION_LINES as u64).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failed_push_is_an_error_event_with_an_error_field_logged_while_the_task_is_polled() {
    let loki = LoopbackLoki::start("", StatusCode::INTERNAL_SERVER_ERROR).await;
    let (layer, _controller, task) = session_parts(&loki);
    log(layer, 0..1);
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorder = Dispatch::new(Recorder(Arc::clone(&events)));
    let mut task = pin!(task);
    // The events go to whichever subscriber is current on the thread that
    // polls the task, during the poll.
    let polled = std::future::poll_fn(|cx| {
        let _ = tracing::dispatcher::with_default(&recorder, || task.as_mut().poll(cx));
        match events.lock().unwrap().iter().find_map(Recorded::error) {
            Some(found) => Poll::Ready(found),
            None => Poll::Pending,
        }
    });
    let (level, error) = timeout(PATIENCE, polled).await.unwrap_or_else(|_| {
        panic!(
            "tracing-loki logged no `error` field about the failed push: {:?}",
            events.lock().unwrap()
        )
    });
    assert_eq!(level, Level::ERROR, "{error}");
    assert!(error.contains("500"), "{error}");
}

#[tokio::test]
async fn a_session_ends_at_its_first_failed_push_with_the_error_tracing_loki_logs() {
    let loki = LoopbackLoki::start("", StatusCode::INTERNAL_SERVER_ERROR).await;
    let (layer, _controller, task) = session_parts(&loki);
    log(layer, 0..1);
    // tracing-loki itself would keep the line and try again, backing off.
    let outcome = timeout(PATIENCE, Paced::new(task))
        .await
        .expect("the failed push was not noticed");
    assert!(
        matches!(&outcome, Outcome::Failed(error) if error.contains("500")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn each_line_carries_the_ids_of_the_step_that_logged_it_and_its_spans() {
    let loki = LoopbackLoki::start("", StatusCode::NO_CONTENT).await;
    let (pusher, layer) = Loki::start(&loki.address, "cart").unwrap();
    // The first session takes lines once the supervisor has run.
    let shared = Arc::clone(&pusher.shared);
    let taking = async {
        while shared.vacancies() == 2 {
            tokio::task::yield_now().await;
        }
    };
    timeout(PATIENCE, taking).await.unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let steps: [(u128, u64); 3] = [(1, 11), (1, 12), (2, 21)];
    tracing::dispatcher::with_default(&dispatch, || {
        let _outer = tracing::info_span!("outer").entered();
        let _inner = tracing::info_span!("inner").entered();
        for (trace, span) in steps {
            let _step = Context::current()
                .with_remote_span_context(SpanContext::new(
                    TraceId::from(trace),
                    SpanId::from(span),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                ))
                .attach();
            tracing::info!(number = span, "a step");
        }
    });
    timeout(PATIENCE, pusher.shutdown()).await.unwrap();
    assert_eq!(shared.undelivered.load(Ordering::Relaxed), 0);
    let lines = loki.json();
    assert_eq!(lines.len(), steps.len(), "{lines:?}");
    for ((trace, span), line) in steps.into_iter().zip(&lines) {
        assert_eq!(line["number"], span, "{line}");
        assert_eq!(line["trace_id"], TraceId::from(trace).to_string(), "{line}");
        assert_eq!(line["span_id"], SpanId::from(span).to_string(), "{line}");
        assert_eq!(
            line["_spans"],
            serde_json::json!(["outer", "inner"]),
            "{line}"
        );
        assert_eq!(line["service"], "cart", "{line}");
    }
}

/// The layer, stop handle and task of one session pushing to `loki`.
fn session_parts(
    loki: &LoopbackLoki,
) -> (
    tracing_loki::Layer,
    tracing_loki::BackgroundTaskController,
    tracing_loki::BackgroundTask,
) {
    tracing_loki::builder()
        .build_controller_url(push_base(&loki.address).unwrap())
        .unwrap()
}

/// Logs one line for each of `numbers` through `layer`, then drops it.
fn log(layer: tracing_loki::Layer, numbers: Range<u64>) {
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for number in numbers {
            tracing::info!(number, "a line");
        }
    });
}

/// Keeps the level and fields of every event it is given.
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

/// One event a [`Recorder`] was given.
#[derive(Debug)]
struct Recorded {
    level: Level,
    /// Each field by name, as its `Debug` text.
    fields: Vec<(String, String)>,
}

impl Recorded {
    /// The level and `error` field of the event, if it has one.
    fn error(&self) -> Option<(Level, String)> {
        let (_, error) = self.fields.iter().find(|(name, _)| name == "error")?;
        Some((self.level, error.clone()))
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let level = *event.metadata().level();
        let fields = fields.0;
        self.0.lock().unwrap().push(Recorded { level, fields });
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Collects every field of an event.
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}
