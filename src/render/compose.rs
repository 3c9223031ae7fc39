//! The Compose rendering: one Compose file with a container for every
//! service (its replicas as `deploy.replicas`), each service's config with
//! its peers at `http://NAME:6379` beside it in `configs/`, and a poker for
//! each load. The observability stack is `include`d from its own Compose
//! file, not copied, so there is one description of it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{File, RenderArgs, pokers, relative, start_order, yaml};
use crate::ecosystem::{CONTAINER_PORT, Ecosystem, Peer, Service};

/// Where an instance finds its config inside its container.
const CONFIG_PATH: &str = "/etc/thespian/config.jsonc";

/// Where an instance finds its scripts inside its container.
const SCRIPTS_PATH: &str = "/scripts";

/// The image every Thespian container runs, built from the repository.
const IMAGE: &str = "thespian:local";

/// The collector of the included stack, where every instance exports.
const COLLECTOR: &str = "otel-collector";

/// The default of `--compose-stack`.
const DEFAULT_STACK: &str = "instrumentation/docker-compose.yaml";

/// The default of `--compose-build`.
const DEFAULT_BUILD: &str = ".";

/// Settings of this rendering.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Rendering for Compose")]
pub struct ComposeOptions {
    /// The Compose file of the observability stack (with its
    /// `otel-collector`), which the rendered file includes.
    #[arg(long = "compose-stack", value_name = "FILE", default_value = DEFAULT_STACK)]
    pub stack: PathBuf,
    /// The folder the image is built from, with the Dockerfile.
    #[arg(long = "compose-build", value_name = "DIR", default_value = DEFAULT_BUILD)]
    pub build: PathBuf,
}

impl ComposeOptions {
    /// The options that differ from their defaults, for the header.
    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.stack != Path::new(DEFAULT_STACK) {
            flags.push(format!("--compose-stack {}", self.stack.display()));
        }
        if self.build != Path::new(DEFAULT_BUILD) {
            flags.push(format!("--compose-build {}", self.build.display()));
        }
        flags
    }
}

/// The Compose file, and one config per service under `configs/`.
pub(super) fn render(ecosystem: &Ecosystem, args: &RenderArgs) -> Result<Vec<File>, crate::Error> {
    let stack = stack_services(&args.compose.stack);
    let stack: Vec<&str> = stack.iter().map(String::as_str).collect();
    super::refuse_taken(ecosystem, &stack, "a service of the included stack")?;
    let flags = args.compose.flags();
    let from_out = |path: &Path| -> Result<String, crate::Error> {
        // Compose takes a bare name in a volume for a named volume.
        let path = relative(&args.out, path)?.display().to_string();
        Ok(if path.starts_with('.') {
            path
        } else {
            format!("./{path}")
        })
    };
    let build = from_out(&args.compose.build)?;
    let scripts = from_out(&ecosystem.scripts_dir)?;
    let waits = start_order(ecosystem);

    let mut files = Vec::new();
    let mut services = Map::new();
    for service in &ecosystem.services {
        let config = ecosystem.config(service, &|peer| Peer::container(&peer.name));
        let text = serde_json::to_string_pretty(&config).expect("a config serializes");
        let path = PathBuf::from("configs").join(format!("{}.jsonc", service.name));
        files.push(File {
            contents: format!("{}{text}\n", args.header("//", &flags)),
            path: path.clone(),
        });
        let mounts = [
            Some(format!("./{}:{CONFIG_PATH}:ro", path.display())),
            (!service.scripts.is_empty()).then(|| format!("{scripts}:{SCRIPTS_PATH}:ro")),
        ];
        let mut entry = thespian(&build);
        entry.insert("environment".into(), environment(service));
        entry.insert("volumes".into(), mounts.into_iter().flatten().collect());
        entry.insert("healthcheck".into(), health_check());
        if service.replicas > 1 {
            entry.insert("deploy".into(), json!({"replicas": service.replicas}));
        }
        if let (Some(port), 1) = (service.port, service.replicas) {
            entry.insert(
                "ports".into(),
                json!([format!("127.0.0.1:{port}:{CONTAINER_PORT}")]),
            );
        }
        let mut depends = Map::new();
        depends.insert(COLLECTOR.into(), json!({"condition": "service_started"}));
        for callee in &waits[&service.name] {
            depends.insert(callee.clone(), json!({"condition": "service_healthy"}));
        }
        entry.insert("depends_on".into(), Value::Object(depends));
        services.insert(service.name.clone(), Value::Object(entry));
    }
    for (name, load) in pokers(ecosystem)? {
        let mut entry = thespian(&build);
        entry.insert("command".into(), json!(super::poke_args(load)));
        // The image's health check asks a local server; a poker serves none.
        entry.insert("healthcheck".into(), json!({"disable": true}));
        entry.insert(
            "depends_on".into(),
            json!({&load.service: {"condition": "service_healthy"}}),
        );
        services.insert(name, Value::Object(entry));
    }

    let compose = json!({
        "name": ecosystem.name,
        "include": [from_out(&args.compose.stack)?],
        "services": services,
    });
    files.insert(
        0,
        File {
            path: "docker-compose.yaml".into(),
            contents: format!(
                "{}\n{}",
                args.header("#", &flags),
                yaml::to_string(&compose)
            ),
        },
    );
    Ok(files)
}

