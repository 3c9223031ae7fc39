//! The chance that a step fails, and how the failure looks to the caller:
//! its status code, its message, and how a failed call shows upstream.
//!
//! The values a user writes (a code by name or number, a message, an
//! `on_failure` policy) are read by the `Deserialize` impls here, so a JSON
//! config and a Rhai options map are checked by the same rules.

use std::{fmt, sync::Arc};

use serde::{Deserialize, de};

use crate::failure::{code_from_name, code_from_number};

/// A chance of failing, and how the failure looks to the caller. Made only
/// through [`Fault::new`], so every fault's chance is a probability,
/// whichever front end built it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Probability in `[0, 1]` that a roll fails.
    chance: f64,
    /// The gRPC status code a failure answers with.
    code: tonic::Code,
    /// What the caller reads, when the author chose it.
    message: Option<ErrorMessage>,
}

/// A failure chance outside `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("must be a probability between 0 and 1, not {0}")]
pub struct ChanceOutOfRange(pub f64);

impl Fault {
    /// A fault that fails with `code`, `chance` of the time.
    pub fn new(chance: f64, code: tonic::Code) -> Result<Fault, ChanceOutOfRange> {
        if (0.0..=1.0).contains(&chance) {
            Ok(Fault {
                chance,
                code,
                message: None,
            })
        } else {
            Err(ChanceOutOfRange(chance))
        }
    }

    /// A fault that fails with `INTERNAL`, as every failure did in the original.
    pub fn internal(chance: f64) -> Result<Fault, ChanceOutOfRange> {
        Fault::new(chance, tonic::Code::Internal)
    }

    /// The same fault, answering with `message` instead of naming the step.
    pub fn with_message(self, message: Option<ErrorMessage>) -> Fault {
        Fault { message, ..self }
    }

    /// The probability that a roll fails.
    pub fn chance(&self) -> f64 {
        self.chance
    }

    /// The status code a failure answers with.
    pub fn code(&self) -> tonic::Code {
        self.code
    }

    /// The message a failure answers with, when the author chose one.
    pub fn message(&self) -> Option<&ErrorMessage> {
        self.message.as_ref()
    }

    /// Rolls the dice once, with `rng`. Callers roll before awaiting, so no
    /// RNG is ever held across an await.
    pub fn strikes(&self, rng: &mut impl rand::Rng) -> bool {
        use rand::RngExt as _;
        self.chance >= 1.0 || (self.chance > 0.0 && rng.random::<f64>() < self.chance)
    }
}

/// A gRPC error code as a user writes it: a name in any case (`UNAVAILABLE`,
/// `unavailable`, `NotFound`) or a number from 1 to 16. `OK` is refused,
/// since a failure cannot answer with success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub tonic::Code);

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CodeVisitor).map(ErrorCode)
    }
}

/// Reads a code by name or number.
struct CodeVisitor;

impl de::Visitor<'_> for CodeVisitor {
    type Value = tonic::Code;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a gRPC error code: a name such as \"UNAVAILABLE\" or a number from 1 to 16")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<tonic::Code, E> {
        code_from_name(name).ok_or_else(|| E::invalid_value(de::Unexpected::Str(name), &self))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<tonic::Code, E> {
        code_from_number(number)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(number), &self))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<tonic::Code, E> {
        i64::try_from(number)
            .ok()
            .and_then(code_from_number)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(number), &self))
    }
}

/// The longest message a failure may answer with, in bytes: it travels in
/// a header of every failed response and in every error event.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// A failure's message as the author wrote it, at most
/// `MAX_MESSAGE_BYTES` long. Cheap to clone: the same message is
/// answered by every request that fails the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage(Arc<str>);

impl ErrorMessage {
    /// The message, checked for length.
    pub fn new(message: &str) -> Result<ErrorMessage, String> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "a failure message may be at most {MAX_MESSAGE_BYTES} bytes; this one is {}",
                message.len()
            ));
        }
        Ok(ErrorMessage(message.into()))
    }

    /// The message's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ErrorMessage {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ErrorMessage::new(&text).map_err(de::Error::custom)
    }
}

/// What a caller answers when one of its calls fails: the same failure can
/// be a bug upstream (`INTERNAL`), a dependency's trouble passed on as is,
/// or a status of the caller's own choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// `INTERNAL`, whatever the downstream said, as the original answered.
    #[default]
    Internal,
    /// The downstream's own code, passed up unchanged.
    Propagate,
    /// This code.
    Map(tonic::Code),
}

