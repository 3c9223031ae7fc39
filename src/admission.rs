//! Admission: how many requests an instance acts out at once
//! (`MAX_IN_FLIGHT`), how many may wait for a slot (`MAX_QUEUE`), and what
//! shows the wait: a `queued` span in the request's trace and the queue's
//! metrics.
//!
//! With a limit, latency comes from load as it does in a real service: a
//! request that finds every slot busy waits its turn, first come first
//! served, and one that finds the queue full too is shed at once with
//! `RESOURCE_EXHAUSTED`. Without one, the default, a request pays a branch:
//! no semaphore, no allocation, no metric.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use futures::future::BoxFuture;
use opentelemetry::{
    Context, KeyValue,
    trace::{SpanKind, TraceContextExt},
};
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    behaviour::MethodName,
    failure::Failure,
    telemetry::{Metrics, Tracer},
};

/// `MAX_QUEUE` unless it is set: as many waiting requests as Envoy's
/// circuit breakers allow pending by default. Long enough for a queue to
/// turn a burst into latency before it sheds anything, short enough that
/// an instance overloaded for good holds a bounded number of requests
/// (each a few hundred bytes while it waits) instead of growing until it
/// is killed.
pub const DEFAULT_MAX_QUEUE: u32 = 1024;

/// The name of the span that shows a request's wait for a slot.
pub const QUEUED_SPAN: &str = "queued";

/// Lets requests in, up to the limit. Cheap to clone: clones share the
/// slots and the queue. The default lets everything in at once.
#[derive(Clone, Default)]
pub struct Admission {
    /// `None` when nothing is limited, so a request then costs one branch.
    gate: Option<Arc<Gate>>,
}

/// The slots and the queue for them.
struct Gate {
    /// One permit per free slot. A permit that is taken is forgotten and
    /// given back by hand when its [`Slot`] is dropped, so a slot holds
    /// nothing but the gate.
    slots: Semaphore,
    /// `MAX_IN_FLIGHT`.
    max_in_flight: u32,
    /// `MAX_QUEUE`.
    max_queue: u32,
    /// Requests waiting for a slot now; never more than `max_queue`.
    waiting: AtomicUsize,
    /// Counts the queue and the slots, and times the waits.
    metrics: Metrics,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.gate {
            None => f.write_str("Admission(unlimited)"),
            Some(gate) => f
                .debug_struct("Admission")
                .field("max_in_flight", &gate.max_in_flight)
                .field("max_queue", &gate.max_queue)
                .finish(),
        }
    }
}

impl Admission {
    /// At most `max_in_flight` requests acted out at once, if it is set,
    /// and at most `max_queue` waiting for a slot; the queue and the waits
    /// are recorded in `metrics`. Without `max_in_flight` nothing is
    /// limited and `max_queue` means nothing.
    pub fn new(max_in_flight: Option<u32>, max_queue: u32, metrics: Metrics) -> Admission {
        let gate = max_in_flight.map(|max_in_flight| {
            let slots = usize::try_from(max_in_flight)
                .unwrap_or(Semaphore::MAX_PERMITS)
                .min(Semaphore::MAX_PERMITS);
            Arc::new(Gate {
                slots: Semaphore::new(slots),
                max_in_flight,
                max_queue,
                waiting: AtomicUsize::new(0),
                metrics,
            })
        });
        Admission { gate }
    }

    /// Asks for a slot for a request to `method`: it has one at once when
    /// one is free or nothing is limited, a place in the queue when there
    /// is room, or neither. Only a request that queues then awaits
    /// anything ([`Queued::wait`]), so a request that finds a slot free
    /// carries no room for the wait.
    pub fn enter(&self, method: MethodName) -> Entry {
        match &self.gate {
            None => Entry::Admitted(Slot { gate: None, method }),
            Some(gate) => gate.enter(method),
        }
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.gate
            .as_ref()
            .map_or(0, |gate| gate.waiting.load(Ordering::Relaxed))
    }

    /// Requests holding a slot now; 0 when nothing is limited, since no
    /// slots are counted then.
    pub fn in_flight(&self) -> usize {
        self.gate.as_ref().map_or(0, |gate| {
            gate.max_in_flight as usize - gate.slots.available_permits()
        })
    }
}

/// Where a request that asks for a slot stands.
#[derive(Debug)]
pub enum Entry {
    /// It has a slot.
    Admitted(Slot),
    /// It is in the queue, and may wait for a slot.
    Queued(Queued),
    /// Every slot is busy and the queue is full: it is shed with this.
    Full(Failure),
}