/// What every Thespian container shares: the image, built from `build`,
/// and a restart after any exit, as a day's poke ends.
fn thespian(build: &str) -> Map<String, Value> {
    let Value::Object(entry) = json!({
        "image": IMAGE,
        "build": {"context": build},
        "restart": "unless-stopped",
    }) else {
        unreachable!("an object")
    };
    entry
}

/// The services of the stack file the rendering includes, which the
/// ecosystem's may not share a name with; at least the collector, when the
/// file cannot be read here.
fn stack_services(stack: &Path) -> Vec<String> {
    let services = std::fs::read_to_string(stack)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<Value>(&text).ok())
        .and_then(|stack| {
            Some(
                stack
                    .get("services")?
                    .as_object()?
                    .keys()
                    .cloned()
                    .collect(),
            )
        });
    services.unwrap_or_else(|| vec![COLLECTOR.to_owned()])
}

/// An instance's variables: its name, config and scripts, the collector,
/// JSON logs, then the service's own.
fn environment(service: &Service) -> Value {
    let defaults = vec![
        ("SERVICE_NAME", service.name.clone()),
        ("CONFIG_FILE", CONFIG_PATH.to_owned()),
        ("SCRIPTS_DIR", SCRIPTS_PATH.to_owned()),
        ("OTEL_BACKEND_ADDRESS", format!("http://{COLLECTOR}:4317")),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let env: Map<String, Value> = super::environment(service, defaults)
        .into_iter()
        .map(|(key, value)| (key, value.into()))
        .collect();
    Value::Object(env)
}

/// `thespian health` against the instance itself, as the image's own
/// check does; `depends_on` waits on it.
fn health_check() -> Value {
    json!({
        "test": ["CMD", "/usr/local/bin/thespian", "health"],
        "interval": "10s",
        "timeout": "3s",
        "start_period": "10s",
        "retries": 3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Target, tests::args_for, tests::shop, tests::shop_poker_command};

    fn rendered(ecosystem: &Ecosystem) -> (Value, Vec<File>) {
        let args = args_for(Target::Compose, "out/compose");
        let files = render(ecosystem, &args).unwrap();
        let compose = serde_saphyr::from_str(&files[0].contents).unwrap();
        (compose, files)
    }

    #[test]
    fn runs_every_service_with_its_replicas_health_check_and_config() {
        let (compose, files) = rendered(&shop());
        let services = &compose["services"];
        let names: Vec<&String> = services.as_object().unwrap().keys().collect();
        assert_eq!(names, ["frontend", "orders", "database", "poker"]);
        assert_eq!(services["orders"]["deploy"]["replicas"], 2);
        assert_eq!(services["frontend"].get("deploy"), None);
        assert_eq!(
            services["frontend"]["healthcheck"]["test"],
            json!(["CMD", "/usr/local/bin/thespian", "health"])
        );
        assert_eq!(
            services["frontend"]["volumes"][0],
            "./configs/frontend.jsonc:/etc/thespian/config.jsonc:ro"
        );
        assert_eq!(
            services["frontend"]["environment"]["OTEL_RESOURCE_ATTRIBUTES"],
            "service.version=1.10"
        );
        let paths: Vec<_> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "docker-compose.yaml",
                "configs/frontend.jsonc",
                "configs/orders.jsonc",
                "configs/database.jsonc"
            ]
        );
    }

    #[test]
    fn resolves_peers_to_service_names_and_waits_for_them() {
        let (compose, files) = rendered(&shop());
        let frontend = &files[1].contents;
        assert!(frontend.starts_with("// Rendered from "), "{frontend}");
        assert!(
            frontend.contains(r#""next": "http://orders:6379""#),
            "{frontend}"
        );
        let orders = &files[2].contents;
        assert!(orders.contains(r#""service_address": "http://database""#));
        assert!(orders.contains(r#""service_port": 6379"#));
        let depends = &compose["services"]["frontend"]["depends_on"];
        assert_eq!(depends["orders"]["condition"], "service_healthy");
        assert_eq!(depends["otel-collector"]["condition"], "service_started");
        assert_eq!(
            compose["services"]["poker"]["command"],
            shop_poker_command()
        );
    }

    #[test]
    fn publishes_declared_ports_of_single_instances_and_includes_the_stack() {
        let (compose, files) = rendered(&shop());
        let services = &compose["services"];
        assert_eq!(
            services["frontend"]["ports"],
            json!(["127.0.0.1:6380:6379"])
        );
        // Two replicas cannot share one host port.
        assert_eq!(services["orders"].get("ports"), None);
        assert_eq!(
            compose["include"],
            json!(["../../instrumentation/docker-compose.yaml"])
        );
        assert_eq!(services["frontend"]["build"]["context"], "../..");
        assert!(files[0].contents.starts_with(
            "# Rendered from shop.yaml by\n#   thespian render shop.yaml --to compose --out out/compose\n"
        ));
    }
}
