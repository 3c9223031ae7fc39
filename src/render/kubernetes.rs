//! The Kubernetes rendering: a kustomize base with the namespace, a
//! Deployment and a Service per service, the configs and scripts as
//! generated ConfigMaps (their names carry a content hash, so a changed
//! config rolls its pods), a collector, and a poker per load.
//!
//! Peers are reached by their Service's short name, `http://orders:6379`,
//! which the pod's DNS search path resolves inside its own namespace; so
//! the base still works when an overlay moves it to another namespace.

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::{Map, Value, json};

use super::{File, RenderArgs, pokers, telemetry, yaml};
use crate::ecosystem::{CONTAINER_PORT, Ecosystem, Peer, Service};

/// Where an instance finds its config inside its pod.
const CONFIG_DIR: &str = "/etc/thespian";

/// Where an instance finds its scripts inside its pod: the whole folder is
/// mounted, so that edited scripts reach the running pod.
const SCRIPTS_DIR: &str = "/scripts";

/// The ConfigMap of every script the ecosystem names.
const SCRIPTS_MAP: &str = "thespian-scripts";

/// The user the Thespian image runs as (distroless `nonroot`).
const THESPIAN_USER: u32 = 65532;

/// Settings of this rendering.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Rendering for Kubernetes")]
pub struct KubernetesOptions {
    /// Mesh the ecosystem: Linkerd's inject annotation, or Istio's
    /// injection labels, on the namespace and every pod.
    #[arg(long = "mesh", id = "kubernetes_mesh", value_enum, value_name = "MESH")]
    pub mesh: Option<Mesh>,
    /// Have the collector export to this existing OTLP/gRPC backend
    /// (`http://` for plain text, `https://` for TLS).
    #[arg(
        long = "otlp-endpoint",
        id = "kubernetes_otlp_endpoint",
        value_name = "URL",
        conflicts_with = "kubernetes_with_stack"
    )]
    pub otlp_endpoint: Option<String>,
    /// Run `grafana/otel-lgtm` (Grafana, Tempo, Loki, Prometheus) in the
    /// namespace, and have the collector export to it.
    #[arg(long = "with-stack", id = "kubernetes_with_stack")]
    pub with_stack: bool,
}

/// A service mesh the rendering can enrol the ecosystem in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mesh {
    /// `linkerd.io/inject: enabled` annotations.
    Linkerd,
    /// `istio-injection: enabled` on the namespace, and
    /// `sidecar.istio.io/inject: "true"` on every pod.
    Istio,
}

impl KubernetesOptions {
    /// The options given, for the header.
    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        match self.mesh {
            Some(Mesh::Linkerd) => flags.push("--mesh linkerd".to_owned()),
            Some(Mesh::Istio) => flags.push("--mesh istio".to_owned()),
            None => {}
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            flags.push(format!("--otlp-endpoint {endpoint}"));
        }
        if self.with_stack {
            flags.push("--with-stack".to_owned());
        }
        flags
    }
}

