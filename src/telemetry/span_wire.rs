//! Finished spans written straight into OTLP's protobuf wire format, the
//! body of a `TraceService/Export` request.
//!
//! The OTLP exporter of the SDK takes each batch as whole `SpanData`,
//! clones it for a possible retry, turns it into the generated message
//! types, a dozen small allocations per span, and encodes those, working
//! out the length of each nested message once per level it is nested in.
//! At 3 spans a request that was a fifth of an instance's CPU under load
//! (`docs/performance.md`). Here a batch goes from the queue's compact
//! spans to bytes in one pass, with each span's length worked out once.
//!
//! The resource and the instrumentation scope are the same in every batch:
//! they are encoded once, by the generated types, when the queue starts.
//! What is written here decodes to exactly the message the SDK's own
//! conversion makes of the same spans, which the tests check.

use bytes::{BufMut, Bytes};
use opentelemetry::{
    InstrumentationScope, KeyValue, Value,
    trace::{Event, Link, SpanKind, Status},
};
use opentelemetry_proto::{
    tonic::{
        common::v1::InstrumentationScope as ScopeMessage, resource::v1::Resource as ResourceMessage,
    },
    transform::common::tonic::ResourceAttributesWithSchema,
};
use opentelemetry_sdk::Resource;
use prost::{
    Message,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len},
};

use super::span_queue::Waiting;

/// What every request of one instance carries around its spans: the
/// resource, the instrumentation scope, and their schema URLs, encoded.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    /// `ResourceSpans.resource`, with its key.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`, with its key, if there is one.
    resource_schema: Vec<u8>,
    /// `ScopeSpans.scope`, with its key.
    scope: Vec<u8>,
    /// `ScopeSpans.schema_url`, with its key, if there is one.
    scope_schema: Vec<u8>,
}

impl Envelope {
    /// The envelope of spans from `scope`, made where `resource` says.
    pub(super) fn new(resource: &Resource, scope: &InstrumentationScope) -> Envelope {
        let resource = ResourceAttributesWithSchema::from(resource);
        let message = ResourceMessage {
            attributes: resource.attributes.0,
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let scope_message: ScopeMessage = (scope, None).into();
        Envelope {
            resource: message_field(1, &message),
            resource_schema: string_field(3, resource.schema_url.as_deref().unwrap_or_default()),
            scope: message_field(1, &scope_message),
            scope_schema: string_field(3, scope.schema_url().unwrap_or_default()),
        }
    }

    /// An `ExportTraceServiceRequest` carrying `spans`.
    pub(super) fn request(&self, spans: &[Waiting]) -> Bytes {
        let lens: Vec<usize> = spans.iter().map(span_len).collect();
        let spans_len: usize = lens.iter().map(|&len| delimited_len(2, len)).sum();
        let scope_spans_len = self.scope.len() + spans_len + self.scope_schema.len();
        let resource_spans_len =
            self.resource.len() + delimited_len(2, scope_spans_len) + self.resource_schema.len();
        let total = delimited_len(1, resource_spans_len);
        let mut out = Vec::with_capacity(total);
        delimiter(1, resource_spans_len, &mut out);
        out.put_slice(&self.resource);
        delimiter(2, scope_spans_len, &mut out);
        out.put_slice(&self.scope);
        for (span, len) in spans.iter().zip(lens) {
            delimiter(2, len, &mut out);
            write_span(span, &mut out);
        }
        out.put_slice(&self.scope_schema);
        out.put_slice(&self.resource_schema);
        debug_assert_eq!(
            out.len(),
            total,
            "the lengths worked out are the lengths written"
        );
        out.into()
    }
}

/// A message field, key and all, encoded by its generated type.
fn message_field(tag: u32, message: &impl Message) -> Vec<u8> {
    let mut out = Vec::new();
    delimiter(tag, message.encoded_len(), &mut out);
    message.encode_raw(&mut out);
    out
}

/// A string field, key and all, or nothing for an empty string, as proto3
/// leaves defaults out.
fn string_field(tag: u32, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !value.is_empty() {
        write_str(tag, value, &mut out);
    }
    out
}

// --- Lengths -----------------------------------------------------------------

/// The bytes of a length-delimited field whose content is `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// The bytes of a string or bytes field, left out when empty.
fn str_len(tag: u32, value: &[u8]) -> usize {
    if value.is_empty() {
        0
    } else {
        delimited_len(tag, value.len())
    }
}

/// The bytes of a varint field, left out when zero.
fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

/// The bytes of a fixed64 field, left out when zero.
fn fixed64_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 8 }
}

