//! Log records on their way to the collector, through an [`ExportQueue`]
//! of compact records.
//!
//! The SDK's batch log processor keeps each waiting record as a whole
//! `SdkLogRecord` boxed with a copy of its instrumentation scope, room for
//! five attributes inline whether a record has them or not, and sets aside
//! a slot for every record its queue may hold as soon as it starts: 256 KB
//! of every idle instance at the default 16,384. Here a waiting record
//! keeps what it was told, its attributes in a list of their own length
//! and its scope only when it is not the usual one, and an idle queue holds
//! nothing. Records become `SdkLogRecord`s again in the batch that exports
//! them.

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock},
    time::{Duration, SystemTime},
};

use opentelemetry::{
    InstrumentationScope, Key,
    logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity},
};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLoggerProvider, TraceContext},
};

use super::{
    Batching,
    delivery::{Delivery, Signal},
    export_queue::{Export, ExportQueue},
};

/// A log processor that queues records compactly and exports them in
/// batches from a task on the runtime.
#[derive(Debug)]
pub struct LogQueue {
    queue: ExportQueue<Waiting>,
    /// The scope of the first record, which every record Thespian makes
    /// shares: the bridge from `tracing` is its one logger.
    usual: Arc<OnceLock<InstrumentationScope>>,
}

impl LogQueue {
    /// Starts the task that exports through `exporter`, on the current
    /// tokio runtime, with the batch settings `batching`, and counts what
    /// it delivers and loses in `delivery`. Every exported record carries
    /// `resource`.
    pub fn start<E>(
        mut exporter: E,
        resource: &Resource,
        batching: &Batching,
        delivery: Delivery,
    ) -> LogQueue
    where
        E: LogExporter + 'static,
    {
        exporter.set_resource(resource);
        let usual = Arc::new(OnceLock::new());
        let export = Records {
            exporter: Arc::new(exporter),
            usual: Arc::clone(&usual),
            blank: blank_record(),
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

/// A record with nothing set, to build exported records on: the SDK makes
/// records only through a logger.
fn blank_record() -> SdkLogRecord {
    SdkLoggerProvider::builder()
        .build()
        .logger("thespian")
        .create_log_record()
}

impl LogProcessor for LogQueue {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let usual = self.usual.get_or_init(|| scope.clone());
        let scope = (scope != usual).then(|| Box::new(scope.clone()));
        self.queue.push(|| Waiting::new(record, scope));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush()
    }

    /// Exports what is queued, shuts the exporter down, then reports the
    /// records that never reached the collector.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    /// The resource is given to [`LogQueue::start`], before the exporter
    /// is shared with the task.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// How a batch of records leaves: whole again, through the OTLP exporter.
struct Records<E> {
    exporter: Arc<E>,
    /// The scope most records share.
    usual: Arc<OnceLock<InstrumentationScope>>,
    /// What every exported record starts from.
    blank: SdkLogRecord,
}

impl<E: LogExporter + 'static> Export for Records<E> {
    type Item = Waiting;

    fn export(&self, batch: Vec<Waiting>) -> impl Future<Output = OTelSdkResult> + Send + 'static {
        let records: Vec<(SdkLogRecord, Option<Box<InstrumentationScope>>)> = batch
            .into_iter()
            .map(|record| record.into_record(self.blank.clone()))
            .collect();
        // Set by the first record queued, so by the time any is exported.
        let usual = self.usual.get().cloned().unwrap_or_default();
        let exporter = Arc::clone(&self.exporter);
        async move {
            let batch: Vec<(&SdkLogRecord, &InstrumentationScope)> = records
                .iter()
                .map(|(record, scope)| (record, scope.as_deref().unwrap_or(&usual)))
                .collect();
            exporter.export(LogBatch::new(&batch)).await
        }
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.exporter.shutdown()
    }
}

/// A log record as it waits for export: what it was told.
#[derive(Debug)]
struct Waiting {
    timestamp: Option<SystemTime>,
    observed: Option<SystemTime>,
    trace: Option<TraceContext>,
    body: Option<AnyValue>,
    target: Option<Cow<'static, str>>,
    attributes: Box<[(Key, AnyValue)]>,
    /// Its scope, when it is not the usual one.
    scope: Option<Box<InstrumentationScope>>,
    event_name: Option<&'static str>,
    severity_text: Option<&'static str>,
    severity: Option<Severity>,
}

impl Waiting {
    /// Copies what `record` was told.
    fn new(record: &SdkLogRecord, scope: Option<Box<InstrumentationScope>>) -> Waiting {
        Waiting {
            timestamp: record.timestamp(),
            observed: record.observed_timestamp(),
            trace: record.trace_context().cloned(),
            body: record.body().cloned(),
            target: record.target().cloned(),
            attributes: record.attributes_iter().cloned().collect(),
            scope,
            event_name: record.event_name(),
            severity_text: record.severity_text(),
            severity: record.severity_number(),
        }
    }

