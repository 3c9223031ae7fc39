//! Pretend work that costs something real: CPU time burnt on a core, and
//! memory held, so an autoscaler, a CPU limit or an OOM killer sees the
//! load a story describes. What each step is told, and the one parser of
//! a size in bytes.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, de};

use super::{attribute::Attributes, latency::Latency};

/// Keep one core busy for an amount of CPU time.
#[derive(Debug, Clone)]
pub struct Burn {
    /// The span name.
    pub name: String,
    /// How much CPU time to use: thread CPU time, not wall time, so a
    /// throttled container still burns what it was told, only slower.
    pub cpu: Latency,
    /// What the span carries to search on.
    pub attributes: Attributes,
}

/// Allocate and touch a block of memory, hold it for a while, then free it.
#[derive(Debug, Clone)]
pub struct HoldMemory {
    /// The span name.
    pub name: String,
    /// How much memory to hold.
    pub bytes: Bytes,
    /// How long to hold it.
    pub duration: Latency,
    /// What the span carries to search on.
    pub attributes: Attributes,
}

/// A size in bytes, written as a whole number or as a string with a unit:
/// `"64MiB"`, `"1.5 GB"`, `"512k"`. Units are `B`, decimal `kB`/`KB`, `MB`,
/// `GB`, `TB` (powers of 1000) and binary `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024), also written `Ki`, `Mi`, `Gi`, `Ti` as Kubernetes
/// writes them; a bare `k`, `m`, `g` or `t` is binary, as Docker's
/// `--memory` and the JVM's `-Xmx` mean it.
///
/// Parsed here rather than with a crate: the forms are few, and both front
/// ends and `MAX_HELD_BYTES` then refuse the same mistakes in Thespian's
/// own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Bytes(pub u64);

/// What a size may be written as, for error messages.
const A_SIZE: &str = "a size in bytes: a whole number of 0 or more, or a string such as \
     \"64MiB\", \"512KiB\" or \"1GB\"";

/// Each unit a size may name, in lower case, and its multiplier.
const UNITS: [(&str, u64); 18] = [
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1000),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1000 * 1000),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1000 * 1000 * 1000),
    ("gib", 1 << 30),
    ("t", 1 << 40),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("tib", 1 << 40),
    ("ki", 1 << 10),
    ("mi", 1 << 20),
    ("gi", 1 << 30),
    ("ti", 1 << 40),
];

impl FromStr for Bytes {
    type Err = String;

    fn from_str(text: &str) -> Result<Bytes, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = (&text[..split], text[split..].trim());
        let multiplier = UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, multiplier)| *multiplier)
            .ok_or_else(|| format!("`{text}` is not {A_SIZE}"))?;
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not {A_SIZE}"))?;
        let bytes = (value * multiplier as f64).round();
        if !(0.0..u64::MAX as f64).contains(&bytes) {
            return Err(format!("`{text}` is too large a size"));
        }
        Ok(Bytes(bytes as u64))
    }
}

impl fmt::Display for Bytes {
    /// The size in the largest binary unit that keeps it readable:
    /// `256 MiB`, `1.5 GiB`, `300 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        match units.iter().find(|(_, size)| self.0 >= *size) {
            Some((unit, size)) if self.0.is_multiple_of(*size) => {
                write!(f, "{} {unit}", self.0 / size)
            }
            Some((unit, size)) => write!(f, "{:.1} {unit}", self.0 as f64 / *size as f64),
            None => write!(f, "{} B", self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct Size;
        impl de::Visitor<'_> for Size {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(A_SIZE)
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<Bytes, E> {
                Ok(Bytes(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<Bytes, E> {
                u64::try_from(bytes)
                    .map(Bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
            }
            fn visit_f64<E: de::Error>(self, bytes: f64) -> Result<Bytes, E> {
                if bytes >= 0.0 && bytes.fract() == 0.0 && bytes < u64::MAX as f64 {
                    Ok(Bytes(bytes as u64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(bytes), &self))
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Bytes, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_numbers_or_with_units() {
        for (json, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("4096.0", 4096),
            (r#""64MiB""#, 64 << 20),
            (r#""64 mib""#, 64 << 20),
            (r#""64M""#, 64 << 20),
            (r#""64Mi""#, 64 << 20),
            (r#""2Gi""#, 2 << 30),
            (r#""1GB""#, 1_000_000_000),
            (r#""1.5GiB""#, 3 << 29),
            (r#""512k""#, 512 << 10),
            (r#""10 B""#, 10),
            (r#""7""#, 7),
        ] {
            let parsed: Bytes =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(parsed, Bytes(bytes), "{json}");
        }
    }

    #[test]
    fn negative_fractional_unknown_and_huge_sizes_are_refused() {
        for json in [
            "-1",
            "1.5",
            r#""-1MiB""#,
            r#""64 furlongs""#,
            r#""MiB""#,
            r#""""#,
            r#""99999999TiB""#,
            "true",
        ] {
            let error = serde_json::from_str::<Bytes>(json).expect_err(json);
            assert!(
                error.to_string().contains("size"),
                "{json}: {error} does not say what a size is"
            );
        }
    }

    #[test]
    fn sizes_show_in_the_largest_readable_unit() {
        assert_eq!(Bytes(256 << 20).to_string(), "256 MiB");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(Bytes(300).to_string(), "300 B");
        assert_eq!(Bytes(2048).to_string(), "2 KiB");
    }
}
