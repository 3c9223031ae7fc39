//! Pieces of config documents that tests between real instances build
//! often: a method, and a call to another instance.

use serde_json::{Value, json};

use super::instance::Instance;

/// A method, named `name`, that acts out `operations`.
pub fn method(name: &str, operations: Value) -> Value {
    json!({ "tracing_name": name, "operations": operations })
}

/// A call named `name` to `method` on `instance`, with `extra` keys.
pub fn call(name: &str, instance: &Instance, method: &str, extra: Value) -> Value {
    let mut spec = json!({
        "tracing_name": name, "service_address": "127.0.0.1",
        "service_port": instance.port, "grpc_method": method
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Action": { "CallService": spec } })
}
