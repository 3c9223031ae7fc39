//! What `thespian up` will start, decided before anything starts: every
//! instance's port (declared, or a free one the OS picks) and the
//! environment it runs with, so that every peer resolves to an address
//! before the first child exists.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, TcpListener},
    path::Path,
};

use crate::{
    ecosystem::{Ecosystem, Peer},
    telemetry::ResourceAttributes,
};

use super::lifeline::STOP_ON_STDIN_EOF;

/// One instance to start: a replica of a service.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The service it serves.
    pub service: String,
    /// Which replica, from 1.
    pub replica: u16,
    /// `service-replica`: its log prefix, its log file's name and its
    /// `service.instance.id`.
    pub label: String,
    /// The port it listens on.
    pub port: u16,
    /// What it runs with on top of the environment `up` inherited.
    pub env: BTreeMap<String, String>,
}

/// Every instance of an ecosystem, with its port chosen.
#[derive(Debug)]
pub struct Plan {
    /// In the file's order, replicas together.
    pub instances: Vec<Instance>,
    /// The free ports, held open until the instances are about to start,
    /// so that no two of them are handed the same one.
    reserved: Vec<TcpListener>,
}

/// Variables of the inherited environment an instance must not see: it is
/// configured by `CONFIG_JSON` alone.
pub const UNSET: [&str; 1] = ["CONFIG_FILE"];

impl Plan {
    /// Chooses a port for every replica of `ecosystem` (its first replica
    /// on the declared port, if any, the others on free ones) and lowers
    /// each service's config with its peers at those ports. A call to a
    /// replicated service reaches its first replica. `attributes` are the
    /// resource attributes `up` itself was given; every instance gets them,
    /// then its service's, then its own `service.instance.id`.
    pub fn new(
        ecosystem: &Ecosystem,
        scripts_dir: &Path,
        attributes: &ResourceAttributes,
    ) -> std::io::Result<Plan> {
        let mut reserved = Vec::new();
        let mut ports: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        for service in &ecosystem.services {
            let mut service_ports = Vec::with_capacity(usize::from(service.replicas));
            for replica in 0..service.replicas {
                let port = match service.port.filter(|_| replica == 0) {
                    Some(port) => port,
                    None => {
                        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                        let port = listener.local_addr()?.port();
                        reserved.push(listener);
                        port
                    }
                };
                service_ports.push(port);
            }
            ports.insert(&service.name, service_ports);
        }
        let resolve = |peer: &crate::ecosystem::Service| Peer::local(ports[peer.name.as_str()][0]);
        let mut instances = Vec::new();
        for service in &ecosystem.services {
            let config = ecosystem.config(service, &resolve).to_string();
            let own = service.environment();
            for (index, port) in ports[service.name.as_str()].iter().enumerate() {
                let replica = index as u16 + 1;
                let label = format!("{}-{replica}", service.name);
                let mut env = own.clone();
                let attributes = [
                    attributes.to_string(),
                    own.get("OTEL_RESOURCE_ATTRIBUTES")
                        .cloned()
                        .unwrap_or_default(),
                    format!("service.instance.id={label}"),
                ];
                env.insert(
                    "OTEL_RESOURCE_ATTRIBUTES".into(),
                    join_nonempty(&attributes),
                );
                env.insert("PORT".into(), port.to_string());
                env.insert("SERVICE_NAME".into(), service.name.clone());
                env.insert("CONFIG_JSON".into(), config.clone());
                env.insert("SCRIPTS_DIR".into(), scripts_dir.display().to_string());
                env.insert(STOP_ON_STDIN_EOF.into(), "true".into());
                instances.push(Instance {
                    service: service.name.clone(),
                    replica,
                    label,
                    port: *port,
                    env,
                });
            }
        }
        Ok(Plan {
            instances,
            reserved,
        })
    }

    /// Lets go of the free ports, for the instances to listen on them.
    pub fn release(&mut self) {
        self.reserved.clear();
    }
}

/// The parts that are not empty, separated by commas.
fn join_nonempty(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|part| !part.is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn ecosystem(yaml: &str) -> (tempfile::TempDir, Ecosystem) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eco.yaml");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let ecosystem = Ecosystem::from_file(&path).unwrap();
        (dir, ecosystem)
    }

    const TWO: &str = "
services:
  - name: front
    port: 16380
    version: '2.1'
    env: { OTEL_RESOURCE_ATTRIBUTES: team=web }
    grpc_method_a:
      tracing_name: order
      operations:
        - Action: { CallService: { tracing_name: call, service: back, grpc_method: A } }
  - name: back
    replicas: 3
";

    #[test]
    fn every_replica_gets_a_port_of_its_own_and_calls_reach_the_first() {
        let (_dir, ecosystem) = ecosystem(TWO);
        let plan = Plan::new(&ecosystem, Path::new("/s"), &ResourceAttributes::default()).unwrap();
        let ports: Vec<u16> = plan.instances.iter().map(|i| i.port).collect();
        assert_eq!(ports.len(), 4);
        assert_eq!(ports[0], 16380);
        let unique: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), 4, "{ports:?}");
        let labels: Vec<&str> = plan.instances.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["front-1", "back-1", "back-2", "back-3"]);
        let config: serde_json::Value =
            serde_json::from_str(&plan.instances[0].env["CONFIG_JSON"]).unwrap();
        let call = &config["grpc_method_a"]["operations"][0]["Action"]["CallService"];
        assert_eq!(call["service_port"], ports[1]);
        assert_eq!(call["service_address"], "http://127.0.0.1");
    }

    #[test]
    fn resource_attributes_are_up_s_then_the_service_s_then_the_instance_s() {
        let (_dir, ecosystem) = ecosystem(TWO);
        let inherited = "deployment.environment.name=local".parse().unwrap();
        let plan = Plan::new(&ecosystem, Path::new("/s"), &inherited).unwrap();
        let front = &plan.instances[0].env;
        assert_eq!(
            front["OTEL_RESOURCE_ATTRIBUTES"],
            "deployment.environment.name=local,team=web,service.version=2.1,service.instance.id=front-1"
        );
        assert_eq!(front["SERVICE_NAME"], "front");
        assert_eq!(front["PORT"], "16380");
        assert_eq!(front["SCRIPTS_DIR"], "/s");
        assert_eq!(
            plan.instances[3].env["OTEL_RESOURCE_ATTRIBUTES"],
            "deployment.environment.name=local,service.instance.id=back-3"
        );
    }
}
