use serde_json::{Value, json};

use super::*;
use crate::render::{Target, tests::args_for, tests::shop, tests::shop_poker_command};

/// The files of `shop` rendered with `flags`, by path.
fn rendered(flags: &[&str]) -> BTreeMap<String, String> {
    let mut args = args_for(Target::Kubernetes, "base");
    let parsed = {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            options: KubernetesOptions,
        }
        Command::parse_from(std::iter::once("render").chain(flags.iter().copied())).options
    };
    args.kubernetes = parsed;
    render(&shop(), &args)
        .unwrap()
        .into_iter()
        .map(|file| (file.path.display().to_string(), file.contents))
        .collect()
}

/// Every document of the YAML file `path`.
fn documents(files: &BTreeMap<String, String>, path: &str) -> Vec<Value> {
    files[path]
        .split("\n---\n")
        .map(|text| serde_saphyr::from_str(text).unwrap())
        .collect()
}

#[test]
fn renders_a_base_of_deployments_services_and_generated_config_maps() {
    let files = rendered(&[]);
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "configs/database.jsonc",
            "configs/frontend.jsonc",
            "configs/orders.jsonc",
            "database.yaml",
            "frontend.yaml",
            "kustomization.yaml",
            "namespace.yaml",
            "orders.yaml",
            "otel-collector.yaml",
            "otel-collector/config.yaml",
            "poker.yaml",
            "scripts/relay.rhai",
        ]
    );
    let kustomization = &documents(&files, "kustomization.yaml")[0];
    assert_eq!(kustomization["namespace"], "shop");
    assert_eq!(
        kustomization["configMapGenerator"][0],
        json!({"name": "frontend-config", "files": ["config.jsonc=configs/frontend.jsonc"]})
    );
    assert_eq!(
        kustomization["configMapGenerator"][3],
        json!({"name": "thespian-scripts", "files": ["scripts/relay.rhai"]})
    );
    assert!(files["kustomization.yaml"].starts_with(
        "# Rendered from shop.yaml by\n#   thespian render shop.yaml --to kubernetes --out base\n"
    ));
}

#[test]
fn runs_each_service_with_its_replicas_probes_limits_and_restricted_pods() {
    let files = rendered(&[]);
    let orders = documents(&files, "orders.yaml");
    let (deployment, service) = (&orders[0], &orders[1]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["grpc"]["port"], 6379);
    assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // orders runs no script, so mounts none.
    assert_eq!(container["volumeMounts"].as_array().unwrap().len(), 1);
    assert_eq!(
        service["spec"]["ports"][0]["appProtocol"],
        "kubernetes.io/h2c"
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let frontend = &documents(&files, "frontend.yaml")[0];
    let env = &frontend["spec"]["template"]["spec"]["containers"][0]["env"];
    let attributes = env.as_array().unwrap().last().unwrap();
    assert_eq!(attributes["name"], "OTEL_RESOURCE_ATTRIBUTES");
    assert!(
        attributes["value"]
            .as_str()
            .unwrap()
            .ends_with(",service.version=1.10")
    );
}

#[test]
fn resolves_peers_to_their_service_names_and_pokes_the_load() {
    let files = rendered(&[]);
    assert!(files["configs/frontend.jsonc"].contains(r#""next": "http://orders:6379""#));
    assert!(files["configs/orders.jsonc"].contains(r#""service_address": "http://database""#));
    let poker = &documents(&files, "poker.yaml")[0];
    assert_eq!(
        poker["spec"]["template"]["spec"]["containers"][0]["args"],
        shop_poker_command()
    );
}

#[test]
fn enrols_namespace_and_pods_in_the_mesh() {
    let linkerd = rendered(&["--mesh", "linkerd"]);
    let namespace = &documents(&linkerd, "namespace.yaml")[0];
    assert_eq!(
        namespace["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    let pod = &documents(&linkerd, "orders.yaml")[0]["spec"]["template"]["metadata"];
    assert_eq!(pod["annotations"]["linkerd.io/inject"], "enabled");
    assert!(linkerd["kustomization.yaml"].contains("--mesh linkerd"));

    let istio = rendered(&["--mesh", "istio"]);
    let namespace = &documents(&istio, "namespace.yaml")[0];
    assert_eq!(
        namespace["metadata"]["labels"]["istio-injection"],
        "enabled"
    );
    let deployment = &documents(&istio, "poker.yaml")[0];
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"],
        "true"
    );
    // The selector stays as it was, so pods are selected meshed or not.
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
            .len(),
        2
    );

    let plain = rendered(&[]);
    assert_eq!(
        documents(&plain, "namespace.yaml")[0]["metadata"].get("annotations"),
        None
    );
}

#[test]
fn sends_telemetry_to_the_endpoint_or_the_stack() {
    let config = |files: &BTreeMap<String, String>| -> Value {
        serde_saphyr::from_str(&files["otel-collector/config.yaml"]).unwrap()
    };
    let plain = config(&rendered(&[]));
    assert_eq!(
        plain["service"]["pipelines"]["traces"]["exporters"],
        json!(["debug"])
    );

    let endpoint = config(&rendered(&[
        "--otlp-endpoint",
        "http://tempo.observability:4317",
    ]));
    let backend = &endpoint["exporters"]["otlp_grpc/backend"];
    assert_eq!(backend["endpoint"], "tempo.observability:4317");
    assert_eq!(backend["tls"]["insecure"], true);
    assert_eq!(
        endpoint["service"]["pipelines"]["logs"]["exporters"],
        json!(["debug", "otlp_grpc/backend"])
    );

    let files = rendered(&["--with-stack"]);
    assert_eq!(
        config(&files)["exporters"]["otlp_grpc/backend"]["endpoint"],
        "lgtm:4317"
    );
    let stack = documents(&files, "lgtm.yaml");
    assert_eq!(stack[0]["kind"], "Deployment");
    assert_eq!(stack[1]["spec"]["ports"][1]["port"], 4317);
    let kustomization = &documents(&files, "kustomization.yaml")[0];
    assert!(
        kustomization["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("lgtm.yaml"))
    );
}

#[test]
fn refuses_an_endpoint_that_is_no_url() {
    let mut args = args_for(Target::Kubernetes, "base");
    args.kubernetes.otlp_endpoint = Some("tempo:4317".into());
    let error = render(&shop(), &args).unwrap_err().to_string();
    assert!(error.contains("give a URL"), "{error}");
}
