//! What a step's span says of the step: its name, its kind, and what it was
//! told to do.

use opentelemetry::KeyValue;

use crate::{
    behaviour::{Latency, OnFailure, Step},
    telemetry::rpc_attributes,
};

/// The attributes of a step's span: its own name, its kind, and what it
/// was told to do. Made to size: they wait in the export queue with the span.
pub(super) fn attributes(step: &Step) -> Vec<KeyValue> {
    fn named<const N: usize>(
        name: &str,
        action: &'static str,
        rest: [KeyValue; N],
    ) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(2 + N);
        attributes.push(KeyValue::new("_tracing_name", name.to_owned()));
        attributes.push(KeyValue::new("thespian.action", action));
        attributes.extend(rest);
        attributes
    }
    match step {
        Step::Sleep(sleep) => {
            let Latency::Fixed(duration) = sleep.latency;
            let duration_ms = KeyValue::new(
                "duration_ms",
                i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            );
            let mut attributes = match &sleep.fault {
                Some(fault) => named(
                    &sleep.name,
                    "sleep",
                    [duration_ms, KeyValue::new("failure_chance", fault.chance())],
                ),
                None => named(&sleep.name, "sleep", [duration_ms]),
            };
            if !sleep.failures.is_empty() {
                attributes.push(KeyValue::new(
                    "thespian.failures",
                    sleep.failures.outcomes().len() as i64,
                ));
            }
            attributes
        }
        Step::Call(call) => {
            let [system, service, method] = rpc_attributes(call.method);
            let mut attributes = named(
                &call.name,
                "call",
                [
                    KeyValue::new("thespian.target", call.target.as_str().to_owned()),
                    system,
                    service,
                    method,
                    KeyValue::new("server.address", call.target.host().to_owned()),
                    KeyValue::new("server.port", i64::from(call.target.port())),
                ],
            );
            if call.on_failure != OnFailure::Internal {
                attributes.push(KeyValue::new(
                    "thespian.on_failure",
                    call.on_failure.describe(),
                ));
            }
            if call.optional {
                attributes.push(KeyValue::new("thespian.optional", true));
            }
            attributes
        }
        Step::Function(function) => named(&function.name, "function", []),
        Step::Concurrently(group) => named(
            group.name.as_deref().unwrap_or_default(),
            "concurrently",
            [KeyValue::new(
                "thespian.branches",
                group.branches.len() as i64,
            )],
        ),
        Step::Fail(fail) => named(
            &fail.name,
            "fail_with_chance",
            [KeyValue::new("failure_chance", fail.fault.chance())],
        ),
        Step::Fallback(fallback) => named(&fallback.name, "fallback", []),
        Step::Raise(_) | Step::Sequence(_) | Step::Retry(_) | Step::Log(_) => Vec::new(),
    }
}
