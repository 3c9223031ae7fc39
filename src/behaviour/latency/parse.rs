//! The one way a latency is read, from a config's `duration` or a
//! script's `sleep` argument alike: a number of milliseconds, a humantime
//! string (`"250ms"`, `"1.5s"`), or a map naming one shape and its
//! parameters, each parameter itself milliseconds or a humantime string.
//!
//! Shapes are read through `MapAccessDeserializer`, so a config's errors
//! keep their JSON path down to the parameter at fault.

use std::{fmt, marker::PhantomData, time::Duration};

use rand_distr::{LogNormal, Normal, Uniform, weighted::WeightedIndex};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor, value::MapAccessDeserializer},
};

use super::{Latency, MAX_LATENCY, Point, Weighted};

/// The 99th percentile of the standard normal distribution: how many
/// standard deviations above the median a lognormal's p99 sits.
const Z_99: f64 = 2.326_347_874_040_840_8;

/// The most values a `weighted` shape may list.
const MAX_WEIGHTED_VALUES: usize = 1000;

/// What every duration may be written as, for error messages.
const A_DURATION: &str = "a duration: a number of milliseconds, a string such as \"250ms\" or \
     \"1.5s\", or an object naming one of uniform, normal, lognormal, percentiles, weighted";

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Latency, D::Error> {
        deserializer.deserialize_any(LatencyVisitor)
    }
}

struct LatencyVisitor;

impl<'de> Visitor<'de> for LatencyVisitor {
    type Value = Latency;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(A_DURATION)
    }

    fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Latency, E> {
        self.visit_f64(ms as f64)
    }

    fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Latency, E> {
        self.visit_f64(ms as f64)
    }

    fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Latency, E> {
        fixed(checked(ms).map_err(E::custom)?)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Latency, E> {
        fixed(spelled(text).map_err(E::custom)?)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Latency, A::Error> {
        let shape = Shape::deserialize(MapAccessDeserializer::new(NonEmpty(&mut map, false)))?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "name one shape only: uniform, normal, lognormal, percentiles or weighted",
            ));
        }
        Ok(match shape {
            Shape::Uniform(Checked(latency, _))
            | Shape::Normal(Checked(latency, _))
            | Shape::Lognormal(Checked(latency, _))
            | Shape::Percentiles(Checked(latency, _))
            | Shape::Weighted(Checked(latency, _)) => latency,
        })
    }
}

/// A shape's map, which names its shape by its first key: an empty one is
/// refused in the format's words, not serde's "expected enum".
struct NonEmpty<A>(A, bool);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for NonEmpty<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.0.next_key_seed(seed)?;
        if key.is_none() && !self.1 {
            return Err(de::Error::custom(
                "name a shape: uniform, normal, lognormal, percentiles or weighted",
            ));
        }
        self.1 = true;
        Ok(key)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// A fixed latency of `ms` milliseconds, already checked.
fn fixed<E: de::Error>(ms: f64) -> Result<Latency, E> {
    Ok(Latency::Fixed(Duration::from_secs_f64(ms / 1000.0)))
}

/// `ms`, if it is a latency Thespian can wait: finite, 0 or more, and no
/// more than [`MAX_LATENCY`].
fn checked(ms: f64) -> Result<f64, String> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!(
            "a duration must be 0 or more milliseconds, not {ms}"
        ));
    }
    if ms > MAX_LATENCY.as_secs_f64() * 1000.0 {
        return Err(format!(
            "a duration may be at most {} ({} ms), not {ms} ms",
            humantime::format_duration(MAX_LATENCY),
            MAX_LATENCY.as_millis()
        ));
    }
    Ok(ms)
}

/// A humantime string such as `"250ms"`, in milliseconds, checked.
fn spelled(text: &str) -> Result<f64, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration such as \"250ms\" or \"1.5s\": {e}"))?;
    checked(duration.as_secs_f64() * 1000.0)
}

/// The shapes, each named by the one key of its object.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Shape {
    Uniform(Checked<UniformSpec>),
    Normal(Checked<NormalSpec>),
    Lognormal(Checked<LognormalSpec>),
    Percentiles(Checked<PercentilesSpec>),
    Weighted(Checked<Vec<WeightSpec>>),
}

/// A shape's parameters as written, and how they become a latency once
/// checked together.
trait Spec: for<'de> Deserialize<'de> {
    fn latency(self) -> Result<Latency, String>;
}

/// A shape read and checked inside its own key, so that an error names it
/// in the path.
struct Checked<S>(Latency, PhantomData<S>);

impl<'de, S: Spec> Deserialize<'de> for Checked<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = S::deserialize(deserializer)?;
        spec.latency()
            .map(|latency| Checked(latency, PhantomData))
            .map_err(de::Error::custom)
    }
}

