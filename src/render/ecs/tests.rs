//! The ECS rendering: the sample's template read back as YAML and checked
//! for what ECS needs, and the limits on odd ecosystems.

use std::path::Path;

use serde_json::Value;

use super::*;
use crate::{
    config::Config,
    ecosystem::Peer,
    script::{ScriptSettings, Scripting},
};

/// The arguments that render the sample into `deploy/aws`, with `options`.
fn args(options: EcsOptions) -> RenderArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        render: RenderArgs,
    }
    let words = [
        "render",
        "example_configs/ecosystem.yaml",
        "--to",
        "ecs",
        "--out",
        "deploy/aws",
    ];
    let mut args = Command::parse_from(words).render;
    args.ecs = options;
    args
}

fn sample() -> Ecosystem {
    Ecosystem::from_file(Path::new("example_configs/ecosystem.yaml")).unwrap()
}

/// `ecosystem`'s template, read back as a YAML reader sees it.
fn template(ecosystem: &Ecosystem) -> Value {
    let files = render(ecosystem, &args(EcsOptions::default())).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, Path::new(TEMPLATE_FILE));
    serde_saphyr::from_str(&files[0].contents).unwrap()
}

/// Reads `text` as an ecosystem file, with `scripts` in `scripts/` beside it.
fn ecosystem(text: &str, scripts: &[(&str, &str)]) -> Ecosystem {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    for (name, source) in scripts {
        std::fs::write(dir.path().join("scripts").join(name), source).unwrap();
    }
    let path = dir.path().join("eco.yaml");
    std::fs::write(&path, text).unwrap();
    Ecosystem::from_file(&path).unwrap()
}

/// `n` services in a chain, each calling the next one's B.
fn chain(n: usize) -> String {
    let mut text = String::from("name: chain\nservices:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - name: s{i}\n    grpc_method_b:\n      tracing_name: hop\n      operations:\n"
        ));
        if i + 1 < n {
            text.push_str(&format!(
                "        - Action: {{ CallService: {{ service: s{}, grpc_method: B }} }}\n",
                i + 1
            ));
        } else {
            text.push_str("        - Action: { Sleep: { tracing_name: work, duration_ms: 1 } }\n");
        }
    }
    text
}

fn container(template: &Value, id: &str) -> Value {
    template["Resources"][format!("{id}TaskDefinition")]["Properties"]["ContainerDefinitions"][0]
        .clone()
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Name"] == name)
        .map(|e| e["Value"].as_str().unwrap().to_owned())
}

#[test]
fn each_service_is_a_fargate_service_with_its_replicas_joined_by_service_connect() {
    let template = template(&sample());
    let resources = &template["Resources"];
    assert_eq!(
        resources["Namespace"]["Type"],
        "AWS::ServiceDiscovery::HttpNamespace"
    );
    for (id, name, replicas) in [
        ("Frontend", "frontend", 1),
        ("Orders", "orders", 2),
        ("Database", "database", 1),
    ] {
        let service = &resources[format!("{id}Service")];
        assert_eq!(service["Type"], "AWS::ECS::Service");
        let properties = &service["Properties"];
        assert_eq!(properties["ServiceName"], name);
        assert_eq!(properties["DesiredCount"], replicas);
        assert_eq!(properties["LaunchType"], "FARGATE");
        let connect = &properties["ServiceConnectConfiguration"];
        assert_eq!(connect["Enabled"], true);
        let server = &connect["Services"][0];
        assert_eq!(server["ClientAliases"][0]["DnsName"], name);
        assert_eq!(server["ClientAliases"][0]["Port"], 6379);
        let task = &resources[format!("{id}TaskDefinition")]["Properties"];
        assert_eq!(task["NetworkMode"], "awsvpc");
        assert_eq!(task["RequiresCompatibilities"][0], "FARGATE");
        let port = &container(&template, id)["PortMappings"][0];
        assert_eq!(
            server["PortName"], port["Name"],
            "Service Connect names the mapped port"
        );
        assert_eq!(port["AppProtocol"], "grpc");
        assert_eq!(
            resources[format!("{id}LogGroup")]["Type"],
            "AWS::Logs::LogGroup"
        );
    }
}

