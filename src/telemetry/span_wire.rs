//! Finished spans written straight into OTLP's protobuf wire format, the
//! body of a `TraceService/Export` request.
//!
//! The OTLP exporter of the SDK takes each batch as whole `SpanData`,
//! clones it for a possible retry, turns it into the generated message
//! types, a dozen small allocations per span, and encodes those, working
//! out the length of each nested message once per level it is nested in.
//! At 3 spans a request that was a fifth of an instance's CPU under load
//! (`docs/performance.md`). Here each span is written into its bytes as it
//! ends, its length worked out once, straight into the batch it waits in
//! ([`Written`]): a batch is then a request once its envelope is put
//! around it.
//!
//! The resource and the instrumentation scope are the same in every batch:
//! they are encoded once, by the generated types, when the queue starts.
//! What is written here decodes to exactly the message the SDK's own
//! conversion makes of the same spans, which the tests check.

use bytes::Bytes;
use opentelemetry::{
    InstrumentationScope, KeyValue, Value,
    trace::{Event, Link, SpanId, SpanKind, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::encoding::key_len;

use super::export_queue::Batch;
use super::wire::{
    Items, ResourceHead, ScopeHead, delimited_len, delimiter, fixed32_len, fixed64_len, nanos,
    oneof_varint_len, str_len, varint_len, write_bytes, write_fixed32, write_fixed64,
    write_oneof_bytes, write_oneof_double, write_oneof_varint, write_str, write_varint,
};

/// What every request of one instance carries around its spans: the
/// resource and the instrumentation scope, encoded.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    resource: ResourceHead,
    scope: ScopeHead,
}

impl Envelope {
    /// The envelope of spans from `scope`, made where `resource` says.
    pub(super) fn new(resource: &Resource, scope: &InstrumentationScope) -> Envelope {
        Envelope {
            resource: ResourceHead::new(resource),
            scope: ScopeHead::new(scope),
        }
    }

    /// An `ExportTraceServiceRequest` carrying the spans `written`.
    pub(super) fn request(&self, written: &Written) -> Bytes {
        super::wire::request(
            &self.resource,
            &[(&self.scope, Items::Framed(&written.chunks))],
        )
    }
}

/// Room in each of a batch's chunks: a few dozen spans. jemalloc serves
/// this size from its small classes, in runs of equal slots; from 16 KiB
/// up it adds a page to each allocation, a quarter more room for a 16 KiB
/// chunk, and 16 KiB chunks held more than one allocation a span had.
const CHUNK: usize = 8 * 1024;

/// Spans waiting for export, written as they will be sent: one after
/// another, each framed as a field of its scope's repeated `spans`, in
/// chunks of [`CHUNK`] bytes. A waiting span takes its bytes and little
/// more; held one allocation each, the allocator rounded it up to its next
/// size class and the batch kept a pointer to it. 300,000 spans held
/// behind a collector that did not answer peaked at 63.7 MB this way,
/// against 68.5 MB. A batch grows without moving what it holds, and the
/// last chunk's spare room is the most it wastes.
#[derive(Debug, Default)]
pub(super) struct Written {
    chunks: Vec<Vec<u8>>,
    spans: usize,
}

impl Written {
    /// Writes `span` after the spans already here.
    pub(super) fn put(&mut self, span: &SpanData) {
        let len = span_len(span);
        let framed = delimited_len(2, len);
        if self
            .chunks
            .last()
            .is_none_or(|chunk| chunk.capacity() - chunk.len() < framed)
        {
            self.chunks.push(Vec::with_capacity(CHUNK.max(framed)));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            delimiter(2, len, chunk);
            let start = chunk.len();
            write_span(span, chunk);
            debug_assert_eq!(
                chunk.len() - start,
                len,
                "the length worked out is the length written"
            );
            self.spans += 1;
        }
    }

    /// The bytes the batch holds, spare room included.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

impl Batch for Written {
    fn with_room(_spans: usize) -> Written {
        Written::default()
    }

    fn len(&self) -> usize {
        self.spans
    }
}

// --- Lengths -----------------------------------------------------------------

fn span_len(span: &SpanData) -> usize {
    let context = &span.span_context;
    let mut len = delimited_len(1, 16)
        + delimited_len(2, 8)
        + str_len(3, context.trace_state().header().as_bytes())
        + fixed32_len(
            16,
            flags(context.trace_flags().to_u8(), span.parent_span_is_remote),
        )
        + str_len(5, span.name.as_bytes())
        + varint_len(6, kind(&span.span_kind))
        + fixed64_len(7, nanos(span.start_time))
        + fixed64_len(8, nanos(span.end_time))
        + attributes_len(9, &span.attributes)
        + varint_len(10, span.dropped_attributes_count.into())
        + span
            .events
            .events
            .iter()
            .map(|event| delimited_len(11, event_len(event)))
            .sum::<usize>()
        + varint_len(12, span.events.dropped_count.into())
        + span
            .links
            .links
            .iter()
            .map(|link| delimited_len(13, link_len(link)))
            .sum::<usize>()
        + varint_len(14, span.links.dropped_count.into())
        + delimited_len(15, status_len(&span.status));
    if span.parent_span_id != SpanId::INVALID {
        len += delimited_len(4, 8);
    }
    len
}

fn attributes_len(tag: u32, attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|attribute| delimited_len(tag, key_value_len(attribute)))
        .sum()
}

fn key_value_len(attribute: &KeyValue) -> usize {
    str_len(1, attribute.key.as_str().as_bytes())
        + delimited_len(2, any_value_len(&attribute.value))
}

fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(value) => oneof_varint_len(2, u64::from(*value)),
        Value::I64(value) => oneof_varint_len(3, *value as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::String(value) => delimited_len(1, value.as_str().len()),
        Value::Array(array) => delimited_len(5, array_len(array)),
        other => delimited_len(1, other.to_string().len()),
    }
}

