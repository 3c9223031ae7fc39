//! Tells when an export queue has turned items away, for the span and the
//! log record pipelines alike: both count what they were given against what
//! their exporter delivered or lost, and what the queue cannot hold beyond
//! that was dropped for certain.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::delivery::{Delivery, Signal};

/// How many items pass between two looks at the backlog: often enough to
/// warn within a moment of the first drop, rarely enough to cost nothing
/// per item.
const CHECK_EVERY: u64 = 1024;

/// One pipeline's count of items made, and whether it is dropping them.
#[derive(Debug)]
pub(super) struct Overflow {
    /// The signal whose delivery is counted.
    signal: Signal,
    /// What an item is called in the warnings: "span", "log record".
    noun: &'static str,
    /// Items made so far.
    made: AtomicU64,
    /// How many items can be waiting without any being dropped.
    capacity: u64,
    /// What the exporter delivered and lost.
    delivery: Delivery,
    /// Whether drops have been reported and not yet cleared, so an outage
    /// gives one warning, not one per check.
    dropping: AtomicBool,
}

impl Overflow {
    /// Watches a queue of `signal` items that holds `capacity` waiting,
    /// with `delivery` counting what its exporter does.
    pub(super) fn new(
        signal: Signal,
        noun: &'static str,
        capacity: u64,
        delivery: Delivery,
    ) -> Overflow {
        Overflow {
            signal,
            noun,
            made: AtomicU64::new(0),
            capacity,
            delivery,
            dropping: AtomicBool::new(false),
        }
    }

    /// Counts one item handed to the queue, and now and then looks at
    /// whether the queue is dropping.
    pub(super) fn count(&self) {
        let made = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        if made.is_multiple_of(CHECK_EVERY) {
            self.check(made);
        }
    }

    /// Items made but neither exported nor failed: waiting, or dropped.
    fn unsettled(&self, made: u64) -> u64 {
        made.saturating_sub(self.delivery.exported(self.signal) + self.delivery.failed(self.signal))
    }

    /// Warns once when items are being dropped, and says when the queue has
    /// room again.
    fn check(&self, made: u64) {
        let unsettled = self.unsettled(made);
        if unsettled > self.capacity {
            // The flag is set before the warning, which may itself be an
            // item made here, so it cannot warn again. A root event: this
            // runs while an item is handed on, and belongs to no request.
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "thespian::telemetry",
                    parent: None,
                    queue = self.capacity as i64,
                    "the {noun} export queue is full: {noun}s are being dropped, \
                     because the collector takes them more slowly than they are made",
                    noun = self.noun,
                );
            }
        } else if unsettled < self.capacity / 2 && self.dropping.swap(false, Ordering::Relaxed) {
            tracing::info!(
                target: "thespian::telemetry",
                parent: None,
                "the {} export queue has room again",
                self.noun
            );
        }
    }

    /// Reports the items that never reached the collector, once the queue
    /// has shut down and nothing is waiting any more.
    pub(super) fn report_lost(&self) {
        let made = self.made.load(Ordering::Relaxed);
        let lost = self.unsettled(made);
        if lost > 0 {
            tracing::warn!(
                target: "thespian::telemetry",
                made = made as i64,
                exported = self.delivery.exported(self.signal) as i64,
                failed = self.delivery.failed(self.signal) as i64,
                lost = lost as i64,
                "{lost} of {made} {noun}s never reached the collector: the export queue \
                 was full, or they were still queued at shutdown",
                noun = self.noun,
            );
        }
    }
}
