//! Counts the spans Thespian finishes against those the collector took, so
//! that spans which never reach it, turned away by a full export queue or
//! still queued at shutdown, are reported rather than lost in silence.
//!
//! The batch processor drops a span when its queue is full, and says so
//! only on its own internal log, which Thespian keeps off stdout. Every
//! finished span is either queued, in the batch being exported, exported,
//! failed or dropped, so once more spans have finished than the queue and
//! one batch can hold beyond those exported or failed, some were dropped
//! for certain.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use opentelemetry::Context;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SpanData, SpanProcessor},
};

use super::delivery::{Delivery, Signal};

/// How many finished spans pass between two looks at the backlog: often
/// enough to warn within a moment of the first drop, rarely enough to cost
/// nothing per span.
const CHECK_EVERY: u64 = 1024;

/// A span processor that counts finished spans and hands them on.
#[derive(Debug)]
pub struct Backlog<P> {
    /// The batch processor that queues and exports.
    inner: P,
    /// Spans finished so far.
    ended: AtomicU64,
    /// How many spans can be waiting without any being dropped: the queue
    /// and one batch in flight.
    capacity: u64,
    /// What the exporter delivered and lost.
    delivery: Delivery,
    /// Whether drops have been reported and not yet cleared, so an outage
    /// gives one warning, not one per check.
    dropping: AtomicBool,
}

impl<P: SpanProcessor> Backlog<P> {
    /// Watches `inner`, whose queue holds `queue` spans and whose batches
    /// hold `batch`, with `delivery` counting what its exporter does.
    pub fn new(inner: P, queue: usize, batch: usize, delivery: Delivery) -> Backlog<P> {
        Backlog {
            inner,
            ended: AtomicU64::new(0),
            capacity: (queue + batch) as u64,
            delivery,
            dropping: AtomicBool::new(false),
        }
    }

    /// Spans finished but neither exported nor failed: waiting, or dropped.
    fn unsettled(&self, ended: u64) -> u64 {
        ended.saturating_sub(
            self.delivery.exported(Signal::Spans) + self.delivery.failed(Signal::Spans),
        )
    }

    fn check(&self, ended: u64) {
        let unsettled = self.unsettled(ended);
        if unsettled > self.capacity {
            if !self.dropping.swap(true, Ordering::Relaxed) {
                // A root event: this runs while a span closes, and the
                // warning belongs to no request.
                tracing::warn!(
                    target: "thespian::telemetry",
                    parent: None,
                    queue = self.capacity as i64,
                    "the span export queue is full: spans are being dropped, \
                     because the collector takes them more slowly than they are made"
                );
            }
        } else if unsettled < self.capacity / 2 && self.dropping.swap(false, Ordering::Relaxed) {
            tracing::info!(
                target: "thespian::telemetry",
                parent: None,
                "the span export queue has room again"
            );
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for Backlog<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.inner.on_end(span);
        let ended = self.ended.fetch_add(1, Ordering::Relaxed) + 1;
        if ended.is_multiple_of(CHECK_EVERY) {
            self.check(ended);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    /// Shuts the batch processor down, then reports the spans that never
    /// reached the collector: nothing is queued any more.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let outcome = self.inner.shutdown_with_timeout(timeout);
        let ended = self.ended.load(Ordering::Relaxed);
        let lost = self.unsettled(ended);
        if lost > 0 {
            tracing::warn!(
                target: "thespian::telemetry",
                made = ended as i64,
                exported = self.delivery.exported(Signal::Spans) as i64,
                failed = self.delivery.failed(Signal::Spans) as i64,
                lost = lost as i64,
                "{lost} of {ended} spans never reached the collector: the export queue \
                 was full, or they were still queued at shutdown"
            );
        }
        outcome
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
