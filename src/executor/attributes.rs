//! What a step's span says of the step: its name, its kind, and what it was
//! told to do.
//!
//! Attribute names are written out, as the conventions spell them, rather
//! than taken from `opentelemetry-semantic-conventions`: the few used here
//! do not repay a dependency whose messaging names sit behind an
//! experimental feature and whose `peer.service`, which Tempo still reads,
//! is deprecated.

use opentelemetry::{KeyValue, trace::SpanKind};

use super::dice::{Dice, Roll};
use crate::{
    behaviour::{Dependency, DependencyKind, Latency, MessagingOperation, OnFailure, Sleep, Step},
    telemetry::rpc_attributes,
};

/// The kind of a sleep's span: INTERNAL for pretend work of its own, and
/// what a client library would record for a call to a dependency.
pub(super) fn sleep_kind(sleep: &Sleep) -> SpanKind {
    match sleep.dependency.as_deref().map(|d| &d.kind) {
        None => SpanKind::Internal,
        Some(DependencyKind::Database { .. }) => SpanKind::Client,
        Some(DependencyKind::Messaging { operation, .. }) => match operation {
            MessagingOperation::Create | MessagingOperation::Send => SpanKind::Producer,
            MessagingOperation::Receive | MessagingOperation::Settle => SpanKind::Client,
            MessagingOperation::Process => SpanKind::Consumer,
        },
    }
}

/// The attributes of a step's span: its own name, its kind, what it was
/// told to do, and the attributes the user gave it to search on, drawn
/// from the step's `dice`.
pub(super) fn attributes(step: &Step, dice: Dice) -> Vec<KeyValue> {
    let mut attributes = described(step);
    if let Step::Sleep(Sleep {
        dependency: Some(dependency),
        ..
    }) = step
    {
        dependency_attributes(dependency, &mut attributes);
    }
    let own = step.attributes();
    if !own.is_empty() {
        own.draw_into(&mut dice.rng(Roll::Attributes), &mut attributes);
    }
    attributes
}

/// What a client library's span says of a call to `dependency`, by the
/// database and messaging conventions, with `peer.service` naming it in
/// the service graph.
fn dependency_attributes(dependency: &Dependency, into: &mut Vec<KeyValue>) {
    let optional = |key: &'static str, value: &Option<String>| {
        value.as_ref().map(|v| KeyValue::new(key, v.clone()))
    };
    into.push(KeyValue::new("peer.service", dependency.name.clone()));
    into.push(KeyValue::new("server.address", dependency.address.clone()));
    if let Some(port) = dependency.port {
        into.push(KeyValue::new("server.port", i64::from(port)));
    }
    match &dependency.kind {
        DependencyKind::Database {
            system,
            namespace,
            operation,
            collection,
            query,
        } => {
            into.push(KeyValue::new("db.system.name", system.clone()));
            into.push(KeyValue::new("db.namespace", namespace.clone()));
            into.extend(optional("db.operation.name", operation));
            into.extend(optional("db.collection.name", collection));
            into.extend(optional("db.query.text", query));
        }
        DependencyKind::Messaging {
            system,
            destination,
            operation,
            operation_name,
        } => {
            into.push(KeyValue::new("messaging.system", system.clone()));
            into.extend(optional("messaging.destination.name", destination));
            into.push(KeyValue::new(
                "messaging.operation.type",
                operation.as_str(),
            ));
            into.push(KeyValue::new(
                "messaging.operation.name",
                operation_name.clone(),
            ));
        }
    }
}

/// What every step's span says of it: its own name, its kind, and what it
/// was told to do.
fn described(step: &Step) -> Vec<KeyValue> {
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
            // A fixed latency says its duration as it always did; a
            // distribution says its kind, beside the drawn duration the
            // executor recorded.
            let duration_ms = match &sleep.latency {
                Latency::Fixed(duration) => KeyValue::new(
                    "duration_ms",
                    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
                ),
                latency => KeyValue::new("thespian.latency", latency.kind()),
            };
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
        Step::Burn(burn) => {
            let mut attributes = named(&burn.name, "burn", []);
            if !matches!(burn.cpu, Latency::Fixed(_)) {
                attributes.push(KeyValue::new("thespian.latency", burn.cpu.kind()));
            }
            attributes
        }
        Step::HoldMemory(hold) => {
            let mut attributes = named(
                &hold.name,
                "hold_memory",
                [KeyValue::new(
                    "thespian.memory.bytes",
                    i64::try_from(hold.bytes.0).unwrap_or(i64::MAX),
                )],
            );
            if !matches!(hold.duration, Latency::Fixed(_)) {
                attributes.push(KeyValue::new("thespian.latency", hold.duration.kind()));
            }
            attributes
        }
        Step::Raise(_) | Step::Sequence(_) | Step::Retry(_) | Step::Log(_) => Vec::new(),
    }
}
