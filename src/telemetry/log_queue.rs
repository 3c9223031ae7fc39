//! Log records on their way to the collector, through an [`ExportQueue`]
//! of encoded records.
//!
//! The SDK's batch log processor keeps each waiting record as a whole
//! `SdkLogRecord` boxed with a copy of its instrumentation scope, room for
//! five attributes inline whether a record has them or not, and sets aside
//! a slot for every record its queue may hold as soon as it starts: 256 KB
//! of every idle instance at the default 16,384. Here a record is written
//! into its OTLP bytes as it is emitted (`log_wire`), and waits as those,
//! with its target and, only when it is not the usual one, its scope; an
//! idle queue holds nothing. A batch is sent as one request to the
//! collector's logs service (`collector`).

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock},
    time::Duration,
};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogProcessor, SdkLogRecord},
};

use super::{
    Batching,
    collector::Destination,
    delivery::{Delivery, Signal},
    export_queue::{Export, ExportQueue},
    log_wire::{self, Envelope},
};

/// A log processor that queues records as their OTLP bytes and exports them in
/// batches from a task on the runtime.
#[derive(Debug)]
pub struct LogQueue {
    queue: ExportQueue<Vec<Waiting>>,
    /// The scope of the first record, which every record Thespian makes
    /// shares: the bridge from `tracing` is its one logger.
    usual: Arc<OnceLock<InstrumentationScope>>,
}

impl LogQueue {
    /// Starts the task that sends batches to `destination`, on the
    /// current tokio runtime, with the batch settings `batching`, and counts
    /// what it delivers and loses in `delivery`. Every exported record
    /// carries `resource`.
    pub(super) fn start<D: Destination>(
        destination: D,
        resource: &Resource,
        batching: &Batching,
        delivery: Delivery,
    ) -> LogQueue {
        let usual = Arc::new(OnceLock::new());
        let export = Records {
            destination: Arc::new(destination),
            usual: Arc::clone(&usual),
            envelope: Envelope::new(resource),
        };
        LogQueue {
            queue: ExportQueue::start(
                export,
                batching.log_settings(),
                Signal::Logs,
                "log record",
                delivery,
            ),
            usual,
        }
    }
}

impl LogProcessor for LogQueue {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let usual = self.usual.get_or_init(|| scope.clone());
        let scope = (scope != usual).then(|| Box::new(scope.clone()));
        self.queue
            .push(|batch| batch.push(Waiting::new(record, scope)));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush()
    }

    /// Exports what is queued, then reports the records that never reached
    /// the collector.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    /// The resource is given to [`LogQueue::start`], before the queue's
    /// task starts.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// How a batch of records leaves: written into one request, and sent.
struct Records<D> {
    destination: Arc<D>,
    /// The scope most records share.
    usual: Arc<OnceLock<InstrumentationScope>>,
    /// The resource around every batch.
    envelope: Envelope,
}

impl<D: Destination> Export for Records<D> {
    type Batch = Vec<Waiting>;

    fn export(&self, batch: Vec<Waiting>) -> impl Future<Output = OTelSdkResult> + Send + 'static {
        // Set by the first record queued, so by the time any is exported.
        let usual = self.usual.get().cloned().unwrap_or_default();
        let request = self.envelope.request(&batch, &usual);
        drop(batch);
        let destination = Arc::clone(&self.destination);
        async move { destination.send(request).await }
    }
}

/// A log record as it waits for export: its bytes, and what it is grouped
/// by in a request.
#[derive(Debug)]
pub(super) struct Waiting {
    /// The record's `LogRecord` message, written by [`log_wire::encode`].
    pub(super) bytes: Box<[u8]>,
    /// Its target, which names its scope in the request.
    pub(super) target: Option<Cow<'static, str>>,
    /// Its scope, when it is not the usual one.
    pub(super) scope: Option<Box<InstrumentationScope>>,
}

impl Waiting {
    /// Writes `record` into its bytes.
    fn new(record: &SdkLogRecord, scope: Option<Box<InstrumentationScope>>) -> Waiting {
        Waiting {
            bytes: log_wire::encode(record),
            target: record.target().cloned(),
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, mem, sync::Mutex, time::SystemTime};

    use bytes::Bytes;
    use opentelemetry::{
        Key, KeyValue,
        logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity},
        trace::{SpanId, TraceFlags, TraceId},
    };
    use opentelemetry_proto::{
        tonic::collector::logs::v1::ExportLogsServiceRequest,
        transform::logs::tonic::group_logs_by_resource_and_scope,
    };
    use opentelemetry_sdk::logs::{LogBatch, SdkLoggerProvider};
    use prost::Message;

    use super::*;

    /// A logs service that keeps every request it is sent, decoded.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        requests: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    }