/// The kustomize base: `kustomization.yaml`, a file of resources per
/// workload, and the files its ConfigMaps are generated from.
pub(super) fn render(ecosystem: &Ecosystem, args: &RenderArgs) -> Result<Vec<File>, crate::Error> {
    let options = &args.kubernetes;
    if let Some(endpoint) = &options.otlp_endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(format!(
            "--otlp-endpoint {endpoint}: give a URL, http://HOST:PORT or https://HOST:PORT"
        )
        .into());
    }
    // Each service's resources are in `<name>.yaml`, beside these.
    super::refuse_taken(
        ecosystem,
        &[
            telemetry::COLLECTOR,
            telemetry::STACK,
            "namespace",
            "kustomization",
        ],
        "a workload or file of the rendering's own",
    )?;
    let flags = options.flags();
    let header = args.header("#", &flags);
    let yaml_file = |path: &str, documents: &[Value]| File {
        path: path.into(),
        contents: format!("{header}\n{}", yaml::documents(documents)),
    };

    let mut files = vec![yaml_file(
        "namespace.yaml",
        &[namespace(ecosystem, options.mesh)],
    )];
    let mut resources = vec!["namespace.yaml".to_owned()];
    let mut generators = Vec::new();
    let mut scripts = BTreeMap::new();
    for service in &ecosystem.services {
        let config = ecosystem.config(service, &|peer| Peer::container(&peer.name));
        let text = serde_json::to_string_pretty(&config).expect("a config serializes");
        let config_file = format!("configs/{}.jsonc", service.name);
        files.push(File {
            path: config_file.clone().into(),
            contents: format!("{}{text}\n", args.header("//", &flags)),
        });
        generators.push(json!({
            "name": format!("{}-config", service.name),
            "files": [format!("config.jsonc={config_file}")],
        }));
        scripts.extend(service.scripts.iter().map(|(k, v)| (k.clone(), v.clone())));
        let file = format!("{}.yaml", service.name);
        files.push(yaml_file(
            &file,
            &[deployment(service, options.mesh), service_of(&service.name)],
        ));
        resources.push(file);
    }
    if !scripts.is_empty() {
        let names: Vec<String> = scripts
            .keys()
            .map(|name| format!("scripts/{name}"))
            .collect();
        generators.push(json!({"name": SCRIPTS_MAP, "files": names}));
    }
    for (name, source) in scripts {
        // Verbatim, so that a script's errors name the lines of its source.
        files.push(File {
            path: PathBuf::from("scripts").join(name),
            contents: source,
        });
    }
    for (name, load) in pokers(ecosystem)? {
        let file = format!("{name}.yaml");
        let mut poker = workload(&name, THESPIAN_USER, options.mesh);
        poker["spec"]["template"]["spec"]["containers"] = json!([container(
            "poker",
            json!({
                "image": "thespian",
                "imagePullPolicy": "IfNotPresent",
                "args": super::poke_args(load),
                "resources": resources_of("20m", "16Mi", "64Mi"),
            })
        )]);
        files.push(yaml_file(&file, &[poker]));
        resources.push(file);
    }
    for part in telemetry::render(options) {
        if let Some(config) = part.config {
            generators.push(json!({
                "name": config.map,
                "files": [format!("config.yaml={}", config.path)],
            }));
            files.push(File {
                path: config.path.into(),
                contents: format!("{header}\n{}", yaml::to_string(&config.contents)),
            });
        }
        files.push(yaml_file(&part.file, &part.documents));
        resources.push(part.file);
    }
    files.push(yaml_file(
        "kustomization.yaml",
        &[kustomization(ecosystem, resources, generators)],
    ));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The kustomization: the namespace every resource goes in, a label on
/// all, the image to point at a registry, and the ConfigMap generators.
fn kustomization(ecosystem: &Ecosystem, resources: Vec<String>, generators: Vec<Value>) -> Value {
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ecosystem.name,
        "labels": [{
            "pairs": {"app.kubernetes.io/part-of": ecosystem.name},
            "includeSelectors": false,
        }],
        "resources": resources,
        // kustomize edit set image thespian=registry.example.com/thespian:TAG
        "images": [{"name": "thespian", "newName": "thespian", "newTag": "local"}],
        "configMapGenerator": generators,
    })
}

/// The namespace, enrolled in the mesh so that pods made later are too.
fn namespace(ecosystem: &Ecosystem, mesh: Option<Mesh>) -> Value {
    let mut namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ecosystem.name},
    });
    match mesh {
        Some(Mesh::Linkerd) => {
            namespace["metadata"]["annotations"] = json!({"linkerd.io/inject": "enabled"});
        }
        Some(Mesh::Istio) => {
            namespace["metadata"]["labels"] = json!({"istio-injection": "enabled"});
        }
        None => {}
    }
    namespace
}

