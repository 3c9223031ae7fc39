//! The OpenTelemetry Collector every instance exports to: an ECS service
//! of its own, reached through Service Connect as `otel-collector:4317`.
//!
//! Its own service rather than a sidecar in every task: the export target
//! is set in one place, the Thespian tasks keep their small Fargate size
//! instead of sharing it with a collector each, and the shape matches the
//! Compose and Kubernetes renderings. Its config travels inline in an
//! environment variable (`--config=env:COLLECTOR_CONFIG`), as the
//! instances' configs do, so nothing outside the stack needs to exist.

use serde_json::json;

use super::{
    Template, logical_id, reference,
    services::{COLLECTOR, awslogs, ecs_service, log_group, task_definition},
    when,
};

/// The config when `OtlpEndpoint` is empty: a summary of each batch in the
/// collector's log group, so a stack shows telemetry flowing.
const DEBUG_CONFIG: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 600
    spike_limit_mib: 150
exporters:
  debug:
    verbosity: basic
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [debug]
    logs:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [debug]
";

/// The config with an endpoint, which CloudFormation substitutes for
/// `${OtlpEndpoint}`: every signal goes there over OTLP/HTTP, whose
/// scheme says whether with TLS.
const OTLP_CONFIG: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 600
    spike_limit_mib: 150
exporters:
  otlp_http:
    endpoint: ${OtlpEndpoint}
    sending_queue:
      batch:
        flush_timeout: 1s
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [otlp_http]
    logs:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [otlp_http]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [otlp_http]
";

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
        json!({"Type": "String", "Default": "otel/opentelemetry-collector-contrib:0.157.0",
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
                json!({"Fn::Sub": OTLP_CONFIG}),
                json!(DEBUG_CONFIG),
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