impl Gate {
    /// Takes a free slot, else a place in the queue, else neither. A free
    /// slot is never free while requests wait: the semaphore hands a
    /// slot that is given back to the first in the queue.
    fn enter(self: &Arc<Self>, method: MethodName) -> Entry {
        if let Ok(permit) = self.slots.try_acquire() {
            permit.forget();
            self.metrics.queue_waited(method, Duration::ZERO);
            return Entry::Admitted(Slot::taken(Arc::clone(self), method));
        }
        let max_queue = self.max_queue as usize;
        let joined = self
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |waiting| {
                (waiting < max_queue).then_some(waiting + 1)
            });
        match joined {
            Ok(ahead) => {
                self.metrics.queue_changed(method, 1);
                Entry::Queued(Queued {
                    gate: Arc::clone(self),
                    method,
                    since: Instant::now(),
                    ahead,
                })
            }
            Err(_) => Entry::Full(Failure::QueueFull {
                max_in_flight: self.max_in_flight,
                max_queue: self.max_queue,
            }),
        }
    }
}

/// A slot held: while it lives, the request is one of the `MAX_IN_FLIGHT`
/// being acted out; dropping it gives the slot to the next in the queue.
#[derive(Debug)]
#[must_use = "the slot is given back as soon as it is dropped"]
pub struct Slot {
    /// Where the slot goes back to; `None` when nothing is limited.
    gate: Option<Arc<Gate>>,
    /// The method the request called, for the metrics.
    method: MethodName,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl Slot {
    /// A slot whose permit has just been taken (and forgotten) from `gate`.
    fn taken(gate: Arc<Gate>, method: MethodName) -> Slot {
        gate.metrics.in_flight_changed(method, 1);
        Slot {
            gate: Some(gate),
            method,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.metrics.in_flight_changed(self.method, -1);
            gate.slots.add_permits(1);
        }
    }
}

/// A place in the queue: counted as waiting until it is dropped, whether
/// it got a slot or its request gave up first.
#[derive(Debug)]
#[must_use = "the place in the queue is given up as soon as it is dropped"]
pub struct Queued {
    gate: Arc<Gate>,
    method: MethodName,
    /// When it joined the queue.
    since: Instant,
    /// How many were waiting ahead of it when it joined.
    ahead: usize,
}

impl Queued {
    /// Waits for a slot, and records the wait as a `queued` span under
    /// `parent` when it ends, however it ends. The span is written
    /// afterwards, from the time the request joined, so a request costs
    /// nothing more while it waits than its place here; the wait is boxed
    /// so that requests that never wait do not carry room for it.
    pub fn wait<'a>(self, tracer: &'a Tracer, parent: &'a Context) -> BoxFuture<'a, Slot> {
        Box::pin(async move {
            let waiting = Waiting {
                queued: self,
                tracer,
                parent,
            };
            let permit = waiting
                .queued
                .gate
                .slots
                .acquire()
                .await
                .expect("the slots are never closed");
            permit.forget();
            Slot::taken(Arc::clone(&waiting.queued.gate), waiting.queued.method)
        })
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.gate.waiting.fetch_sub(1, Ordering::Relaxed);
        self.gate.metrics.queue_changed(self.method, -1);
        self.gate
            .metrics
            .queue_waited(self.method, self.since.elapsed());
    }
}

/// A request in the queue and where to record its wait when it leaves.
struct Waiting<'a> {
    queued: Queued,
    tracer: &'a Tracer,
    parent: &'a Context,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let waited = self.queued.since.elapsed();
        let end = SystemTime::now();
        let start = end.checked_sub(waited).unwrap_or(end);
        let cx = self
            .tracer
            .open_at(self.parent, QUEUED_SPAN, SpanKind::Internal, start);
        let span = cx.span();
        if span.is_recording() {
            span.update_name(QUEUED_SPAN);
            span.set_attributes([KeyValue::new(
                "thespian.queue.ahead",
                i64::try_from(self.queued.ahead).unwrap_or(i64::MAX),
            )]);
            span.end_with_timestamp(end);
        }
    }
}

/// Reports a shed request where it is shed: one error event on the
/// current span, the request's server span, which is marked failed.
pub fn report(refused: &Failure) {
    tracing::error!(
        {
            failure.cause = refused.cause(),
            rpc.grpc.status_code = refused.code() as i32,
        },
        "{refused}"
    );
    Context::map_current(|cx| {
        cx.span()
            .set_status(opentelemetry::trace::Status::error(refused.to_string()));
    });
}

#[cfg(test)]
mod tests;
