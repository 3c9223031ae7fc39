//! What a request looks like in a tracing backend: span names, the tree of
//! steps under the server span, their attributes, and one trace across two
//! instances. Every span is checked by receiving it over OTLP.

use std::time::Duration;

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{
    Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _, StatusCode,
};
use serde_json::json;
use thespian::proto::Empty;

/// The names of `parent`'s children, sorted, so tests compare tree shapes.
fn child_names(spans: &[ReceivedSpan], parent: &ReceivedSpan) -> Vec<String> {
    let mut names: Vec<String> = spans
        .children_of(parent)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
}

fn sleep(name: &str, duration_ms: u64) -> serde_json::Value {
    json!({ "Sleep": { "tracing_name": name, "duration_ms": duration_ms } })
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_take_the_configured_names_and_nest_as_the_config_does() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_a": {
            "tracing_name": "checkout",
            "operations": [
                { "Action": { "Sleep": {
                    "tracing_name": "load cart", "duration_ms": 20, "failure_chance": 0.0
                } } },
                { "Action": { "Function": {
                    "tracing_name": "charge card",
                    "operations": [ { "Action": sleep("talk to bank", 10) } ]
                } } },
                { "ConcurrentActions": [ sleep("email receipt", 5), sleep("update ledger", 5) ] }
            ]
        }
    });
    let instance = Instance::builder("shop")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let trace_id = trace_id(instance.call_a().await.metadata());
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    let spans = receiver
        .wait_for_trace(&trace_id, |trace| trace.len() >= 7, DEFAULT_WAIT)
        .await;
    assert_eq!(spans.len(), 7, "{spans:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s.service_name.as_deref() == Some("shop"))
    );

    let server = spans.only_named("thespian.Thespian/A");
    assert!(server.is_root());
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.attr_str("rpc.system"), Some("grpc"));
    assert_eq!(server.attr_str("rpc.service"), Some("thespian.Thespian"));
    assert_eq!(server.attr_str("rpc.method"), Some("A"));
    assert_eq!(server.attr_i64("rpc.grpc.status_code"), Some(0));
    assert_ne!(server.status_code, StatusCode::Error);

    assert_eq!(child_names(&spans, server), ["checkout"]);
    let method = spans.only_named("checkout");
    assert_eq!(method.attr_str("_tracing_name"), Some("checkout"));
    assert_eq!(method.attr_str("thespian.action"), Some("function"));
    assert_eq!(method.kind, SpanKind::Internal);
    // An unnamed concurrent group adds no span: its branches hang from the
    // enclosing function, as they did in the original.
    assert_eq!(
        child_names(&spans, method),
        ["charge card", "email receipt", "load cart", "update ledger"]
    );

    let load_cart = spans.only_named("load cart");
    assert_eq!(load_cart.attr_str("thespian.action"), Some("sleep"));
    assert_eq!(load_cart.attr_str("_tracing_name"), Some("load cart"));
    assert_eq!(load_cart.attr_i64("duration_ms"), Some(20));
    assert_eq!(load_cart.attr_f64("failure_chance"), Some(0.0));
    assert!(
        load_cart.duration() >= Duration::from_millis(20),
        "{load_cart}"
    );

    let email = spans.only_named("email receipt");
    assert_eq!(email.attr_i64("duration_ms"), Some(5));
    assert!(
        !email.attributes.contains("failure_chance"),
        "a sleep without a failure chance has no failure_chance attribute: {email}"
    );

    let charge = spans.only_named("charge card");
    assert_eq!(charge.attr_str("thespian.action"), Some("function"));
    assert_eq!(child_names(&spans, charge), ["talk to bank"]);
    assert_eq!(
        spans.only_named("talk to bank").attr_i64("duration_ms"),
        Some(10)
    );

    // Steps run in order: the card is charged after the cart is loaded.
    assert!(charge.start_time_unix_nano >= load_cart.end_time_unix_nano);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unconfigured_method_still_makes_a_server_span() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("idle")
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let response = instance
        .client()
        .await
        .c(Empty {})
        .await
        .expect("C answers");
    let trace_id = trace_id(response.metadata());
    let spans = receiver
        .wait_for_spans(|s| !s.in_trace(&trace_id).is_empty(), DEFAULT_WAIT)
        .await;
    let server = spans.only_named("thespian.Thespian/C");
    assert_eq!(server.trace_id, trace_id);
    assert_eq!(server.attr_str("rpc.method"), Some("C"));
    assert_eq!(server.service_name.as_deref(), Some("idle"));
    assert!(spans.children_of(server).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_continues_the_trace_in_the_called_instance() {
    let receiver = OtlpReceiver::start().await;
    let inventory_config = json!({
        "grpc_method_b": {
            "tracing_name": "reserve stock",
            "operations": [ { "Action": sleep("lock row", 5) } ]
        }
    });
    let inventory = Instance::builder("inventory")
        .config(&inventory_config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let gateway_config = json!({
        "grpc_method_a": {
            "tracing_name": "add to cart",
            "operations": [ { "Action": { "CallService": {
                "tracing_name": "ask inventory",
                "service_address": "http://127.0.0.1",
                "service_port": inventory.port.to_string(),
                "grpc_method": "B"
            } } } ]
        }
    });
    let gateway = Instance::builder("gateway")
        .config(&gateway_config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let trace_id = trace_id(gateway.call_a().await.metadata());
    let spans = receiver
        .wait_for_trace(
            &trace_id,
            |trace| {
                trace.iter().any(|s| s.name == "lock row")
                    && trace.iter().any(|s| s.name == "thespian.Thespian/A")
            },
            DEFAULT_WAIT,
        )
        .await;

    let call = spans.only_named("ask inventory");
    assert_eq!(call.service_name.as_deref(), Some("gateway"));
    assert_eq!(call.kind, SpanKind::Client);
    assert_eq!(call.parent_span_id, spans.only_named("add to cart").span_id);
    assert_eq!(call.attr_str("thespian.action"), Some("call"));
    assert_eq!(call.attr_str("_tracing_name"), Some("ask inventory"));
    assert_eq!(
        call.attr_str("thespian.target"),
        Some(inventory.address.as_str())
    );
    assert_eq!(call.attr_str("rpc.system"), Some("grpc"));
    assert_eq!(call.attr_str("rpc.service"), Some("thespian.Thespian"));
    assert_eq!(call.attr_str("rpc.method"), Some("B"));
    assert_eq!(call.attr_i64("rpc.grpc.status_code"), Some(0));
    assert_eq!(call.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(
        call.attr_i64("server.port"),
        Some(i64::from(inventory.port))
    );

    // W3C traceparent carried the context: the called instance's server
    // span is a child of the caller's client span, in the same trace.
    let served = spans.only_named("thespian.Thespian/B");
    assert_eq!(served.service_name.as_deref(), Some("inventory"));
    assert_eq!(served.kind, SpanKind::Server);
    assert_eq!(served.parent_span_id, call.span_id);
    assert_eq!(served.trace_id, trace_id);
    assert_eq!(child_names(&spans, served), ["reserve stock"]);
    assert!(
        served.start_time_unix_nano >= call.start_time_unix_nano
            && served.end_time_unix_nano <= call.end_time_unix_nano,
        "the call lasts as long as the work it waits for:\n{call}\n{served}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sleeps_overlap_in_time() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_a": {
            "tracing_name": "fan out",
            "operations": [ { "ConcurrentActions": [ sleep("left", 200), sleep("right", 200) ] } ]
        }
    });
    let instance = Instance::builder("fan")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let trace_id = trace_id(instance.call_a().await.metadata());
    let spans = receiver
        .wait_for_spans(|s| s.in_trace(&trace_id).len() >= 4, DEFAULT_WAIT)
        .await;
    let left = spans.only_named("left");
    let right = spans.only_named("right");
    let parent = spans.only_named("fan out");
    for branch in [left, right] {
        assert_eq!(branch.parent_span_id, parent.span_id);
        assert!(branch.duration() >= Duration::from_millis(200), "{branch}");
    }
    let latest_start = left.start_time_unix_nano.max(right.start_time_unix_nano);
    let earliest_end = left.end_time_unix_nano.min(right.end_time_unix_nano);
    assert!(
        latest_start < earliest_end,
        "the branches do not overlap:\n{left}\n{right}"
    );
    assert!(
        parent.duration() >= Duration::from_millis(200)
            && parent.duration() < Duration::from_millis(400),
        "the group should last about as long as its longest branch, not the sum: {parent}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_span_names_match_the_original_while_tracing_name_keeps_the_story() {
    let receiver = OtlpReceiver::start().await;
    let downstream = Instance::builder("downstream")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let config = json!({
        "grpc_method_b": {
            "tracing_name": "handle b",
            "operations": [
                { "Action": sleep("think", 1) },
                { "Action": { "Function": {
                    "tracing_name": "helper",
                    "operations": [ { "Action": { "CallService": {
                        "tracing_name": "phone a friend",
                        "service_address": "127.0.0.1",
                        "service_port": downstream.port,
                        "grpc_method": "A"
                    } } } ]
                } } }
            ]
        }
    });
    let instance = Instance::builder("generic")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .env("SPAN_NAMES", "generic")
        .start()
        .await;

    let response = instance
        .client()
        .await
        .b(Empty {})
        .await
        .expect("B answers");
    let trace_id = trace_id(response.metadata());
    let spans = receiver
        .wait_for_spans(
            |s| {
                s.in_trace(&trace_id)
                    .iter()
                    .filter(|s| s.service_name.as_deref() == Some("generic"))
                    .count()
                    >= 5
            },
            DEFAULT_WAIT,
        )
        .await;
    let mut named: Vec<(String, String)> = spans
        .in_trace(&trace_id)
        .iter()
        .filter(|s| s.service_name.as_deref() == Some("generic"))
        .map(|s| {
            (
                s.name.clone(),
                s.attr_str("_tracing_name").unwrap_or("-").to_owned(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("Function.enact".to_owned(), "handle b".to_owned()),
            ("Function.enact".to_owned(), "helper".to_owned()),
            ("call_service".to_owned(), "phone a friend".to_owned()),
            ("sleep".to_owned(), "think".to_owned()),
            ("thespian.Thespian/B".to_owned(), "-".to_owned()),
        ]
    );
}

/// The server spans of method A received so far that carry `code`.
fn a_spans_with_code(spans: &[ReceivedSpan], code: i64) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| {
            s.name == "thespian.Thespian/A" && s.attr_i64("rpc.grpc.status_code") == Some(code)
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_cut_off_before_it_answers_says_why_on_its_server_span() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_a": {
            "tracing_name": "slow",
            "operations": [ { "Action": sleep("wait a minute", 60_000) } ]
        }
    });
    let instance = Instance::builder("cut-off")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let mut client = instance.client().await;

    // A deadline the sleep outlasts, sent as `grpc-timeout`. The server
    // drops the request when it passes; tonic's client gives up at the
    // same moment, so which of them the caller hears first is a race.
    let mut request = tonic::Request::new(Empty {});
    request.set_timeout(Duration::from_millis(300));
    let status = client.a(request).await.unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    let spans = receiver
        .wait_for_spans(|s| !a_spans_with_code(s, 4).is_empty(), DEFAULT_WAIT)
        .await;
    let timed_out = &a_spans_with_code(&spans, 4)[0];
    assert_eq!(timed_out.status_code, StatusCode::Error, "{timed_out:?}");
    assert!(
        timed_out
            .events
            .iter()
            .any(|e| e.name.contains("deadline passed")),
        "{timed_out:?}"
    );

    // A caller that walks away without a deadline: its stream is reset,
    // and the span says CANCELLED, which is not an error of the server's.
    let walked_away = tokio::time::timeout(Duration::from_millis(300), client.a(Empty {})).await;
    assert!(
        walked_away.is_err(),
        "the sleep outlasts the caller's patience"
    );
    let spans = receiver
        .wait_for_spans(|s| !a_spans_with_code(s, 1).is_empty(), DEFAULT_WAIT)
        .await;
    let cancelled = &a_spans_with_code(&spans, 1)[0];
    assert_ne!(cancelled.status_code, StatusCode::Error, "{cancelled:?}");
    assert!(
        cancelled
            .events
            .iter()
            .any(|e| e.name.contains("cancelled")),
        "{cancelled:?}"
    );
    // The request whose deadline passed answered DEADLINE_EXCEEDED itself,
    // and said so; the one whose caller walked away was cut off.
    for (trace_id, says) in [
        (&timed_out.trace_id, "deadline passed"),
        (&cancelled.trace_id, "cut off before it answered"),
    ] {
        instance
            .wait_for_line(
                |line| line.contains(says) && line.contains(trace_id.as_str()),
                DEFAULT_WAIT,
            )
            .await;
    }
}
