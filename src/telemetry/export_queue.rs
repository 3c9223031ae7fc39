//! Telemetry on its way to the collector, spans and log records alike: a
//! bounded queue, emptied in batches by a task that exports them.
//!
//! When a burst of requests ends, tens of thousands of spans and log records
//! are made at once, and they wait while the next burst's requests take the
//! CPU. What waits is each signal's own form of an item ([`Export::Item`]):
//! its OTLP bytes, already written, so a batch is a request once its items
//! are put side by side. The behaviour is that of the SDK's batch processors,
//! with their standard settings (`OTEL_BSP_*`, `OTEL_BLRP_*`): a batch
//! leaves when it is full or when the schedule delay has passed, a few at a
//! time, each within the export timeout, and an item that finds the queue
//! full is dropped and counted.
//!
//! Items wait in batches: each is a vector made to the batch size, so
//! taking one for export moves it whole, once a burst has been exported its
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
use tokio::sync::Notify;

use super::{
    delivery::{Delivery, Signal},
    overflow::Overflow,
};

/// How long a flush outside shutdown may wait for the collector.
pub(super) const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// What a queue needs from its signal: how a batch of waiting items leaves.
pub(super) trait Export: Send + Sync + 'static {
    /// An item as it waits for export.
    type Item: Send + 'static;

    /// Exports `batch`. The queue bounds the time it may take.
    fn export(
        &self,
        batch: Vec<Self::Item>,
    ) -> impl Future<Output = OTelSdkResult> + Send + 'static;
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
pub(super) struct ExportQueue<I> {
    shared: Arc<Shared<I>>,
    /// Items queued or dropped, counted against those delivered or lost.
    overflow: Overflow,
}

#[derive(Debug)]
struct Shared<I> {
    state: Mutex<State<I>>,
    /// Wakes the exporting task when a batch fills or a flush is asked for.
    wake: Notify,
    /// The most items that may wait.
    max_queue: usize,
    /// The most items in one export.
    batch: usize,
}

#[derive(Debug)]
struct State<I> {
    /// Full batches, oldest first.
    full: VecDeque<Vec<I>>,
    /// The batch being filled.
    filling: Vec<I>,
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

impl<I> State<I> {
    fn waiting(&self, batch: usize) -> usize {
        self.full.len() * batch + self.filling.len()
    }
}

impl<I: Send + 'static> ExportQueue<I> {
    /// Starts the task that exports through `export`, on the current tokio
    /// runtime, batching as `settings` say, and counts what it delivers and
    /// loses of `signal` in `delivery`; `noun` names one item in warnings.
    pub(super) fn start<X>(
        export: X,
        settings: QueueSettings,
        signal: Signal,
        noun: &'static str,
        delivery: Delivery,
    ) -> ExportQueue<I>
    where
        X: Export<Item = I>,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                full: VecDeque::new(),
                filling: Vec::new(),
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

    /// Queues `item` for export, or drops it, counted, when the queue is
    /// full or shutting down. `item` is made only when there is room.
    pub(super) fn push(&self, item: impl FnOnce() -> I) {
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
            state.filling.push(item());
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

impl<I> Shared<I> {
    fn lock(&self) -> MutexGuard<'_, State<I>> {
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
    fn export(&self, batch: Vec<X::Item>) -> impl Future<Output = ()> + Send + 'static {
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

/// The exporting task: takes full batches as they fill, and the batch
/// being filled when the schedule delay passes or a flush asks for it, with
/// at most [`Exports::most`] exports on their way at once.
async fn run<X: Export>(shared: Arc<Shared<X::Item>>, exports: Exports<X>, delay: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each export on its way, with how many items had been taken before it.
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
            let started: Vec<(u64, Vec<X::Item>)> = batches
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