fn span_len(span: &Waiting) -> usize {
    let rare = span.rare.as_deref();
    let mut len = delimited_len(1, 16)
        + delimited_len(2, 8)
        + key_len(16)
        + 4
        + str_len(5, span.name.as_bytes())
        + varint_len(6, kind(&span.kind))
        + fixed64_len(7, nanos(span.start))
        + fixed64_len(8, nanos(span.end))
        + attributes_len(9, &span.attributes);
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        len += delimited_len(4, 8);
    }
    match rare {
        None => len + delimited_len(15, 0),
        Some(rare) => {
            len += str_len(3, rare.trace_state.header().as_bytes())
                + varint_len(10, rare.dropped_attributes_count.into())
                + rare
                    .events
                    .events
                    .iter()
                    .map(|event| delimited_len(11, event_len(event)))
                    .sum::<usize>()
                + varint_len(12, rare.events.dropped_count.into())
                + rare
                    .links
                    .links
                    .iter()
                    .map(|link| delimited_len(13, link_len(link)))
                    .sum::<usize>()
                + varint_len(14, rare.links.dropped_count.into());
            len + delimited_len(15, status_len(&rare.status))
        }
    }
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
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(value) => key_len(3) + encoded_len_varint(*value as u64),
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
        + key_len(6)
        + 4
}

fn status_len(status: &Status) -> usize {
    match status {
        Status::Unset => 0,
        Status::Ok => varint_len(3, 1),
        Status::Error { description } => str_len(2, description.as_bytes()) + varint_len(3, 2),
    }
}

// --- Writing -----------------------------------------------------------------

/// The key and length of a length-delimited field.
fn delimiter(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn write_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if !value.is_empty() {
        delimiter(tag, value.len(), out);
        out.put_slice(value);
    }
}

fn write_str(tag: u32, value: &str, out: &mut Vec<u8>) {
    write_bytes(tag, value.as_bytes(), out);
}

fn write_varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

fn write_fixed64(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.put_u64_le(value);
    }
}

fn write_fixed32(tag: u32, value: u32, out: &mut Vec<u8>) {
    encode_key(tag, WireType::ThirtyTwoBit, out);
    out.put_u32_le(value);
}

/// Writes a `Span` message's fields, in the order the generated type
/// writes them.
fn write_span(span: &Waiting, out: &mut Vec<u8>) {
    let rare = span.rare.as_deref();
    write_bytes(1, &span.trace_id.to_bytes(), out);
    write_bytes(2, &span.span_id.to_bytes(), out);
    if let Some(rare) = rare {
        write_str(3, &rare.trace_state.header(), out);
    }
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        write_bytes(4, &span.parent_span_id.to_bytes(), out);
    }
    write_fixed32(16, flags(span.flags.to_u8(), span.parent_is_remote), out);
    write_str(5, &span.name, out);
    write_varint(6, kind(&span.kind), out);
    write_fixed64(7, nanos(span.start), out);
    write_fixed64(8, nanos(span.end), out);
    write_attributes(9, &span.attributes, out);
    let Some(rare) = rare else {
        delimiter(15, 0, out);
        return;
    };
    write_varint(10, rare.dropped_attributes_count.into(), out);
    for event in &rare.events.events {
        delimiter(11, event_len(event), out);
        write_fixed64(1, nanos(event.timestamp), out);
        write_str(2, &event.name, out);
        write_attributes(3, &event.attributes, out);
        write_varint(4, event.dropped_attributes_count.into(), out);
    }
    write_varint(12, rare.events.dropped_count.into(), out);
    for link in &rare.links.links {
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
    write_varint(14, rare.links.dropped_count.into(), out);
    delimiter(15, status_len(&rare.status), out);
    match &rare.status {
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
        Value::Bool(value) => {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(*value), out);
        }
        Value::I64(value) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(*value as u64, out);
        }
        Value::F64(value) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.put_f64_le(*value);
        }
        Value::String(value) => {
            delimiter(1, value.as_str().len(), out);
            out.put_slice(value.as_str().as_bytes());
        }
        Value::Array(array) => {
            delimiter(5, array_len(array), out);
            write_array(array, out);
        }
        other => {
            let text = other.to_string();
            delimiter(1, text.len(), out);
            out.put_slice(text.as_bytes());
        }
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
            delimiter(1, v.as_str().len(), out);
            out.put_slice(v.as_str().as_bytes());
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

/// Nanoseconds since the Unix epoch, or 0 for a time before it, as the
/// SDK's conversion has it.
fn nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}