/// A parameter: milliseconds or a humantime string, checked on its own.
#[derive(Clone, Copy)]
struct Millis(f64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Millis, D::Error> {
        struct MillisVisitor;
        impl Visitor<'_> for MillisVisitor {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of milliseconds or a string such as \"250ms\"")
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Millis, E> {
                self.visit_f64(ms as f64)
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Millis, E> {
                self.visit_f64(ms as f64)
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Millis, E> {
                checked(ms).map(Millis).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Millis, E> {
                spelled(text).map(Millis).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(MillisVisitor)
    }
}

/// `{"uniform": {"min": …, "max": …}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UniformSpec {
    min: Millis,
    max: Millis,
}

impl Spec for UniformSpec {
    fn latency(self) -> Result<Latency, String> {
        let (Millis(min), Millis(max)) = (self.min, self.max);
        if max < min {
            return Err(format!(
                "max ({max} ms) must not be less than min ({min} ms)"
            ));
        }
        Uniform::new_inclusive(min, max)
            .map(Latency::Uniform)
            .map_err(|e| format!("not a uniform distribution: {e}"))
    }
}

/// `{"normal": {"mean": …, "stddev": …}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalSpec {
    mean: Millis,
    stddev: Millis,
}

impl Spec for NormalSpec {
    fn latency(self) -> Result<Latency, String> {
        Normal::new(self.mean.0, self.stddev.0)
            .map(Latency::Normal)
            .map_err(|e| format!("not a normal distribution: {e}"))
    }
}

/// `{"lognormal": {"median": …, "p99": …}}`: the two numbers people quote.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LognormalSpec {
    median: Millis,
    p99: Millis,
}

impl Spec for LognormalSpec {
    fn latency(self) -> Result<Latency, String> {
        let (Millis(median), Millis(p99)) = (self.median, self.p99);
        if median <= 0.0 {
            return Err("median must be more than 0".to_owned());
        }
        if p99 < median {
            return Err(format!(
                "p99 ({p99} ms) must not be less than the median ({median} ms)"
            ));
        }
        let mu = median.ln();
        LogNormal::new(mu, (p99.ln() - mu) / Z_99)
            .map(Latency::LogNormal)
            .map_err(|e| format!("not a lognormal distribution: {e}"))
    }
}

/// `{"percentiles": {"p50": …, "p90": …, "p99": …, "max": …}}`. Only
/// `p50` is required. `min` (the fastest draw) defaults to 0, and `max`
/// (the slowest) to the highest percentile given; a percentile left out is
/// interpolated across.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentilesSpec {
    #[serde(default)]
    min: Option<Millis>,
    p50: Millis,
    #[serde(default)]
    p90: Option<Millis>,
    #[serde(default)]
    p99: Option<Millis>,
    #[serde(default)]
    max: Option<Millis>,
}

impl Spec for PercentilesSpec {
    fn latency(self) -> Result<Latency, String> {
        let given = [
            ("min", 0.0, Some(self.min.unwrap_or(Millis(0.0)))),
            ("p50", 0.5, Some(self.p50)),
            ("p90", 0.9, self.p90),
            ("p99", 0.99, self.p99),
            ("max", 1.0, self.max),
        ];
        let mut points: Vec<Point> = Vec::with_capacity(given.len());
        let mut previous = ("min", 0.0);
        for (key, quantile, value) in given {
            let Some(Millis(ms)) = value else { continue };
            if ms < previous.1 {
                return Err(format!(
                    "{key} ({ms} ms) must not be less than {} ({} ms): \
                     percentiles rise from min to max",
                    previous.0, previous.1
                ));
            }
            previous = (key, ms);
            points.push(Point { quantile, ms });
        }
        if self.max.is_none() {
            points.push(Point {
                quantile: 1.0,
                ms: previous.1,
            });
        }
        Ok(Latency::Percentiles(points.into_boxed_slice()))
    }
}

/// One entry of `{"weighted": [{"value": …, "weight": …}, …]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightSpec {
    value: Millis,
    weight: Weight,
}

/// A weight: any number, whole or not, whichever front end wrote it.
#[derive(Clone, Copy)]
struct Weight(f64);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Weight, D::Error> {
        struct WeightVisitor;
        impl Visitor<'_> for WeightVisitor {
            type Value = Weight;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a weight: a number, 0 or more")
            }
            fn visit_u64<E: de::Error>(self, weight: u64) -> Result<Weight, E> {
                Ok(Weight(weight as f64))
            }
            fn visit_i64<E: de::Error>(self, weight: i64) -> Result<Weight, E> {
                Ok(Weight(weight as f64))
            }
            fn visit_f64<E: de::Error>(self, weight: f64) -> Result<Weight, E> {
                Ok(Weight(weight))
            }
        }
        deserializer.deserialize_any(WeightVisitor)
    }
}

impl Spec for Vec<WeightSpec> {
    fn latency(self) -> Result<Latency, String> {
        if self.is_empty() || self.len() > MAX_WEIGHTED_VALUES {
            return Err(format!(
                "list from 1 to {MAX_WEIGHTED_VALUES} values, not {}",
                self.len()
            ));
        }
        if let Some((i, bad)) = self
            .iter()
            .enumerate()
            .find(|(_, entry)| !entry.weight.0.is_finite() || entry.weight.0 < 0.0)
        {
            return Err(format!(
                "weight {} of entry {i} must be a number, 0 or more",
                bad.weight.0
            ));
        }
        if self.iter().all(|entry| entry.weight.0 == 0.0) {
            return Err("the weights must not all be 0".to_owned());
        }
        let index = WeightedIndex::new(self.iter().map(|entry| entry.weight.0))
            .map_err(|e| format!("the weights cannot be used: {e}"))?;
        Ok(Latency::Weighted(Box::new(Weighted {
            values: self.iter().map(|entry| entry.value.0).collect(),
            index,
        })))
    }
}
