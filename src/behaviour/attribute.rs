//! Attributes a step's span carries for searching on: fixed values, or
//! values drawn afresh for every request, so a trace can be found by
//! `{ span.customer.tier = "gold" }` and an attribute's cardinality can be
//! chosen.
//!
//! One [`Deserialize`] impl reads them, from a config's `attributes` object
//! through `serde_path_to_error` and from a script's map through
//! `rhai::serde::from_dynamic`, so both front ends take the same shapes and
//! the same bounds.

use std::{fmt, sync::Arc};

use opentelemetry::{Key, KeyValue, Value};
use rand::{Rng, RngExt, distr::weighted::WeightedIndex};
use serde::{
    Deserialize,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};

/// The most attributes one step may carry: every one is copied onto every
/// span of the step.
pub const MAX_ATTRIBUTES: usize = 32;
/// The longest attribute key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// The longest string value, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;
/// The most choices a `one_of` may offer.
pub const MAX_CHOICES: usize = 64;

/// The attributes of one step. Cheap to clone, and a step without any
/// holds nothing at all.
#[derive(Debug, Clone, Default)]
pub struct Attributes(Option<Arc<[Attribute]>>);

/// One attribute: a key, and how its value is found for each request.
#[derive(Debug, Clone)]
pub struct Attribute {
    key: Key,
    value: Generator,
}

/// How an attribute's value is found for a request.
#[derive(Debug, Clone)]
enum Generator {
    /// Always the same.
    Fixed(Value),
    /// One of several values, chosen by weight.
    OneOf {
        values: Arc<[Value]>,
        index: WeightedIndex<f64>,
    },
    /// A whole number from the first to the second, both included.
    IntRange(i64, i64),
}

impl Attributes {
    /// No attributes.
    pub const NONE: Attributes = Attributes(None);

    /// Attributes made of `list`, refused past [`MAX_ATTRIBUTES`], kept in
    /// key order. The values drawn for a request come from one RNG, one
    /// attribute after another, so the order decides who draws which
    /// number: a script's map is always in key order, a config's object in
    /// the order it was written, and sorting both alike lets the same
    /// attributes draw the same values, whichever front end gave them.
    pub fn new(mut list: Vec<Attribute>) -> Result<Attributes, String> {
        if list.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "a step may carry at most {MAX_ATTRIBUTES} attributes, not {}",
                list.len()
            ));
        }
        list.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(Attributes((!list.is_empty()).then(|| list.into())))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The attributes, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Attribute> {
        self.0.iter().flat_map(|list| list.iter())
    }

    /// Appends each attribute's value for this request to `into`, drawing
    /// with `rng` those that are drawn.
    pub fn draw_into<R: Rng + ?Sized>(&self, rng: &mut R, into: &mut Vec<KeyValue>) {
        into.extend(self.iter().map(|attribute| attribute.draw(rng)));
    }
}

impl Attribute {
    /// An attribute that always has `value`; refuses a key that is empty
    /// or longer than [`MAX_KEY_BYTES`].
    pub fn fixed(key: &str, value: AttributeValue) -> Result<Attribute, String> {
        Ok(Attribute {
            key: checked_key(key)?,
            value: Generator::Fixed(value.0),
        })
    }

    /// The attribute's key.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The attribute with its value for one request.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> KeyValue {
        let value = match &self.value {
            Generator::Fixed(value) => value.clone(),
            Generator::OneOf { values, index } => values[rng.sample(index)].clone(),
            Generator::IntRange(low, high) => Value::I64(rng.random_range(*low..=*high)),
        };
        KeyValue::new(self.key.clone(), value)
    }
}

/// A key, checked against the bounds.
fn checked_key(key: &str) -> Result<Key, String> {
    if key.trim().is_empty() {
        return Err("an attribute key must not be empty".to_owned());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "an attribute key may be at most {MAX_KEY_BYTES} bytes; `{}…` is {}",
            key.chars().take(32).collect::<String>(),
            key.len()
        ));
    }
    Ok(Key::from(Arc::<str>::from(key)))
}

