//! Telemetry on its way to the collector, spans and log records alike: a
//! bounded queue, emptied in batches by a task that exports them.
//!
//! When a burst of requests ends, tens of thousands of spans and log records
//! are made at once, and they wait while the next burst's requests take the
//! CPU. What waits is each signal's own form of a batch ([`Export::Batch`]):
//! its items' OTLP bytes, already written, so a batch is a request once its
//! items are put side by side. The settings are the SDK's batch processors'
//! standard ones (`OTEL_BSP_*`, `OTEL_BLRP_*`): batches of a size, a few on
//! their way at a time, each within the export timeout, and an item that
//! finds the queue full is dropped and counted.
//!
//! A full batch leaves as soon as an export is free to take it: what waits
//! for export is memory, and a burst's worth held back piles onto the next
//! burst's requests. The batch still filling leaves when a look at the
//! queue, every [`LOOK`], finds nothing new came, or on the schedule, so a
//! lone request's spans reach the collector within a few looks rather than
//! a schedule delay. A flush or shutdown takes everything.
//!
//! Items wait in batches, each made when its first item comes, so taking
//! one for export moves it whole, once a burst has been exported its
//! memory is freed rather than kept as the spare capacity of one long queue,
//! and an idle queue holds nothing at all.

use std::{
    collections::VecDeque,
    future::Future,
    mem,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc},
    task,
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tokio::{sync::Notify, time::Instant};

use super::{
    delivery::{Delivery, Signal},
    overflow::Overflow,
};

/// How often the task looks at a queue that holds items: a look that finds
/// nothing new since the last lets the batch being filled leave.
pub(super) const LOOK: Duration = Duration::from_millis(10);
/// How long a flush outside shutdown may wait for the collector.
pub(super) const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// What a queue needs from its signal: how its items wait together, and
/// how a batch of them leaves.
pub(super) trait Export: Send + Sync + 'static {
    /// Items as they wait for export, a batch's worth at most.
    type Batch: Batch;

    /// Exports `batch`. The queue bounds the time it may take.
    fn export(&self, batch: Self::Batch) -> impl Future<Output = OTelSdkResult> + Send + 'static;
}

/// Items waiting together, in whatever form costs their signal least to
/// hold: a vector of items, or one signal's items written side by side.
pub(super) trait Batch: Send + 'static {
    /// An empty batch about to take up to `items` items.
    fn with_room(items: usize) -> Self;

    /// How many items it holds.
    fn len(&self) -> usize;
}

impl<I: Send + 'static> Batch for Vec<I> {
    fn with_room(items: usize) -> Vec<I> {
        Vec::with_capacity(items)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// How a queue batches: one signal's standard settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueSettings {
    /// The most items that may wait.
    pub(super) max_queue: usize,
    /// The most items in one export: at least one.
    pub(super) batch: usize,
    /// How long a batch that is not full waits to leave.
    pub(super) delay: Duration,
    /// The most batches on their way at once: at least one.
    pub(super) exports: usize,
    /// How long one export may take before it counts as failed.
    pub(super) timeout: Duration,
}

impl QueueSettings {
    /// How many items can be waiting without any being dropped: the queue,
    /// which holds the batch being filled, and the batches being exported.
    pub(super) fn capacity(&self) -> u64 {
        (self.max_queue + self.exports * self.batch) as u64
    }
}

/// A bounded queue of one signal's items, exported in batches by a task on
/// the runtime.
#[derive(Debug)]
pub(super) struct ExportQueue<B> {
    shared: Arc<Shared<B>>,
    /// Items queued or dropped, counted against those delivered or lost.
    overflow: Overflow,
}

#[derive(Debug)]
struct Shared<B> {
    state: Mutex<State<B>>,
    /// Wakes the exporting task when an empty queue gets an item, a batch
    /// fills, or a flush is asked for.
    wake: Notify,
    /// The most items that may wait.
    max_queue: usize,
    /// The most items in one export.
    batch: usize,
}

#[derive(Debug)]
struct State<B> {
    /// Full batches, oldest first.
    full: VecDeque<B>,
    /// The batch being filled, if any item waits in one.
    filling: Option<B>,
    /// Items queued so far: a flush waits for those queued before it.
    queued: u64,
    /// Flushes waiting for the items queued before them to be exported.
    flushes: Vec<Flush>,
    /// Set by shutdown: export what is queued, then stop.
    closing: bool,
}

/// A wait for every item queued before it to have been exported.
#[derive(Debug)]
struct Flush {
    /// How many items had been queued when it was asked for.
    upto: u64,
    reply: mpsc::SyncSender<OTelSdkResult>,
}

impl<B: Batch> State<B> {
    fn waiting(&self, batch: usize) -> usize {
        self.full.len() * batch + self.filling.as_ref().map_or(0, B::len)
    }
}

