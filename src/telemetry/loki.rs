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
//! take at most [`SESSION_LINES`] lines (fewer than its channel holds, so
//! the channel never drops a line uncounted) for at most [`SESSION_AGE`],
//! then are asked to push what they hold and stop. A session that fails a
//! push, or has not finished [`PUSH_TIMEOUT`] after it stopped taking
//! lines, is dropped with its lines. At most [`MAX_SESSIONS`] are alive,
//! so at most that many times [`SESSION_LINES`] lines are held; a line
//! that finds no session with room is dropped and counted. After a failure
//! no session is opened until a growing wait has passed; the first failure
//! is a warning, the rest are debug events, and a delivered session after
//! failures says so. Each task is polled at most once per [`POLL_PACE`].

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll, Wake, Waker},
    time::Duration,
};

use futures::task::AtomicWaker;
use tokio::{
    sync::{Notify, oneshot},
    task::JoinHandle,
    time::{Instant, Sleep},
};
use tracing::{
    Dispatch, Event, Level, Metadata, Subscriber,
    field::{Field, FieldSet, Value, Visit},
    span::{Attributes, Id, Record},
};
use tracing_core::{callsite::DefaultCallsite, metadata::Kind};
use tracing_loki::url::Url;
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// Lines one session takes: below the 512 slots of tracing-loki's channel,
/// so however late its task runs, the channel never overflows.
const SESSION_LINES: usize = 500;

/// How long a session takes lines before the next one takes over, so that
/// a push that hangs is noticed even when lines are few.
const SESSION_AGE: Duration = Duration::from_secs(2);

/// How long a session may take to push its lines once it stops taking them.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions alive at once: taking lines, waiting as the spare, or pushing.
/// With [`SESSION_LINES`], this bounds the lines held for Loki.
const MAX_SESSIONS: usize = 8;

/// The shortest time between two polls of a session's task.
const POLL_PACE: Duration = Duration::from_millis(20);

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
        let supervisor = Supervisor {
            shared: Arc::clone(&shared),
            builder,
            url: url.clone(),
            running: Vec::new(),
            failures: 0,
            retry_wait: Duration::ZERO,
            resume_at: None,
        };
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

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/// One tracing-loki layer and the task that pushes what it is given.
struct Session {
    /// Formats lines and hands them to the task. Kept alive until the task
    /// has finished: tracing-loki's task spins if its layer goes first.
    layer: tracing_loki::Layer,
    /// Asks the task to push what it holds and finish.
    controller: tracing_loki::BackgroundTaskController,
}

/// How a session's task ended.
#[derive(Debug)]
enum Outcome {
    /// Every push it made was accepted.
    Delivered,
    /// A push failed; the lines it held are gone.
    Failed(String),
}

/// Opens a session and starts its task.
fn open(
    builder: &tracing_loki::Builder,
    url: &Url,
) -> Result<(Arc<Session>, JoinHandle<Outcome>), tracing_loki::Error> {
    let (layer, controller, task) = builder.clone().build_controller_url(url.clone())?;
    let session = Arc::new(Session { layer, controller });
    Ok((session, tokio::spawn(Paced::new(task))))
}

// ---------------------------------------------------------------------------
// Admission: what the layer does for each line
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    /// Which sessions take lines.
    slots: Mutex<Slots>,
    /// Lines dropped because no session had room, plus lines held by
    /// sessions that failed (some of those may have arrived).
    undelivered: AtomicU64,
    /// Set once shutdown has begun: later lines are not counted as lost.
    closed: AtomicBool,
    /// Wakes the supervisor when the layer retires a full session.
    wake: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("undelivered", &self.undelivered)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Slots {
    /// The session taking lines, how many it took, and since when.
    current: Option<Taking>,
    /// The session that takes over when the current one is full.
    spare: Option<Arc<Session>>,
    /// Sessions the layer retired, for the supervisor to stop.
    retired: Vec<(Arc<Session>, usize)>,
}

struct Taking {
    session: Arc<Session>,
    lines: usize,
    since: Instant,
}

