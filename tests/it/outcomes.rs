//! How steps go wrong the way real dependencies do, end to end over gRPC:
//! errors with chosen codes before or after the wait, hangs cut off by the
//! caller, how a failed call shows upstream, optional calls and fallbacks.
//! The same behaviour is written once as JSON and once as Rhai, and both
//! must give the same statuses and spans.

use std::time::Duration;

use crate::support::DEFAULT_WAIT;
use crate::support::config::sleep_with;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{
    Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _, StatusCode,
};
use serde_json::{Value, json};
use thespian::proto::Empty;

/// The two ways to describe the same behaviour.
#[derive(Debug, Clone, Copy)]
enum FrontEnd {
    Json,
    Rhai,
}

fn call(name: &str, port: u16, extra: Value) -> Value {
    let mut call = json!({
        "tracing_name": name, "service_address": "127.0.0.1",
        "service_port": port, "grpc_method": "B"
    });
    call.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Action": { "CallService": call } })
}

fn method(name: &str, front: FrontEnd, operations: Value, script: &str) -> Value {
    match front {
        FrontEnd::Json => json!({ "tracing_name": name, "operations": operations }),
        FrontEnd::Rhai => json!({ "tracing_name": name, "script_source": script }),
    }
}

/// The dependency: B fails fast with UNAVAILABLE, C hangs, A fails with
/// NOT_FOUND and a message of its own.
fn inventory(front: FrontEnd) -> String {
    let refused = json!({ "failures": [
        { "chance": 1.0, "code": "UNAVAILABLE", "message": "replica down", "when": "before" }
    ] });
    json!({
        "grpc_method_a": method("find order", front,
            json!([sleep_with("coin", json!({
                "failure_chance": 1, "failure_code": "not_found", "failure_message": "no such order"
            }))]),
            r#"fail_with_chance("coin", 1.0, #{ code: "not_found", message: "no such order" });"#),
        "grpc_method_b": method("lookup", front,
            json!([sleep_with("lookup stock", refused)]),
            r#"sleep("lookup stock", 1, #{ failures: [
                #{ chance: 1.0, code: "UNAVAILABLE", message: "replica down", when: "before" }
            ] });"#),
        "grpc_method_c": method("wait on stock", front,
            json!([sleep_with("stuck", json!({ "failures": [{ "chance": 1, "hang": true }] }))]),
            r#"sleep("stuck", 1, #{ failures: [#{ chance: 1, hang: true }] });"#),
    })
    .to_string()
}