impl<B: Batch> ExportQueue<B> {
    /// Starts the task that exports through `export`, on the current tokio
    /// runtime, batching as `settings` say, and counts what it delivers and
    /// loses of `signal` in `delivery`; `noun` names one item in warnings.
    pub(super) fn start<X>(
        export: X,
        settings: QueueSettings,
        signal: Signal,
        noun: &'static str,
        delivery: Delivery,
    ) -> ExportQueue<B>
    where
        X: Export<Batch = B>,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                full: VecDeque::new(),
                filling: None,
                queued: 0,
                flushes: Vec::new(),
                closing: false,
            }),
            wake: Notify::new(),
            max_queue: settings.max_queue,
            batch: settings.batch,
        });
        let exports = Exports {
            export: Arc::new(export),
            signal,
            delivery: delivery.clone(),
            most: settings.exports,
            timeout: settings.timeout,
        };
        tokio::spawn(run(
            Arc::clone(&shared),
            exports,
            settings.delay.max(Duration::from_millis(1)),
        ));
        ExportQueue {
            shared,
            overflow: Overflow::new(signal, noun, settings.capacity(), delivery),
        }
    }

    /// Puts one item in the batch being filled with `put`, or drops it,
    /// counted, when the queue is full or shutting down: `put` runs only
    /// when there is room, and must add exactly one item.
    pub(super) fn push(&self, put: impl FnOnce(&mut B)) {
        self.overflow.count();
        let batch = self.shared.batch;
        let wake = {
            let mut state = self.shared.lock();
            if state.closing || state.waiting(batch) >= self.shared.max_queue {
                // Dropped: the overflow count tells, as delivery falls behind.
                return;
            }
            let first = state.filling.is_none() && state.full.is_empty();
            let filling = state.filling.get_or_insert_with(|| B::with_room(batch));
            put(filling);
            let full = filling.len() >= batch;
            state.queued += 1;
            if full && let Some(filled) = state.filling.take() {
                state.full.push_back(filled);
            }
            // The first item into an empty queue starts the looks.
            full || first
        };
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Asks the task to export every item queued so far; waits at most
    /// [`FLUSH_WAIT`] for it.
    pub(super) fn flush(&self) -> OTelSdkResult {
        self.ask(false, FLUSH_WAIT)
    }

    /// Exports what is queued and shuts the exporter down, waiting at most
    /// `timeout`, then reports the items that never reached the collector.
    pub(super) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let outcome = self.ask(true, timeout);
        self.overflow.report_lost();
        outcome
    }

    /// Asks the task to export every item queued so far, and to stop after
    /// that if `closing`; waits at most `timeout` for it.
    fn ask(&self, closing: bool, timeout: Duration) -> OTelSdkResult {
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

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // The lock is never held across anything that can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What exporting needs, shared by every batch.
struct Exports<X> {
    export: Arc<X>,
    signal: Signal,
    delivery: Delivery,
    /// The most batches on their way at once.
    most: usize,
    /// How long one export may take before it counts as failed.
    timeout: Duration,
}

impl<X: Export> Exports<X> {
    /// Exports `batch`, within the timeout, and counts the outcome.
    fn export(&self, batch: X::Batch) -> impl Future<Output = ()> + Send + 'static {
        let count = batch.len() as u64;
        let exporting = self.export.export(batch);
        let (signal, delivery, timeout) = (self.signal, self.delivery.clone(), self.timeout);
        async move {
            let outcome = tokio::time::timeout(timeout, exporting)
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)));
            delivery.settle(signal, count, &outcome);
        }
    }
}

/// The exporting task: takes full batches as they fill, and the batch being
/// filled when items stop coming, the schedule delay passes or a flush asks
/// for it, with at most [`Exports::most`] exports on their way at once.
async fn run<X: Export>(shared: Arc<Shared<X::Batch>>, exports: Exports<X>, delay: Duration) {
    let mut tick = tokio::time::interval_at(Instant::now() + delay, delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let look = tokio::time::sleep(LOOK);
    tokio::pin!(look);
    // Each export on its way, with how many items had been taken before it.
    let mut on_their_way = FuturesUnordered::new();
    let mut taken: u64 = 0;
    let mut pace = Pace::default();
    loop {
        let (mut due, mut looked) = (false, false);
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tick.tick() => due = true,
            () = &mut look, if pace.watching => looked = true,
            Some(_) = on_their_way.next() => {}
        }
        let now = Instant::now();
        let (batches, flushes, closing) = {
            let mut state = shared.lock();
            if looked {
                pace.look(state.queued);
            }
            let flushing = !state.flushes.is_empty() || state.closing;
            let mut batches = Vec::new();
            while on_their_way.len() + batches.len() < exports.most {
                if let Some(batch) = state.full.pop_front() {
                    batches.push(batch);
                } else if (due || flushing || pace.idle)
                    && let Some(filling) = state.filling.take()
                {
                    batches.push(filling);
                    due = false;
                } else {
                    break;
                }
            }
            if state.waiting(shared.batch) == 0 {
                pace.stop();
            } else if !pace.watching || looked {
                if !pace.watching {
                    pace.start(state.queued);
                }
                look.as_mut().reset(now + LOOK);
            }
            let started: Vec<(u64, X::Batch)> = batches
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
                    .map(|export: &OnItsWay| export.before)
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
            for flush in flushes {
                let _ = flush.reply.send(Ok(()));
            }
            return;
        }
        for (before, batch) in batches {
            on_their_way.push(OnItsWay {
                before,
                export: Box::pin(exports.export(batch)),
            });
        }
        for flush in flushes {
            let _ = flush.reply.send(Ok(()));
        }
    }
}

