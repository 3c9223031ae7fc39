//! The ecosystem file's shape: YAML, or JSON with comments, read into one
//! JSON value so that errors name the same kind of path either way.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    path::Path,
};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Ecosystem, Load, MAX_REPLICAS, MAX_SERVICES, Service};
use crate::{behaviour::MethodName, config::ConfigError};

/// The top of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EcosystemSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scripts_dir: Option<String>,
    services: Vec<Map<String, Value>>,
    #[serde(default)]
    load: Vec<LoadSpec>,
}

/// A service's keys that are the ecosystem's own; the rest of the service
/// is its config document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSpec {
    name: String,
    #[serde(default = "one")]
    replicas: u16,
    #[serde(default)]
    version: Option<Scalar>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    env: BTreeMap<String, Scalar>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    max_queue: Option<u32>,
}

/// The keys [`ServiceSpec`] reads; any other key belongs to the config.
const SERVICE_KEYS: [&str; 8] = [
    "name",
    "replicas",
    "version",
    "port",
    "env",
    "seed",
    "max_in_flight",
    "max_queue",
];

/// Variables the ecosystem sets itself on every instance, which a
/// service's `env` may not override.
const MANAGED: [&str; 5] = [
    "PORT",
    "SERVICE_NAME",
    "CONFIG_FILE",
    "CONFIG_JSON",
    "SCRIPTS_DIR",
];

/// Steady load on one method.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadSpec {
    service: String,
    method: MethodName,
    rate: f64,
}

/// A value written as a string, a number or a boolean, kept as text: YAML
/// reads `version: 1.10` and `DEBUG: true` as what they look like.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Flag(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(text) => text,
            Scalar::Number(number) => number.to_string(),
            Scalar::Flag(flag) => flag.to_string(),
        }
    }
}

fn one() -> u16 {
    1
}

/// Reads the file's `text` (YAML when `yaml`), with relative paths taken
/// from `base`, into an ecosystem whose services are not yet checked
/// against one another's configs.
pub(super) fn read(
    text: &str,
    yaml: bool,
    origin: &str,
    base: &Path,
) -> Result<Ecosystem, ConfigError> {
    let value = parse(text, yaml, origin)?;
    let spec: EcosystemSpec = at_path(origin, "", value)?;
    if spec.services.is_empty() {
        return Err(ConfigError::at(
            origin,
            (
                "services".into(),
                "an ecosystem needs at least one service".into(),
            ),
        ));
    }
    if spec.services.len() > MAX_SERVICES {
        return Err(ConfigError::at(
            origin,
            (
                "services".into(),
                format!(
                    "at most {MAX_SERVICES} services, not {}",
                    spec.services.len()
                ),
            ),
        ));
    }
    let scripts_dir = base.join(spec.scripts_dir.as_deref().unwrap_or("scripts"));
    let mut services = Vec::with_capacity(spec.services.len());
    for (index, document) in spec.services.into_iter().enumerate() {
        services.push(read_service(origin, index, document, &scripts_dir)?);
    }
    check_names(origin, &services)?;
    check_ports(origin, &services)?;
    let load = read_load(origin, spec.load, &services)?;
    let name = match spec.name {
        Some(name) => {
            check_label(&name).map_err(|m| ConfigError::at(origin, ("name".into(), m)))?;
            name
        }
        None => Path::new(origin)
            .file_stem()
            .and_then(|s| s.to_str())
            .map(to_label)
            .unwrap_or_else(|| "thespian".to_owned()),
    };
    Ok(Ecosystem {
        origin: origin.into(),
        name,
        scripts_dir,
        services,
        load,
    })
}

/// The file as one JSON value.
pub(super) fn parse(text: &str, yaml: bool, origin: &str) -> Result<Value, ConfigError> {
    if yaml {
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ConfigError::whole(origin, format!("not valid YAML: {e}")));
    }
    let mut plain = String::new();
    json_comments::CommentSettings::c_style()
        .strip_comments(text.as_bytes())
        .read_to_string(&mut plain)
        .map_err(|e| ConfigError::whole(origin, format!("cannot read the file: {e}")))?;
    serde_json::from_str(&plain)
        .map_err(|e| ConfigError::whole(origin, format!("not valid JSON: {e}")))
}

/// Deserializes `value`, found at `prefix`, naming the path of what is
/// wrong.
fn at_path<T: serde::de::DeserializeOwned>(
    origin: &str,
    prefix: &str,
    value: Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let mut message = e.inner().to_string();
        let path = match (prefix, inner.as_str()) {
            (p, ".") | (p, "") => p.to_owned(),
            ("", i) => i.to_owned(),
            (p, i) => format!("{p}.{i}"),
        };
        if message.starts_with("data did not match any variant of untagged enum Scalar") {
            message = "expected a string, a number or a boolean".into();
        }
        ConfigError::at(origin, (path, message))
    })
}

