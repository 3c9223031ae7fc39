//! Counts spans handed to the exporter and the outcome of each export, so
//! that spans lost to a slow or missing collector are reported rather than
//! silently dropped.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};

/// Shared delivery counters.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Spans the collector accepted.
    exported: AtomicU64,
    /// Spans in batches the collector refused or never answered.
    failed: AtomicU64,
    /// Whether the current run of failures has been reported, so a dead
    /// collector gives one warning, not one per batch.
    failing: AtomicBool,
}

impl Delivery {
    /// Wraps `exporter` so that its outcomes are counted here.
    pub fn wrap<E: SpanExporter>(&self, exporter: E) -> CountingExporter<E> {
        CountingExporter {
            inner: exporter,
            counts: Arc::clone(&self.counts),
        }
    }

    /// Spans the collector accepted so far.
    pub fn exported(&self) -> u64 {
        self.counts.exported.load(Ordering::Relaxed)
    }

    /// Spans lost to failed exports so far.
    pub fn failed(&self) -> u64 {
        self.counts.failed.load(Ordering::Relaxed)
    }

    /// Logs the totals once, at shutdown, when anything was lost.
    pub fn report_totals(&self) {
        let failed = self.failed();
        if failed > 0 {
            tracing::warn!(
                exported_spans = self.exported(),
                failed_spans = failed,
                "{failed} spans could not be exported"
            );
        }
    }
}

/// A span exporter that counts what it delivers.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    counts: Arc<Counts>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let size = batch.len() as u64;
        let outcome = self.inner.export(batch).await;
        match &outcome {
            Ok(()) => {
                self.counts.exported.fetch_add(size, Ordering::Relaxed);
                if self.counts.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "thespian::telemetry", "span export recovered");
                }
            }
            Err(e) => {
                let total = self.counts.failed.fetch_add(size, Ordering::Relaxed) + size;
                if !self.counts.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "thespian::telemetry",
                        failed_spans = total,
                        "span export failing, spans are being dropped: {e}"
                    );
                }
            }
        }
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}