/// A fixed value: a string, a whole number, a number or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeValue(Value);

/// Reads a fixed value, or, where drawn values are allowed, the object
/// that says how to draw one.
struct ValueVisitor {
    drawn: bool,
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Generator;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or a boolean")?;
        if self.drawn {
            f.write_str(", or an object with `one_of` or `int_range`")?;
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Generator, E> {
        Ok(Generator::Fixed(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Generator, E> {
        Ok(Generator::Fixed(Value::I64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Generator, E> {
        i64::try_from(v)
            .map(|v| Generator::Fixed(Value::I64(v)))
            .map_err(|_| E::custom(format!("{v} is too large for a 64-bit attribute")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Generator, E> {
        if !v.is_finite() {
            return Err(E::custom("an attribute's number must be finite"));
        }
        Ok(Generator::Fixed(Value::F64(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Generator, E> {
        if v.len() > MAX_VALUE_BYTES {
            return Err(E::custom(format!(
                "an attribute's string may be at most {MAX_VALUE_BYTES} bytes, not {}",
                v.len()
            )));
        }
        Ok(Generator::Fixed(Value::from(Arc::<str>::from(v))))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Generator, A::Error> {
        if !self.drawn {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        DrawnSpec::deserialize(MapAccessDeserializer::new(map))?
            .into_generator()
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(ValueVisitor { drawn: false })? {
            Generator::Fixed(value) => Ok(AttributeValue(value)),
            _ => Err(de::Error::custom("expected a fixed value")),
        }
    }
}

impl<'de> Deserialize<'de> for Generator {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor { drawn: true })
    }
}

/// A value drawn per request: exactly one of the ways to draw it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawnSpec {
    #[serde(default)]
    one_of: Option<Vec<ChoiceSpec>>,
    #[serde(default)]
    int_range: Option<(i64, i64)>,
}

/// One of a `one_of`'s values and how often it is chosen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoiceSpec {
    value: AttributeValue,
    #[serde(default = "one", deserialize_with = "weight")]
    weight: f64,
}

fn one() -> f64 {
    1.0
}

/// A weight, whole or not: a script's `1` is an integer, which Rhai would
/// not hand to a float.
fn weight<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    struct Weight;
    impl Visitor<'_> for Weight {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a weight: a number, 0 or more")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
    }
    deserializer.deserialize_any(Weight)
}

impl DrawnSpec {
    fn into_generator(self) -> Result<Generator, String> {
        match (self.one_of, self.int_range) {
            (Some(choices), None) => {
                if choices.is_empty() || choices.len() > MAX_CHOICES {
                    return Err(format!(
                        "`one_of` takes 1 to {MAX_CHOICES} choices, not {}",
                        choices.len()
                    ));
                }
                let index = WeightedIndex::new(choices.iter().map(|c| c.weight))
                    .map_err(|_| "`one_of` needs at least one choice with a weight above 0")?;
                let values = choices.into_iter().map(|c| c.value.0).collect();
                Ok(Generator::OneOf { values, index })
            }
            (None, Some((low, high))) if low <= high => Ok(Generator::IntRange(low, high)),
            (None, Some((low, high))) => Err(format!(
                "`int_range` is [lowest, highest]; {low} is above {high}"
            )),
            _ => Err("give exactly one of `one_of` or `int_range`".to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Map;
        impl<'de> Visitor<'de> for Map {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of attribute keys and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
                let mut list: Vec<Attribute> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if list.len() == MAX_ATTRIBUTES {
                        return Err(de::Error::custom(format!(
                            "a step may carry at most {MAX_ATTRIBUTES} attributes"
                        )));
                    }
                    let key = checked_key(&key).map_err(de::Error::custom)?;
                    if list.iter().any(|a| a.key == key) {
                        return Err(de::Error::custom(format!(
                            "the attribute `{}` is given twice",
                            key.as_str()
                        )));
                    }
                    let value = map.next_value::<Generator>()?;
                    list.push(Attribute { key, value });
                }
                Attributes::new(list).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(Map)
    }
}

#[cfg(test)]
mod tests;
