//! Finished spans on their way to the collector, through an
//! [`ExportQueue`] of spans written into their bytes.
//!
//! The SDK's batch processor holds each waiting span as a whole `SpanData`,
//! 352 bytes before its attributes and events, each attribute 56 bytes more
//! and each event over a hundred, most of them the same for every span.
//! Here a span is written into its OTLP bytes as it ends (`span_wire`),
//! 150 to 400 bytes for the spans a request makes, and those bytes wait,
//! side by side in their batch: a batch is sent as one request to the
//! collector's trace service (`collector`) by putting its envelope around
//! it.

use std::{future::Future, sync::Arc, time::Duration};

use opentelemetry::Context;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SpanData, SpanProcessor},
};

use super::{
    Batching,
    collector::Destination,
    delivery::{Delivery, Signal},
    export_queue::{Export, ExportQueue},
    span_wire::{Envelope, Written},
};

/// A span processor that queues finished spans as their OTLP bytes and exports them
/// in batches from a task on the runtime.
#[derive(Debug)]
pub struct SpanQueue {
    queue: ExportQueue<Written>,
}

impl SpanQueue {
    /// Starts the task that sends batches to `destination`, on the current
    /// tokio runtime, with the batch settings `batching`, and counts what
    /// it delivers and loses in `delivery`. Every exported span carries
    /// `resource`.
    pub(super) fn start<D: Destination>(
        destination: D,
        resource: &Resource,
        batching: &Batching,
        delivery: Delivery,
    ) -> SpanQueue {
        let export = Spans {
            destination: Arc::new(destination),
            envelope: Envelope::new(resource, &super::span::scope()),
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
            self.queue.push(|written| written.put(&span));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush()
    }

    /// Exports what is queued, then reports the spans that never reached
    /// the collector.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    /// The resource is given to [`SpanQueue::start`], before the queue's
    /// task starts.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// How a batch of spans leaves: written into one request, and sent.
struct Spans<D> {
    destination: Arc<D>,
    /// The resource and scope around every batch.
    envelope: Envelope,
}

impl<D: Destination> Export for Spans<D> {
    type Batch = Written;

    fn export(&self, batch: Written) -> impl Future<Output = OTelSdkResult> + Send + 'static {
        let request = self.envelope.request(&batch);
        drop(batch);
        let destination = Arc::clone(&self.destination);
        async move { destination.send(request).await }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        mem,
        num::NonZeroUsize,
        sync::atomic::{AtomicUsize, Ordering},
        time::SystemTime,
    };

    use bytes::Bytes;
    use opentelemetry::{
        Array, InstrumentationScope, KeyValue, StringValue, Value,
        trace::{
            Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
        },
    };
    use opentelemetry_proto::{
        tonic::{collector::trace::v1::ExportTraceServiceRequest, trace::v1::Span as SpanMessage},
        transform::trace::tonic::group_spans_by_resource_and_scope,
    };
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    use super::*;

    /// A trace service that decodes each request and hands it to the test
    /// after `delay` (never, with `None`).
    #[derive(Debug, Clone)]
    struct Collector {
        delay: Option<Duration>,
        requests: UnboundedSender<ExportTraceServiceRequest>,
        exported: Arc<AtomicUsize>,
    }

    impl Destination for Collector {
        async fn send(&self, request: Bytes) -> OTelSdkResult {
            match self.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            let request = ExportTraceServiceRequest::decode(request).expect("a request decodes");
            self.exported
                .fetch_add(spans_of(&request).len(), Ordering::Relaxed);
            let _ = self.requests.send(request);
            Ok(())
        }
    }

    /// The spans a request carries, in order.
    fn spans_of(request: &ExportTraceServiceRequest) -> Vec<&SpanMessage> {
        request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .collect()
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

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("checkout")
            .with_attribute(KeyValue::new("deployment.environment.name", "test"))
            .build()
    }

    /// A queue exporting to a collector that takes `delay` per batch.
    fn queue(
        settings: &Batching,
        delay: Option<Duration>,
    ) -> (
        SpanQueue,
        tokio::sync::mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
        Arc<AtomicUsize>,
        Delivery,
    ) {
        queue_of(&resource(), settings, delay)
    }

    /// A queue of spans from `resource`, as [`queue`].
    fn queue_of(
        resource: &Resource,
        settings: &Batching,
        delay: Option<Duration>,
    ) -> (
        SpanQueue,
        tokio::sync::mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
        Arc<AtomicUsize>,
        Delivery,
    ) {
        let (requests, received) = unbounded_channel();
        let exported = Arc::new(AtomicUsize::new(0));
        let delivery = Delivery::default();
        let collector = Collector {
            delay,
            requests,
            exported: exported.clone(),
        };
        let queue = SpanQueue::start(collector, resource, settings, delivery.clone());
        (queue, received, exported, delivery)
    }

    /// A span with something of everything a span can carry.
    fn rich() -> SpanData {
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
        rich.name = "load cart".into();
        rich.start_time = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789);
        rich.end_time = rich.start_time + Duration::from_millis(250);
        rich.attributes = vec![
            KeyValue::new("text", "héllo"),
            KeyValue::new("empty", ""),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("negative", -42_i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("flag", false),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2, 0]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.5, 0.0]))),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new(
                "texts",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from(""),
                ])),
            ),
            KeyValue::new("long", "x".repeat(300)),
        ];
        rich.events.events.push(Event::new(
            "said",
            rich.start_time,
            vec![KeyValue::new("level", "INFO"), KeyValue::new("n", 1_i64)],
            1,
        ));
        rich.events
            .events
            .push(Event::new("quiet", SystemTime::UNIX_EPOCH, vec![], 0));
        rich.events.dropped_count = 2;
        rich.links.links.push(Link::new(
            SpanContext::new(
                TraceId::from(5_u128),
                SpanId::from(6_u64),
                TraceFlags::default(),
                true,
                TraceState::NONE,
            ),
            vec![KeyValue::new("why", "batch")],
            3,
        ));
        rich.links.dropped_count = 4;
        rich.status = Status::error("boom");
        rich.dropped_attributes_count = 1;
        rich
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_carries_what_the_sdks_own_conversion_would() {
        // One resource for both: the order of its attributes is its own.
        let resource = resource();
        let (queue, mut received, _, _) = queue_of(
            &resource,
            &batching(16, 16, 3_600_000, 1),
            Some(Duration::ZERO),
        );
        let mut ok = span(8);
        ok.status = Status::Ok;
        ok.span_kind = SpanKind::Consumer;
        let spans = [rich(), span(1), ok];
        for span in spans.clone() {
            queue.on_end(span);
        }
        let queue = Arc::new(queue);
        let flushing = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .unwrap()
            .unwrap();
        // The flush returns once the export is done: the request is there.
        let request = received.try_recv().expect("the flush exported the batch");
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans.to_vec(), &(&resource).into()),
        };
        assert_eq!(request, expected);
    }

    #[test]
    fn spans_over_many_chunks_make_the_request_their_sdk_conversion_would() {
        let resource = resource();
        let scope = super::super::span::scope();
        let spans: Vec<SpanData> = (0..200)
            .map(|n| if n % 2 == 0 { rich() } else { span(n) })
            .collect();
        let mut written = Written::default();
        for span in &spans {
            written.put(span);
        }
        assert!(
            written.held() > 3 * 16 * 1024,
            "the spans fill several chunks"
        );
        let request = Envelope::new(&resource, &scope).request(&written);
        let request = ExportTraceServiceRequest::decode(request).unwrap();
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans, &(&resource).into()),
        };
        assert_eq!(request, expected);
    }

    #[test]
    fn a_scope_with_a_schema_and_attributes_is_carried_whole() {
        let scope = InstrumentationScope::builder("thespian")
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.36.0")
            .with_attributes([KeyValue::new("scope.kind", "test")])
            .build();
        let mut one = span(2);
        one.instrumentation_scope = scope.clone();
        let resource = Resource::builder_empty()
            .with_schema_url(
                [KeyValue::new("service.name", "s")],
                "https://example.com/1",
            )
            .build();
        let mut written = Written::default();
        written.put(&one);
        let request = Envelope::new(&resource, &scope).request(&written);
        let request = ExportTraceServiceRequest::decode(request).unwrap();
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(vec![one], &(&resource).into()),
        };
        assert_eq!(request, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_leave_in_order_without_waiting_for_the_schedule_once_they_stop_coming() {
        // An hour's schedule: only the queue's looks can send these.
        let (queue, mut received, _, _) =
            queue(&batching(64, 4, 3_600_000, 1), Some(Duration::ZERO));
        for n in 0..6 {
            queue.on_end(span(n));
        }
        let mut ends = Vec::new();
        for _ in 0..2 {
            let request = tokio::time::timeout(Duration::from_secs(30), received.recv())
                .await
                .expect("the spans are exported once they stop coming")
                .unwrap();
            ends.push(
                spans_of(&request)
                    .iter()
                    .map(|span| span.end_time_unix_nano)
                    .collect::<Vec<_>>(),
            );
        }
        let first: Vec<_> = (0..4).map(|n| n * 1_000_000).collect();
        let rest: Vec<_> = (4..6).map(|n| n * 1_000_000).collect();
        assert_eq!(ends, [first, rest], "the full batch first, then the rest");
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
    fn a_waiting_span_takes_well_under_half_the_room_of_its_span_data() {
        // A server span as a step makes it: a few short attributes, and the
        // line it logged as an event.
        let mut served = span(1);
        served.parent_span_id = SpanId::from(2_u64);
        served.name = "thespian.Thespian/A".into();
        served.attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "thespian.Thespian"),
            KeyValue::new("rpc.method", "A"),
            KeyValue::new("rpc.grpc.status_code", 0_i64),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 50051_i64),
        ];
        let said = vec![
            KeyValue::new("level", "INFO"),
            KeyValue::new("target", "thespian::executor"),
            KeyValue::new("message", "slept 1000 ms"),
        ];
        let held = mem::size_of::<SpanData>()
            + served.attributes.len() * mem::size_of::<KeyValue>()
            + mem::size_of::<Event>()
            + said.len() * mem::size_of::<KeyValue>();
        served
            .events
            .events
            .push(Event::new("event", SystemTime::now(), said, 0));
        // A batch's worth, so the chunks' spare room counts as it would.
        let mut written = Written::default();
        for _ in 0..2_048 {
            written.put(&served);
        }
        let waiting = written.held() / 2_048;
        // 336 against 928 bytes when this was written; held one allocation
        // each, as before, it took 400: 384 as the allocator rounds it, and a
        // pointer.
        assert!(
            waiting * 2 <= held,
            "{waiting} bytes waiting, {held} as SpanData"
        );
    }
}
