use super::*;

/// A small shop: frontend (a script calling orders, a declared port and
/// a version) -> orders (two replicas) -> database, and load on
/// frontend's A.
pub(crate) fn shop() -> Ecosystem {
    crate::ecosystem::tests::read("shop.yaml", SHOP).unwrap()
}

const SHOP: &str = r#"
name: shop
services:
  - name: frontend
    port: 6380
    version: "1.10"
    grpc_method_a: { tracing_name: relay, script: relay.rhai, params: { next: { service: orders } } }
    grpc_method_b:
      tracing_name: list
      operations:
        - Action: { CallService: { tracing_name: list, service: orders, grpc_method: B } }
    grpc_method_c: { tracing_name: idle, operations: [] }
  - name: orders
    port: 6381
    replicas: 2
    grpc_method_a: { tracing_name: idle, operations: [] }
    grpc_method_b:
      tracing_name: list
      operations:
        - Action: { CallService: { tracing_name: select, service: database, grpc_method: B } }
    grpc_method_c: { tracing_name: idle, operations: [] }
  - name: database
    grpc_method_a: { tracing_name: idle, operations: [] }
    grpc_method_b: { tracing_name: idle, operations: [] }
    grpc_method_c: { tracing_name: idle, operations: [] }
load:
  - { service: frontend, method: A, rate: 5 }
"#;

/// The command every platform's poker runs for the shop's one load.
pub(crate) fn shop_poker_command() -> serde_json::Value {
    serde_json::json!([
        "poke",
        "http://frontend:6379",
        "A",
        "--rate",
        "5",
        "--duration",
        "24h"
    ])
}

/// The arguments of `thespian render shop.yaml --to TARGET --out OUT`,
/// every other option at its default.
pub(crate) fn args_for(target: Target, out: &str) -> RenderArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        args: RenderArgs,
    }
    let to = clap::ValueEnum::to_possible_value(&target).unwrap();
    Command::parse_from(["render", "shop.yaml", "--to", to.get_name(), "--out", out]).args
}

#[test]
fn waits_for_callees_except_around_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.yaml");
    let idle = "{ tracing_name: idle, operations: [] }";
    let call = |to: &str| {
        format!(
            "{{ tracing_name: call, operations: [ {{ Action: {{ CallService: {{ tracing_name: c, service: {to}, grpc_method: A }} }} }} ] }}"
        )
    };
    let text = format!(
        "services:\n  - {{ name: a, grpc_method_a: {}, grpc_method_b: {idle}, grpc_method_c: {idle} }}\n  - {{ name: b, grpc_method_a: {}, grpc_method_b: {}, grpc_method_c: {idle} }}\n  - {{ name: c, grpc_method_a: {idle}, grpc_method_b: {idle}, grpc_method_c: {idle} }}\n",
        call("b"),
        call("a"),
        call("c"),
    );
    std::fs::write(&path, text).unwrap();
    let ecosystem = Ecosystem::from_file(&path).unwrap();
    let order = start_order(&ecosystem);
    assert_eq!(order["a"], Vec::<String>::new());
    assert_eq!(order["b"], ["c"]);
    assert_eq!(order["c"], Vec::<String>::new());
}

#[test]
fn names_pokers_apart_from_services() {
    let mut ecosystem = shop();
    assert_eq!(pokers(&ecosystem).unwrap()[0].0, "poker");
    ecosystem.load.push(ecosystem.load[0].clone());
    let names: Vec<String> = pokers(&ecosystem)
        .unwrap()
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(names, ["poker-1", "poker-2"]);
    ecosystem.services[2].name = "poker-2".into();
    assert!(
        pokers(&ecosystem)
            .unwrap_err()
            .to_string()
            .contains("rename the service")
    );
}

#[test]
fn refuses_a_service_named_like_what_a_rendering_makes_itself() {
    for (target, taken) in [
        (Target::Kubernetes, "otel-collector"),
        (Target::Kubernetes, "lgtm"),
        (Target::Kubernetes, "kustomization"),
        (Target::Compose, "otel-collector"),
        (Target::Compose, "grafana"),
    ] {
        let mut ecosystem = shop();
        ecosystem.services[2].name = taken.into();
        let error = render(&ecosystem, &args_for(target, "out"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("`{taken}`")) && error.contains("rename the service"),
            "{target:?} {taken}: {error}"
        );
    }
}

#[test]
fn finds_paths_from_the_output_folder() {
    let cases = [
        (
            "deploy/compose",
            "instrumentation/x.yaml",
            "../../instrumentation/x.yaml",
        ),
        ("deploy/compose", ".", "../.."),
        ("out", "example_configs/../scripts", "../scripts"),
        ("a/b", "a/b", "."),
        ("a", "a/b", "b"),
    ];
    for (from, to, expected) in cases {
        assert_eq!(
            relative(Path::new(from), Path::new(to)).unwrap(),
            Path::new(expected)
        );
    }
}

#[test]
fn header_names_the_file_and_wraps_a_long_command() {
    let args = args_for(Target::Kubernetes, "deploy/kubernetes/base");
    let flags = [
        "--otlp-endpoint https://otlp.example.com:4317".to_owned(),
        "--mesh istio".to_owned(),
    ];
    let header = args.header("#", &flags);
    assert_eq!(
        header,
        "# Rendered from shop.yaml by\n\
         #   thespian render shop.yaml --to kubernetes --out deploy/kubernetes/base \\\n\
         #     --otlp-endpoint https://otlp.example.com:4317 --mesh istio\n\
         # Edit the ecosystem file and render again, rather than editing this file.\n"
    );
    assert!(header.lines().all(|line| line.len() <= HEADER_WIDTH));
}

#[test]
fn check_names_what_differs_and_passes_what_matches() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![File {
        path: "a/b.yaml".into(),
        contents: "x: 1\n".into(),
    }];
    assert!(
        check(&files, dir.path())
            .unwrap_err()
            .to_string()
            .contains("b.yaml")
    );
    write(&files, dir.path()).unwrap();
    check(&files, dir.path()).unwrap();
    std::fs::write(dir.path().join("a/b.yaml"), "x: 2\n").unwrap();
    assert!(check(&files, dir.path()).is_err());
}

#[test]
fn a_service_variable_replaces_the_platforms_default_in_place() {
    let ecosystem = crate::ecosystem::tests::read(
        "env.yaml",
        "services: [{ name: a, env: { RUST_LOG: debug, EXTRA: x } }]",
    )
    .unwrap();
    let env = environment(
        &ecosystem.services[0],
        vec![
            ("RUST_LOG", "info".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
        ],
    );
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("RUST_LOG", "debug"),
            ("LOG_FORMAT", "json"),
            ("EXTRA", "x")
        ]
    );
}
