//! Finished spans on their way to the collector: a bounded queue of
//! compact spans, emptied in batches by a task that exports them.
//!
//! When a burst of requests ends, tens of thousands of spans finish at once,
//! and they wait while the next burst's requests take the CPU. The SDK's
//! batch processor holds each waiting span as a whole `SpanData`, 352
//! bytes before its attributes and events, most of them the same for every
//! span (the instrumentation scope, empty links, an unset status). Here a
//! waiting span keeps only what differs, 128 bytes, and becomes a
//! `SpanData` again in the batch that exports it. The settings are the same
//! standard ones (`OTEL_BSP_*`), and so is the behaviour: a batch leaves
//! when it is full or when the schedule delay has passed, a few at a time,
//! each within the export timeout, and a span that finds the queue full is
//! dropped and counted.
//!
//! Spans wait in batches: each is a vector made to the batch size, so taking
//! one for export moves it whole, and once a burst has been exported its
//! memory is freed, not kept as the spare capacity of one long queue.

use std::{
    borrow::Cow,
    collections::VecDeque,
    mem,
    sync::{Arc, Mutex, PoisonError, mpsc},
    time::{Duration, SystemTime},
};

use futures::{StreamExt, stream::FuturesUnordered};
use opentelemetry::{
    Context, InstrumentationScope, KeyValue,
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor},
};
use tokio::sync::Notify;

use super::{
    Batching,
    delivery::{Delivery, Signal},
    overflow::Overflow,
};

/// How long a flush outside shutdown may wait for the collector.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// A span processor that queues finished spans compactly and exports them
/// in batches from a task on the runtime.
#[derive(Debug)]
pub struct SpanQueue {
    shared: Arc<Shared>,
    /// Finished spans counted against those delivered or lost.
    overflow: Overflow,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the exporting task when a batch fills or a flush is asked for.
    wake: Notify,
    /// The most spans that may wait.
    max_queue: usize,
    /// The most spans in one export.
    batch: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Full batches, oldest first.
    full: VecDeque<Vec<Waiting>>,
    /// The batch being filled.
    filling: Vec<Waiting>,
    /// Spans queued so far: a flush waits for those queued before it.
    queued: u64,
    /// Flushes waiting for the spans queued before them to be exported.
    flushes: Vec<Flush>,
    /// Set by shutdown: export what is queued, then stop.
    closing: bool,
}

/// A wait for every span queued before it to have been exported.
#[derive(Debug)]
struct Flush {
    /// How many spans had been queued when it was asked for.
    upto: u64,
    reply: mpsc::SyncSender<OTelSdkResult>,
}

impl State {
    fn waiting(&self, batch: usize) -> usize {
        self.full.len() * batch + self.filling.len()
    }
}

impl SpanQueue {
    /// Starts the task that exports through `exporter`, on the current
    /// tokio runtime, with the batch settings `batching`, and counts what
    /// it delivers and loses in `delivery`. Every exported span carries
    /// `resource`.
    pub fn start<E>(
        mut exporter: E,
        resource: &Resource,
        batching: &Batching,
        delivery: Delivery,
    ) -> SpanQueue
    where
        E: SpanExporter + 'static,
    {
        exporter.set_resource(resource);
        let batch = batching.span_batch_size();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            max_queue: batching.span_queue,
            batch,
        });
        let exports = Exports {
            exporter: Arc::new(exporter),
            delivery: delivery.clone(),
            most: batching.span_exports.get(),
            timeout: Duration::from_millis(batching.span_export_timeout_ms),
            scope: super::span::scope(),
        };
        tokio::spawn(run(
            Arc::clone(&shared),
            exports,
            Duration::from_millis(batching.span_delay_ms.max(1)),
        ));
        SpanQueue {
            shared,
            overflow: Overflow::new(Signal::Spans, "span", batching.span_capacity(), delivery),
        }
    }

    /// Asks the task to export every span queued so far, and to stop after
    /// that if `closing`; waits at most `timeout` for it.
    fn flush(&self, closing: bool, timeout: Duration) -> OTelSdkResult {
        let (reply, outcome) = mpsc::sync_channel(1);
        {
            let mut state = self.shared.lock();
            state.closing |= closing;
            let upto = state.queued;
            state.flushes.push(Flush { upto, reply });
        }
        self.shared.wake.notify_one();
        outcome
            .recv_timeout(timeout)
            .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock is never held across anything that can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SpanProcessor for SpanQueue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        self.overflow.count();
        let batch = self.shared.batch;
        let full = {
            let mut state = self.shared.lock();
            if state.closing || state.waiting(batch) >= self.shared.max_queue {
                // Dropped: the overflow count tells, as delivery falls behind.
                return;
            }
            if state.filling.capacity() == 0 {
                state.filling.reserve_exact(batch);
            }
            state.filling.push(Waiting::from(span));
            state.queued += 1;
            if state.filling.len() == batch {
                let filled = mem::take(&mut state.filling);
                state.full.push_back(filled);
                true
            } else {
                false
            }
        };
        if full {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush(false, FLUSH_WAIT)
    }

    /// Exports what is queued, shuts the exporter down, then reports the
    /// spans that never reached the collector.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let outcome = self.flush(true, timeout);
        self.overflow.report_lost();
        outcome
    }

    /// The resource is given to [`SpanQueue::start`], before the exporter
    /// is shared with the task.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// What exporting needs, shared by every batch.