/// A service's Deployment: its replicas, each with its config and scripts
/// mounted, probed over gRPC health, and telling the replicas apart in
/// its telemetry.
fn deployment(service: &Service, mesh: Option<Mesh>) -> Value {
    let defaults = vec![
        ("SERVICE_NAME", service.name.clone()),
        ("CONFIG_FILE", format!("{CONFIG_DIR}/config.jsonc")),
        ("SCRIPTS_DIR", SCRIPTS_DIR.to_owned()),
        (
            "OTEL_BACKEND_ADDRESS",
            telemetry::COLLECTOR_ADDRESS.to_owned(),
        ),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let mut attributes = "service.instance.id=$(POD_NAME),k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)".to_owned();
    let mut env = Vec::new();
    for (key, value) in super::environment(service, defaults) {
        if key == "OTEL_RESOURCE_ATTRIBUTES" {
            attributes = format!("{attributes},{value}");
        } else {
            env.push(json!({"name": key, "value": value}));
        }
    }
    // The pod's own name and namespace, defined before the attributes
    // that refer to them.
    env.push(
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    );
    env.push(json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}));
    env.push(json!({"name": "OTEL_RESOURCE_ATTRIBUTES", "value": attributes}));
    let probe = |initial: u32, period: u32| {
        let mut probe = json!({"grpc": {"port": CONTAINER_PORT}, "periodSeconds": period});
        if initial > 0 {
            probe["initialDelaySeconds"] = json!(initial);
        }
        probe
    };
    let mut mounts = vec![json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true})];
    let mut volumes =
        vec![json!({"name": "config", "configMap": {"name": format!("{}-config", service.name)}})];
    if !service.scripts.is_empty() {
        mounts.push(json!({"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": true}));
        volumes.push(json!({"name": "scripts", "configMap": {"name": SCRIPTS_MAP}}));
    }
    let mut deployment = workload(&service.name, THESPIAN_USER, mesh);
    deployment["spec"]["replicas"] = json!(service.replicas);
    let spec = &mut deployment["spec"]["template"]["spec"];
    spec["containers"] = json!([container(
        "thespian",
        json!({
            "image": "thespian",
            "imagePullPolicy": "IfNotPresent",
            "args": ["serve"],
            "ports": [{"name": "grpc", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
            "env": env,
            "readinessProbe": probe(0, 5),
            "livenessProbe": probe(5, 10),
            "resources": resources_of("50m", "32Mi", "128Mi"),
            "volumeMounts": mounts,
        })
    )]);
    spec["volumes"] = json!(volumes);
    deployment
}

/// The Service in front of a Thespian's pods: gRPC, which is HTTP/2 with
/// prior knowledge and no TLS, as `kubernetes.io/h2c` tells a mesh or a
/// gateway.
fn service_of(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "selector": labels(name),
            "ports": [{
                "name": "grpc",
                "port": CONTAINER_PORT,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }],
        },
    })
}

/// The labels that select a workload's pods.
pub(super) fn labels(name: &str) -> Value {
    let app = if name == telemetry::COLLECTOR || name == telemetry::STACK {
        name
    } else {
        "thespian"
    };
    json!({"app.kubernetes.io/name": app, "app.kubernetes.io/instance": name})
}

/// A one-replica Deployment of `name` whose pods run as `user` with no
/// privileges and no service account token, enrolled in `mesh`; its
/// containers are left to the caller.
pub(super) fn workload(name: &str, user: u32, mesh: Option<Mesh>) -> Value {
    let mut metadata = json!({"labels": labels(name)});
    match mesh {
        Some(Mesh::Linkerd) => metadata["annotations"] = json!({"linkerd.io/inject": "enabled"}),
        Some(Mesh::Istio) => metadata["labels"]["sidecar.istio.io/inject"] = json!("true"),
        None => {}
    }
    let mut security = json!({"seccompProfile": {"type": "RuntimeDefault"}});
    if user > 0 {
        security = json!({
            "runAsNonRoot": true,
            "runAsUser": user,
            "runAsGroup": user,
            "seccompProfile": {"type": "RuntimeDefault"},
        });
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels(name)},
            "template": {
                "metadata": metadata,
                "spec": {
                    "automountServiceAccountToken": false,
                    "securityContext": security,
                    "containers": [],
                },
            },
        },
    })
}

/// A container called `name` with the settings in `fields`, no privilege
/// escalation, no capabilities and a read-only root.
pub(super) fn container(name: &str, fields: Value) -> Value {
    let mut container = Map::new();
    container.insert("name".into(), name.into());
    if let Value::Object(fields) = fields {
        container.extend(fields);
    }
    container.insert(
        "securityContext".into(),
        json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        }),
    );
    Value::Object(container)
}

/// Requests of `cpu` and `memory`, and a memory limit; no CPU limit, so
/// a busy pod is slowed by its neighbours rather than throttled.
pub(super) fn resources_of(cpu: &str, memory: &str, limit: &str) -> Value {
    json!({"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}})
}

#[cfg(test)]
mod tests;
