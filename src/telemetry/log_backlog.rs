//! Counts the log records Thespian makes against those the collector took,
//! so that records turned away by a full export queue are reported rather
//! than lost in silence, as [`Backlog`](super::backlog::Backlog) does for
//! spans.
//!
//! The batch log processor drops a record when its queue is full, and says
//! so only on its own internal log, which Thespian keeps off stdout. Every
//! record it is given is either queued, in the batch being exported,
//! exported, failed or dropped, so once more records have been made than
//! the queue and a batch can hold beyond those exported or failed, some
//! were dropped for certain. A burst of requests ending together logs a
//! line each at once, which is when that happens.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use opentelemetry::{InstrumentationScope, logs::Severity};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogProcessor, SdkLogRecord},
};

use super::delivery::{Delivery, Signal};

/// How many records pass between two looks at the backlog: often enough to
/// warn within a moment of the first drop, rarely enough to cost nothing
/// per record.
const CHECK_EVERY: u64 = 1024;

/// A log processor that counts the records it is given and hands them on.
#[derive(Debug)]
pub struct LogBacklog<P> {
    /// The batch processor that queues and exports.
    inner: P,
    /// Records made so far.
    made: AtomicU64,
    /// How many records can be waiting without any being dropped.
    capacity: u64,
    /// What the exporter delivered and lost.
    delivery: Delivery,
    /// Whether drops have been reported and not yet cleared, so a burst
    /// gives one warning, not one per check.
    dropping: AtomicBool,
}

impl<P: LogProcessor> LogBacklog<P> {
    /// Watches `inner`, which can hold `capacity` records waiting, with
    /// `delivery` counting what its exporter does.
    pub fn new(inner: P, capacity: u64, delivery: Delivery) -> LogBacklog<P> {
        LogBacklog {
            inner,
            made: AtomicU64::new(0),
            capacity,
            delivery,
            dropping: AtomicBool::new(false),
        }
    }

    /// Records made but neither exported nor failed: waiting, or dropped.
    fn unsettled(&self, made: u64) -> u64 {
        made.saturating_sub(
            self.delivery.exported(Signal::Logs) + self.delivery.failed(Signal::Logs),
        )
    }

    fn check(&self, made: u64) {
        let unsettled = self.unsettled(made);
        if unsettled > self.capacity {
            // The flag is set before the warning, which is itself a record
            // made here, so it cannot warn again.
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "thespian::telemetry",
                    parent: None,
                    queue = self.capacity as i64,
                    "the log record export queue is full: log records are being dropped, \
                     because the collector takes them more slowly than they are made"
                );
            }
        } else if unsettled < self.capacity / 2 && self.dropping.swap(false, Ordering::Relaxed) {
            tracing::info!(
                target: "thespian::telemetry",
                parent: None,
                "the log record export queue has room again"
            );
        }
    }
}

impl<P: LogProcessor> LogProcessor for LogBacklog<P> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.inner.emit(record, scope);
        let made = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        if made.is_multiple_of(CHECK_EVERY) {
            self.check(made);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    /// Shuts the batch processor down, then reports the records that never
    /// reached the collector: nothing is queued any more.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let outcome = self.inner.shutdown_with_timeout(timeout);
        let made = self.made.load(Ordering::Relaxed);
        let lost = self.unsettled(made);
        if lost > 0 {
            tracing::warn!(
                target: "thespian::telemetry",
                made = made as i64,
                exported = self.delivery.exported(Signal::Logs) as i64,
                failed = self.delivery.failed(Signal::Logs) as i64,
                lost = lost as i64,
                "{lost} of {made} log records never reached the collector: the export \
                 queue was full, or they were still queued at shutdown"
            );
        }
        outcome
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
