use std::path::PathBuf;

use super::{Ecosystem, Peer};
use crate::behaviour::MethodName;

/// Writes `text` as `name` in a fresh folder with a `scripts/` beside it,
/// holding `relay.rhai`, and reads it. The renderings' tests read their
/// sample through it too.
pub(crate) fn read(name: &str, text: &str) -> Result<Ecosystem, String> {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::create_dir(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/relay.rhai"),
        "call(\"relay\", params.next, \"B\");\n",
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Ecosystem::from_file(&path).map_err(|e| {
        let text = e.to_string();
        text.strip_prefix(&format!("{}: ", path.display()))
            .map(str::to_owned)
            .unwrap_or(text)
    })
}

const SHOP: &str = r#"
name: shop
services:
  - name: frontend
    port: 6380
    version: 1.10
    seed: 7
    env: { RUST_LOG: debug }
    grpc_method_a:
      tracing_name: relay
      script: relay.rhai
      params: { next: { service: orders } }
    grpc_method_b:
      tracing_name: list
      operations:
        - Action:
            CallService: { service: orders, grpc_method: B, optional: true }
  - name: orders
    replicas: 2
    port: 6381
    grpc_method_b:
      tracing_name: select
      operations:
        - Action: { Sleep: { tracing_name: select, duration_ms: 3 } }
load:
  - { service: frontend, method: A, rate: 5 }
"#;

#[test]
fn a_yaml_ecosystem_reads_with_its_own_keys_apart_from_each_config() {
    let shop = read("shop.yaml", SHOP).unwrap();
    assert_eq!(shop.name, "shop");
    let names: Vec<&str> = shop.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["frontend", "orders"]);
    let frontend = &shop.services[0];
    assert_eq!(frontend.version.as_deref(), Some("1.1"));
    assert_eq!(frontend.env["THESPIAN_SEED"], "7");
    assert_eq!(frontend.env["RUST_LOG"], "debug");
    assert_eq!(
        frontend.environment()["OTEL_RESOURCE_ATTRIBUTES"],
        "service.version=1.1"
    );
    assert!(frontend.document.contains_key("grpc_method_a"));
    assert!(!frontend.document.contains_key("port"));
    assert_eq!(frontend.scripts.keys().collect::<Vec<_>>(), ["relay.rhai"]);
    assert_eq!(shop.load[0].method, MethodName::A);
    assert_eq!(
        shop.scripts_dir,
        shop.origin.parent().unwrap().join("scripts")
    );
}

#[test]
fn peers_named_by_service_resolve_to_where_each_target_puts_them() {
    let shop = read("shop.yaml", SHOP).unwrap();
    let frontend = &shop.services[0];
    let local = shop.config(frontend, &|peer| Peer::local(peer.port.unwrap()));
    let call = &local["grpc_method_b"]["operations"][0]["Action"]["CallService"];
    assert_eq!(call["service_address"], "http://127.0.0.1");
    assert_eq!(call["service_port"], 6381);
    assert!(call.get("service").is_none());
    assert_eq!(call["optional"], true);
    assert_eq!(
        local["grpc_method_a"]["params"]["next"],
        "http://127.0.0.1:6381"
    );
    let container = shop.config(frontend, &|peer| Peer::container(&peer.name));
    assert_eq!(
        container["grpc_method_a"]["params"]["next"],
        "http://orders:6379"
    );
    let inlined = shop.config_inlined(frontend, &|peer| Peer::container(&peer.name));
    assert!(inlined["grpc_method_a"].get("script").is_none());
    assert!(
        inlined["grpc_method_a"]["script_source"]
            .as_str()
            .unwrap()
            .contains("params.next")
    );
}

#[test]
fn the_same_ecosystem_reads_from_json_with_comments() {
    let json = r#"// two services
    { "services": [
        { "name": "a", "grpc_method_a": { "tracing_name": "x", "operations": [
            { "Action": { "CallService": { "service": "b", "grpc_method": "C" } } } ] } },
        { "name": "b" } ] }"#;
    let two = read("two-services.jsonc", json).unwrap();
    assert_eq!(two.name, "two-services");
    let config = two.config(&two.services[0], &|peer| Peer::container(&peer.name));
    assert_eq!(
        config["grpc_method_a"]["operations"][0]["Action"]["CallService"]["service_address"],
        "http://b"
    );
}

#[test]
fn every_mistake_names_the_file_path_of_the_value_to_fix() {
    let cases: [(&str, &str); 10] = [
        (
            "services: [{ name: a, grpc_method_a: { tracing_name: x, operations: [{ Action: { CallService: { service: nobody, grpc_method: A } } }] } }]",
            "at `services[0].grpc_method_a.operations[0].Action.CallService.service`: no service named `nobody` in this ecosystem (it has a)",
        ),
        (
            "services: [{ name: a }, { name: a }]",
            "at `services[1].name`: a second service named `a`",
        ),
        (
            "services: [{ name: a, port: 7000, replicas: 2 }, { name: b, port: 7000 }]",
            "at `services[1].port`: port 7000 is also declared by `a`",
        ),
        (
            "services: [{ name: Orders }]",
            "at `services[0].name`: `Orders` cannot be a host name",
        ),
        (
            "services: [{ name: a, replicas: 0 }]",
            "at `services[0].replicas`: replicas must be 1 to 100, not 0",
        ),
        (
            "services: [{ name: a, env: { PORT: 1 } }]",
            "at `services[0].env.PORT`: PORT is set for every instance by the ecosystem itself",
        ),
        (
            "services: [{ name: a, grpc_method_d: {} }]",
            "at `services[0].grpc_method_d`: unknown field `grpc_method_d`",
        ),
        (
            "services: [{ name: a, grpc_method_a: { tracing_name: x, operations: [{ Action: { Sleep: { tracing_name: s, duration_ms: -1 } } }] } }]",
            "at `services[0].grpc_method_a.operations[0].Action.Sleep.duration_ms`",
        ),
        (
            "services: [{ name: a }]\nload: [{ service: b, method: A, rate: 1 }]",
            "at `load[0].service`: no service named `b` in this ecosystem",
        ),
        (
            "services: [{ name: a, grpc_method_a: { tracing_name: x, script: missing.rhai } }]",
            "at `services[0].grpc_method_a.script`: cannot read the script",
        ),
    ];
    for (yaml, expected) in cases {
        let error = read("bad.yaml", yaml).unwrap_err();
        assert!(
            error.starts_with(expected),
            "{yaml}\n gave: {error}\nwanted: {expected}"
        );
    }
}

#[test]
fn a_script_error_names_the_script_and_its_line() {
    let error = read(
        "bad.yaml",
        "services: [{ name: a, grpc_method_a: { tracing_name: x, script_source: \"sleep(\\\"x\\\", 1);\\nlet = 2;\" } }]",
    )
    .unwrap_err();
    assert!(error.contains("services[0].grpc_method_a"), "{error}");
    assert!(error.contains("line 2"), "{error}");
}

#[test]
fn the_sample_ecosystem_reads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("example_configs/ecosystem.yaml");
    let sample = Ecosystem::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = sample.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["frontend", "orders", "database"]);
    let ports: Vec<Option<u16>> = sample.services.iter().map(|s| s.port).collect();
    assert_eq!(ports, [Some(6380), Some(6381), Some(6382)]);
}