struct Exports<E> {
    exporter: Arc<E>,
    delivery: Delivery,
    /// The most batches on their way at once.
    most: usize,
    /// How long one export may take before it counts as failed.
    timeout: Duration,
    /// Every span's instrumentation scope: Thespian.
    scope: InstrumentationScope,
}

impl<E: SpanExporter + 'static> Exports<E> {
    /// Exports `batch`, within the timeout, and counts the outcome.
    fn export(&self, batch: Vec<Waiting>) -> impl Future<Output = ()> + Send + 'static {
        let spans: Vec<SpanData> = batch
            .into_iter()
            .map(|span| span.into_span_data(&self.scope))
            .collect();
        let exporter = Arc::clone(&self.exporter);
        let delivery = self.delivery.clone();
        let timeout = self.timeout;
        async move {
            let count = spans.len() as u64;
            let outcome = tokio::time::timeout(timeout, exporter.export(spans))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)));
            delivery.settle(Signal::Spans, count, &outcome);
        }
    }
}

/// The exporting task: takes full batches as they fill, and the batch
/// being filled when the schedule delay passes or a flush asks for it, with
/// at most [`Exports::most`] exports on their way at once.
async fn run<E: SpanExporter + 'static>(shared: Arc<Shared>, exports: Exports<E>, delay: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each export on its way, with how many spans had been taken before it.
    let mut on_their_way = FuturesUnordered::new();
    let mut taken: u64 = 0;
    loop {
        let mut due = false;
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tick.tick() => due = true,
            Some(_) = on_their_way.next() => {}
        }
        let (batches, flushes, closing) = {
            let mut state = shared.lock();
            let mut batches = Vec::new();
            let flushing = !state.flushes.is_empty() || state.closing;
            while on_their_way.len() + batches.len() < exports.most {
                if let Some(batch) = state.full.pop_front() {
                    batches.push(batch);
                } else if (due || flushing) && !state.filling.is_empty() {
                    batches.push(mem::take(&mut state.filling));
                    due = false;
                } else {
                    break;
                }
            }
            let started: Vec<(u64, Vec<Waiting>)> = batches
                .into_iter()
                .map(|batch| {
                    let before = taken;
                    taken += batch.len() as u64;
                    (before, batch)
                })
                .collect();
            // Shutdown ends the task once nothing waits and nothing is on
            // its way; a flush is done once everything queued before it has
            // been taken and no export begun before that point is on its way.
            let close = state.closing
                && state.waiting(shared.batch) == 0
                && started.is_empty()
                && on_their_way.is_empty();
            let flushes = if close {
                mem::take(&mut state.flushes)
            } else {
                let oldest = on_their_way
                    .iter()
                    .map(|export: &Export| export.before)
                    .chain(started.first().map(|(before, _)| *before))
                    .min();
                let (done, waiting) = mem::take(&mut state.flushes)
                    .into_iter()
                    .partition::<Vec<_>, _>(|flush| {
                        flush.upto <= taken && oldest.is_none_or(|oldest| oldest >= flush.upto)
                    });
                state.flushes = waiting;
                done
            };
            (started, flushes, close)
        };
        if closing {
            let outcome = exports.exporter.shutdown();
            for flush in flushes {
                let copy = match &outcome {
                    Ok(()) => Ok(()),
                    Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
                };
                let _ = flush.reply.send(copy);
            }
            return;
        }
        for (before, batch) in batches {
            on_their_way.push(Export {
                before,
                export: Box::pin(exports.export(batch)),
            });
        }
        for flush in flushes {
            let _ = flush.reply.send(Ok(()));
        }
    }
}

