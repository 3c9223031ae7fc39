//! Counts the log records Thespian makes against those the collector took,
//! so that records turned away by a full export queue are reported rather
//! than lost in silence, as [`SpanQueue`](super::span_queue::SpanQueue)
//! does for spans.
//!
//! The batch log processor drops a record when its queue is full, and says
//! so only on its own internal log, which Thespian keeps off stdout. Every
//! record it is given is either queued, in the batch being exported,
//! exported, failed or dropped, so once more records have been made than
//! the queue and a batch can hold beyond those exported or failed, some
//! were dropped for certain. A burst of requests ending together logs a
//! line each at once, which is when that happens.

use std::time::Duration;

use opentelemetry::{InstrumentationScope, logs::Severity};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogProcessor, SdkLogRecord},
};

use super::{
    delivery::{Delivery, Signal},
    overflow::Overflow,
};

/// A log processor that counts the records it is given and hands them on.
#[derive(Debug)]
pub struct LogBacklog<P> {
    /// The batch processor that queues and exports.
    inner: P,
    /// Records made, counted against those delivered or lost.
    overflow: Overflow,
}

impl<P: LogProcessor> LogBacklog<P> {
    /// Watches `inner`, which can hold `capacity` records waiting, with
    /// `delivery` counting what its exporter does.
    pub fn new(inner: P, capacity: u64, delivery: Delivery) -> LogBacklog<P> {
        LogBacklog {
            inner,
            overflow: Overflow::new(Signal::Logs, "log record", capacity, delivery),
        }
    }
}

impl<P: LogProcessor> LogProcessor for LogBacklog<P> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.inner.emit(record, scope);
        self.overflow.count();
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    /// Shuts the batch processor down, then reports the records that never
    /// reached the collector: nothing is queued any more.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let outcome = self.inner.shutdown_with_timeout(timeout);
        self.overflow.report_lost();
        outcome
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
