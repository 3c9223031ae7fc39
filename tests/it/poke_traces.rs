//! `thespian poke` as a traced load generator: its client spans and the
//! context they carry, weighted targets and shaped traffic, and `--verify`
//! reading traces back from a query API in Jaeger's and Tempo's formats
//! that really lost some of them.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::poke::{poke_command, summary};
use crate::support::{
    DEFAULT_WAIT,
    instance::Instance,
    otlp::{OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _},
    query_api::QueryApi,
};

/// Runs `thespian poke ARGS` with its spans sent to `receiver`, to the end.
async fn traced_poke(receiver: &OtlpReceiver, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut command = poke_command(args);
    command
        .env("OTEL_BACKEND_ADDRESS", receiver.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("poke ends on its own")
        .expect("run thespian poke");
    summary(&output)
}

/// A frontend whose A calls orders' A, and orders, which does nothing
/// but answer.
async fn chain(receiver: &OtlpReceiver, prefix: &str) -> (Instance, Instance) {
    let orders = Instance::builder(&format!("{prefix}-orders"))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let config = json!({ "grpc_method_a": { "tracing_name": "front", "operations": [
        { "Action": { "CallService": { "tracing_name": "ask orders",
            "service_address": "127.0.0.1", "service_port": orders.port, "grpc_method": "A" } } }
    ] } });
    let frontend = Instance::builder(&format!("{prefix}-frontend"))
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    (frontend, orders)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_a_client_span_that_the_instance_continues() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("traced")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let summary = traced_poke(
        &receiver,
        &[("POKE_SERVICE_NAME", "load-gen")],
        &[&instance.address, "B", "--requests", "10", "--json"],
    )
    .await;
    assert_eq!(summary["requests"], 10);

    let spans = receiver
        .wait_for_spans(
            |s| {
                s.iter()
                    .filter(|s| s.service_name.as_deref() == Some("load-gen"))
                    .count()
                    >= 10
                    && s.named("thespian.Thespian/B").len() >= 20
            },
            DEFAULT_WAIT,
        )
        .await;
    let clients: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.service_name.as_deref() == Some("load-gen"))
        .collect();
    assert_eq!(clients.len(), 10);
    for client in &clients {
        assert_eq!(client.kind, SpanKind::Client);
        assert_eq!(client.name, "thespian.Thespian/B");
        assert!(client.is_root());
        // What a gRPC client span carries, and nothing of `tracing`'s own.
        let keys: Vec<&str> = client.attributes.0.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "rpc.grpc.status_code",
                "rpc.method",
                "rpc.service",
                "rpc.system",
                "server.address",
                "server.port"
            ]
        );
        let served: Vec<&ReceivedSpan> = spans
            .in_trace(&client.trace_id)
            .into_iter()
            .filter(|s| s.service_name.as_deref() == Some("traced"))
            .collect();
        assert_eq!(served.len(), 1, "one server span per client span");
        assert_eq!(served[0].parent_span_id, client.span_id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sampler_setting_decides_which_traces_poke_records() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("unsampled")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    // Poke records none; the instance follows its caller's decision (its
    // default sampler is parent-based), so nothing is recorded anywhere,
    // while a later request made without poke is.
    traced_poke(
        &receiver,
        &[("OTEL_TRACES_SAMPLER", "always_off")],
        &[&instance.address, "A", "--requests", "5", "--json"],
    )
    .await;
    let answer = instance.call_a().await;
    let marker = crate::support::instance::trace_id(answer.metadata());
    let spans = receiver
        .wait_for_spans(|s| !s.in_trace(&marker).is_empty(), DEFAULT_WAIT)
        .await;
    // The marker's export came after poke's would have: poke flushes before it exits.
    assert_eq!(spans.len(), 1, "{}", receiver.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_targets_share_the_requests_by_their_weights() {
    let receiver = OtlpReceiver::start().await;
    let heavy = Instance::builder("heavy").start().await;
    let light = Instance::builder("light").start().await;
    let summary = traced_poke(
        &receiver,
        &[],
        &[
            "--target",
            &format!("{}:A=3", heavy.address),
            "--target",
            &format!("{}:c", light.address),
            "--requests",
            "40",
            "--shape",
            "steps:400@1m",
            "--json",
        ],
    )
    .await;
    assert_eq!(summary["requests"], 40);
    let targets = summary["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["method"], "A");
    assert_eq!(targets[0]["weight"], 3);
    assert_eq!(targets[0]["sent"], 30);
    assert_eq!(targets[1]["method"], "C");
    assert_eq!(targets[1]["sent"], 10);
    assert_eq!(summary["shape"], "steps:400@1m");
}

/// Which traces the query API loses: all of trace ids ending in 0 to 3;
/// the orders spans of those ending in 4 to 7; nothing of the rest.
fn lose(span: &ReceivedSpan) -> bool {
    match span.trace_id.chars().last().unwrap() {
        '0'..='3' => true,
        '4'..='7' => span
            .service_name
            .as_deref()
            .is_some_and(|s| s.ends_with("-orders")),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_the_traces_and_spans_a_backend_lost() {
    let receiver = Arc::new(OtlpReceiver::start().await);
    let (frontend, _orders) = chain(&receiver, "verify").await;
    let api = QueryApi::start(Arc::clone(&receiver), Arc::new(lose)).await;

    for (backend, requests) in [(api.jaeger(), 48), (api.tempo(), 32)] {
        let before: BTreeSet<String> = poke_traces(&receiver.spans());
        let summary = traced_poke(
            &receiver,
            &[],
            &[
                &frontend.address,
                "A",
                "--requests",
                &requests.to_string(),
                "--verify",
                &backend,
                "--verify-wait",
                "3s",
                "--json",
            ],
        )
        .await;
        let traces: Vec<String> = poke_traces(&receiver.spans())
            .difference(&before)
            .cloned()
            .collect();
        assert_eq!(traces.len(), requests, "{summary}");
        let ending = |range: std::ops::RangeInclusive<char>| {
            traces
                .iter()
                .filter(|id| range.contains(&id.chars().last().unwrap()))
                .count() as u64
        };
        let (missing, incomplete) = (ending('0'..='3'), ending('4'..='7'));
        let verify = &summary["verify"];
        assert_eq!(verify["backend"], backend.as_str());
        assert_eq!(verify["checked"], requests as u64, "{verify}");
        assert_eq!(verify["missing"], missing, "{verify}");
        assert_eq!(verify["incomplete"], incomplete, "{verify}");
        assert_eq!(verify["complete"], requests as u64 - missing - incomplete);
        // Each trace: poke's span, the frontend's three (server, method,
        // call), orders' one.
        assert_eq!(verify["spans_expected"], 5 * requests as u64);
        assert_eq!(verify["spans_missing"], 5 * missing + incomplete);
        assert_eq!(
            verify["missing_by_service"],
            json!({ "poke": missing, "verify-frontend": 3 * missing,
                    "verify-orders": missing + incomplete })
        );
        let delay = &verify["ingestion_delay_ms"];
        assert!(delay["p50"].as_f64().unwrap() >= 100.0, "{verify}");
        assert!(delay["p50"].as_f64().unwrap() <= delay["p99"].as_f64().unwrap());
        assert_eq!(verify["unchecked"], 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_checks_only_the_sample_it_is_asked_for() {
    let receiver = Arc::new(OtlpReceiver::start().await);
    let instance = Instance::builder("sampled")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let api = QueryApi::start(Arc::clone(&receiver), Arc::new(|_: &ReceivedSpan| false)).await;
    let mut command = poke_command(&[
        &instance.address,
        "A",
        "--requests",
        "20",
        "--verify",
        &api.jaeger(),
        "--verify-sample",
        "5",
    ]);
    command
        .env("OTEL_BACKEND_ADDRESS", receiver.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("poke ends")
        .expect("run poke");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("5 traces checked: 5 complete, 0 incomplete, 0 missing"),
        "{text}"
    );
    assert!(text.contains("spans missing: none of 10"), "{text}");
    assert!(text.contains("15 traces not checked"), "{text}");
    assert!(text.contains("ingestion delay: p50"), "{text}");
}

#[tokio::test]
async fn verify_without_traces_is_refused() {
    let mut command = poke_command(&[
        "localhost:1",
        "A",
        "--no-traces",
        "--verify",
        "jaeger=http://localhost:16686",
    ]);
    let output = command.output().await.expect("run poke");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--no-traces"), "{stderr}");
}

/// The traces poke's client spans started.
fn poke_traces(spans: &[ReceivedSpan]) -> BTreeSet<String> {
    spans
        .iter()
        .filter(|s| s.service_name.as_deref() == Some("poke"))
        .map(|s| s.trace_id.clone())
        .collect()
}
