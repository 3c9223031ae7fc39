//! Values as OTLP sends them, flattened: an attribute's `AnyValue` as a
//! plain enum, attributes as a map with typed getters, and ids as hex, so
//! that assertions on any received item stay short.

use std::collections::BTreeMap;
use std::fmt;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// An OTLP `AnyValue` as a plain enum, so attributes can be compared and
/// printed without unwrapping nested protobuf options.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string value.
    Str(String),
    /// A boolean value.
    Bool(bool),
    /// An integer value.
    I64(i64),
    /// A floating point value.
    F64(f64),
    /// An array of values.
    Array(Vec<Value>),
    /// A key-value list.
    Map(BTreeMap<String, Value>),
    /// A byte string.
    Bytes(Vec<u8>),
    /// An `AnyValue` with nothing set (or a profiling-only string index).
    Empty,
}

impl Value {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value (no conversion from doubles
    /// or strings, so a test notices an attribute of the wrong type).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is a double value (integers are *not* converted,
    /// so a test notices an attribute of the wrong type).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(super) fn from_proto(value: Option<&AnyValue>) -> Value {
        let Some(inner) = value.and_then(|v| v.value.as_ref()) else {
            return Value::Empty;
        };
        match inner {
            any_value::Value::StringValue(s) => Value::Str(s.clone()),
            any_value::Value::BoolValue(b) => Value::Bool(*b),
            any_value::Value::IntValue(i) => Value::I64(*i),
            any_value::Value::DoubleValue(f) => Value::F64(*f),
            any_value::Value::ArrayValue(a) => Value::Array(
                a.values
                    .iter()
                    .map(|v| Value::from_proto(Some(v)))
                    .collect(),
            ),
            any_value::Value::KvlistValue(kv) => Value::Map(attributes_map(&kv.values)),
            any_value::Value::BytesValue(b) => Value::Bytes(b.clone()),
            any_value::Value::StringValueStrindex(_) => Value::Empty,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F64(x) => write!(f, "{x:?}"),
            Value::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Value::Map(map) => write!(f, "{}", Attributes(map.clone())),
            Value::Bytes(b) => write!(f, "0x{}", hex(b)),
            Value::Empty => write!(f, "<empty>"),
        }
    }
}

/// Attributes by key, with typed getters: the shape every flattened item
/// (span, event, log record, data point, resource) carries its attributes in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(pub BTreeMap<String, Value>);

impl Attributes {
    /// The value under `key`, of whatever type.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Whether `key` is present at all.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The string under `key`, if present and a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The integer under `key`, if present and an integer.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// The double under `key`, if present and a double.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// The boolean under `key`, if present and a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// Whether every `(key, string value)` pair is present: handy to pick a
    /// data point or span by its labels.
    pub fn has_all(&self, pairs: &[(&str, &str)]) -> bool {
        pairs.iter().all(|(k, v)| self.str(k) == Some(*v))
    }
}

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        write!(f, "}}")
    }
}

/// The `attr*` shortcuts of every flattened item that carries attributes,
/// so a test writes `span.attr_str("k")` instead of
/// `span.attributes.str("k")`.
pub trait Attributed {
    /// The item's attributes.
    fn attributes(&self) -> &Attributes;

    /// The attribute under `key`, of whatever type.
    fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes().get(key)
    }

    /// The string attribute under `key`.
    fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes().str(key)
    }

    /// The integer attribute under `key`.
    fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attributes().i64(key)
    }

    /// The double attribute under `key`.
    fn attr_f64(&self, key: &str) -> Option<f64> {
        self.attributes().f64(key)
    }

    /// The boolean attribute under `key`.
    fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attributes().bool(key)
    }
}

/// Lowercase hex of a byte string (ids are compared as hex in tests).
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An OTLP attribute list as a map.
pub(super) fn attributes_map(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), Value::from_proto(kv.value.as_ref())))
        .collect()
}

/// A resource's attributes, with its `service.name` pulled out, as every
/// flattened item carries them.
pub(super) fn flatten_resource(resource: Option<&Resource>) -> (Attributes, Option<String>) {
    let attrs = Attributes(
        resource
            .map(|r| attributes_map(&r.attributes))
            .unwrap_or_default(),
    );
    let service_name = attrs.str("service.name").map(str::to_owned);
    (attrs, service_name)
}

/// The instrumentation scope's name, or empty.
pub(super) fn scope_name(scope: Option<&InstrumentationScope>) -> String {
    scope.map(|s| s.name.clone()).unwrap_or_default()
}