/// One export on its way, and where it began in the order spans were taken.
struct Export {
    before: u64,
    export: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for Export {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.export.as_mut().poll(cx)
    }
}

/// A finished span as it waits for export: what differs from span to span.
/// Everything else is the same for every span Thespian makes, and is put
/// back when it becomes a `SpanData`.
#[derive(Debug)]
struct Waiting {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: SpanId,
    start: SystemTime,
    end: SystemTime,
    name: Cow<'static, str>,
    attributes: Box<[KeyValue]>,
    /// What most spans do not have: events, a status, a trace state.
    rare: Option<Box<Rare>>,
    flags: TraceFlags,
    kind: SpanKind,
    is_remote: bool,
    parent_is_remote: bool,
}

#[derive(Debug)]
struct Rare {
    events: SpanEvents,
    links: SpanLinks,
    status: Status,
    trace_state: TraceState,
    dropped_attributes_count: u32,
}

impl From<SpanData> for Waiting {
    fn from(span: SpanData) -> Waiting {
        let context = &span.span_context;
        let plain = span.events.events.is_empty()
            && span.events.dropped_count == 0
            && span.links.links.is_empty()
            && span.links.dropped_count == 0
            && span.status == Status::Unset
            && span.dropped_attributes_count == 0
            && *context.trace_state() == TraceState::NONE;
        let (trace_id, span_id, flags, is_remote) = (
            context.trace_id(),
            context.span_id(),
            context.trace_flags(),
            context.is_remote(),
        );
        let rare = (!plain).then(|| {
            Box::new(Rare {
                trace_state: span.span_context.trace_state().clone(),
                events: span.events,
                links: span.links,
                status: span.status,
                dropped_attributes_count: span.dropped_attributes_count,
            })
        });
        Waiting {
            trace_id,
            span_id,
            parent_span_id: span.parent_span_id,
            start: span.start_time,
            end: span.end_time,
            name: span.name,
            attributes: span.attributes.into_boxed_slice(),
            rare,
            flags,
            kind: span.span_kind,
            is_remote,
            parent_is_remote: span.parent_span_is_remote,
        }
    }
}

impl Waiting {
    fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let rare = self.rare.map_or_else(
            || Rare {
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                trace_state: TraceState::NONE,
                dropped_attributes_count: 0,
            },
            |rare| *rare,
        );
        SpanData {
            span_context: SpanContext::new(
                self.trace_id,
                self.span_id,
                self.flags,
                self.is_remote,
                rare.trace_state,
            ),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: self.end,
            attributes: self.attributes.into_vec(),
            dropped_attributes_count: rare.dropped_attributes_count,
            events: rare.events,
            links: rare.links,
            status: rare.status,
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroUsize, sync::atomic::AtomicUsize, sync::atomic::Ordering};

    use opentelemetry::trace::{Event, TraceState};
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    use super::*;