/// Whether items still come into a queue, as the task's looks see it.
#[derive(Debug, Default)]
struct Pace {
    /// Whether the queue holds items, so the task looks every [`LOOK`].
    watching: bool,
    /// Items queued as of the last look.
    seen: u64,
    /// Nothing came in the last look: the batch being filled may leave.
    idle: bool,
}

impl Pace {
    /// Begins watching a queue that has just had its first item.
    fn start(&mut self, queued: u64) {
        *self = Pace {
            watching: true,
            seen: queued,
            idle: false,
        };
    }

    /// Stops watching a queue that has emptied.
    fn stop(&mut self) {
        self.watching = false;
    }

    /// Notes whether anything came since the last look, [`LOOK`] ago.
    fn look(&mut self, queued: u64) {
        self.idle = queued == self.seen;
        self.seen = queued;
    }
}

/// One export on its way, and where it began in the order items were taken.
struct OnItsWay {
    before: u64,
    export: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for OnItsWay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> task::Poll<()> {
        self.export.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use super::*;

    /// Hands each exported batch to the test, at once.
    struct Collect(UnboundedSender<Vec<u32>>);

    impl Export for Collect {
        type Batch = Vec<u32>;

        fn export(&self, batch: Vec<u32>) -> impl Future<Output = OTelSdkResult> + Send + 'static {
            let _ = self.0.send(batch);
            async { Ok(()) }
        }
    }

    /// A queue of `max_queue` items in batches of `batch`, one export at a
    /// time, and what it exports.
    fn queue(
        max_queue: usize,
        batch: usize,
        delay: Duration,
    ) -> (ExportQueue<Vec<u32>>, UnboundedReceiver<Vec<u32>>, Delivery) {
        let (exported, received) = unbounded_channel();
        let settings = QueueSettings {
            max_queue,
            batch,
            delay,
            exports: 1,
            timeout: Duration::from_secs(30),
        };
        let delivery = Delivery::default();
        let queue = ExportQueue::start(
            Collect(exported),
            settings,
            Signal::Spans,
            "item",
            delivery.clone(),
        );
        (queue, received, delivery)
    }

    /// Lets `ms` milliseconds of paused time pass, one at a time, giving
    /// the task its turn after each.
    async fn pass(ms: u64) {
        for _ in 0..ms {
            tokio::time::advance(Duration::from_millis(1)).await;
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        }
    }

    fn drain(received: &mut UnboundedReceiver<Vec<u32>>) -> Vec<Vec<u32>> {
        std::iter::from_fn(|| received.try_recv().ok()).collect()
    }

    /// How many items `batches` carry between them.
    fn items(batches: &[Vec<u32>]) -> usize {
        batches.iter().map(Vec::len).sum()
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_leave_as_they_fill_while_items_keep_coming() {
        let (queue, mut received, _) = queue(1024, 4, Duration::from_secs(3600));
        let mut batches = Vec::new();
        for n in 0..22 {
            queue.push(|batch| batch.push(n));
            pass(1).await;
            batches.extend(drain(&mut received));
            assert_eq!(
                items(&batches),
                (n as usize + 1) / 4 * 4,
                "every full batch has left by the time item {n} is queued"
            );
        }
        pass(3 * LOOK.as_millis() as u64).await;
        batches.extend(drain(&mut received));
        let expected: Vec<Vec<u32>> = (0..22u32)
            .collect::<Vec<_>>()
            .chunks(4)
            .map(<[u32]>::to_vec)
            .collect();
        assert_eq!(
            batches, expected,
            "the part batch follows once items stop, oldest first"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_larger_than_the_queue_loses_nothing_while_batches_keep_leaving() {
        let (queue, mut received, delivery) = queue(16, 4, Duration::from_secs(3600));
        let mut exported = 0;
        for n in 0..200 {
            queue.push(|batch| batch.push(n));
            pass(1).await;
            exported += items(&drain(&mut received));
        }
        pass(3 * LOOK.as_millis() as u64).await;
        exported += items(&drain(&mut received));
        assert_eq!(exported, 200, "every item was exported");
        assert_eq!(delivery.exported(Signal::Spans), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_item_leaves_after_a_quiet_look_not_the_schedule() {
        let (queue, mut received, _) = queue(1024, 4, Duration::from_secs(3600));
        queue.push(|batch| batch.push(7));
        pass(3 * LOOK.as_millis() as u64).await;
        assert_eq!(drain(&mut received), vec![vec![7]]);
    }
}