/// The bytes of an `ArrayValue`: each element an `AnyValue` of its own.
fn array_len(array: &opentelemetry::Array) -> usize {
    use opentelemetry::Array;
    let each = |value: Value| delimited_len(1, any_value_len(&value));
    match array {
        Array::Bool(values) => values.iter().map(|v| each(Value::Bool(*v))).sum(),
        Array::I64(values) => values.iter().map(|v| each(Value::I64(*v))).sum(),
        Array::F64(values) => values.iter().map(|v| each(Value::F64(*v))).sum(),
        Array::String(values) => values
            .iter()
            .map(|v| delimited_len(1, delimited_len(1, v.as_str().len())))
            .sum(),
        other => delimited_len(1, delimited_len(1, other.to_string().len())),
    }
}

fn event_len(event: &Event) -> usize {
    fixed64_len(1, nanos(event.timestamp))
        + str_len(2, event.name.as_bytes())
        + attributes_len(3, &event.attributes)
        + varint_len(4, event.dropped_attributes_count.into())
}

fn link_len(link: &Link) -> usize {
    let context = &link.span_context;
    delimited_len(1, 16)
        + delimited_len(2, 8)
        + str_len(3, context.trace_state().header().as_bytes())
        + attributes_len(4, &link.attributes)
        + varint_len(5, link.dropped_attributes_count.into())
        + fixed32_len(6, flags(context.trace_flags().to_u8(), context.is_remote()))
}

fn status_len(status: &Status) -> usize {
    match status {
        Status::Unset => 0,
        Status::Ok => varint_len(3, 1),
        Status::Error { description } => str_len(2, description.as_bytes()) + varint_len(3, 2),
    }
}

// --- Writing -----------------------------------------------------------------

