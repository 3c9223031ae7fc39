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

use bytes::Bytes;
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
    encoding::{WireType, encoded_len_varint, key_len},
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

/// One scope's messages in an export request: spans or log records, each
/// the bytes of one message of the scope's repeated field 2.
#[derive(Debug, Clone, Copy)]
pub(super) enum Items<'a> {
    /// Each message on its own, framed as it is written into the request.
    Whole(&'a [&'a [u8]]),
    /// Messages already framed as the field, side by side in chunks.
    Framed(&'a [Vec<u8>]),
}

impl Items<'_> {
    /// How many bytes they take in the request, framing included.
    fn len(self) -> usize {
        match self {
            Items::Whole(items) => items.iter().map(|item| delimited_len(2, item.len())).sum(),
            Items::Framed(chunks) => chunks.iter().map(Vec::len).sum(),
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Items::Whole(items) => {
                for item in items {
                    delimiter(2, item.len(), out);
                    out.extend_from_slice(item);
                }
            }
            Items::Framed(chunks) => {
                for chunk in chunks {
                    out.extend_from_slice(chunk);
                }
            }
        }
    }
}

/// An export request carrying, from `resource`, each scope's `items`, as
/// `span_wire` and `log_wire` write them.
pub(super) fn request(resource: &ResourceHead, groups: &[(&ScopeHead, Items<'_>)]) -> Bytes {
    let group_lens: Vec<usize> = groups
        .iter()
        .map(|(scope, items)| scope.scope.len() + items.len() + scope.schema.len())
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
    out.extend_from_slice(&resource.resource);
    for ((scope, items), len) in groups.iter().zip(group_lens) {
        delimiter(2, len, &mut out);
        out.extend_from_slice(&scope.scope);
        items.write(&mut out);
        out.extend_from_slice(&scope.schema);
    }
    out.extend_from_slice(&resource.schema);
    debug_assert_eq!(
        out.len(),
        total,
        "the lengths worked out are the lengths written"
    );
    out.into()
}

/// A message of `len` bytes, written by `write`, in an allocation of
/// exactly that size: the form in which a log record waits for export.
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

/// A varint, pushed straight onto `out`. Every span writes a few dozen
/// keys and lengths, nearly all of one byte; prost's writer, generic over
/// `BufMut`, cost four times as many instructions for each (callgrind).
fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A field's key: its tag and wire type, as one varint.
fn put_key(tag: u32, wire_type: WireType, out: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | wire_type as u32), out);
}

/// The key and length of a length-delimited field.
pub(super) fn delimiter(tag: u32, len: usize, out: &mut Vec<u8>) {
    put_key(tag, WireType::LengthDelimited, out);
    put_varint(len as u64, out);
}

/// A string or bytes field, left out when empty.
pub(super) fn write_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if !value.is_empty() {
        delimiter(tag, value.len(), out);
        out.extend_from_slice(value);
    }
}

/// A string field, left out when empty.
pub(super) fn write_str(tag: u32, value: &str, out: &mut Vec<u8>) {
    write_bytes(tag, value.as_bytes(), out);
}

/// A string or bytes field of a `oneof`, written even when empty.
pub(super) fn write_oneof_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    delimiter(tag, value.len(), out);
    out.extend_from_slice(value);
}

/// A varint field, left out when zero.
pub(super) fn write_varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        write_oneof_varint(tag, value, out);
    }
}

/// A varint field of a `oneof`, written whatever its value.
pub(super) fn write_oneof_varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    put_key(tag, WireType::Varint, out);
    put_varint(value, out);
}

/// A fixed64 field, left out when zero.
pub(super) fn write_fixed64(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        put_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// A double field of a `oneof`, written whatever its value.
pub(super) fn write_oneof_double(tag: u32, value: f64, out: &mut Vec<u8>) {
    put_key(tag, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A fixed32 field, left out when zero.
pub(super) fn write_fixed32(tag: u32, value: u32, out: &mut Vec<u8>) {
    if value != 0 {
        put_key(tag, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Nanoseconds since the Unix epoch, or 0 for a time before it, as the
/// SDK's conversion has it.
pub(super) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_are_written_as_prost_writes_them() {
        for value in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 35, u64::MAX] {
            let (mut ours, mut prost) = (Vec::new(), Vec::new());
            put_varint(value, &mut ours);
            prost::encoding::encode_varint(value, &mut prost);
            assert_eq!(ours, prost, "{value}");
            assert_eq!(ours.len(), encoded_len_varint(value), "{value}");
        }
        for tag in [1, 15, 16, 2_047, 2_048] {
            let (mut ours, mut prost) = (Vec::new(), Vec::new());
            put_key(tag, WireType::LengthDelimited, &mut ours);
            prost::encoding::encode_key(tag, WireType::LengthDelimited, &mut prost);
            assert_eq!(ours, prost, "{tag}");
            assert_eq!(ours.len(), key_len(tag), "{tag}");
        }
    }
}
