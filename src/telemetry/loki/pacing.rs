//! Pacing: runs one tracing-loki task so that it is polled seldom, keeps
//! its own logging out of Thespian's telemetry, and ends at its first
//! failed push.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll, Wake, Waker},
    time::Duration,
};

use futures::task::AtomicWaker;
use tokio::time::{Instant, Sleep};
use tracing::{
    Dispatch, Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

use super::session::Outcome;

/// The shortest time between two polls of a session's task.
const POLL_PACE: Duration = Duration::from_millis(20);

/// Runs a tracing-loki task, polling it at most once per [`POLL_PACE`] and
/// only when it asked to be woken, and ends it at its first failed push,
/// which it reads from the error tracing-loki logs.
pub(super) struct Paced {
    task: Pin<Box<tracing_loki::BackgroundTask>>,
    /// Ends the quiet time after each poll.
    pause: Pin<Box<Sleep>>,
    /// The waker the task is given: notes that the task asked to be polled.
    wakes: Arc<Wakes>,
    waker: Waker,
}

/// The waker handed to a tracing-loki task, so [`Paced`] knows whether
/// the task asked to be polled.
#[derive(Default)]
struct Wakes {
    /// Whether the task asked to be polled since it last was.
    woken: AtomicBool,
    /// Wakes the tokio task that runs [`Paced`].
    outer: AtomicWaker,
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
    }
}

impl Paced {
    /// Paces `task`, which is polled as soon as it is first run.
    pub(super) fn new(task: tracing_loki::BackgroundTask) -> Paced {
        let wakes = Arc::new(Wakes::default());
        wakes.woken.store(true, Ordering::Relaxed);
        Paced {
            task: Box::pin(task),
            pause: Box::pin(tokio::time::sleep(Duration::ZERO)),
            waker: Waker::from(Arc::clone(&wakes)),
            wakes,
        }
    }
}

impl Future for Paced {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        this.wakes.outer.register(cx.waker());
        if !this.wakes.woken.load(Ordering::Acquire) || this.pause.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.wakes.woken.store(false, Ordering::Release);
        let mut inner = TaskContext::from_waker(&this.waker);
        let polled =
            tracing::dispatcher::with_default(observer(), || this.task.as_mut().poll(&mut inner));
        if let Some(error) = PUSH_ERROR.with(|e| e.borrow_mut().take()) {
            return Poll::Ready(Outcome::Failed(error));
        }
        if polled.is_ready() {
            return Poll::Ready(Outcome::Delivered);
        }
        let next = Instant::now() + POLL_PACE;
        this.pause.as_mut().reset(next);
        Poll::Pending
    }
}

thread_local! {
    /// The error tracing-loki logged while its task was polled on this
    /// thread, read right after the poll.
    static PUSH_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The subscriber that is current while a tracing-loki task is polled: it
/// keeps the task's error events out of Thespian's own telemetry, and
/// notes the first one for [`Paced`] to read.
fn observer() -> &'static Dispatch {
    static OBSERVER: std::sync::OnceLock<Dispatch> = std::sync::OnceLock::new();
    OBSERVER.get_or_init(|| Dispatch::new(Observer))
}

/// The subscriber behind [`observer`].
struct Observer;

impl Subscriber for Observer {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() == Level::ERROR
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut error = ErrorField(None);
        event.record(&mut error);
        if let Some(error) = error.0 {
            PUSH_ERROR.with(|e| {
                e.borrow_mut().get_or_insert(error);
            });
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Reads the `error` field of tracing-loki's "couldn't send logs" event.
struct ErrorField(Option<String>);

impl Visit for ErrorField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "error" {
            self.0 = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "error" {
            self.0 = Some(value.to_owned());
        }
    }
}
