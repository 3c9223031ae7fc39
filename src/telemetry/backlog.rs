//! Counts the spans Thespian finishes against those the collector took, so
//! that spans which never reach it, turned away by a full export queue or
//! still queued at shutdown, are reported rather than lost in silence.
//!
//! The batch processor drops a span when its queue is full, and says so
//! only on its own internal log, which Thespian keeps off stdout. Every
//! finished span is either queued, in the batch being exported, exported,
//! failed or dropped, so once more spans have finished than the queue and
//! two batches can hold beyond those exported or failed, some were dropped
//! for certain.
//!
//! It also bounds the flush at shutdown. The batch processor runs as a task
//! on the runtime and waits for a flush with no limit of its own, and its
//! queue turns a flush request away while full; here the request is offered
//! again as the queue drains, and the wait ends at a deadline either way.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use opentelemetry::Context;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanProcessor},
};

use super::{
    delivery::{Delivery, Signal},
    overflow::Overflow,
};

/// How long a flush outside shutdown may wait for the collector.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// How often a flush turned away by a full queue is offered again.
const FLUSH_RETRY: Duration = Duration::from_millis(10);

/// A span processor that counts finished spans and hands them on.
#[derive(Debug)]
pub struct Backlog<P> {
    /// The batch processor that queues and exports; shared with the thread
    /// that waits for a flush, so the wait can be abandoned.
    inner: Arc<P>,
    /// Finished spans counted against those delivered or lost.
    overflow: Overflow,
}

impl<P: SpanProcessor + 'static> Backlog<P> {
    /// Watches `inner`, which can hold `capacity` spans waiting, with
    /// `delivery` counting what its exporter does.
    pub fn new(inner: P, capacity: u64, delivery: Delivery) -> Backlog<P> {
        Backlog {
            inner: Arc::new(inner),
            overflow: Overflow::new(Signal::Spans, "span", capacity, delivery),
        }
    }

    /// Runs `act` (a flush or a shutdown) on the batch processor from a
    /// thread of its own, offering it again while the queue is too full to
    /// take it, and waits at most `timeout` for the outcome. A collector
    /// that never answers is left behind at the deadline.
    fn within(&self, timeout: Duration, act: fn(&P) -> OTelSdkResult) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let inner = Arc::clone(&self.inner);
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("thespian-span-flush".to_owned())
            .spawn(move || {
                let result = loop {
                    match act(&inner) {
                        Err(e) if is_queue_full(&e) && Instant::now() < deadline => {
                            std::thread::sleep(FLUSH_RETRY);
                        }
                        result => break result,
                    }
                };
                let _ = done.send(result);
            })
            .map_err(|e| OTelSdkError::InternalFailure(format!("cannot start a flush: {e}")))?;
        outcome
            .recv_timeout(timeout)
            .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
    }
}

/// Whether the batch processor turned a flush or shutdown request away
/// because its queue was full. It reports that only in its message.
fn is_queue_full(error: &OTelSdkError) -> bool {
    matches!(error, OTelSdkError::InternalFailure(message) if message.contains("channel is full"))
}

impl<P: SpanProcessor + 'static> SpanProcessor for Backlog<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.inner.on_end(span);
        self.overflow.count();
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.within(FLUSH_WAIT, P::force_flush)
    }

    /// Shuts the batch processor down, then reports the spans that never
    /// reached the collector: nothing is queued any more.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let outcome = self.within(timeout, P::shutdown);
        self.overflow.report_lost();
        outcome
    }

    fn set_resource(&mut self, resource: &Resource) {
        // The provider sets the resource as it is built, before any flush
        // has shared the processor.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::{
        runtime::Tokio,
        trace::{
            BatchConfigBuilder, SdkTracerProvider, SpanExporter,
            span_processor_with_async_runtime::BatchSpanProcessor,
        },
    };

    use super::*;

    /// An exporter that takes `delay` per batch (for ever, with `None`) and
    /// counts the spans it took.
    #[derive(Debug, Clone)]
    struct Slow {
        delay: Option<Duration>,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for Slow {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            match self.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            self.exported.fetch_add(batch.len(), Ordering::Relaxed);
            Ok(())
        }
    }

    /// A provider whose batch processor queues `queue` spans for `exporter`.
    fn provider(exporter: Slow, queue: usize) -> SdkTracerProvider {
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(queue)
            .with_max_export_batch_size(2)
            .build();
        let processor = BatchSpanProcessor::builder(exporter, Tokio)
            .with_batch_config(config)
            .build();
        SdkTracerProvider::builder()
            // The queue, the batch being filled and the one being exported.
            .with_span_processor(Backlog::new(
                processor,
                (queue + 2 * 2) as u64,
                Delivery::default(),
            ))
            .build()
    }

    fn make_spans(provider: &SdkTracerProvider, count: usize) {
        let tracer = provider.tracer("test");
        for _ in 0..count {
            tracer.start("work").end();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_waits_for_room_in_a_full_queue_and_exports_what_it_held() {
        let exported = Arc::new(AtomicUsize::new(0));
        let exporter = Slow {
            delay: Some(Duration::from_millis(20)),
            exported: exported.clone(),
        };
        let provider = provider(exporter, 4);
        // Far more than the queue holds: the queue is full when shutdown
        // asks for the last flush, which the processor turns away at first.
        make_spans(&provider, 64);
        let outcome = tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
        let exported = exported.load(Ordering::Relaxed);
        // Four places in the queue; the message that gives the processor
        // its resource may still hold one of them when the spans arrive.
        assert!(
            (3..64).contains(&exported),
            "the queue's spans are exported, the overflow dropped: {exported}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_gives_up_on_a_collector_that_never_answers() {
        let exporter = Slow {
            delay: None,
            exported: Arc::new(AtomicUsize::new(0)),
        };
        let provider = provider(exporter, 16);
        make_spans(&provider, 8);
        let outcome = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(Duration::from_millis(100))
        });
        let outcome = tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("shutdown returns at its deadline")
            .unwrap();
        // The provider wraps the processor's Timeout in its own error.
        assert!(format!("{outcome:?}").contains("Timeout"), "{outcome:?}");
    }
}
