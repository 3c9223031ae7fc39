//! Resolving a service's peers: each call that names a service by
//! `"service"`, and each `{"service": …}` in a script's `params`, becomes
//! the address and port that service has on one target.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{CONTAINER_PORT, Ecosystem, Service};

/// Where a peer listens on one target: the address a call dials, with
/// its scheme and host, and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Scheme and host, such as `http://orders`.
    pub address: String,
    /// The port.
    pub port: u16,
}

impl Peer {
    /// A peer reached by its service name, on the container port, as on
    /// Compose's network, and by short name inside one Kubernetes namespace.
    pub fn container(host: &str) -> Peer {
        Peer {
            address: format!("http://{host}"),
            port: CONTAINER_PORT,
        }
    }

    /// A peer on this machine.
    pub fn local(port: u16) -> Peer {
        Peer {
            address: "http://127.0.0.1".to_owned(),
            port,
        }
    }

    /// The address with its port, as a script's `call` takes it.
    pub fn url(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// A problem at a JSON path.
type Invalid = (String, String);

/// The config of the service at `index`, its peers resolved by `resolve`.
pub(super) fn resolve(
    ecosystem: &Ecosystem,
    index: usize,
    resolve: &dyn Fn(&Service) -> Peer,
) -> Result<Value, Invalid> {
    let mut config = Value::Object(ecosystem.services[index].document.clone());
    let lookup = |name: &str, path: &str| {
        ecosystem
            .service(name)
            .map(resolve)
            .ok_or_else(|| (path.to_owned(), unknown(ecosystem, name)))
    };
    walk(&mut config, &format!("services[{index}]"), &lookup)?;
    Ok(config)
}

/// Resolves every peer named under `value`, found at `path`.
fn walk(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str, &str) -> Result<Peer, Invalid>,
) -> Result<(), Invalid> {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let here = format!("{path}.{key}");
                match (key.as_str(), &mut *child) {
                    ("CallService", Value::Object(call)) => resolve_call(call, &here, lookup)?,
                    // A script's data, resolved as a whole: nothing in it
                    // is a step.
                    ("params", params) => {
                        resolve_params(params, &here, lookup)?;
                        continue;
                    }
                    _ => {}
                }
                walk(child, &here, lookup)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A call naming its peer by service gets that peer's address and port.
fn resolve_call(
    call: &mut Map<String, Value>,
    path: &str,
    lookup: &dyn Fn(&str, &str) -> Result<Peer, Invalid>,
) -> Result<(), Invalid> {
    let Some(service) = call.remove("service") else {
        return Ok(());
    };
    let here = format!("{path}.service");
    let Value::String(name) = service else {
        return Err((here, "`service` names a service of this ecosystem".into()));
    };
    if call.contains_key("service_address") || call.contains_key("service_port") {
        return Err((
            here,
            "give either `service` or `service_address` and `service_port`, not both".into(),
        ));
    }
    let peer = lookup(&name, &here)?;
    call.insert("service_address".into(), Value::String(peer.address));
    call.insert("service_port".into(), Value::from(peer.port));
    Ok(())
}

/// Every `{"service": name}` among a script's params becomes that
/// peer's address, as a string the script can `call`.
fn resolve_params(
    params: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str, &str) -> Result<Peer, Invalid>,
) -> Result<(), Invalid> {
    match params {
        Value::Object(object) if object.len() == 1 && object.contains_key("service") => {
            let here = format!("{path}.service");
            let Some(Value::String(name)) = object.get("service") else {
                return Err((here, "`service` names a service of this ecosystem".into()));
            };
            *params = Value::String(lookup(name, &here)?.url());
        }
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                resolve_params(child, &format!("{path}.{key}"), lookup)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_params(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Each method's `"script"` file replaced by its source, as
/// `"script_source"`, for a platform with no volume to mount it from.
pub(super) fn inline_scripts(config: &mut Value, scripts: &BTreeMap<String, String>) {
    let Value::Object(methods) = config else {
        return;
    };
    for method in methods.values_mut() {
        let Value::Object(method) = method else {
            continue;
        };
        let source = match method.get("script") {
            Some(Value::String(name)) => scripts.get(name).cloned(),
            _ => None,
        };
        if let Some(source) = source {
            method.remove("script");
            method.insert("script_source".into(), Value::String(source));
        }
    }
}

/// Why `name` is no peer, with the names that are.
fn unknown(ecosystem: &Ecosystem, name: &str) -> String {
    let names: Vec<&str> = ecosystem.services.iter().map(|s| s.name.as_str()).collect();
    format!(
        "no service named `{name}` in this ecosystem (it has {})",
        names.join(", ")
    )
}
