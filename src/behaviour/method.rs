//! The names of the three methods every Thespian serves, and how each is
//! written in the proto, on the wire and in a span.

use std::{fmt, str::FromStr};

/// One of the three methods every Thespian serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodName {
    /// `thespian.Thespian/A`
    A,
    /// `thespian.Thespian/B`
    B,
    /// `thespian.Thespian/C`
    C,
}

impl MethodName {
    /// All methods, in the order the proto declares them.
    pub const ALL: [MethodName; 3] = [MethodName::A, MethodName::B, MethodName::C];

    /// The method's name as it appears in the proto and in `rpc.method`.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodName::A => "A",
            MethodName::B => "B",
            MethodName::C => "C",
        }
    }

    /// The gRPC path a client posts to.
    pub fn path(self) -> &'static str {
        match self {
            MethodName::A => "/thespian.Thespian/A",
            MethodName::B => "/thespian.Thespian/B",
            MethodName::C => "/thespian.Thespian/C",
        }
    }

    /// The name of a request's server span, by OpenTelemetry's RPC
    /// conventions: the path without its leading slash.
    pub fn span_name(self) -> &'static str {
        &self.path()[1..]
    }

    /// Position in [`MethodName::ALL`], for per-method tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MethodName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "A" => Ok(MethodName::A),
            "B" => Ok(MethodName::B),
            "C" => Ok(MethodName::C),
            other => Err(format!(
                "unknown method `{other}`, expected \"A\", \"B\" or \"C\""
            )),
        }
    }
}

/// Read from a name, `"A"`, `"B"` or `"C"`, as files write it.
impl<'de> serde::Deserialize<'de> for MethodName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}