/// Writes a `Span` message's fields, in the order the generated type
/// writes them.
fn write_span(span: &SpanData, out: &mut Vec<u8>) {
    let context = &span.span_context;
    write_bytes(1, &context.trace_id().to_bytes(), out);
    write_bytes(2, &context.span_id().to_bytes(), out);
    write_str(3, &context.trace_state().header(), out);
    if span.parent_span_id != SpanId::INVALID {
        write_bytes(4, &span.parent_span_id.to_bytes(), out);
    }
    write_fixed32(
        16,
        flags(context.trace_flags().to_u8(), span.parent_span_is_remote),
        out,
    );
    write_str(5, &span.name, out);
    write_varint(6, kind(&span.span_kind), out);
    write_fixed64(7, nanos(span.start_time), out);
    write_fixed64(8, nanos(span.end_time), out);
    write_attributes(9, &span.attributes, out);
    write_varint(10, span.dropped_attributes_count.into(), out);
    for event in &span.events.events {
        delimiter(11, event_len(event), out);
        write_fixed64(1, nanos(event.timestamp), out);
        write_str(2, &event.name, out);
        write_attributes(3, &event.attributes, out);
        write_varint(4, event.dropped_attributes_count.into(), out);
    }
    write_varint(12, span.events.dropped_count.into(), out);
    for link in &span.links.links {
        let context = &link.span_context;
        delimiter(13, link_len(link), out);
        write_bytes(1, &context.trace_id().to_bytes(), out);
        write_bytes(2, &context.span_id().to_bytes(), out);
        write_str(3, &context.trace_state().header(), out);
        write_attributes(4, &link.attributes, out);
        write_varint(5, link.dropped_attributes_count.into(), out);
        write_fixed32(
            6,
            flags(context.trace_flags().to_u8(), context.is_remote()),
            out,
        );
    }
    write_varint(14, span.links.dropped_count.into(), out);
    delimiter(15, status_len(&span.status), out);
    match &span.status {
        Status::Unset => {}
        Status::Ok => write_varint(3, 1, out),
        Status::Error { description } => {
            write_str(2, description, out);
            write_varint(3, 2, out);
        }
    }
}

fn write_attributes(tag: u32, attributes: &[KeyValue], out: &mut Vec<u8>) {
    for attribute in attributes {
        delimiter(tag, key_value_len(attribute), out);
        write_str(1, attribute.key.as_str(), out);
        delimiter(2, any_value_len(&attribute.value), out);
        write_any_value(&attribute.value, out);
    }
}

/// Writes an `AnyValue`'s one field. A field of a `oneof` is written even
/// when it holds its type's default, so the value's type is never lost.
fn write_any_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Bool(value) => write_oneof_varint(2, u64::from(*value), out),
        Value::I64(value) => write_oneof_varint(3, *value as u64, out),
        Value::F64(value) => write_oneof_double(4, *value, out),
        Value::String(value) => write_oneof_bytes(1, value.as_str().as_bytes(), out),
        Value::Array(array) => {
            delimiter(5, array_len(array), out);
            write_array(array, out);
        }
        other => write_oneof_bytes(1, other.to_string().as_bytes(), out),
    }
}

fn write_array(array: &opentelemetry::Array, out: &mut Vec<u8>) {
    use opentelemetry::Array;
    let each = |value: Value, out: &mut Vec<u8>| {
        delimiter(1, any_value_len(&value), out);
        write_any_value(&value, out);
    };
    match array {
        Array::Bool(values) => values.iter().for_each(|v| each(Value::Bool(*v), out)),
        Array::I64(values) => values.iter().for_each(|v| each(Value::I64(*v), out)),
        Array::F64(values) => values.iter().for_each(|v| each(Value::F64(*v), out)),
        Array::String(values) => values.iter().for_each(|v| {
            delimiter(1, delimited_len(1, v.as_str().len()), out);
            write_oneof_bytes(1, v.as_str().as_bytes(), out);
        }),
        other => each(Value::from(other.to_string()), out),
    }
}

// --- Values ------------------------------------------------------------------

/// The span flags OTLP carries: the W3C trace flags, and whether the
/// parent was remote, with the bit saying that this is known.
fn flags(trace_flags: u8, parent_is_remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    let mut flags = u32::from(trace_flags) | HAS_IS_REMOTE;
    if parent_is_remote {
        flags |= IS_REMOTE;
    }
    flags
}

/// `Span.SpanKind`'s number for `kind`.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}
