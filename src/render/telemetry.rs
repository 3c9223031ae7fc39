//! Where a Kubernetes rendering's telemetry goes: a collector in the
//! namespace that every instance exports to, which prints a summary of
//! what it receives and sends it on to an existing backend
//! (`--otlp-endpoint`) or to a one-container stack beside it
//! (`--with-stack`, `grafana/otel-lgtm`: Grafana, Tempo, Loki and
//! Prometheus behind a collector of its own).

use serde_json::{Value, json};

use super::kubernetes::{KubernetesOptions, container, labels, resources_of, workload};

/// The collector's name, as Deployment and Service.
pub(super) const COLLECTOR: &str = "otel-collector";

/// Where every instance exports.
pub(super) const COLLECTOR_ADDRESS: &str = "http://otel-collector:4317";

/// The in-cluster stack's name, as Deployment and Service.
pub(super) const STACK: &str = "lgtm";

/// The collector's image, the version the Compose stack runs.
pub(super) const COLLECTOR_IMAGE: &str = "otel/opentelemetry-collector-contrib:0.157.0";

/// The stack's image.
const STACK_IMAGE: &str = "grafana/otel-lgtm:0.31.0";

/// The user the collector's image runs as.
const COLLECTOR_USER: u32 = 10001;

/// One file of resources, and the config its ConfigMap is generated from.
pub(super) struct Part {
    /// The resources' file.
    pub file: String,
    /// Its resources.
    pub documents: Vec<Value>,
    /// The config a ConfigMap is generated from, if it has one.
    pub config: Option<Config>,
}

/// A file a ConfigMap is generated from, as `config.yaml`.
pub(super) struct Config {
    /// The ConfigMap's name.
    pub map: String,
    /// The file, within the base.
    pub path: String,
    /// What it holds.
    pub contents: Value,
}

/// The collector, and the stack when asked for.
pub(super) fn render(options: &KubernetesOptions) -> Vec<Part> {
    let mesh = options.mesh;
    let mut collector = workload(COLLECTOR, COLLECTOR_USER, mesh);
    let health = json!({"httpGet": {"path": "/", "port": "health"}});
    collector["spec"]["template"]["spec"]["containers"] = json!([container(
        COLLECTOR,
        json!({
            "image": COLLECTOR_IMAGE,
            "args": ["--config=/etc/otelcol/config.yaml"],
            "ports": [
                port("otlp-grpc", 4317),
                port("otlp-http", 4318),
                port("health", 13133),
            ],
            // Keeps the Go heap under the container's limit.
            "env": [{"name": "GOMEMLIMIT", "value": "200MiB"}],
            "readinessProbe": with(&health, "periodSeconds", 5),
            "livenessProbe": with(&health, "periodSeconds", 10),
            "resources": resources_of("50m", "64Mi", "256Mi"),
            "volumeMounts": [{"name": "config", "mountPath": "/etc/otelcol", "readOnly": true}],
        })
    )]);
    collector["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "config", "configMap": {"name": "otel-collector-config"}}]);
    let otlp = [
        service_port("otlp-grpc", 4317, "kubernetes.io/h2c"),
        service_port("otlp-http", 4318, "http"),
    ];
    let mut parts = vec![Part {
        file: "otel-collector.yaml".into(),
        documents: vec![collector, service(COLLECTOR, &otlp)],
        config: Some(Config {
            map: "otel-collector-config".into(),
            path: "otel-collector/config.yaml".into(),
            contents: collector_config(options),
        }),
    }];
    if options.with_stack {
        parts.push(stack(options));
    }
    parts
}

/// The collector's config: OTLP in, a summary line per batch in its log,
/// and the backend, when there is one, for every signal.
fn collector_config(options: &KubernetesOptions) -> Value {
    let mut exporters = json!({"debug": {"verbosity": "basic"}});
    let backend = match (&options.otlp_endpoint, options.with_stack) {
        (Some(endpoint), _) => Some(endpoint.clone()),
        (None, true) => Some(format!("http://{STACK}:4317")),
        (None, false) => None,
    };
    let mut names = vec!["debug"];
    if let Some(endpoint) = backend {
        let plain = endpoint.starts_with("http://");
        let endpoint = endpoint.trim_start_matches("http://").to_owned();
        exporters["otlp_grpc/backend"] = json!({
            "endpoint": endpoint,
            "tls": {"insecure": plain},
            "sending_queue": {"batch": {"flush_timeout": "1s"}},
        });
        names.push("otlp_grpc/backend");
    }
    let pipeline = json!({
        "receivers": ["otlp"],
        "processors": ["memory_limiter"],
        "exporters": names,
    });
    json!({
        "receivers": {"otlp": {"protocols": {
            "grpc": {"endpoint": "0.0.0.0:4317"},
            "http": {"endpoint": "0.0.0.0:4318"},
        }}},
        // Refuses data before the pod reaches its memory limit, rather than
        // being killed.
        "processors": {"memory_limiter": {
            "check_interval": "1s",
            "limit_percentage": 80,
            "spike_limit_percentage": 20,
        }},
        "exporters": exporters,
        "extensions": {"health_check": {"endpoint": "0.0.0.0:13133"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {"traces": pipeline, "logs": pipeline, "metrics": pipeline},
        },
    })
}

/// `grafana/otel-lgtm`: Grafana on port 3000 (`kubectl port-forward
/// svc/lgtm 3000`), and OTLP in. It runs as root and keeps its data
/// inside its own folders, so its root is not read-only; nothing of it
/// outlives the pod.
fn stack(options: &KubernetesOptions) -> Part {
    let mut stack = workload(STACK, 0, options.mesh);
    let mut lgtm = container(
        STACK,
        json!({
            "image": STACK_IMAGE,
            "ports": [port("grafana", 3000), port("otlp-grpc", 4317), port("otlp-http", 4318)],
            "readinessProbe": {
                "httpGet": {"path": "/api/health", "port": "grafana"},
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
            },
            "resources": resources_of("100m", "512Mi", "2Gi"),
        }),
    );
    lgtm["securityContext"]["readOnlyRootFilesystem"] = json!(false);
    stack["spec"]["template"]["spec"]["containers"] = json!([lgtm]);
    let ports = [
        service_port("grafana", 3000, "http"),
        service_port("otlp-grpc", 4317, "kubernetes.io/h2c"),
        service_port("otlp-http", 4318, "http"),
    ];
    Part {
        file: format!("{STACK}.yaml"),
        documents: vec![stack, service(STACK, &ports)],
        config: None,
    }
}

/// `probe` with `key` set to `value`.
fn with(probe: &Value, key: &str, value: u32) -> Value {
    let mut probe = probe.clone();
    probe[key] = json!(value);
    probe
}

/// A container port.
fn port(name: &str, number: u16) -> Value {
    json!({"name": name, "containerPort": number, "protocol": "TCP"})
}

/// A Service port onto the container port of the same name.
fn service_port(name: &str, number: u16, protocol: &str) -> Value {
    json!({
        "name": name,
        "port": number,
        "targetPort": name,
        "protocol": "TCP",
        "appProtocol": protocol,
    })
}

/// The Service in front of the workload `name`.
fn service(name: &str, ports: &[Value]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"selector": labels(name), "ports": ports},
    })
}
