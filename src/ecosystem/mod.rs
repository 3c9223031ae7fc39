//! A whole pretend ecosystem in one file: its services, how many of each,
//! and the load that drives them. `thespian up` runs it on this machine, and
//! `thespian render` writes it out for Compose, Kubernetes or ECS.
//!
//! A service is described in exactly the config format an instance reads,
//! plus a few keys of the ecosystem's own (replicas, a port, a version,
//! environment, limits, a seed). The one difference: a call may name its
//! peer by service, `"service": "orders"`, instead of by address and port,
//! and a script's `params` may hold `{"service": "orders"}` where it wants
//! that peer's address. Each target resolves those names its own way, and
//! the ecosystem lowers into one plain config per service, so an instance
//! never needs to know this format.
//!
//! Its parts, one file each:
//!
//! - here: the [`Ecosystem`] and its [`Service`]s, read and checked.
//! - `format`: the file's shape, read from YAML or JSON with comments.
//! - `peers`: resolving a service's peers into addresses, per target.

mod format;
mod peers;
#[cfg(test)]
pub(crate) mod tests;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::{
    behaviour::MethodName,
    config::{Config, ConfigError},
    script::{ScriptSettings, Scripting},
};

pub use peers::Peer;

/// The port every instance listens on inside a container, where each has
/// an address of its own: `http://orders:6379`.
pub const CONTAINER_PORT: u16 = 6379;

/// The most services one ecosystem may describe.
pub const MAX_SERVICES: usize = 500;

/// The most replicas of one service.
pub const MAX_REPLICAS: u16 = 100;

/// An ecosystem file, read and checked: every service's config valid,
/// every call's peer known, no name or port used twice.
#[derive(Debug, Clone)]
pub struct Ecosystem {
    /// Where it was read from; errors and rendered files name it.
    pub origin: PathBuf,
    /// Its name: the Compose project, the Kubernetes namespace, the prefix
    /// of the ECS stack's resources. The file's stem unless it says.
    pub name: String,
    /// The folder its services' `"script"` names resolve against.
    pub scripts_dir: PathBuf,
    /// The services, in the file's order.
    pub services: Vec<Service>,
    /// Steady traffic to drive it with, so a backend has something to show.
    pub load: Vec<Load>,
}

/// One service of an ecosystem: an instance's config and how it is run.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its `SERVICE_NAME`, and its host name on every platform.
    pub name: String,
    /// How many instances serve it.
    pub replicas: u16,
    /// Its `service.version`, when the file gives one.
    pub version: Option<String>,
    /// The port of its first replica on this machine, when the file
    /// declares one; other replicas take free ports.
    pub port: Option<u16>,
    /// Environment of its own: the file's `env`, then the settings the
    /// file gives by name (`seed`, `max_in_flight`, `max_queue`), as the
    /// variables an instance reads.
    pub env: BTreeMap<String, String>,
    /// Its config document in today's format, with peers still named by
    /// service; [`Ecosystem::config`] resolves them for a target.
    pub document: serde_json::Map<String, serde_json::Value>,
    /// The scripts its methods name: file name and source. Platforms
    /// without a shared volume inline them.
    pub scripts: BTreeMap<String, String>,
}

/// Steady calls to one method of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// The service called.
    pub service: String,
    /// The method called.
    pub method: MethodName,
    /// Calls a second.
    pub rate: f64,
}

impl Ecosystem {
    /// Reads and checks the ecosystem file at `path`: YAML when its name
    /// ends in `.yaml` or `.yml`, JSON with comments otherwise. Scripts are
    /// compiled with the default limits.
    pub fn from_file(path: &Path) -> Result<Ecosystem, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole(&origin, format!("cannot read the file: {e}")))?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let base = path.parent().unwrap_or(Path::new("."));
        let ecosystem = format::read(&text, yaml, &origin, base)?;
        let ecosystem = Ecosystem {
            origin: path.to_owned(),
            ..ecosystem
        };
        ecosystem.check()?;
        Ok(ecosystem)
    }

    /// Whether the file at `path` describes an ecosystem rather than one
    /// instance's config: YAML does, and so does JSON with a top-level
    /// `services`, a key no config has.
    pub fn describes(path: &Path) -> bool {
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        yaml || std::fs::read_to_string(path)
            .ok()
            .and_then(|text| format::parse(&text, false, "").ok())
            .is_some_and(|value| value.get("services").is_some())
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The config of `service` in today's format, each peer named by
    /// service replaced with where `resolve` says it is.
    pub fn config(
        &self,
        service: &Service,
        resolve: &dyn Fn(&Service) -> Peer,
    ) -> serde_json::Value {
        let index = self.index_of(service);
        peers::resolve(self, index, resolve)
            .expect("peers were checked when the ecosystem was read")
    }

    /// The config of `service` for a platform without shared files: each
    /// `"script"` inlined as `"script_source"`.
    pub fn config_inlined(
        &self,
        service: &Service,
        resolve: &dyn Fn(&Service) -> Peer,
    ) -> serde_json::Value {
        let mut config = self.config(service, resolve);
        peers::inline_scripts(&mut config, &service.scripts);
        config
    }

    /// Where `service` sits in the file.
    fn index_of(&self, service: &Service) -> usize {
        self.services
            .iter()
            .position(|s| s.name == service.name)
            .expect("a service of this ecosystem")
    }

    /// Checks what needs the whole ecosystem: each service's config, with
    /// its peers resolved and its scripts compiled, as an instance will
    /// read it.
    fn check(&self) -> Result<(), ConfigError> {
        let origin = self.origin.display().to_string();
        let scripting = Scripting::new(&ScriptSettings {
            scripts_dir: self.scripts_dir.clone(),
            ..ScriptSettings::default()
        });
        for index in 0..self.services.len() {
            let config = peers::resolve(self, index, &|peer| Peer::container(&peer.name))
                .map_err(|invalid| ConfigError::at(&origin, invalid))?;
            Config::from_str(&config.to_string(), &origin, &scripting).map_err(|e| {
                let inner = e.path.filter(|p| !p.is_empty());
                ConfigError {
                    message: without_position(e.message),
                    path: Some(match inner {
                        Some(inner) => format!("services[{index}].{inner}"),
                        None => format!("services[{index}]"),
                    }),
                    origin: e.origin,
                }
            })?;
        }
        Ok(())
    }
}

impl Service {
    /// The environment an instance of this service runs with, beyond where
    /// it listens and what it is called: its own variables, and its
    /// version as a resource attribute.
    pub fn environment(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        if let Some(version) = &self.version {
            let attribute = format!("service.version={version}");
            env.entry("OTEL_RESOURCE_ATTRIBUTES".to_owned())
                .and_modify(|list| *list = format!("{list},{attribute}"))
                .or_insert(attribute);
        }
        env
    }
}

/// `message` without serde's "at line 1 column 80": the position is in the
/// config made from the file, not in the file, and the path says where.
fn without_position(message: String) -> String {
    match message.rsplit_once(" at line ") {
        Some((head, tail))
            if tail.split_once(" column ").is_some_and(|(line, column)| {
                !line.is_empty()
                    && !column.is_empty()
                    && line
                        .bytes()
                        .chain(column.bytes())
                        .all(|b| b.is_ascii_digit())
            }) =>
        {
            head.to_owned()
        }
        _ => message,
    }
}