    /// The record again, built on `record`, which has nothing set, and its
    /// scope when it is not the usual one.
    fn into_record(
        self,
        mut record: SdkLogRecord,
    ) -> (SdkLogRecord, Option<Box<InstrumentationScope>>) {
        if let Some(name) = self.event_name {
            record.set_event_name(name);
        }
        if let Some(target) = self.target {
            record.set_target(target);
        }
        if let Some(timestamp) = self.timestamp {
            record.set_timestamp(timestamp);
        }
        if let Some(observed) = self.observed {
            record.set_observed_timestamp(observed);
        }
        if let Some(trace) = self.trace {
            record.set_trace_context(trace.trace_id, trace.span_id, trace.trace_flags);
        }
        if let Some(text) = self.severity_text {
            record.set_severity_text(text);
        }
        if let Some(severity) = self.severity {
            record.set_severity_number(severity);
        }
        if let Some(body) = self.body {
            record.set_body(body);
        }
        record.add_attributes(self.attributes.into_vec());
        (record, self.scope)
    }
}

#[cfg(test)]
mod tests {
    use std::{mem, sync::Mutex};

    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

    use super::*;

    /// An exporter that keeps every record it is given, with its scope.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        records: Arc<Mutex<Vec<(SdkLogRecord, InstrumentationScope)>>>,
    }

    impl LogExporter for Collector {
        async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
            let mut records = self.records.lock().unwrap();
            records.extend(
                batch
                    .iter()
                    .map(|(record, scope)| (record.clone(), scope.clone())),
            );
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

    /// A record with every field set, and more attributes than the SDK
    /// keeps inline.
    fn told(n: i64) -> SdkLogRecord {
        let mut record = blank_record();
        record.set_event_name("checked");
        record.set_target("thespian::executor");
        record.set_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(n as u64));
        record.set_observed_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(7));
        record.set_trace_context(
            TraceId::from(9_u128),
            SpanId::from(3_u64),
            Some(TraceFlags::SAMPLED),
        );
        record.set_severity_text("INFO");
        record.set_severity_number(Severity::Info);
        record.set_body(AnyValue::from(format!("record {n}")));
        record.add_attributes((0..7).map(|i| (format!("key{i}"), n * 10 + i)));
        record
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_record_is_exported_whole_with_its_scope() {
        let collector = Collector::default();
        let delivery = Delivery::default();
        let queue = LogQueue::start(
            collector.clone(),
            &Resource::builder_empty().build(),
            &batching(),
            delivery.clone(),
        );
        let usual = InstrumentationScope::builder("bridge").build();
        let other = InstrumentationScope::builder("other")
            .with_version("2")
            .build();
        let (mut first, mut second, mut third) = (told(1), told(2), blank_record());
        queue.emit(&mut first, &usual);
        queue.emit(&mut second, &other);
        queue.emit(&mut third, &usual);
        let queue = Arc::new(queue);
        let flushing = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .unwrap()
            .unwrap();
        // The flush returns once the export is done: the records are there.
        let records = collector.records.lock().unwrap().clone();
        assert_eq!(
            records,
            [(first, usual.clone()), (second, other), (third, usual)]
        );
        assert_eq!(delivery.exported(Signal::Logs), 3);
    }

    #[test]
    fn a_waiting_record_takes_well_under_half_the_room_of_the_sdks() {
        // 176 against 528 bytes (a record and its scope) when this was written.
        let sdk = mem::size_of::<SdkLogRecord>() + mem::size_of::<InstrumentationScope>();
        assert!(
            mem::size_of::<Waiting>() * 5 / 2 <= sdk,
            "{} bytes waiting, {sdk} in the SDK's queue",
            mem::size_of::<Waiting>(),
        );
    }
}