    impl Destination for Collector {
        async fn send(&self, request: Bytes) -> OTelSdkResult {
            let request = ExportLogsServiceRequest::decode(request).expect("a request decodes");
            self.requests.lock().unwrap().push(request);
            Ok(())
        }
    }

    fn batching() -> Batching {
        Batching {
            log_queue: 64,
            log_batch: 16,
            // An hour: only a flush sends these records.
            log_delay_ms: 3_600_000,
            ..Batching::default()
        }
    }

    /// A record with nothing set: the SDK makes records only through a
    /// logger.
    fn blank() -> SdkLogRecord {
        SdkLoggerProvider::builder()
            .build()
            .logger("thespian")
            .create_log_record()
    }

    /// A line as Thespian logs one at `at`, saying `body`: a target, its
    /// span, a severity.
    fn logged(body: String, at: SystemTime) -> SdkLogRecord {
        let mut record = blank();
        record.set_target("thespian::executor");
        record.set_timestamp(at);
        record.set_observed_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(7));
        record.set_trace_context(
            TraceId::from(9_u128),
            SpanId::from(3_u64),
            Some(TraceFlags::SAMPLED),
        );
        record.set_severity_text("INFO");
        record.set_severity_number(Severity::Info);
        record.set_body(AnyValue::from(body));
        record
    }

    /// A record with every field set, and more attributes than the SDK
    /// keeps inline, of every kind of value.
    fn told(n: i64) -> SdkLogRecord {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(n as u64);
        let mut record = logged(format!("record {n}"), at);
        record.set_event_name("checked");
        record.add_attributes((0..7).map(|i| (format!("key{i}"), n * 10 + i)));
        record.add_attribute("ratio", 0.5);
        record.add_attribute("empty", "");
        record.add_attribute("no", false);
        record.add_attribute("bytes", AnyValue::Bytes(Box::new(vec![0, 1, 255])));
        record.add_attribute(
            "list",
            AnyValue::ListAny(Box::new(vec![AnyValue::Int(-1), AnyValue::from("two")])),
        );
        record.add_attribute(
            "map",
            AnyValue::Map(Box::new(HashMap::from([(
                Key::from("inner"),
                AnyValue::Double(1.5),
            )]))),
        );
        record
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_carries_what_the_sdks_own_conversion_would() {
        let collector = Collector::default();
        let delivery = Delivery::default();
        let resource = Resource::builder_empty()
            .with_service_name("checkout")
            .with_attribute(KeyValue::new("deployment.environment.name", "test"))
            .build();
        let queue = LogQueue::start(collector.clone(), &resource, &batching(), delivery.clone());
        let usual = InstrumentationScope::builder("bridge")
            .with_version("0.33")
            .build();
        let other = InstrumentationScope::builder("other")
            .with_version("2")
            .with_schema_url("https://example.com/schema")
            .with_attributes([KeyValue::new("a", 1)])
            .build();
        let (mut first, mut second, mut third) = (told(1), told(2), blank());
        third.set_observed_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(8));
        let mut fourth = told(4);
        fourth.set_target("thespian::telemetry");
        queue.emit(&mut first, &usual);
        queue.emit(&mut second, &other);
        queue.emit(&mut third, &usual);
        queue.emit(&mut fourth, &usual);
        let queue = Arc::new(queue);
        let flushing = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .unwrap()
            .unwrap();
        // The flush returns once the export is done: the request is there.
        let mut sent = collector.requests.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "one batch, one request");
        let records = [
            (&first, &usual),
            (&second, &other),
            (&third, &usual),
            (&fourth, &usual),
        ];
        let mut expected = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(
                &LogBatch::new(&records),
                &(&resource).into(),
            ),
        };
        // The SDK groups scopes in a map, in no order of its own.
        for request in [&mut sent[0], &mut expected] {
            for resource in &mut request.resource_logs {
                resource
                    .scope_logs
                    .sort_by_key(|scope| format!("{:?}", scope.scope));
            }
        }
        assert_eq!(sent[0], expected);
        assert_eq!(delivery.exported(Signal::Logs), 4);
    }

    #[test]
    fn a_waiting_record_takes_well_under_half_the_room_of_the_sdks() {
        // A line as a step logs it: a message, a few fields, its span.
        let mut record = logged("call answered".to_owned(), SystemTime::now());
        record.add_attribute("service", "checkout");
        record.add_attribute("method", "A");
        record.add_attribute("elapsed_ms", 12.5);
        // What the SDK's queue held: the record, its scope, and the body.
        let sdk = mem::size_of::<SdkLogRecord>() + mem::size_of::<InstrumentationScope>() + 16;
        let waiting = mem::size_of::<Waiting>() + log_wire::encode(&record).len();
        // 187 against 544 bytes when this was written.
        assert!(
            waiting * 5 / 2 <= sdk,
            "{waiting} bytes waiting, {sdk} in the SDK's queue"
        );
    }
}
