//! The span count every answer carries (`thespian-spans` and
//! `thespian-spans-by-service`), checked against the spans three real
//! instances actually exported: through retried calls, fallbacks, and
//! answers that are errors.

use std::collections::BTreeMap;

use crate::support::DEFAULT_WAIT;
use crate::support::config::{call, method, sleep_with, start};
use crate::support::instance::trace_id;
use crate::support::otlp::{OtlpReceiver, ReceivedSpan, SpansExt as _};
use serde_json::json;
use thespian::span_count::{BySpans, SPANS_BY_SERVICE_HEADER, SPANS_HEADER};
use tonic::metadata::MetadataMap;

/// What an answer said it made: its total, and by service.
fn reported(headers: &MetadataMap) -> (u64, BTreeMap<String, u64>) {
    let total = headers
        .get(SPANS_HEADER)
        .expect("every answer carries a span count")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let by_service = BySpans::parse(
        headers
            .get(SPANS_BY_SERVICE_HEADER)
            .expect("and the count by service")
            .to_str()
            .unwrap(),
    );
    let by_service = by_service
        .iter()
        .map(|(service, count)| (service.to_owned(), count))
        .collect();
    (total, by_service)
}

/// The spans of a trace, counted by service.
fn by_service(spans: &[&ReceivedSpan]) -> BTreeMap<String, u64> {
    let mut counted = BTreeMap::new();
    for span in spans {
        *counted
            .entry(span.service_name.clone().unwrap_or_default())
            .or_default() += 1;
    }
    counted
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_counts_the_spans_of_its_whole_call_tree() {
    let receiver = OtlpReceiver::start().await;
    // Stock: A fails nine times in ten with UNAVAILABLE, so nearly every
    // order retries it (none of eight doing so is one chance in 10^8), and
    // B always fails.
    let stock = start(
        "count-stock",
        json!({
            "grpc_method_a": method("stock", json!([sleep_with("look up", json!({
                "failure_chance": 0.9, "failure_code": "UNAVAILABLE"
            }))])),
            "grpc_method_b": method("stock", json!([sleep_with("look up", json!({
                "failure_chance": 1.0
            }))])),
        }),
        &receiver,
    )
    .await;
    // Orders: A retries stock's A; B falls back when stock's B fails; C
    // passes stock's failure on.
    let retry = json!({ "retry_policy": {
        "max_attempts": 5, "initial_backoff": "0.01s", "max_backoff": "0.02s",
        "backoff_multiplier": 2, "retryable_status_codes": ["UNAVAILABLE"]
    } });
    let fallback = json!({ "Action": { "Fallback": {
        "tracing_name": "read stock",
        "primary": [call("ask stock", &stock, "B", json!({}))],
        "fallback": [sleep_with("read cache", json!({}))]
    } } });
    let orders = start(
        "count-orders",
        json!({
            "grpc_method_a": method("order", json!([call("ask stock", &stock, "A", retry)])),
            "grpc_method_b": method("order", json!([fallback])),
            "grpc_method_c": method("order", json!([
                call("ask stock", &stock, "B", json!({ "on_failure": "propagate" }))
            ])),
        }),
        &receiver,
    )
    .await;
    // Frontend: each method calls the same method of orders.
    let pass_on = |m| method("front", json!([call("ask orders", &orders, m, json!({}))]));
    let frontend = start(
        "count-frontend",
        json!({ "grpc_method_a": pass_on("A"), "grpc_method_b": pass_on("B"),
                "grpc_method_c": pass_on("C") }),
        &receiver,
    )
    .await;
    let mut client = frontend.client().await;

    let mut answers = Vec::new();
    let mut errors = 0;
    for round in 0..24 {
        let answer = match round % 3 {
            0 => client.a(thespian::proto::Empty {}).await,
            1 => client.b(thespian::proto::Empty {}).await,
            _ => client.c(thespian::proto::Empty {}).await,
        };
        let headers = match answer {
            Ok(answer) => answer.metadata().clone(),
            Err(status) => {
                errors += 1;
                status.metadata().clone()
            }
        };
        answers.push((trace_id(&headers), reported(&headers)));
    }
    assert!(errors >= 8, "every C fails, and so may an A: {errors}");

    let all = receiver
        .wait_for_spans(
            |s| {
                answers
                    .iter()
                    .all(|(id, (total, _))| s.in_trace(id).len() as u64 >= *total)
            },
            DEFAULT_WAIT,
        )
        .await;
    let mut retried = false;
    for (id, (total, reported)) in &answers {
        let trace = all.in_trace(id);
        assert_eq!(trace.len() as u64, *total, "trace {id}");
        assert_eq!(&by_service(&trace), reported, "trace {id}");
        assert_eq!(reported.values().sum::<u64>(), *total);
        // One try at stock is 3 spans there (server, method, sleep).
        retried |= reported.get("count-stock").is_some_and(|&n| n > 3);
    }
    assert!(retried, "some order retried its stock check");
}
