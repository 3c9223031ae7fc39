//! Log records written straight into OTLP's protobuf wire format, the body
//! of a `LogsService/Export` request, as `span_wire` writes spans.
//!
//! The SDK's OTLP exporter took each batch of records whole, grouped them
//! by scope in a map of scopes built afresh for every record, converted
//! each into the generated message types and encoded those. Here each
//! record is written into its bytes as it is emitted, and those bytes are
//! what wait in the queue, with the target and scope it is grouped by.
//!
//! Records are grouped by scope as the SDK groups them: the scope's name is
//! the record's target, as `tracing` gave it, when it has one. What is
//! written decodes to exactly the message the SDK's own conversion makes
//! of the same records, which the tests check.

use bytes::Bytes;
use opentelemetry::{InstrumentationScope, Key, logs::AnyValue};
use opentelemetry_sdk::{Resource, logs::SdkLogRecord};

use super::{
    log_queue::Waiting,
    wire::{
        Items, ResourceHead, ScopeHead, delimited_len, delimiter, fixed32_len, fixed64_len, nanos,
        oneof_varint_len, str_len, varint_len, write_bytes, write_fixed32, write_fixed64,
        write_oneof_bytes, write_oneof_double, write_oneof_varint, write_str, write_varint,
    },
};

/// What every request of one instance carries around its records: the
/// resource, encoded.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    resource: ResourceHead,
}

impl Envelope {
    /// The envelope of records made where `resource` says.
    pub(super) fn new(resource: &Resource) -> Envelope {
        Envelope {
            resource: ResourceHead::new(resource),
        }
    }