impl Taking {
    fn new(session: Arc<Session>) -> Taking {
        Taking {
            session,
            lines: 0,
            since: Instant::now(),
        }
    }
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session that takes the next line, or `None` (and the line is
    /// counted) when none has room.
    fn admit(&self) -> Option<Arc<Session>> {
        let mut guard = self.slots();
        let slots = &mut *guard;
        if slots
            .current
            .as_ref()
            .is_some_and(|taking| taking.lines >= SESSION_LINES)
            && let Some(spare) = slots.spare.take()
            && let Some(full) = slots.current.replace(Taking::new(spare))
        {
            slots.retired.push((full.session, full.lines));
            self.wake.notify_one();
        }
        match &mut slots.current {
            Some(taking) if taking.lines < SESSION_LINES => {
                taking.lines += 1;
                Some(Arc::clone(&taking.session))
            }
            _ => {
                drop(guard);
                if !self.closed.load(Ordering::Relaxed) {
                    self.undelivered.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
        }
    }
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
    let Some((trace_id, span_id)) = super::current_ids() else {
        return;
    };
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

// ---------------------------------------------------------------------------
// The supervisor: opens, retires and reaps sessions
// ---------------------------------------------------------------------------

struct Supervisor {
    shared: Arc<Shared>,
    /// Makes each session's layer and task, with the labels.
    builder: tracing_loki::Builder,
    /// Where sessions push.
    url: Url,
    /// Every session whose task has not been reaped yet.
    running: Vec<Running>,
    /// Failures since Loki last accepted a push; 0 while it is healthy.
    failures: u64,
    /// How long the last failure made lines wait.
    retry_wait: Duration,
    /// When sessions may take lines again after a failure.
    resume_at: Option<Instant>,
}

struct Running {
    session: Arc<Session>,
    task: JoinHandle<Outcome>,
    /// Lines it took; known once it stopped taking them.
    lines: usize,
    /// When it stopped taking lines.
    retired_at: Option<Instant>,
    /// Whether it was asked to push and finish.
    stopping: bool,
}

impl Supervisor {
    async fn run(
        mut self,
        first: (Arc<Session>, JoinHandle<Outcome>),
        mut stopped: oneshot::Receiver<()>,
    ) {
        self.adopt(first);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.shared.wake.notified() => {}
                _ = &mut stopped => break,
            }
            self.step().await;
        }
        self.drain().await;
    }

    /// Makes a new session the spare, or the current one when there is none.
    fn adopt(&mut self, (session, task): (Arc<Session>, JoinHandle<Outcome>)) {
        {
            let mut slots = self.shared.slots();
            if slots.current.is_none() {
                slots.current = Some(Taking::new(Arc::clone(&session)));
            } else {
                slots.spare = Some(Arc::clone(&session));
            }
        }
        self.running.push(Running {
            session,
            task,
            lines: 0,
            retired_at: None,
            stopping: false,
        });
    }

    async fn step(&mut self) {
        let now = Instant::now();
        self.collect_retired(now);
        self.retire_old(now);
        self.stop_retired().await;
        self.reap(now).await;
        self.provision(now);
    }

    /// Takes over the sessions the layer retired.
    fn collect_retired(&mut self, now: Instant) {
        let retired = std::mem::take(&mut self.shared.slots().retired);
        for (session, lines) in retired {
            self.mark_retired(&session, lines, now);
        }
    }

    fn mark_retired(&mut self, session: &Arc<Session>, lines: usize, now: Instant) {
        if let Some(running) = self
            .running
            .iter_mut()
            .find(|r| Arc::ptr_eq(&r.session, session))
        {
            running.lines = lines;
            running.retired_at = Some(now);
        }
    }

    /// Retires the current session once it has taken lines for long enough.
    fn retire_old(&mut self, now: Instant) {
        let old = {
            let mut slots = self.shared.slots();
            let due = slots
                .current
                .as_ref()
                .is_some_and(|t| t.lines > 0 && now.duration_since(t.since) >= SESSION_AGE);
            if !due {
                return;
            }
            let next = slots.spare.take().map(Taking::new);
            std::mem::replace(&mut slots.current, next)
        };
        if let Some(old) = old {
            self.mark_retired(&old.session, old.lines, now);
        }
    }

    /// Asks retired sessions to push and finish, once no line is on its way
    /// into them.
    async fn stop_retired(&mut self) {
        for running in &mut self.running {
            // The supervisor's own reference is the only one left once the
            // layer has handed over its last line.
            if running.retired_at.is_some()
                && !running.stopping
                && Arc::strong_count(&running.session) == 1
            {
                running.stopping = true;
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    running.session.controller.shutdown(),
                )
                .await;
            }
        }
    }

    /// Collects finished sessions and those that took too long.
    async fn reap(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.running.len() {
            let running = &self.running[index];
            let overdue = running
                .retired_at
                .is_some_and(|at| now.duration_since(at) >= PUSH_TIMEOUT);
            if !running.task.is_finished() && !overdue {
                index += 1;
                continue;
            }
            let mut running = self.running.swap_remove(index);
            let outcome = if running.task.is_finished() {
                match (&mut running.task).await {
                    Ok(outcome) => outcome,
                    Err(e) => Outcome::Failed(format!("the push task ended: {e}")),
                }
            } else {
                running.task.abort();
                Outcome::Failed(format!(
                    "Loki did not answer within {} s",
                    PUSH_TIMEOUT.as_secs()
                ))
            };
            // A session that failed while still taking lines stops now.
            let lines = if running.retired_at.is_some() {
                running.lines
            } else {
                self.withdraw(&running.session)
            };
            self.settle(outcome, lines, now);
        }
    }

    /// Takes a session out of the slots and returns how many lines it took.
    fn withdraw(&mut self, session: &Arc<Session>) -> usize {
        let mut slots = self.shared.slots();
        if slots
            .current
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.session, session))
        {
            let taken = slots.current.take().map_or(0, |t| t.lines);
            slots.current = slots.spare.take().map(Taking::new);
            return taken;
        }
        if slots
            .spare
            .as_ref()
            .is_some_and(|spare| Arc::ptr_eq(spare, session))
        {
            slots.spare = None;
        }
        0
    }

    fn settle(&mut self, outcome: Outcome, lines: usize, now: Instant) {
        match outcome {
            Outcome::Delivered => {
                if self.failures > 0 && lines > 0 {
                    tracing::info!(
                        target: TARGET,
                        undelivered = self.shared.undelivered.load(Ordering::Relaxed) as i64,
                        "Loki accepts log lines again"
                    );
                    self.failures = 0;
                    self.retry_wait = Duration::ZERO;
                    self.resume_at = None;
                }
            }
            Outcome::Failed(error) => {
                self.shared
                    .undelivered
                    .fetch_add(lines as u64, Ordering::Relaxed);
                self.failed(&error, now);
            }
        }
    }

    /// Stops taking lines for a while, longer after each failure. Only the
    /// first failure after a healthy spell is a warning.
    fn failed(&mut self, error: &str, now: Instant) {
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(
                target: TARGET,
                loki = %self.url,
                "cannot push log lines to Loki, they are dropped and counted until it answers: {error}"
            );
        } else {
            tracing::debug!(
                target: TARGET,
                failures = self.failures as i64,
                "Loki push failed again: {error}"
            );
        }
        // Failures of sessions opened before the wait started do not make
        // it longer.
        if self.resume_at.is_none_or(|at| now >= at) {
            self.retry_wait = if self.retry_wait.is_zero() {
                RETRY_FIRST
            } else {
                (self.retry_wait * 2).min(RETRY_MAX)
            };
            self.resume_at = Some(now + self.retry_wait);
        }
        // The sessions taking lines would fail the same way.
        let (current, spare) = {
            let mut slots = self.shared.slots();
            (slots.current.take(), slots.spare.take())
        };
        if let Some(current) = current {
            self.mark_retired(&current.session, current.lines, now);
        }
        if let Some(spare) = spare {
            self.mark_retired(&spare, 0, now);
        }
    }

    /// Keeps a current and a spare session open, unless waiting after a
    /// failure or at the limit.
    fn provision(&mut self, now: Instant) {
        if self.resume_at.is_some_and(|at| now < at) {
            return;
        }
        loop {
            let missing = {
                let slots = self.shared.slots();
                usize::from(slots.current.is_none()) + usize::from(slots.spare.is_none())
            };
            if missing == 0 || self.running.len() >= MAX_SESSIONS {
                return;
            }
            match open(&self.builder, &self.url) {
                Ok(opened) => self.adopt(opened),
                Err(e) => {
                    self.failed(&e.to_string(), now);
                    return;
                }
            }
        }
    }

    /// At shutdown: retires every session, lets them push, and gives up on
    /// those still pushing after [`SHUTDOWN_WAIT`].
    async fn drain(mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let (current, spare) = {
            let mut slots = self.shared.slots();
            (slots.current.take(), slots.spare.take())
        };
        self.collect_retired(now);
        if let Some(current) = current {
            self.mark_retired(&current.session, current.lines, now);
        }
        if let Some(spare) = spare {
            self.mark_retired(&spare, 0, now);
        }
        let deadline = now + SHUTDOWN_WAIT;
        while !self.running.is_empty() && Instant::now() < deadline {
            self.stop_retired().await;
            self.reap(Instant::now()).await;
            tokio::time::sleep(TICK.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        for running in std::mem::take(&mut self.running) {
            running.task.abort();
            self.shared
                .undelivered
                .fetch_add(running.lines as u64, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------
// Paced: runs one tracing-loki task
// ---------------------------------------------------------------------------

/// Runs a tracing-loki task, polling it at most once per [`POLL_PACE`] and
/// only when it asked to be woken, and ends it at its first failed push,
/// which it reads from the error tracing-loki logs.
struct Paced {
    task: Pin<Box<tracing_loki::BackgroundTask>>,
    /// Ends the quiet time after each poll.
    pause: Pin<Box<Sleep>>,
    /// The waker the task is given: notes that the task asked to be polled.
    wakes: Arc<Wakes>,
    waker: Waker,
}

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
    fn new(task: tracing_loki::BackgroundTask) -> Paced {
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

    #[test]
    fn a_session_never_takes_more_lines_than_tracing_lokis_channel_holds() {
        const { assert!(SESSION_LINES < 512) };
    }
}
