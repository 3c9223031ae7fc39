//! Lowers the actions whose work is real, `Burn` and `HoldMemory`: each
//! takes its time as a Sleep does, a fixed `duration_ms` or a `duration`
//! that may be drawn, and no more than an hour of it.

use std::time::Duration;

use super::{
    error::Invalid,
    format::{BurnSpec, HoldMemorySpec},
};
use crate::behaviour::{Burn, HoldMemory, Latency, MAX_LATENCY, Step};

/// Lowers a Burn found at `path`.
pub(super) fn lower_burn(spec: BurnSpec, path: &str) -> Result<Step, Invalid> {
    Ok(Step::Burn(Burn {
        cpu: latency(spec.duration_ms, spec.duration, path)?,
        name: spec.tracing_name,
        attributes: spec.attributes,
    }))
}

/// Lowers a HoldMemory found at `path`.
pub(super) fn lower_hold(spec: HoldMemorySpec, path: &str) -> Result<Step, Invalid> {
    Ok(Step::HoldMemory(HoldMemory {
        duration: latency(spec.duration_ms, spec.duration, path)?,
        name: spec.tracing_name,
        bytes: spec.bytes,
        attributes: spec.attributes,
    }))
}

/// The one of `duration_ms` and `duration` given. A `duration` is checked
/// against the cap as it is read; a `duration_ms` is checked here, since
/// an hour of CPU or of held memory is past any story worth telling.
fn latency(ms: Option<u64>, duration: Option<Latency>, path: &str) -> Result<Latency, Invalid> {
    match (ms, duration) {
        (Some(ms), None) if Duration::from_millis(ms) <= MAX_LATENCY => {
            Ok(Latency::Fixed(Duration::from_millis(ms)))
        }
        (Some(ms), None) => Err((
            format!("{path}.duration_ms"),
            format!(
                "may be at most {} ms ({}), not {ms}",
                MAX_LATENCY.as_millis(),
                humantime::format_duration(MAX_LATENCY)
            ),
        )),
        (None, Some(latency)) => Ok(latency),
        _ => Err((
            path.to_owned(),
            "give exactly one of `duration_ms` (whole milliseconds) or `duration` \
             (a duration or a distribution)"
                .to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        behaviour::{Bytes, MethodName},
        config::{Config, ConfigError},
        script::Scripting,
    };

    fn read(action: &str) -> Result<Step, ConfigError> {
        let text = format!(
            r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": [{{"Action": {action}}}]}}}}"#
        );
        let config = Config::from_str(&text, "test.jsonc", &Scripting::default())?;
        let tree = config.behaviour.get(MethodName::A).expect("A").direct();
        let Step::Function(function) = Arc::unwrap_or_clone(tree) else {
            panic!("a method is a function");
        };
        Ok(function.steps.into_iter().next().expect("one step"))
    }

    /// The JSON path and message of a refused action.
    fn refused(action: &str) -> (String, String) {
        let error = read(action).expect_err("the config should be refused");
        (error.path.unwrap_or_default(), error.message)
    }

    const AT: &str = "grpc_method_a.operations[0].Action";

    #[test]
    fn a_burn_takes_milliseconds_or_a_distribution() {
        let Ok(Step::Burn(burn)) = read(r#"{"Burn": {"tracing_name": "hash", "duration_ms": 50}}"#)
        else {
            panic!("a burn");
        };
        assert_eq!(burn.name, "hash");
        assert_eq!(burn.cpu, Latency::Fixed(Duration::from_millis(50)));
        let Ok(Step::Burn(burn)) = read(
            r#"{"Burn": {"tracing_name": "hash",
                "duration": {"lognormal": {"median": 20, "p99": 200}}}}"#,
        ) else {
            panic!("a burn");
        };
        assert_eq!(burn.cpu.kind(), "lognormal");
    }

    #[test]
    fn a_hold_takes_a_size_and_a_duration() {
        let Ok(Step::HoldMemory(hold)) = read(
            r#"{"HoldMemory": {"tracing_name": "cache", "bytes": "64MiB", "duration": "2s"}}"#,
        ) else {
            panic!("a hold");
        };
        assert_eq!(hold.bytes, Bytes(64 << 20));
        assert_eq!(hold.duration, Latency::Fixed(Duration::from_secs(2)));
        let Ok(Step::HoldMemory(hold)) =
            read(r#"{"HoldMemory": {"tracing_name": "cache", "bytes": 4096, "duration_ms": 10}}"#)
        else {
            panic!("a hold");
        };
        assert_eq!(hold.bytes, Bytes(4096));
    }

    #[test]
    fn mistakes_are_refused_at_their_path() {
        for (action, path, says) in [
            (
                r#"{"HoldMemory": {"tracing_name": "c", "bytes": -1, "duration_ms": 1}}"#,
                format!("{AT}.HoldMemory.bytes"),
                "size in bytes",
            ),
            (
                r#"{"HoldMemory": {"tracing_name": "c", "bytes": "lots", "duration_ms": 1}}"#,
                format!("{AT}.HoldMemory.bytes"),
                "size in bytes",
            ),
            (
                r#"{"HoldMemory": {"tracing_name": "c", "duration_ms": 1}}"#,
                format!("{AT}.HoldMemory"),
                "bytes",
            ),
            (
                r#"{"Burn": {"tracing_name": "b", "duration_ms": 3600001}}"#,
                format!("{AT}.Burn.duration_ms"),
                "at most 3600000 ms",
            ),
            (
                r#"{"Burn": {"tracing_name": "b", "duration": "2h"}}"#,
                format!("{AT}.Burn.duration"),
                "at most",
            ),
            (
                r#"{"Burn": {"tracing_name": "b", "duration_ms": -5}}"#,
                format!("{AT}.Burn.duration_ms"),
                "0 or more",
            ),
            (
                r#"{"Burn": {"tracing_name": "b"}}"#,
                format!("{AT}.Burn"),
                "exactly one of",
            ),
            (
                r#"{"HoldMemory": {"tracing_name": "c", "bytes": 1, "duration_ms": 1, "duration": 1}}"#,
                format!("{AT}.HoldMemory"),
                "exactly one of",
            ),
            (
                r#"{"Burn": {"tracing_name": "b", "duration_ms": 1, "cores": 2}}"#,
                format!("{AT}.Burn"),
                "unknown field",
            ),
        ] {
            let (at, message) = refused(action);
            assert_eq!(at, path, "{action}: {message}");
            assert!(message.contains(says), "{action}: {message}");
        }
    }
}
