//! Finished spans on their way to the collector, through an
//! [`ExportQueue`] of compact spans.
//!
//! The SDK's batch processor holds each waiting span as a whole `SpanData`,
//! 352 bytes before its attributes and events, most of them the same for
//! every span (the instrumentation scope, empty links, an unset status).
//! Here a waiting span keeps only what differs, 128 bytes, and becomes a
//! `SpanData` again in the batch that exports it.

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Context, InstrumentationScope, KeyValue,
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor},
};

use super::{
    Batching,
    delivery::{Delivery, Signal},
    export_queue::{Export, ExportQueue},
};

/// A span processor that queues finished spans compactly and exports them
/// in batches from a task on the runtime.
#[derive(Debug)]
pub struct SpanQueue {
    queue: ExportQueue<Waiting>,
}

impl SpanQueue {
    /// Starts the task that exports through `exporter`, on the current
    /// tokio runtime, with the batch settings `batching`, and counts what
    /// it delivers and loses in `delivery`. Every exported span carries
    /// `resource`.
    pub fn start<E>(
        mut exporter: E,
        resource: &Resource,
        batching: &Batching,
        delivery: Delivery,
    ) -> SpanQueue
    where
        E: SpanExporter + 'static,
    {
        exporter.set_resource(resource);
        let export = Spans {
            exporter: Arc::new(exporter),
            scope: super::span::scope(),
        };
        SpanQueue {
            queue: ExportQueue::start(
                export,
                batching.span_settings(),
                Signal::Spans,
                "span",
                delivery,
            ),
        }
    }
}

impl SpanProcessor for SpanQueue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.queue.push(|| Waiting::from(span));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush()
    }

    /// Exports what is queued, shuts the exporter down, then reports the
    /// spans that never reached the collector.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    /// The resource is given to [`SpanQueue::start`], before the exporter
    /// is shared with the task.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// How a batch of spans leaves: whole again, through the OTLP exporter.
struct Spans<E> {
    exporter: Arc<E>,
    /// Every span's instrumentation scope: Thespian.
    scope: InstrumentationScope,
}

impl<E: SpanExporter + 'static> Export for Spans<E> {
    type Item = Waiting;

    fn export(&self, batch: Vec<Waiting>) -> impl Future<Output = OTelSdkResult> + Send + 'static {
        let spans: Vec<SpanData> = batch
            .into_iter()
            .map(|span| span.into_span_data(&self.scope))
            .collect();
        let exporter = Arc::clone(&self.exporter);
        async move { exporter.export(spans).await }
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.exporter.shutdown()
    }
}

/// A finished span as it waits for export: what differs from span to span.
/// Everything else is the same for every span Thespian makes, and is put
/// back when it becomes a `SpanData`.
#[derive(Debug)]
struct Waiting {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: SpanId,
    start: SystemTime,
    end: SystemTime,
    name: Cow<'static, str>,
    attributes: Box<[KeyValue]>,
    /// What most spans do not have: events, a status, a trace state.
    rare: Option<Box<Rare>>,
    flags: TraceFlags,
    kind: SpanKind,
    is_remote: bool,
    parent_is_remote: bool,
}

#[derive(Debug)]
struct Rare {
    events: SpanEvents,
    links: SpanLinks,
    status: Status,
    trace_state: TraceState,
    dropped_attributes_count: u32,
}

impl From<SpanData> for Waiting {
    fn from(span: SpanData) -> Waiting {
        let context = &span.span_context;
        let plain = span.events.events.is_empty()
            && span.events.dropped_count == 0
            && span.links.links.is_empty()
            && span.links.dropped_count == 0
            && span.status == Status::Unset
            && span.dropped_attributes_count == 0
            && *context.trace_state() == TraceState::NONE;
        let (trace_id, span_id, flags, is_remote) = (
            context.trace_id(),
            context.span_id(),
            context.trace_flags(),
            context.is_remote(),
        );
        let rare = (!plain).then(|| {
            Box::new(Rare {
                trace_state: span.span_context.trace_state().clone(),
                events: span.events,
                links: span.links,
                status: span.status,
                dropped_attributes_count: span.dropped_attributes_count,
            })
        });
        Waiting {
            trace_id,
            span_id,
            parent_span_id: span.parent_span_id,
            start: span.start_time,
            end: span.end_time,
            name: span.name,
            attributes: span.attributes.into_boxed_slice(),
            rare,
            flags,
            kind: span.span_kind,
            is_remote,
            parent_is_remote: span.parent_span_is_remote,
        }
    }
}

impl Waiting {
    fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let rare = self.rare.map_or_else(
            || Rare {
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                trace_state: TraceState::NONE,
                dropped_attributes_count: 0,
            },
            |rare| *rare,
        );
        SpanData {
            span_context: SpanContext::new(
                self.trace_id,
                self.span_id,
                self.flags,
                self.is_remote,
                rare.trace_state,
            ),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: self.end,
            attributes: self.attributes.into_vec(),
            dropped_attributes_count: rare.dropped_attributes_count,
            events: rare.events,
            links: rare.links,
            status: rare.status,
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{mem, num::NonZeroUsize, sync::atomic::AtomicUsize, sync::atomic::Ordering};

    use opentelemetry::trace::Event;
    use opentelemetry_sdk::error::OTelSdkError;
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    use super::*;

    /// An exporter that hands each batch to the test after `delay` (never,
    /// with `None`).
    #[derive(Debug, Clone)]
    struct Collector {
        delay: Option<Duration>,
        batches: UnboundedSender<Vec<SpanData>>,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            match self.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            self.exported.fetch_add(batch.len(), Ordering::Relaxed);
            let _ = self.batches.send(batch);
            Ok(())
        }
    }