/// One service: its own keys read, the rest kept as its config document,
/// and the scripts that document names read from `scripts_dir`.
fn read_service(
    origin: &str,
    index: usize,
    mut document: Map<String, Value>,
    scripts_dir: &Path,
) -> Result<Service, ConfigError> {
    let prefix = format!("services[{index}]");
    let own: Map<String, Value> = SERVICE_KEYS
        .iter()
        .filter_map(|key| document.shift_remove(*key).map(|v| ((*key).to_owned(), v)))
        .collect();
    let spec: ServiceSpec = at_path(origin, &prefix, Value::Object(own))?;
    check_label(&spec.name).map_err(|m| ConfigError::at(origin, (format!("{prefix}.name"), m)))?;
    if !(1..=MAX_REPLICAS).contains(&spec.replicas) {
        return Err(ConfigError::at(
            origin,
            (
                format!("{prefix}.replicas"),
                format!(
                    "replicas must be 1 to {MAX_REPLICAS}, not {}",
                    spec.replicas
                ),
            ),
        ));
    }
    if spec.port == Some(0) {
        return Err(ConfigError::at(
            origin,
            (
                format!("{prefix}.port"),
                "port 0 is not a port; leave `port` out for a free one".into(),
            ),
        ));
    }
    let mut env = BTreeMap::new();
    for (key, value) in spec.env {
        if MANAGED.contains(&key.as_str()) {
            return Err(ConfigError::at(
                origin,
                (
                    format!("{prefix}.env.{key}"),
                    format!("{key} is set for every instance by the ecosystem itself"),
                ),
            ));
        }
        env.insert(key, value.into_text());
    }
    let settings = [
        ("THESPIAN_SEED", spec.seed.map(|v| v.to_string())),
        ("MAX_IN_FLIGHT", spec.max_in_flight.map(|v| v.to_string())),
        ("MAX_QUEUE", spec.max_queue.map(|v| v.to_string())),
    ];
    for (key, value) in settings {
        if let Some(value) = value {
            env.insert(key.to_owned(), value);
        }
    }
    let scripts = read_scripts(origin, &prefix, &document, scripts_dir)?;
    Ok(Service {
        name: spec.name,
        replicas: spec.replicas,
        version: spec.version.map(Scalar::into_text),
        port: spec.port,
        env,
        document,
        scripts,
    })
}

/// The source of every script the methods of `document` name.
fn read_scripts(
    origin: &str,
    prefix: &str,
    document: &Map<String, Value>,
    scripts_dir: &Path,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut scripts = BTreeMap::new();
    for (key, method) in document {
        let Some(Value::String(name)) = method.get("script") else {
            continue;
        };
        if scripts.contains_key(name) {
            continue;
        }
        let file = scripts_dir.join(name);
        let source = std::fs::read_to_string(&file).map_err(|e| {
            ConfigError::at(
                origin,
                (
                    format!("{prefix}.{key}.script"),
                    format!("cannot read the script {}: {e}", file.display()),
                ),
            )
        })?;
        scripts.insert(name.clone(), source);
    }
    Ok(scripts)
}

/// No two services may share a name.
fn check_names(origin: &str, services: &[Service]) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    for (index, service) in services.iter().enumerate() {
        if !seen.insert(service.name.as_str()) {
            return Err(ConfigError::at(
                origin,
                (
                    format!("services[{index}].name"),
                    format!("a second service named `{}`", service.name),
                ),
            ));
        }
    }
    Ok(())
}

/// No two services may declare one local port.
fn check_ports(origin: &str, services: &[Service]) -> Result<(), ConfigError> {
    let mut taken: BTreeMap<u16, &str> = BTreeMap::new();
    for (index, service) in services.iter().enumerate() {
        let Some(port) = service.port else {
            continue;
        };
        if let Some(owner) = taken.insert(port, &service.name) {
            return Err(ConfigError::at(
                origin,
                (
                    format!("services[{index}].port"),
                    format!("port {port} is also declared by `{owner}`"),
                ),
            ));
        }
    }
    Ok(())
}

/// Every load names a service of the ecosystem and a rate it can keep.
fn read_load(
    origin: &str,
    specs: Vec<LoadSpec>,
    services: &[Service],
) -> Result<Vec<Load>, ConfigError> {
    let mut load = Vec::with_capacity(specs.len());
    for (index, spec) in specs.into_iter().enumerate() {
        if !services.iter().any(|s| s.name == spec.service) {
            return Err(ConfigError::at(
                origin,
                (
                    format!("load[{index}].service"),
                    format!("no service named `{}` in this ecosystem", spec.service),
                ),
            ));
        }
        if !(spec.rate.is_finite() && spec.rate > 0.0 && spec.rate <= 100_000.0) {
            return Err(ConfigError::at(
                origin,
                (
                    format!("load[{index}].rate"),
                    format!(
                        "a rate is calls a second, above 0 and at most 100000, not {}",
                        spec.rate
                    ),
                ),
            ));
        }
        load.push(Load {
            service: spec.service,
            method: spec.method,
            rate: spec.rate,
        });
    }
    Ok(load)
}

/// A name every platform takes as a host name: a DNS label (RFC 1123) of
/// lowercase letters, digits and `-`, starting with a letter.
fn check_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot be a host name on every platform: use 1 to 63 lowercase letters, digits and `-`, starting with a letter and not ending with `-`"
        ))
    }
}

/// `stem` made into a DNS label, for an ecosystem the file does not name.
fn to_label(stem: &str) -> String {
    let label: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .skip_while(|c| !c.is_ascii_lowercase())
        .take(63)
        .collect();
    let label = label.trim_end_matches('-');
    if label.is_empty() {
        "thespian".to_owned()
    } else {
        label.to_owned()
    }
}