impl OnFailure {
    /// The code the caller answers with when the call failed with `downstream`.
    pub fn code(self, downstream: tonic::Code) -> tonic::Code {
        match self {
            OnFailure::Internal => tonic::Code::Internal,
            // A call fails only with an error code; `OK` cannot reach here.
            OnFailure::Propagate => downstream,
            OnFailure::Map(code) => code,
        }
    }

    /// The policy's name, as a span attribute shows it.
    pub fn describe(self) -> &'static str {
        match self {
            OnFailure::Internal => "internal",
            OnFailure::Propagate => "propagate",
            OnFailure::Map(code) => crate::failure::code_name(code),
        }
    }
}

impl<'de> Deserialize<'de> for OnFailure {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OnFailureVisitor)
    }
}

/// Reads `"internal"`, `"propagate"`, or a code by name or number.
struct OnFailureVisitor;

impl de::Visitor<'_> for OnFailureVisitor {
    type Value = OnFailure;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"internal\", \"propagate\" or a gRPC error code to answer with")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<OnFailure, E> {
        match text.to_ascii_lowercase().as_str() {
            "internal" => Ok(OnFailure::Internal),
            "propagate" => Ok(OnFailure::Propagate),
            _ => code_from_name(text)
                .map(OnFailure::Map)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<OnFailure, E> {
        CodeVisitor
            .visit_i64(number)
            .map(OnFailure::Map)
            .map_err(|_: E| E::invalid_value(de::Unexpected::Signed(number), &self))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<OnFailure, E> {
        CodeVisitor
            .visit_u64(number)
            .map(OnFailure::Map)
            .map_err(|_: E| E::invalid_value(de::Unexpected::Unsigned(number), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_chance_must_be_a_probability() {
        for chance in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let refused = Fault::internal(chance).expect_err("out of range");
            assert!(refused.to_string().contains("between 0 and 1"), "{refused}");
        }
        let fault = Fault::new(0.25, tonic::Code::Unavailable).unwrap();
        assert_eq!(
            (fault.chance(), fault.code()),
            (0.25, tonic::Code::Unavailable)
        );
    }

    #[test]
    fn fault_extremes_are_certain() {
        let rng = &mut rand::rng();
        assert!(Fault::internal(1.0).unwrap().strikes(rng));
        assert!((0..1000).all(|_| !Fault::internal(0.0).unwrap().strikes(rng)));
    }

    #[test]
    fn codes_are_read_by_name_or_number_but_never_ok() {
        let read = |json: &str| serde_json::from_str::<ErrorCode>(json).map(|c| c.0);
        assert_eq!(read("\"UNAVAILABLE\"").unwrap(), tonic::Code::Unavailable);
        assert_eq!(read("\"not_found\"").unwrap(), tonic::Code::NotFound);
        assert_eq!(read("14").unwrap(), tonic::Code::Unavailable);
        for refused in ["\"OK\"", "0", "17", "-1", "\"BROKEN\"", "1.5", "true"] {
            let error = read(refused).expect_err(refused).to_string();
            assert!(error.contains("gRPC error code"), "{refused}: {error}");
        }
    }

    #[test]
    fn on_failure_reads_a_policy_or_a_code() {
        let read = |json: &str| serde_json::from_str::<OnFailure>(json);
        assert_eq!(read("\"internal\"").unwrap(), OnFailure::Internal);
        assert_eq!(read("\"propagate\"").unwrap(), OnFailure::Propagate);
        assert_eq!(
            read("\"RESOURCE_EXHAUSTED\"").unwrap(),
            OnFailure::Map(tonic::Code::ResourceExhausted)
        );
        assert_eq!(read("5").unwrap(), OnFailure::Map(tonic::Code::NotFound));
        assert!(read("\"sometimes\"").is_err());
        assert!(read("0").is_err());
        assert_eq!(
            OnFailure::Propagate.code(tonic::Code::Unavailable),
            tonic::Code::Unavailable
        );
        assert_eq!(
            OnFailure::Internal.code(tonic::Code::Unavailable),
            tonic::Code::Internal
        );
    }

    #[test]
    fn a_message_is_bounded() {
        let long = format!("\"{}\"", "x".repeat(MAX_MESSAGE_BYTES + 1));
        let error = serde_json::from_str::<ErrorMessage>(&long).unwrap_err();
        assert!(error.to_string().contains("at most"), "{error}");
        let short = serde_json::from_str::<ErrorMessage>("\"cache down\"").unwrap();
        assert_eq!(short.as_str(), "cache down");
    }
}
