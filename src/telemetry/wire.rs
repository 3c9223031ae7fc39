//! The few pieces of protobuf's wire format that OTLP's export requests
//! need, for writing spans and log records straight into a request
//! (`span_wire`, `log_wire`) rather than through the generated message
//! types.
//!
//! Every OTLP export request has the same frame: a list of resources, each
//! with its items grouped by instrumentation scope. The resource and the
//! scopes are encoded by the generated types, once; only the items are
//! written here, each length worked out once. Fields holding their type's
//! default are left out, as proto3 and the generated types leave them out.

use std::time::SystemTime;

use bytes::{BufMut, Bytes};
use opentelemetry::InstrumentationScope;
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

/// A resource as every request from one instance carries it: its field and
/// its schema URL's, encoded.
#[derive(Debug, Clone)]
pub(super) struct ResourceHead {
    resource: Vec<u8>,
    schema: Vec<u8>,
}

impl ResourceHead {
    pub(super) fn new(resource: &Resource) -> ResourceHead {
        let resource = ResourceAttributesWithSchema::from(resource);
        let message = ResourceMessage {
            attributes: resource.attributes.0,
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        ResourceHead {
            resource: message_field(1, &message),
            schema: string_field(3, resource.schema_url.as_deref().unwrap_or_default()),
        }
    }
}

/// An instrumentation scope as a request carries it: its field and its
/// schema URL's, encoded.
#[derive(Debug, Clone)]
pub(super) struct ScopeHead {
    scope: Vec<u8>,
    schema: Vec<u8>,
}

impl ScopeHead {
    pub(super) fn new(scope: &InstrumentationScope) -> ScopeHead {
        let message: ScopeMessage = (scope, None).into();
        ScopeHead {
            scope: message_field(1, &message),
            schema: string_field(3, scope.schema_url().unwrap_or_default()),
        }
    }
}

/// An export request carrying, from `resource`, each scope's `items`: each
/// item the bytes of one message of its scope's repeated field 2, a span or
/// a log record, as `span_wire` and `log_wire` write them.
pub(super) fn request(resource: &ResourceHead, groups: &[(&ScopeHead, &[&[u8]])]) -> Bytes {
    let group_lens: Vec<usize> = groups
        .iter()
        .map(|(scope, items)| {
            scope.scope.len()
                + items
                    .iter()
                    .map(|item| delimited_len(2, item.len()))
                    .sum::<usize>()
                + scope.schema.len()
        })
        .collect();
    let resource_len = resource.resource.len()
        + group_lens
            .iter()
            .map(|&len| delimited_len(2, len))
            .sum::<usize>()
        + resource.schema.len();
    let total = delimited_len(1, resource_len);
    let mut out = Vec::with_capacity(total);
    delimiter(1, resource_len, &mut out);
    out.put_slice(&resource.resource);
    for ((scope, items), len) in groups.iter().zip(group_lens) {
        delimiter(2, len, &mut out);
        out.put_slice(&scope.scope);
        for item in items.iter() {
            delimiter(2, item.len(), &mut out);
            out.put_slice(item);
        }
        out.put_slice(&scope.schema);
    }
    out.put_slice(&resource.schema);
    debug_assert_eq!(
        out.len(),
        total,
        "the lengths worked out are the lengths written"
    );
    out.into()
}

/// A message of `len` bytes, written by `write`, in an allocation of
/// exactly that size: the form in which a span or a log record waits for
/// export.
pub(super) fn written(len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Box<[u8]> {
    let mut out = Vec::with_capacity(len);
    write(&mut out);
    debug_assert_eq!(
        out.len(),
        len,
        "the length worked out is the length written"
    );
    out.into_boxed_slice()
}

/// A message field, key and all, encoded by its generated type.
fn message_field(tag: u32, message: &impl Message) -> Vec<u8> {
    let mut out = Vec::new();
    delimiter(tag, message.encoded_len(), &mut out);
    message.encode_raw(&mut out);
    out
}

/// A string field, key and all, or nothing for an empty string.
fn string_field(tag: u32, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_str(tag, value, &mut out);
    out
}

// --- Lengths -----------------------------------------------------------------

/// The bytes of a length-delimited field whose content is `len` bytes.
pub(super) fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// The bytes of a string or bytes field, left out when empty.
pub(super) fn str_len(tag: u32, value: &[u8]) -> usize {
    if value.is_empty() {
        0
    } else {
        delimited_len(tag, value.len())
    }
}

/// The bytes of a varint field, left out when zero.
pub(super) fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

/// The bytes of a varint field of a `oneof`, written whatever its value.
pub(super) fn oneof_varint_len(tag: u32, value: u64) -> usize {
    key_len(tag) + encoded_len_varint(value)
}

/// The bytes of a fixed64 field, left out when zero.
pub(super) fn fixed64_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 8 }
}

/// The bytes of a fixed32 field, left out when zero.
pub(super) fn fixed32_len(tag: u32, value: u32) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 4 }
}

// --- Writing -----------------------------------------------------------------

/// The key and length of a length-delimited field.
pub(super) fn delimiter(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// A string or bytes field, left out when empty.
pub(super) fn write_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if !value.is_empty() {
        delimiter(tag, value.len(), out);
        out.put_slice(value);
    }
}

/// A string field, left out when empty.
pub(super) fn write_str(tag: u32, value: &str, out: &mut Vec<u8>) {
    write_bytes(tag, value.as_bytes(), out);
}

/// A string or bytes field of a `oneof`, written even when empty.
pub(super) fn write_oneof_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    delimiter(tag, value.len(), out);
    out.put_slice(value);
}

/// A varint field, left out when zero.
pub(super) fn write_varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        write_oneof_varint(tag, value, out);
    }
}

/// A varint field of a `oneof`, written whatever its value.
pub(super) fn write_oneof_varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(value, out);
}

/// A fixed64 field, left out when zero.
pub(super) fn write_fixed64(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.put_u64_le(value);
    }
}

/// A double field of a `oneof`, written whatever its value.
pub(super) fn write_oneof_double(tag: u32, value: f64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, out);
    out.put_f64_le(value);
}

/// A fixed32 field, left out when zero.
pub(super) fn write_fixed32(tag: u32, value: u32, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, out);
        out.put_u32_le(value);
    }
}

/// Nanoseconds since the Unix epoch, or 0 for a time before it, as the
/// SDK's conversion has it.
pub(super) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}
