//! The shape of a config document: the original Thespian's format,
//! unchanged, so configs written for it keep working. Values are only read
//! here; their meaning is checked as they are lowered into the model.

use std::fmt;

use serde::Deserialize;

use crate::behaviour::{
    Attributes, Bytes, CallTimeout, Dependency, ErrorCode, ErrorMessage, Failures, Latency,
    OnFailure, RetryPolicy, Scenario,
};

/// A whole document: what each method does, and the original's top-level
/// `service_name`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a config object")]
pub(super) struct DocumentSpec {
    #[serde(default)]
    pub(super) service_name: Option<String>,
    #[serde(default)]
    pub(super) grpc_method_a: Option<MethodSpec>,
    #[serde(default)]
    pub(super) grpc_method_b: Option<MethodSpec>,
    #[serde(default)]
    pub(super) grpc_method_c: Option<MethodSpec>,
    /// Named trouble that comes and goes: read by `Scenario`'s own
    /// `Deserialize`, as the control API reads one given inline.
    #[serde(default)]
    pub(super) scenarios: Option<Vec<Scenario>>,
}

/// One method: its operations, or a script that builds them per request.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a method: an object with tracing_name and operations or a script"
)]
pub(super) struct MethodSpec {
    pub(super) tracing_name: String,
    #[serde(default)]
    pub(super) operations: Option<Vec<OperationSpec>>,
    /// A Rhai script file, relative to `SCRIPTS_DIR`.
    #[serde(default)]
    pub(super) script: Option<String>,
    /// A Rhai script written inline.
    #[serde(default)]
    pub(super) script_source: Option<String>,
    /// What a script sees as `params`.
    #[serde(default)]
    pub(super) params: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the request's server span carries to search on.
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// One entry of an `operations` list: an action, or actions run at once.
#[derive(Deserialize)]
pub(super) enum OperationSpec {
    Action(ActionSpec),
    ConcurrentActions(Vec<ActionSpec>),
}

/// One action, named by its kind.
#[derive(Deserialize)]
pub(super) enum ActionSpec {
    Function(FunctionSpec),
    Sleep(SleepSpec),
    CallService(CallServiceSpec),
    Fallback(FallbackSpec),
    Burn(BurnSpec),
    HoldMemory(HoldMemorySpec),
}

/// CPU time to burn on a core: `duration_ms`, or a `duration` that may be
/// drawn from a distribution, as a Sleep's wait is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BurnSpec {
    pub(super) tracing_name: String,
    #[serde(default, deserialize_with = "some_milliseconds")]
    pub(super) duration_ms: Option<u64>,
    #[serde(default)]
    pub(super) duration: Option<Latency>,
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// Memory to allocate, touch and hold for a `duration_ms` or a `duration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoldMemorySpec {
    pub(super) tracing_name: String,
    pub(super) bytes: Bytes,
    #[serde(default, deserialize_with = "some_milliseconds")]
    pub(super) duration_ms: Option<u64>,
    #[serde(default)]
    pub(super) duration: Option<Latency>,
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// Operations with a stand-in: `fallback` runs only when `primary` fails.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FallbackSpec {
    pub(super) tracing_name: String,
    pub(super) primary: Vec<OperationSpec>,
    pub(super) fallback: Vec<OperationSpec>,
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// A named block of operations run in order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FunctionSpec {
    pub(super) tracing_name: String,
    pub(super) operations: Vec<OperationSpec>,
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// A wait, and maybe a chance of failing. The wait is the original's fixed
/// `duration_ms`, or a `duration`: fixed or drawn from a distribution.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SleepSpec {
    pub(super) tracing_name: String,
    #[serde(default, deserialize_with = "some_milliseconds")]
    pub(super) duration_ms: Option<u64>,
    #[serde(default)]
    pub(super) duration: Option<Latency>,
    #[serde(default, deserialize_with = "chance")]
    pub(super) failure_chance: Option<f64>,
    /// The status a `failure_chance` failure answers with.
    #[serde(default)]
    pub(super) failure_code: Option<ErrorCode>,
    /// What a `failure_chance` failure says.
    #[serde(default)]
    pub(super) failure_message: Option<ErrorMessage>,
    /// Outcomes of one roll, instead of `failure_chance`.
    #[serde(default)]
    pub(super) failures: Option<Failures>,
    /// The database or queue the wait stands for a call to.
    #[serde(default, rename = "as")]
    pub(super) dependency: Option<Box<Dependency>>,
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// A `duration_ms` given, which may be left out for a `duration`.
fn some_milliseconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    milliseconds(deserializer).map(Some)
}

/// A `duration_ms`, refused in the format's words rather than as a `u64`.
fn milliseconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Milliseconds;
    impl serde::de::Visitor<'_> for Milliseconds {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of milliseconds, 0 or more")
        }
        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<u64, E> {
            Ok(ms)
        }
        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<u64, E> {
            u64::try_from(ms)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(ms), &self))
        }
    }
    deserializer.deserialize_u64(Milliseconds)
}

/// A `failure_chance`, refused in the format's words rather than as an
/// `f64`; its range is checked when the config is lowered.
fn chance<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct Chance;
    impl serde::de::Visitor<'_> for Chance {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number from 0 to 1")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, p: f64) -> Result<Option<f64>, E> {
            Ok(Some(p))
        }
        fn visit_u64<E: serde::de::Error>(self, p: u64) -> Result<Option<f64>, E> {
            Ok(Some(p as f64))
        }
        fn visit_i64<E: serde::de::Error>(self, p: i64) -> Result<Option<f64>, E> {
            Ok(Some(p as f64))
        }
    }
    deserializer.deserialize_any(Chance)
}

/// A call to a method of another Thespian, at an address and a port.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallServiceSpec {
    #[serde(default)]
    pub(super) tracing_name: Option<String>,
    pub(super) service_address: String,
    pub(super) service_port: PortSpec,
    pub(super) grpc_method: String,
    /// What the caller answers when the call fails.
    #[serde(default)]
    pub(super) on_failure: OnFailure,
    /// Whether the caller carries on when the call fails.
    #[serde(default)]
    pub(super) optional: bool,
    /// How long the call waits for its answer, instead of `CALL_TIMEOUT_MS`.
    #[serde(default)]
    pub(super) timeout_ms: Option<CallTimeout>,
    /// How the call is tried again when it fails, as gRPC's retry policy.
    #[serde(default)]
    pub(super) retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub(super) attributes: Attributes,
}

/// The original wrote ports as strings; numbers are accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum PortSpec {
    Number(i64),
    Text(String),
}