    /// An `ExportLogsServiceRequest` carrying `records`, those without a
    /// scope of their own from `usual`.
    pub(super) fn request(&self, records: &[Waiting], usual: &InstrumentationScope) -> Bytes {
        // A batch holds records of a few targets at most: a list searched
        // in turn beats a map.
        let mut groups: Vec<(InstrumentationScope, Vec<&[u8]>)> = Vec::new();
        for record in records {
            let scope = record.scope.as_deref().unwrap_or(usual);
            let name = record.target.as_deref().unwrap_or(scope.name());
            let index = match groups
                .iter()
                .position(|(key, _)| key.name() == name && same_but_name(key, scope))
            {
                Some(index) => index,
                None => {
                    groups.push((key(name, scope), Vec::new()));
                    groups.len() - 1
                }
            };
            groups[index].1.push(&record.bytes);
        }
        let heads: Vec<ScopeHead> = groups.iter().map(|(key, _)| ScopeHead::new(key)).collect();
        let groups: Vec<(&ScopeHead, Items<'_>)> = heads
            .iter()
            .zip(&groups)
            .map(|(head, (_, items))| (head, Items::Whole(items)))
            .collect();
        super::wire::request(&self.resource, &groups)
    }
}

/// The scope a record of `scope` is grouped under when its target is
/// `name`, as the SDK builds it.
fn key(name: &str, scope: &InstrumentationScope) -> InstrumentationScope {
    InstrumentationScope::builder(name.to_owned())
        .with_version(scope.version().unwrap_or_default().to_owned())
        .with_schema_url(scope.schema_url().unwrap_or_default().to_owned())
        .with_attributes(scope.attributes().cloned())
        .build()
}

/// Whether `key` was made from a scope like `scope`, whatever the name.
fn same_but_name(key: &InstrumentationScope, scope: &InstrumentationScope) -> bool {
    key.version().unwrap_or_default() == scope.version().unwrap_or_default()
        && key.schema_url().unwrap_or_default() == scope.schema_url().unwrap_or_default()
        && key.attributes().eq(scope.attributes())
}

/// `record` as the bytes of a `LogRecord` message, made to their exact
/// length: the form in which a record waits for export.
pub(super) fn encode(record: &SdkLogRecord) -> Box<[u8]> {
    super::wire::written(record_len(record), |out| write_record(record, out))
}

// --- Lengths -----------------------------------------------------------------

fn record_len(record: &SdkLogRecord) -> usize {
    fixed64_len(1, record.timestamp().map_or(0, nanos))
        + fixed64_len(11, record.observed_timestamp().map_or(0, nanos))
        + varint_len(2, severity(record))
        + str_len(3, record.severity_text().unwrap_or_default().as_bytes())
        + record
            .body()
            .map_or(0, |body| delimited_len(5, any_len(body)))
        + record
            .attributes_iter()
            .map(|(key, value)| delimited_len(6, key_value_len(key, value)))
            .sum::<usize>()
        + fixed32_len(8, flags(record))
        + record
            .trace_context()
            .map_or(0, |_| delimited_len(9, 16) + delimited_len(10, 8))
        + str_len(12, record.event_name().unwrap_or_default().as_bytes())
}

fn key_value_len(key: &Key, value: &AnyValue) -> usize {
    str_len(1, key.as_str().as_bytes()) + delimited_len(2, any_len(value))
}

/// The bytes of an `AnyValue` message holding `value`.
fn any_len(value: &AnyValue) -> usize {
    match value {
        AnyValue::String(value) => delimited_len(1, value.as_str().len()),
        AnyValue::Boolean(value) => oneof_varint_len(2, u64::from(*value)),
        AnyValue::Int(value) => oneof_varint_len(3, *value as u64),
        AnyValue::Double(_) => prost::encoding::key_len(4) + 8,
        AnyValue::ListAny(values) => delimited_len(5, list_len(values)),
        AnyValue::Map(map) => delimited_len(6, map_len(map)),
        AnyValue::Bytes(bytes) => delimited_len(7, bytes.len()),
        other => delimited_len(1, format!("{other:?}").len()),
    }
}

fn list_len(values: &[AnyValue]) -> usize {
    values
        .iter()
        .map(|value| delimited_len(1, any_len(value)))
        .sum()
}

fn map_len(map: &std::collections::HashMap<Key, AnyValue>) -> usize {
    map.iter()
        .map(|(key, value)| delimited_len(1, key_value_len(key, value)))
        .sum()
}

// --- Writing -----------------------------------------------------------------

/// Writes a `LogRecord` message's fields.
fn write_record(record: &SdkLogRecord, out: &mut Vec<u8>) {
    write_fixed64(1, record.timestamp().map_or(0, nanos), out);
    write_fixed64(11, record.observed_timestamp().map_or(0, nanos), out);
    write_varint(2, severity(record), out);
    write_str(3, record.severity_text().unwrap_or_default(), out);
    if let Some(body) = record.body() {
        delimiter(5, any_len(body), out);
        write_any(body, out);
    }
    for (key, value) in record.attributes_iter() {
        delimiter(6, key_value_len(key, value), out);
        write_key_value(key, value, out);
    }
    write_fixed32(8, flags(record), out);
    if let Some(trace) = record.trace_context() {
        write_bytes(9, &trace.trace_id.to_bytes(), out);
        write_bytes(10, &trace.span_id.to_bytes(), out);
    }
    write_str(12, record.event_name().unwrap_or_default(), out);
}

fn write_key_value(key: &Key, value: &AnyValue, out: &mut Vec<u8>) {
    write_str(1, key.as_str(), out);
    delimiter(2, any_len(value), out);
    write_any(value, out);
}

/// Writes an `AnyValue`'s one field, even when it holds its type's default.
fn write_any(value: &AnyValue, out: &mut Vec<u8>) {
    match value {
        AnyValue::String(value) => write_oneof_bytes(1, value.as_str().as_bytes(), out),
        AnyValue::Boolean(value) => write_oneof_varint(2, u64::from(*value), out),
        AnyValue::Int(value) => write_oneof_varint(3, *value as u64, out),
        AnyValue::Double(value) => write_oneof_double(4, *value, out),
        AnyValue::ListAny(values) => {
            delimiter(5, list_len(values), out);
            for value in values.iter() {
                delimiter(1, any_len(value), out);
                write_any(value, out);
            }
        }
        AnyValue::Map(map) => {
            delimiter(6, map_len(map), out);
            for (key, value) in map.iter() {
                delimiter(1, key_value_len(key, value), out);
                write_key_value(key, value, out);
            }
        }
        AnyValue::Bytes(bytes) => write_oneof_bytes(7, bytes, out),
        other => write_oneof_bytes(1, format!("{other:?}").as_bytes(), out),
    }
}

// --- Values ------------------------------------------------------------------

/// `SeverityNumber`'s number for the record's severity: the SDK's
/// severities are numbered as OTLP numbers them.
fn severity(record: &SdkLogRecord) -> u64 {
    record
        .severity_number()
        .map_or(0, |severity| severity as u64)
}

/// The W3C trace flags of the span the record was logged in.
fn flags(record: &SdkLogRecord) -> u32 {
    record
        .trace_context()
        .and_then(|trace| trace.trace_flags)
        .map_or(0, |flags| u32::from(flags.to_u8()))
}
