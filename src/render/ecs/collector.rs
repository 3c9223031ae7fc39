//! The OpenTelemetry Collector every instance exports to: an ECS service
//! of its own, reached through Service Connect as `otel-collector:4317`.
//!
//! Its own service rather than a sidecar in every task: the export target
//! is set in one place, the Thespian tasks keep their small Fargate size
//! instead of sharing it with a collector each, and the shape matches the
//! Compose and Kubernetes renderings. Its config travels inline in an
//! environment variable (`--config=env:COLLECTOR_CONFIG`), as the
//! instances' configs do, so nothing outside the stack needs to exist.

use serde_json::{Value, json};

use super::{
    Template, logical_id, reference,
    services::{COLLECTOR, awslogs, ecs_service, log_group, task_definition},
    when,
};
use crate::render::{telemetry::COLLECTOR_IMAGE, yaml};

/// The collector's config, every signal going to `exporter`, configured
/// as `settings`: OTLP/gRPC in, and a memory limiter sized for its task.
fn config(exporter: &str, settings: Value) -> String {
    let pipeline = json!({
        "receivers": ["otlp"],
        "processors": ["memory_limiter"],
        "exporters": [exporter],
    });
    yaml::to_string(&json!({
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}}}},
        "processors": {"memory_limiter": {
            "check_interval": "1s",
            "limit_mib": 600,
            "spike_limit_mib": 150,
        }},
        "exporters": {exporter: settings},
        "service": {"pipelines": {"traces": pipeline, "logs": pipeline, "metrics": pipeline}},
    }))
}

/// The config when `OtlpEndpoint` is empty: a summary of each batch in the
/// collector's log group, so a stack shows telemetry flowing.
fn debug_config() -> String {
    config("debug", json!({"verbosity": "basic"}))
}

/// The config with an endpoint, which CloudFormation substitutes for
/// `${OtlpEndpoint}`: every signal goes there over OTLP/HTTP, whose
/// scheme says whether with TLS.
fn otlp_config() -> String {
    config(
        "otlp_http",
        json!({
            "endpoint": "${OtlpEndpoint}",
            "sending_queue": {"batch": {"flush_timeout": "1s"}},
        }),
    )
}

/// Adds the collector's parameters, log group, task definition and service.
pub(super) fn add(template: &mut Template) {
    template.parameter(
        "OtlpEndpoint",
        json!({"Type": "String", "Default": "",
               "Description": "Where the collector exports traces, logs and metrics, over OTLP/HTTP, such \
                               as https://otlp.example.com:4318 (it adds /v1/traces and the like). Empty: \
                               it only logs a summary of what it receives"}),
    );
    template.parameter(
        "CollectorImage",
        json!({"Type": "String", "Default": COLLECTOR_IMAGE,
               "Description": "The OpenTelemetry Collector image"}),
    );
    template
        .groups
        .push(("Telemetry", vec!["OtlpEndpoint", "CollectorImage"]));
    template.condition(
        "HasOtlpEndpoint",
        json!({"Fn::Not": [{"Fn::Equals": [reference("OtlpEndpoint"), ""]}]}),
    );
    let id = logical_id(COLLECTOR);
    let container = json!({
        "Name": COLLECTOR,
        "Image": reference("CollectorImage"),
        "Essential": true,
        "ReadonlyRootFilesystem": true,
        "Command": ["--config=env:COLLECTOR_CONFIG"],
        "PortMappings": [{
            "Name": "otlp-grpc", "ContainerPort": 4317, "Protocol": "tcp", "AppProtocol": "grpc",
        }],
        "Environment": [
            // Keeps the Go heap under the task's memory, with the
            // memory_limiter refusing data before that.
            {"Name": "GOMEMLIMIT", "Value": "700MiB"},
            {"Name": "COLLECTOR_CONFIG", "Value": when(
                "HasOtlpEndpoint",
                json!({"Fn::Sub": otlp_config()}),
                json!(debug_config()),
            )},
        ],
        "LogConfiguration": awslogs(&id, "collector"),
    });
    log_group(template, &id, COLLECTOR);
    template.resource(
        &format!("{id}TaskDefinition"),
        task_definition(COLLECTOR, "512", "1024", vec![container]),
    );
    let mut service = ecs_service(COLLECTOR, &id, 1, &[]);
    service["Properties"]["ServiceConnectConfiguration"] = json!({
        "Enabled": true,
        "Namespace": super::attribute("Namespace", "Arn"),
        "Services": [{
            "PortName": "otlp-grpc",
            "DiscoveryName": COLLECTOR,
            "ClientAliases": [{"Port": 4317, "DnsName": COLLECTOR}],
        }],
        "LogConfiguration": awslogs(&id, "service-connect"),
    });
    template.resource(&format!("{id}Service"), service);
}
