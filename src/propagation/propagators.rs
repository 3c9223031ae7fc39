//! `OTEL_PROPAGATORS`: which header formats carry trace context and
//! baggage, read once at startup as the OpenTelemetry specification names
//! them.

use std::{fmt, str::FromStr};

/// One header format, as `OTEL_PROPAGATORS` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent` and `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// Zipkin's single `b3` header.
    B3,
    /// Zipkin's `x-b3-traceid`, `x-b3-spanid` and `x-b3-sampled`.
    B3Multi,
}

impl Propagator {
    /// The name `OTEL_PROPAGATORS` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Propagator::TraceContext => "tracecontext",
            Propagator::Baggage => "baggage",
            Propagator::B3 => "b3",
            Propagator::B3Multi => "b3multi",
        }
    }
}

/// Names the specification knows that Thespian does not carry: a fleet
/// may set `OTEL_PROPAGATORS` once for every service, so these are ignored
/// with a warning, as the specification says, rather than refused.
const KNOWN_ELSEWHERE: [&str; 3] = ["jaeger", "xray", "ottrace"];

/// The formats to carry, in the order given, each once; `none` or an
/// empty list carries nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagators {
    /// The formats, without repeats. Extraction goes through them in this
    /// order, so a later format's context wins when a request carries two.
    pub formats: Vec<Propagator>,
    /// Names the specification knows but Thespian does not support, left
    /// out: said as a warning once logging has started.
    pub ignored: Vec<String>,
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the specification's default.
    fn default() -> Self {
        Propagators {
            formats: vec![Propagator::TraceContext, Propagator::Baggage],
            ignored: Vec::new(),
        }
    }
}

/// An `OTEL_PROPAGATORS` value with a name no specification knows: most
/// likely a typo, refused at startup so that a trace does not silently
/// break at this instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown propagator `{0}`: OTEL_PROPAGATORS takes tracecontext, baggage, b3, b3multi or none, separated by commas"
)]
pub struct UnknownPropagator(String);

impl FromStr for Propagators {
    type Err = UnknownPropagator;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut propagators = Propagators {
            formats: Vec::new(),
            ignored: Vec::new(),
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            let format = match name.as_str() {
                "tracecontext" => Propagator::TraceContext,
                "baggage" => Propagator::Baggage,
                "b3" => Propagator::B3,
                "b3multi" => Propagator::B3Multi,
                "none" => continue,
                known if KNOWN_ELSEWHERE.contains(&known) => {
                    propagators.ignored.push(name);
                    continue;
                }
                _ => return Err(UnknownPropagator(name)),
            };
            if !propagators.formats.contains(&format) {
                propagators.formats.push(format);
            }
        }
        Ok(propagators)
    }
}

impl fmt::Display for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.formats.is_empty() {
            return f.write_str("none");
        }
        for (i, format) in self.formats.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(format.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Propagators, UnknownPropagator> {
        value.parse()
    }

    #[test]
    fn names_are_read_in_order_once_each_in_any_case() {
        let propagators = parse(" B3, tracecontext,b3 ,baggage,b3multi").unwrap();
        assert_eq!(
            propagators.formats,
            [
                Propagator::B3,
                Propagator::TraceContext,
                Propagator::Baggage,
                Propagator::B3Multi
            ]
        );
        assert_eq!(propagators.to_string(), "b3,tracecontext,baggage,b3multi");
    }

    #[test]
    fn none_and_an_empty_value_carry_nothing() {
        for value in ["none", "", " , ", "NONE"] {
            assert!(parse(value).unwrap().formats.is_empty(), "{value:?}");
        }
        assert_eq!(parse("none").unwrap().to_string(), "none");
    }

    #[test]
    fn names_known_only_to_other_sdks_are_left_out_with_a_note() {
        let propagators = parse("tracecontext,xray,Jaeger").unwrap();
        assert_eq!(propagators.formats, [Propagator::TraceContext]);
        assert_eq!(propagators.ignored, ["xray", "jaeger"]);
    }

    #[test]
    fn a_typo_is_refused_by_name() {
        let error = parse("tracecontext,b3-multi").unwrap_err();
        assert!(error.to_string().contains("`b3-multi`"), "{error}");
    }

    #[test]
    fn the_default_is_the_specifications() {
        assert_eq!(Propagators::default().to_string(), "tracecontext,baggage");
        assert_eq!(
            parse("tracecontext,baggage").unwrap(),
            Propagators::default()
        );
    }
}
