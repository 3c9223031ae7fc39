//! The control API end to end, driven by the real `grpcurl` and by
//! `thespian scenario`: listed by reflection only when CONTROL_TOKEN is
//! set, every call refused without the token or with a wrong one (and
//! nothing changed by it), and a scenario it starts changes the very next
//! request, with no restart.

use std::process::Output;

use crate::grpcurl::{grpcurl, succeeded};
use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, run_to_exit};
use serde_json::{Value, json};
use thespian::proto::Empty;

const TOKEN: &str = "s3cret-token";

fn config() -> String {
    json!({
        "grpc_method_a": { "tracing_name": "serve A", "operations": [
            { "Action": { "Sleep": { "tracing_name": "db", "duration_ms": 1 } } }
        ] },
        "scenarios": [
            { "name": "db-down", "scope": { "step": "db" }, "effect": { "outage": true } }
        ]
    })
    .to_string()
}

async fn controlled() -> Instance {
    Instance::builder("controlled")
        .config(&config())
        .env("CONTROL_TOKEN", TOKEN)
        .start()
        .await
}

/// Calls `thespian.Control/<method>` with `body`, as `authorization` says
/// (`None` sends no header).
async fn control(
    instance: &Instance,
    authorization: Option<&str>,
    method: &str,
    body: Value,
) -> Output {
    let address = format!("127.0.0.1:{}", instance.port);
    let body = body.to_string();
    let header = authorization.map(|a| format!("authorization: {a}"));
    let mut args = vec!["-plaintext", "-d", &body];
    if let Some(header) = &header {
        args.extend(["-H", header]);
    }
    let path = format!("thespian.Control/{method}");
    args.extend([address.as_str(), path.as_str()]);
    grpcurl(&args).await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Calls `thespian.Control/<method>` with `body` and the right token, and
/// returns what it answered; panics if it refused.
async fn authorized(instance: &Instance, method: &str, body: Value) -> String {
    succeeded(&control(instance, Some(&bearer()), method, body).await)
}

/// The state of each listed scenario, by name.
async fn states(instance: &Instance) -> Vec<(String, String)> {
    let listed = authorized(instance, "ListScenarios", json!({})).await;
    let listed: Value = serde_json::from_str(&listed).expect("grpcurl prints JSON");
    listed["scenarios"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_owned(),
                        s["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn unauthenticated(output: &Output) {
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(said.contains("Code: Unauthenticated"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_api_refuses_every_call_without_the_token_and_changes_nothing() {
    let instance = controlled().await;
    let address = format!("127.0.0.1:{}", instance.port);
    let listed = succeeded(&grpcurl(&["-plaintext", &address, "list"]).await);
    assert!(
        listed.lines().any(|l| l.trim() == "thespian.Control"),
        "{listed}"
    );

    let calls = [
        ("ListScenarios", json!({})),
        ("StartScenario", json!({ "name": "db-down" })),
        (
            "StartScenario",
            json!({ "inline": r#"{"name": "x", "scope": "service", "effect": {"hang": true}}"# }),
        ),
        ("StopScenario", json!({ "name": "db-down" })),
        ("DescribeBehaviour", json!({})),
    ];
    let wrong = [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ];
    for authorization in &wrong {
        for (method, body) in &calls {
            unauthenticated(
                &control(&instance, authorization.as_deref(), method, body.clone()).await,
            );
        }
    }
    assert_eq!(
        states(&instance).await,
        [("db-down".to_owned(), "idle".to_owned())]
    );
    instance.call_a().await;

    // A stop refused while the scenario runs leaves it running.
    authorized(&instance, "StartScenario", json!({ "name": "db-down" })).await;
    unauthenticated(
        &control(
            &instance,
            Some("Bearer wrong"),
            "StopScenario",
            json!({ "name": "db-down" }),
        )
        .await,
    );
    assert_eq!(
        states(&instance).await,
        [("db-down".to_owned(), "active".to_owned())]
    );

    // The pretend methods never need the token.
    let refused = instance
        .client()
        .await
        .a(Empty {})
        .await
        .expect_err("db is down");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_started_through_the_control_api_changes_the_next_request() {
    let instance = controlled().await;
    let mut client = instance.client().await;
    client.a(Empty {}).await.expect("A answers before");

    let started = authorized(&instance, "StartScenario", json!({ "name": "db-down" })).await;
    let started: Value = serde_json::from_str(&started).unwrap();
    assert_eq!(started["scenario"]["state"], "active", "{started}");
    assert_eq!(started["scenario"]["effect"], "outage (UNAVAILABLE)");
    let refused = client
        .a(Empty {})
        .await
        .expect_err("the very next request meets it");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("db-down"), "{refused:?}");
    instance
        .wait_for_line(|l| l.contains("scenario `db-down` started"), DEFAULT_WAIT)
        .await;

    let described = authorized(&instance, "DescribeBehaviour", json!({})).await;
    let described: Value = serde_json::from_str(&described).unwrap();
    let a = &described["methods"][0];
    assert_eq!(a["method"], "A");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("sleep `db` 1 ms  <- scenario db-down"),
        "{a}"
    );
    assert_eq!(a["scenarios"], json!(["db-down"]));

    authorized(&instance, "StopScenario", json!({ "name": "db-down" })).await;
    client
        .a(Empty {})
        .await
        .expect("A answers once it is stopped");
    let again = control(
        &instance,
        Some(&bearer()),
        "StopScenario",
        json!({ "name": "db-down" }),
    )
    .await;
    assert!(String::from_utf8_lossy(&again.stderr).contains("Code: NotFound"));

    // One given inline, for a while.
    let inline = json!({ "name": "a-broken", "scope": { "method": "A" },
        "effect": { "failures": [{ "chance": 1, "code": "NOT_FOUND", "when": "before" }] } });
    let body = json!({ "inline": inline.to_string(), "duration": "1h" });
    authorized(&instance, "StartScenario", body).await;
    let refused = client.a(Empty {}).await.expect_err("A is broken");
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let listed = states(&instance).await;
    assert!(
        listed.contains(&("a-broken".to_owned(), "active".to_owned())),
        "{listed:?}"
    );

    let bad =
        json!({ "inline": r#"{"name": "x", "scope": "service", "effect": {"multiply": "lots"}}"# });
    let bad = control(&instance, Some(&bearer()), "StartScenario", bad).await;
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("Code: InvalidArgument") && said.contains("effect.multiply"),
        "{said}"
    );
    let unknown = control(
        &instance,
        Some(&bearer()),
        "StartScenario",
        json!({ "name": "nope" }),
    )
    .await;
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Code: NotFound"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_control_api_is_not_served() {
    let instance = Instance::builder("uncontrolled")
        .config(&config())
        .start()
        .await;
    let address = format!("127.0.0.1:{}", instance.port);
    let listed = succeeded(&grpcurl(&["-plaintext", &address, "list"]).await);
    assert!(!listed.contains("thespian.Control"), "{listed}");
    assert!(listed.contains("thespian.Thespian"), "{listed}");
    let output = control(&instance, Some(&bearer()), "ListScenarios", json!({})).await;
    assert!(!output.status.success());
}

/// Runs `thespian scenario ...` with `env`.
async fn scenario_command(args: &[&str], token: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"));
    crate::support::settings::clear(&mut command);
    command.arg("scenario").args(args);
    if let Some(token) = token {
        command.env("CONTROL_TOKEN", token);
    }
    run_to_exit(command, DEFAULT_WAIT, "thespian scenario").await
}

#[tokio::test(flavor = "multi_thread")]
async fn thespian_scenario_drives_the_control_api() {
    let instance = controlled().await;
    let address = format!("127.0.0.1:{}", instance.port);
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let listed = scenario_command(&["list", &address], Some(TOKEN)).await;
    assert!(listed.status.success(), "{}", err(&listed));
    assert!(
        out(&listed).starts_with("db-down\tidle\tsteps named `db`"),
        "{}",
        out(&listed)
    );

    let started =
        scenario_command(&["start", &address, "db-down", "--for", "1h"], Some(TOKEN)).await;
    assert!(started.status.success(), "{}", err(&started));
    assert!(
        out(&started).contains("db-down\tactive"),
        "{}",
        out(&started)
    );
    let refused = instance.client().await.a(Empty {}).await.expect_err("down");
    assert_eq!(refused.code(), tonic::Code::Unavailable);

    let wrong = scenario_command(&["stop", &address, "db-down"], Some("guess")).await;
    assert!(!wrong.status.success());
    assert!(err(&wrong).contains("UNAUTHENTICATED"), "{}", err(&wrong));
    let missing = scenario_command(&["stop", &address, "db-down"], None).await;
    assert!(err(&missing).contains("CONTROL_TOKEN"), "{}", err(&missing));
    let flag = scenario_command(&["stop", &address, "db-down", "--token", TOKEN], None).await;
    assert!(flag.status.success(), "{}", err(&flag));
    instance.call_a().await;

    let described = scenario_command(&["describe", &address], Some(TOKEN)).await;
    assert!(
        out(&described).contains("sleep `db` 1 ms"),
        "{}",
        out(&described)
    );

    // The token is never shown, not even by --help.
    let mut help = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"));
    crate::support::settings::clear(&mut help);
    help.arg("--help").env("CONTROL_TOKEN", TOKEN);
    let help = run_to_exit(help, DEFAULT_WAIT, "thespian --help").await;
    assert!(out(&help).contains("CONTROL_TOKEN"), "{}", out(&help));
    assert!(!out(&help).contains(TOKEN), "{}", out(&help));
}

#[tokio::test(flavor = "multi_thread")]
async fn thespian_scenario_acts_on_every_instance_of_an_ecosystem_that_declares_it() {
    let declaring = |name: &str| {
        let mut config: Value = serde_json::from_str(&config()).unwrap();
        config["grpc_method_a"]["tracing_name"] = json!(name);
        config
    };
    let front = Instance::builder("front")
        .config(&declaring("front").to_string())
        .env("CONTROL_TOKEN", TOKEN)
        .start()
        .await;
    let back = Instance::builder("back")
        .config(&declaring("back").to_string())
        .env("CONTROL_TOKEN", TOKEN)
        .start()
        .await;
    let bystander = Instance::builder("bystander")
        .config(&json!({ "grpc_method_a": declaring("x")["grpc_method_a"] }).to_string())
        .env("CONTROL_TOKEN", TOKEN)
        .start()
        .await;
    let service = |name: &str, port: u16, mut config: Value| {
        config["name"] = json!(name);
        config["port"] = json!(port);
        config
    };
    let ecosystem = json!({ "services": [
        service("front", front.port, declaring("front")),
        service("back", back.port, declaring("back")),
        service("bystander", bystander.port,
            json!({ "grpc_method_a": declaring("x")["grpc_method_a"] })),
    ] });
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("fleet.json");
    std::fs::write(&file, ecosystem.to_string()).unwrap();
    let file = file.to_str().unwrap();

    let started = scenario_command(&["--ecosystem", file, "start", "db-down"], Some(TOKEN)).await;
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(
        started.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert!(
        said.contains("front (") && said.contains("back ("),
        "{said}"
    );
    assert!(!said.contains("bystander"), "{said}");
    for instance in [&front, &back] {
        let refused = instance.client().await.a(Empty {}).await.expect_err("down");
        assert_eq!(
            refused.code(),
            tonic::Code::Unavailable,
            "{}",
            instance.service_name
        );
    }
    bystander.call_a().await;

    let stopped = scenario_command(&["stop", "db-down", "--ecosystem", file], Some(TOKEN)).await;
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    front.call_a().await;
    back.call_a().await;
    let listed = scenario_command(&["--ecosystem", file, "list"], Some(TOKEN)).await;
    let said = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(said.matches("db-down\tidle").count(), 2, "{said}");
    assert!(said.contains("bystander ("), "{said}");
}