/// The caller: A falls back to its database and does without its
/// recommendations; B passes the dependency's code on; C maps it.
fn shop(front: FrontEnd, port: u16) -> String {
    let target = format!("127.0.0.1:{port}");
    let fallback = json!({ "Action": { "Fallback": {
        "tracing_name": "read price",
        "primary": [call("ask cache", port, json!({}))],
        "fallback": [sleep_with("read database", json!({}))]
    } } });
    json!({
        "grpc_method_a": method("show product", front,
            json!([fallback, call("recommend", port, json!({ "optional": true }))]),
            &format!(r#"
                fallback("read price", || call("ask cache", "{target}", "B"),
                    || sleep("read database", 1));
                call("recommend", "{target}", "B", #{{ optional: true }});"#)),
        "grpc_method_b": method("pass on", front,
            json!([call("pass on", port, json!({ "on_failure": "propagate" }))]),
            &format!(r#"call("pass on", "{target}", "B", #{{ on_failure: "propagate" }});"#)),
        "grpc_method_c": method("map", front,
            json!([call("map", port, json!({ "on_failure": 8 }))]),
            &format!(r#"call("map", "{target}", "B", #{{ on_failure: "RESOURCE_EXHAUSTED" }});"#)),
    })
    .to_string()
}

/// The status code each error event on `span` carries.
fn error_events(span: &ReceivedSpan) -> Vec<Option<i64>> {
    span.events
        .iter()
        .filter(|e| e.attr_str("level") == Some("ERROR"))
        .map(|e| e.attr_i64("rpc.grpc.status_code"))
        .collect()
}

/// Waits for the whole trace of a request to `method`, which passes
/// through `servers` instances.
async fn trace_of(
    receiver: &OtlpReceiver,
    trace_id: &str,
    method: &str,
    servers: usize,
) -> Vec<ReceivedSpan> {
    let server = format!("thespian.Thespian/{method}");
    receiver
        .wait_for_trace(
            trace_id,
            |trace| {
                trace
                    .iter()
                    .any(|s| s.name == server && s.kind == SpanKind::Server && s.is_root())
                    && trace.iter().filter(|s| s.kind == SpanKind::Server).count() >= servers
            },
            DEFAULT_WAIT,
        )
        .await
}

fn server_code(trace: &[ReceivedSpan], service: &str) -> Option<i64> {
    trace
        .iter()
        .find(|s| s.kind == SpanKind::Server && s.service_name.as_deref() == Some(service))
        .and_then(|s| s.attr_i64("rpc.grpc.status_code"))
}

async fn check(front: FrontEnd) {
    let receiver = OtlpReceiver::start().await;
    let inventory = Instance::builder(&format!("inventory-{front:?}"))
        .config(&inventory(front))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let shop_name = format!("shop-{front:?}");
    let shop = Instance::builder(&shop_name)
        .config(&shop(front, inventory.port))
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .start()
        .await;
    let inventory_name = inventory.service_name.clone();
    let mut client = inventory.client().await;

    // A chosen code and message, after the wait.
    let status = client.a(Empty {}).await.expect_err("A fails");
    assert_eq!(
        status.code(),
        tonic::Code::NotFound,
        "{front:?}: {status:?}"
    );
    assert!(status.message().contains("no such order"), "{status:?}");
    let trace = trace_of(&receiver, &trace_id(status.metadata()), "A", 1).await;
    assert_eq!(server_code(&trace, &inventory_name), Some(5), "{trace:#?}");

    // A fast failure before the wait, with the code on the event and spans.
    let status = client.b(Empty {}).await.expect_err("B fails");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "{front:?}: {status:?}"
    );
    assert!(status.message().contains("replica down"), "{status:?}");
    let trace = trace_of(&receiver, &trace_id(status.metadata()), "B", 1).await;
    let lookup = trace.only_named("lookup stock");
    assert_eq!(lookup.status_code, StatusCode::Error, "{lookup}");
    assert_eq!(error_events(lookup), [Some(14)], "{lookup}");
    assert_eq!(lookup.attr_str("thespian.outcome"), Some("error"));
    assert_eq!(server_code(&trace, &inventory_name), Some(14));

    // The shop survives its dependency: a fallback and an optional call.
    let mut shop_client = shop.client().await;
    let answer = shop_client.a(Empty {}).await.expect("A survives");
    let trace = trace_of(&receiver, &trace_id(answer.metadata()), "A", 3).await;
    let read = trace.only_named("read price");
    assert_ne!(read.status_code, StatusCode::Error, "{read}");
    assert_eq!(read.attr_str("thespian.action"), Some("fallback"));
    assert_eq!(read.attr_str("thespian.fallback.path"), Some("fallback"));
    assert_eq!(
        read.attr_i64("thespian.fallback.primary_status_code"),
        Some(13)
    );
    let cache = trace.only_named("ask cache");
    assert_eq!(cache.status_code, StatusCode::Error, "{cache}");
    assert_eq!(error_events(cache), [Some(13)], "{cache}");
    assert_eq!(cache.attr_i64("rpc.grpc.status_code"), Some(14));
    assert_eq!(cache.parent_span_id, read.span_id);
    let database = trace.only_named("read database");
    assert_eq!(database.parent_span_id, read.span_id);
    let recommend = trace.only_named("recommend");
    assert_eq!(recommend.status_code, StatusCode::Error, "{recommend}");
    assert_eq!(recommend.attr_bool("thespian.optional"), Some(true));
    assert_eq!(server_code(&trace, &shop_name), Some(0), "{trace:#?}");
    let errors: usize = trace
        .iter()
        .filter(|s| s.service_name.as_deref() == Some(shop_name.as_str()))
        .map(|s| error_events(s).len())
        .sum();
    assert_eq!(
        errors, 2,
        "only the two calls that failed report it: {trace:#?}"
    );

    // Propagated, and mapped.
    for (request, code) in [
        ("B", tonic::Code::Unavailable),
        ("C", tonic::Code::ResourceExhausted),
    ] {
        let status = match request {
            "B" => shop_client.b(Empty {}).await,
            _ => shop_client.c(Empty {}).await,
        }
        .expect_err("the call fails");
        assert_eq!(status.code(), code, "{front:?} {request}: {status:?}");
        assert!(status.message().contains("replica down"), "{status:?}");
        let trace = trace_of(&receiver, &trace_id(status.metadata()), request, 2).await;
        assert_eq!(server_code(&trace, &shop_name), Some(code as i64));
        assert_eq!(server_code(&trace, &inventory_name), Some(14));
    }

    // The request metrics count each answer under its real code.
    let code_of = |method: &str, metrics: &[crate::support::otlp::ReceivedMetric]| {
        metrics
            .iter()
            .rev()
            .find(|m| {
                m.name == "rpc.server.call.duration"
                    && m.service_name.as_deref() == Some(shop_name.as_str())
            })
            .and_then(|m| m.point_with(&[("rpc.method", method)]).cloned())
            .and_then(|p| p.attributes.i64("rpc.grpc.status_code"))
    };
    let metrics = receiver
        .wait_for_metrics(|m| code_of("C", m).is_some(), DEFAULT_WAIT)
        .await;
    assert_eq!(code_of("A", &metrics), Some(0));
    assert_eq!(code_of("B", &metrics), Some(14));
    assert_eq!(code_of("C", &metrics), Some(8));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_failures_show_their_codes_upstream_and_fallbacks_survive_them() {
    check(FrontEnd::Json).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rhai_failures_give_the_same_statuses_and_spans_as_json() {
    check(FrontEnd::Rhai).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hang_answers_only_when_its_caller_gives_up() {
    let receiver = OtlpReceiver::start().await;
    let inventory = Instance::builder("stuck-inventory")
        .config(&inventory(FrontEnd::Json))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let mut client = inventory.client().await;

    // With a deadline, the server gives up at it and says DEADLINE_EXCEEDED.
    // (tonic's client keeps the same deadline and reports its own timer
    // as CANCELLED when it fires first.)
    let mut request = tonic::Request::new(Empty {});
    request
        .metadata_mut()
        .insert("grpc-timeout", "300m".parse().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(20), client.c(request))
        .await
        .expect("the deadline ends the hang")
        .expect_err("a hang never answers");
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    let spans = receiver
        .wait_for_spans(|s| !s.named("thespian.Thespian/C").is_empty(), DEFAULT_WAIT)
        .await;
    let server = spans.named("thespian.Thespian/C")[0];
    assert_eq!(server.attr_i64("rpc.grpc.status_code"), Some(4), "{server}");
    assert_eq!(server.status_code, StatusCode::Error, "{server}");
    let stuck = spans.named("stuck")[0];
    assert_eq!(stuck.attr_str("thespian.outcome"), Some("hang"), "{stuck}");

    // A caller whose call times out hears DEADLINE_EXCEEDED, passed on.
    let port = inventory.port;
    let config = json!({ "grpc_method_a": { "tracing_name": "wait", "operations": [
        { "Action": { "CallService": {
            "tracing_name": "ask stuck", "service_address": "127.0.0.1", "service_port": port,
            "grpc_method": "C", "on_failure": "propagate"
        } } }
    ] } });
    let shop = Instance::builder("patient-shop")
        .config(&config.to_string())
        .env("CALL_TIMEOUT_MS", "300")
        .start()
        .await;
    let status = tokio::time::timeout(Duration::from_secs(20), shop.client().await.a(Empty {}))
        .await
        .expect("the call timeout ends the hang")
        .expect_err("A fails");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // Without one, the request is dropped, and its spans end, when the
    // caller goes away: nothing is left behind.
    let gone = tokio::time::timeout(Duration::from_millis(300), client.c(Empty {})).await;
    assert!(gone.is_err(), "a hang never answers: {gone:?}");
    let spans = receiver
        .wait_for_spans(
            |s| {
                s.named("thespian.Thespian/C")
                    .iter()
                    .any(|s| s.attr_i64("rpc.grpc.status_code") == Some(1))
            },
            DEFAULT_WAIT,
        )
        .await;
    let cancelled = spans
        .named("thespian.Thespian/C")
        .into_iter()
        .find(|s| s.attr_i64("rpc.grpc.status_code") == Some(1));
    assert!(
        cancelled.is_some(),
        "the server span says CANCELLED: {spans:#?}"
    );
    client
        .b(Empty {})
        .await
        .expect_err("B still answers, with its failure");
}
