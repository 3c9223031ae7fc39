//! Counts what each OTLP exporter delivers and loses, so that spans, log
//! records and metrics lost to a slow or missing collector are reported
//! rather than silently dropped, and an outage is reported once, not once
//! per batch.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_sdk::{
    error::OTelSdkResult,
    metrics::{Temporality, data::ResourceMetrics, exporter::PushMetricExporter},
};

/// What an OTLP export carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans, counted one by one.
    Spans,
    /// Log records, counted one by one.
    Logs,
    /// Metrics, counted per export (each carries every metric).
    Metrics,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::Spans, Signal::Logs, Signal::Metrics];

    fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u8 {
        1 << self.index()
    }

    /// How the signal's counts read in a message: "spans", "log records",
    /// "metric exports".
    fn items(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "log records",
            Signal::Metrics => "metric exports",
        }
    }

    /// The variable that turns the signal off, for a backend that refuses it.
    fn switch(self) -> &'static str {
        match self {
            Signal::Spans => "OTEL_TRACES_EXPORTER=none",
            Signal::Logs => "OTEL_LOGS_EXPORTER=none",
            Signal::Metrics => "OTEL_METRICS_EXPORTER=none",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.items())
    }
}

/// Shared delivery counters for every OTLP exporter of one instance.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Items the collector accepted, by [`Signal::index`].
    exported: [AtomicU64; 3],
    /// Items in exports the collector refused or never answered.
    failed: [AtomicU64; 3],
    /// One bit per signal whose last export failed. The first signal to
    /// fail while none was failing is reported; the others join the same
    /// outage silently, so a dead collector gives one warning, and a
    /// backend that refuses one signal for good gives one warning, not one
    /// per batch.
    failing: AtomicU8,
}

impl Delivery {
    /// Wraps a metric exporter so that its outcomes are counted here. Spans
    /// and log records are counted by Thespian's own export queues, which
    /// call `Delivery::settle`.
    pub fn metrics<E: PushMetricExporter>(&self, exporter: E) -> Counting<E> {
        Counting {
            inner: exporter,
            counts: Arc::clone(&self.counts),
        }
    }

    /// Items of `signal` the collector accepted so far.
    pub fn exported(&self, signal: Signal) -> u64 {
        self.counts.exported[signal.index()].load(Ordering::Relaxed)
    }

    /// Items of `signal` lost to failed exports so far.
    pub fn failed(&self, signal: Signal) -> u64 {
        self.counts.failed[signal.index()].load(Ordering::Relaxed)
    }

    /// Counts the outcome of an export of `items` of `signal`, as Thespian's
    /// own export queues see it: a batch that ran out of time is lost too.
    pub(super) fn settle(&self, signal: Signal, items: u64, outcome: &OTelSdkResult) {
        self.counts.count(signal, items, outcome);
    }

    /// Logs the totals once, at shutdown, for each signal that lost anything.
    pub fn report_totals(&self) {
        for signal in Signal::ALL {
            let failed = self.failed(signal);
            if failed > 0 {
                tracing::warn!(
                    target: "thespian::telemetry",
                    exported = self.exported(signal) as i64,
                    failed = failed as i64,
                    "{failed} {signal} could not be exported over OTLP"
                );
            }
        }
    }
}

impl Counts {
    fn delivered(&self, signal: Signal, items: u64) {
        self.exported[signal.index()].fetch_add(items, Ordering::Relaxed);
        let before = self.failing.fetch_and(!signal.bit(), Ordering::Relaxed);
        if before == signal.bit() {
            tracing::info!(target: "thespian::telemetry", "OTLP export recovered");
        }
    }

    fn lost(&self, signal: Signal, items: u64, error: &dyn fmt::Display) {
        self.failed[signal.index()].fetch_add(items, Ordering::Relaxed);
        let before = self.failing.fetch_or(signal.bit(), Ordering::Relaxed);
        if before != 0 {
            return;
        }
        let error = error.to_string();
        if error.contains("Unimplemented") {
            tracing::warn!(
                target: "thespian::telemetry",
                "the OTLP endpoint does not take {signal} ({error}); they are dropped. \
                 A traces-only backend such as Tempo or Jaeger needs {}",
                signal.switch()
            );
        } else {
            tracing::warn!(
                target: "thespian::telemetry",
                "OTLP export failing, telemetry is dropped and counted until the \
                 collector answers: {signal}: {error}"
            );
        }
    }

    fn count(&self, signal: Signal, items: u64, outcome: &OTelSdkResult) {
        match outcome {
            Ok(()) => self.delivered(signal, items),
            Err(e) => self.lost(signal, items, e),
        }
    }
}

/// A metric exporter that counts what it delivers, an export at a time.
#[derive(Debug)]
pub struct Counting<E> {
    inner: E,
    counts: Arc<Counts>,
}

impl<E: PushMetricExporter> PushMetricExporter for Counting<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let outcome = self.inner.export(metrics).await;
        self.counts.count(Signal::Metrics, 1, &outcome);
        outcome
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Where a signal goes: the standard `OTEL_TRACES_EXPORTER`,
/// `OTEL_LOGS_EXPORTER` and `OTEL_METRICS_EXPORTER` values Thespian
/// understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Exporter {
    /// To the OTLP endpoint.
    Otlp,
    /// Nowhere: the signal is not exported. Spans are still made, so log
    /// lines and answers keep their trace ids; log records and metrics are
    /// not made at all.
    #[value(name = "none")]
    Off,
}