    /// An exporter that hands each batch to the test after `delay` (never,
    /// with `None`).
    #[derive(Debug, Clone)]
    struct Collector {
        delay: Option<Duration>,
        batches: UnboundedSender<Vec<SpanData>>,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            match self.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            self.exported.fetch_add(batch.len(), Ordering::Relaxed);
            let _ = self.batches.send(batch);
            Ok(())
        }
    }

    fn batching(queue: usize, batch: usize, delay_ms: u64, exports: usize) -> Batching {
        Batching {
            span_queue: queue,
            span_batch: batch,
            span_delay_ms: delay_ms,
            span_exports: NonZeroUsize::new(exports).unwrap(),
            span_export_timeout_ms: 30_000,
            log_queue: 1,
            log_batch: 1,
            log_delay_ms: 1,
        }
    }

    fn span(n: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(n) + 1),
                SpanId::from(n + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "A".into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH + Duration::from_millis(n),
            attributes: vec![KeyValue::new("n", n as i64)],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: super::super::span::scope(),
        }
    }

    /// A queue exporting to a collector that takes `delay` per batch.
    fn queue(
        settings: &Batching,
        delay: Option<Duration>,
    ) -> (
        SpanQueue,
        tokio::sync::mpsc::UnboundedReceiver<Vec<SpanData>>,
        Arc<AtomicUsize>,
        Delivery,
    ) {
        let (batches, received) = unbounded_channel();
        let exported = Arc::new(AtomicUsize::new(0));
        let delivery = Delivery::default();
        let collector = Collector {
            delay,
            batches,
            exported: exported.clone(),
        };
        let queue = SpanQueue::start(
            collector,
            &Resource::builder_empty().build(),
            settings,
            delivery.clone(),
        );
        (queue, received, exported, delivery)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_span_is_exported_whole() {
        let (queue, mut received, _, _) =
            queue(&batching(16, 16, 3_600_000, 1), Some(Duration::ZERO));
        let mut rich = span(7);
        rich.span_context = SpanContext::new(
            TraceId::from(9_u128),
            SpanId::from(9_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        rich.parent_span_id = SpanId::from(3_u64);
        rich.parent_span_is_remote = true;
        rich.span_kind = SpanKind::Client;
        rich.events
            .events
            .push(Event::new("said", SystemTime::UNIX_EPOCH, vec![], 0));
        rich.events.dropped_count = 2;
        rich.status = Status::error("boom");
        rich.dropped_attributes_count = 1;
        let plain = span(8);
        queue.on_end(rich.clone());
        queue.on_end(plain.clone());
        let queue = Arc::new(queue);
        let flushing = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .unwrap()
            .unwrap();
        // The flush returns once the export is done: the batch is there.
        let batch = received.try_recv().expect("the flush exported the batch");
        assert_eq!(batch, [rich, plain]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_batch_leaves_without_waiting_for_the_schedule() {
        // An hour's schedule: only a full batch can leave in this test.
        let (queue, mut received, _, _) =
            queue(&batching(64, 4, 3_600_000, 1), Some(Duration::ZERO));
        for n in 0..6 {
            queue.on_end(span(n));
        }
        let batch = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("a full batch is exported at once")
            .unwrap();
        let ends: Vec<_> = batch.iter().map(|span| span.end_time).collect();
        let first: Vec<_> = (0..4).map(|n| span(n).end_time).collect();
        assert_eq!(ends, first, "the oldest spans leave first, in order");
        assert!(received.try_recv().is_err(), "the other two wait");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_spans_and_shutdown_exports_the_rest() {
        let settings = batching(4, 2, 3_600_000, 1);
        let (queue, _received, exported, delivery) =
            queue(&settings, Some(Duration::from_millis(20)));
        for n in 0..64 {
            queue.on_end(span(n));
        }
        let outcome = tokio::task::spawn_blocking(move || queue.shutdown())
            .await
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
        let exported = exported.load(Ordering::Relaxed);
        // The queue's four, and what left for export while the rest came.
        assert!(
            (4..=settings.span_capacity() as usize).contains(&exported),
            "the queue's spans are exported, the overflow dropped: {exported}"
        );
        assert_eq!(delivery.exported(Signal::Spans), exported as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_gives_up_on_a_collector_that_never_answers() {
        let (queue, _received, _, _) = queue(&batching(16, 2, 3_600_000, 1), None);
        for n in 0..8 {
            queue.on_end(span(n));
        }
        let outcome = tokio::task::spawn_blocking(move || {
            queue.shutdown_with_timeout(Duration::from_millis(100))
        });
        let outcome = tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("shutdown returns at its deadline")
            .unwrap();
        assert!(
            matches!(outcome, Err(OTelSdkError::Timeout(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_waiting_span_takes_well_under_half_the_room_of_a_span_data() {
        // 128 against 352 bytes when this was written.
        assert!(
            mem::size_of::<Waiting>() * 5 / 2 <= mem::size_of::<SpanData>(),
            "{} bytes waiting, {} as SpanData",
            mem::size_of::<Waiting>(),
            mem::size_of::<SpanData>()
        );
    }
}