    fn batching(queue: usize, batch: usize, delay_ms: u64, exports: usize) -> Batching {
        Batching {
            span_queue: queue,
            span_batch: batch,
            span_delay_ms: delay_ms,
            span_exports: NonZeroUsize::new(exports).unwrap(),
            ..Batching::default()
        }
    }

    fn span(n: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(n) + 1),
                SpanId::from(n + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "A".into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH + Duration::from_millis(n),
            attributes: vec![KeyValue::new("n", n as i64)],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: super::super::span::scope(),
        }
    }

    /// A queue exporting to a collector that takes `delay` per batch.
    fn queue(
        settings: &Batching,
        delay: Option<Duration>,
    ) -> (
        SpanQueue,
        tokio::sync::mpsc::UnboundedReceiver<Vec<SpanData>>,
        Arc<AtomicUsize>,
        Delivery,
    ) {
        let (batches, received) = unbounded_channel();
        let exported = Arc::new(AtomicUsize::new(0));
        let delivery = Delivery::default();
        let collector = Collector {
            delay,
            batches,
            exported: exported.clone(),
        };
        let queue = SpanQueue::start(
            collector,
            &Resource::builder_empty().build(),
            settings,
            delivery.clone(),
        );
        (queue, received, exported, delivery)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_span_is_exported_whole() {
        let (queue, mut received, _, _) =
            queue(&batching(16, 16, 3_600_000, 1), Some(Duration::ZERO));
        let mut rich = span(7);
        rich.span_context = SpanContext::new(
            TraceId::from(9_u128),
            SpanId::from(9_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        rich.parent_span_id = SpanId::from(3_u64);
        rich.parent_span_is_remote = true;
        rich.span_kind = SpanKind::Client;
        rich.events
            .events
            .push(Event::new("said", SystemTime::UNIX_EPOCH, vec![], 0));
        rich.events.dropped_count = 2;
        rich.status = Status::error("boom");
        rich.dropped_attributes_count = 1;
        let plain = span(8);
        queue.on_end(rich.clone());
        queue.on_end(plain.clone());
        let queue = Arc::new(queue);
        let flushing = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .unwrap()
            .unwrap();
        // The flush returns once the export is done: the batch is there.
        let batch = received.try_recv().expect("the flush exported the batch");
        assert_eq!(batch, [rich, plain]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_batch_leaves_without_waiting_for_the_schedule() {
        // An hour's schedule: only a full batch can leave in this test.
        let (queue, mut received, _, _) =
            queue(&batching(64, 4, 3_600_000, 1), Some(Duration::ZERO));
        for n in 0..6 {
            queue.on_end(span(n));
        }
        let batch = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("a full batch is exported at once")
            .unwrap();
        let ends: Vec<_> = batch.iter().map(|span| span.end_time).collect();
        let first: Vec<_> = (0..4).map(|n| span(n).end_time).collect();
        assert_eq!(ends, first, "the oldest spans leave first, in order");
        assert!(received.try_recv().is_err(), "the other two wait");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_spans_and_shutdown_exports_the_rest() {
        let settings = batching(4, 2, 3_600_000, 1);
        let (queue, _received, exported, delivery) =
            queue(&settings, Some(Duration::from_millis(20)));
        for n in 0..64 {
            queue.on_end(span(n));
        }
        let outcome = tokio::task::spawn_blocking(move || queue.shutdown())
            .await
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
        let exported = exported.load(Ordering::Relaxed);
        // The queue's four, and what left for export while the rest came.
        assert!(
            (4..=settings.span_settings().capacity() as usize).contains(&exported),
            "the queue's spans are exported, the overflow dropped: {exported}"
        );
        assert_eq!(delivery.exported(Signal::Spans), exported as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_gives_up_on_a_collector_that_never_answers() {
        let (queue, _received, _, _) = queue(&batching(16, 2, 3_600_000, 1), None);
        for n in 0..8 {
            queue.on_end(span(n));
        }
        let outcome = tokio::task::spawn_blocking(move || {
            queue.shutdown_with_timeout(Duration::from_millis(100))
        });
        let outcome = tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("shutdown returns at its deadline")
            .unwrap();
        assert!(
            matches!(outcome, Err(OTelSdkError::Timeout(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_waiting_span_takes_well_under_half_the_room_of_a_span_data() {
        // 128 against 352 bytes when this was written.
        assert!(
            mem::size_of::<Waiting>() * 5 / 2 <= mem::size_of::<SpanData>(),
            "{} bytes waiting, {} as SpanData",
            mem::size_of::<Waiting>(),
            mem::size_of::<SpanData>()
        );
    }
}