#[test]
fn config_json_is_each_config_with_peers_by_service_connect_name_and_scripts_inlined() {
    let sample = sample();
    let template = template(&sample);
    let scripting = Scripting::new(&ScriptSettings::default());
    for service in &sample.services {
        let container = container(&template, &logical_id(&service.name));
        assert_eq!(
            env(&container, "SERVICE_NAME").as_deref(),
            Some(service.name.as_str())
        );
        assert_eq!(
            env(&container, "OTEL_BACKEND_ADDRESS").as_deref(),
            Some("http://otel-collector:4317")
        );
        let text = env(&container, "CONFIG_JSON").unwrap();
        let config: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            config,
            sample.config_inlined(service, &|peer| Peer::container(&peer.name))
        );
        assert!(!text.contains("\"script\""), "{text}");
        // What `thespian check` reads it with: no scripts folder needed.
        Config::from_str(&text, "CONFIG_JSON", &scripting).unwrap();
    }
    let frontend = container(&template, "Frontend");
    let config: Value = serde_json::from_str(&env(&frontend, "CONFIG_JSON").unwrap()).unwrap();
    let storefront = std::fs::read_to_string("scripts/storefront.rhai").unwrap();
    assert_eq!(
        config["grpc_method_a"]["script_source"],
        storefront.as_str()
    );
    assert_eq!(
        config["grpc_method_a"]["params"]["orders"],
        "http://orders:6379"
    );
}

#[test]
fn services_start_after_their_peers_and_the_collector() {
    let template = template(&sample());
    let depends = |id: &str| template["Resources"][format!("{id}Service")]["DependsOn"].clone();
    assert_eq!(
        depends("Frontend"),
        serde_json::json!(["OtelCollectorService", "OrdersService", "ListenerReady"])
    );
    assert_eq!(
        depends("Database"),
        serde_json::json!(["OtelCollectorService", "ListenerReady"])
    );
    assert_eq!(depends("Poker"), serde_json::json!(["FrontendService"]));
    let poke = container(&template, "Poker");
    assert_eq!(poke["Command"], crate::render::tests::shop_poker_command());
}

#[test]
fn a_call_cycle_starts_together_and_the_rest_in_order() {
    let text = chain(3).replace(
        "        - Action: { Sleep: { tracing_name: work, duration_ms: 1 } }\n",
        "        - Action: { CallService: { service: s1, grpc_method: B } }\n",
    );
    let template = template(&ecosystem(&text, &[]));
    let depends = |id: &str| template["Resources"][format!("{id}Service")]["DependsOn"].clone();
    // s1 and s2 call each other; s0 calls s1 from outside the cycle.
    assert_eq!(
        depends("S0"),
        serde_json::json!(["OtelCollectorService", "S1Service", "ListenerReady"])
    );
    assert_eq!(
        depends("S1"),
        serde_json::json!(["OtelCollectorService", "ListenerReady"])
    );
    assert_eq!(
        depends("S2"),
        serde_json::json!(["OtelCollectorService", "ListenerReady"])
    );
    // No load, no poker.
    assert!(template["Resources"].get("PokerService").is_none());
}

