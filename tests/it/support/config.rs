//! Pieces of config documents that tests between real instances build
//! often: a method, a sleep, a call to another instance, and an instance
//! that acts a config out and exports its spans.

use serde_json::{Value, json};

use super::{instance::Instance, otlp::OtlpReceiver};

/// An instance named `name` that acts out `config` and exports its spans
/// to `receiver`.
pub async fn start(name: &str, config: Value, receiver: &OtlpReceiver) -> Instance {
    Instance::builder(name)
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await
}

/// A method, named `name`, that acts out `operations`.
pub fn method(name: &str, operations: Value) -> Value {
    json!({ "tracing_name": name, "operations": operations })
}

/// A sleep named `name` of `duration_ms`.
pub fn sleep(name: &str, duration_ms: u64) -> Value {
    json!({ "Action": { "Sleep": { "tracing_name": name, "duration_ms": duration_ms } } })
}

/// A 1 ms sleep named `name`, with `extra` keys (which may replace its
/// duration).
pub fn sleep_with(name: &str, extra: Value) -> Value {
    let spec = json!({ "tracing_name": name, "duration_ms": 1 });
    json!({ "Action": { "Sleep": with(spec, extra) } })
}

/// A call named `name` to `method` on `instance`, with `extra` keys.
pub fn call(name: &str, instance: &Instance, method: &str, extra: Value) -> Value {
    let spec = json!({
        "tracing_name": name, "service_address": "127.0.0.1",
        "service_port": instance.port, "grpc_method": method
    });
    json!({ "Action": { "CallService": with(spec, extra) } })
}

/// `spec` with the keys of the object `extra` added or replaced.
fn with(mut spec: Value, extra: Value) -> Value {
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    spec
}