#[test]
fn a_service_own_environment_and_version_reach_its_container() {
    let text = chain(1).replace(
        "  - name: s0\n",
        "  - name: s0\n    version: '2.1'\n    env: { OTEL_BACKEND_ADDRESS: 'http://elsewhere:4317', RUST_LOG: debug }\n",
    );
    let template = template(&ecosystem(&text, &[]));
    let container = container(&template, "S0");
    assert_eq!(
        env(&container, "OTEL_BACKEND_ADDRESS").as_deref(),
        Some("http://elsewhere:4317")
    );
    assert_eq!(env(&container, "RUST_LOG").as_deref(), Some("debug"));
    assert_eq!(
        env(&container, "OTEL_RESOURCE_ATTRIBUTES").as_deref(),
        Some("service.version=2.1")
    );
    let names: Vec<&Value> = container["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["Name"])
        .collect();
    let unique: std::collections::BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(unique.len(), names.len(), "each variable once: {names:?}");
}

#[test]
fn rendering_is_the_same_every_time_and_the_committed_sample_is_current() {
    let sample = sample();
    let first = render(&sample, &args(EcsOptions::default())).unwrap();
    assert_eq!(
        first,
        render(&sample, &args(EcsOptions::default())).unwrap()
    );
    assert!(first[0].contents.starts_with(
        "# Rendered from example_configs/ecosystem.yaml by\n\
         #   thespian render example_configs/ecosystem.yaml --to ecs --out deploy/aws\n"
    ));
    let committed = std::fs::read_to_string(Path::new("deploy/aws").join(TEMPLATE_FILE)).unwrap();
    assert!(
        committed == first[0].contents,
        "deploy/aws differs from a fresh rendering: run the command in its header"
    );
}

#[test]
fn a_task_definition_over_64_kib_is_refused_naming_the_service() {
    let big = format!("// {}\nsleep(\"work\", 1);\n", "padding ".repeat(9000));
    let text = chain(1).replace(
        "  - name: s0\n",
        "  - name: s0\n    grpc_method_a:\n      tracing_name: big\n      script: big.rhai\n",
    );
    let ecosystem = ecosystem(&text, &[("big.rhai", &big)]);
    let error = render(&ecosystem, &args(EcsOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("service `s0`"), "{error}");
    assert!(error.contains("64 KiB"), "{error}");
}

#[test]
fn more_services_than_one_stack_holds_are_refused() {
    let error = render(&ecosystem(&chain(170), &[]), &args(EcsOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("at most 500"), "{error}");
    // And well under the limit renders.
    render(&ecosystem(&chain(30), &[]), &args(EcsOptions::default())).unwrap();
}

#[test]
fn names_the_template_cannot_tell_apart_are_refused() {
    let text = chain(2)
        .replace("name: s0", "name: a-1")
        .replace("name: s1", "name: a1");
    let text = text.replace("service: s1", "service: a1");
    let error = render(&ecosystem(&text, &[]), &args(EcsOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("`A1`"), "{error}");
    let poker = chain(1).replace("name: s0", "name: poker");
    let error = render(&ecosystem(&poker, &[]), &args(EcsOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("poker"), "{error}");
}

#[test]
fn the_image_option_becomes_the_parameter_default() {
    let options = EcsOptions {
        image: Some("123.dkr.ecr.eu-west-1.amazonaws.com/thespian:1".into()),
    };
    let files = render(&sample(), &args(options)).unwrap();
    let template: Value = serde_saphyr::from_str(&files[0].contents).unwrap();
    assert_eq!(
        template["Parameters"]["ThespianImage"]["Default"],
        "123.dkr.ecr.eu-west-1.amazonaws.com/thespian:1"
    );
    assert!(files[0].contents.contains("--ecs-image 123.dkr"));
}

#[test]
fn one_service_may_be_public_behind_an_https_load_balancer_speaking_grpc() {
    let template = template(&sample());
    let public = &template["Parameters"]["PublicService"];
    assert_eq!(public["Default"], "");
    assert_eq!(
        public["AllowedValues"],
        serde_json::json!(["", "frontend", "orders", "database"])
    );
    let resources = &template["Resources"];
    let group = &resources["TargetGroup"];
    assert_eq!(group["Condition"], "HasPublicService");
    assert_eq!(group["Properties"]["ProtocolVersion"], "GRPC");
    assert_eq!(group["Properties"]["TargetType"], "ip");
    assert_eq!(group["Properties"]["Matcher"]["GrpcCode"], "0");
    let listener = &resources["Listener"]["Properties"];
    assert_eq!(listener["Protocol"], "HTTPS");
    assert_eq!(
        listener["Certificates"][0]["CertificateArn"]["Ref"],
        "CertificateArn"
    );
    // Only the named service registers with it.
    let balancers = &resources["OrdersService"]["Properties"]["LoadBalancers"]["Fn::If"];
    assert_eq!(balancers[0], "OrdersIsPublic");
    assert_eq!(balancers[1][0]["ContainerName"], "orders");
    assert_eq!(
        template["Conditions"]["OrdersIsPublic"]["Fn::And"][0]["Fn::Equals"][1],
        "orders"
    );
}

#[test]
fn tasks_run_in_the_given_subnets_or_in_a_vpc_the_stack_makes() {
    let template = template(&sample());
    let resources = &template["Resources"];
    for made in ["Vpc", "PublicSubnet1", "PrivateSubnet2", "InternetGateway"] {
        assert_eq!(resources[made]["Condition"], "CreateVpc", "{made}");
    }
    assert_eq!(resources["NatGateway"]["Condition"], "CreateNat");
    let network = &resources["DatabaseService"]["Properties"]["NetworkConfiguration"];
    let subnets = &network["AwsvpcConfiguration"]["Subnets"]["Fn::If"];
    assert_eq!(subnets[0], "UseGivenVpc");
    assert_eq!(subnets[1]["Ref"], "TaskSubnetIds");
    assert!(template["Rules"]["SubnetsOfTheGivenVpc"].is_object());
}
