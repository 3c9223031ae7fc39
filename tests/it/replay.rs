//! Drawn latencies and `THESPIAN_SEED`, end to end: a request sent with
//! the same trace id to instances with the same seed plays out the same way
//! (the same drawn durations, failures, outcomes of a `failures` list,
//! fallback paths and attribute values), a different
//! trace id plays out otherwise, and a script's `sleep` draws as the
//! config's does.

use crate::support::DEFAULT_WAIT;
use crate::support::instance::Instance;
use crate::support::otlp::{Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _};
use serde_json::json;
use thespian::proto::Empty;

/// The seed every instance here is started with.
const SEED: &str = "1414";

/// A trace id each request here continues, by the last hex digit.
fn trace_id(n: u8) -> String {
    format!("4bf92f3577b34da6a3ce929d0e0e47{n:02x}")
}

/// Calls `method` ("A" or "B") on `instance` as part of trace `trace`,
/// whether it answers OK or fails.
async fn call_in_trace(instance: &Instance, method: &str, trace: &str) {
    let mut request = tonic::Request::new(Empty {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    let mut client = instance.client().await;
    let _answer = match method {
        "A" => client.a(request).await,
        _ => client.b(request).await,
    };
}

/// The spans of `trace` once its `count` server spans have arrived.
async fn trace(receiver: &OtlpReceiver, trace: &str, count: usize) -> Vec<ReceivedSpan> {
    receiver
        .wait_for_trace(
            trace,
            |spans| spans.iter().filter(|s| s.kind == SpanKind::Server).count() == count,
            DEFAULT_WAIT,
        )
        .await
}

/// What a trace's sleeps drew and how each step ended (with the outcome a
/// `failures` list rolled, or the path a fallback took), by span name.
fn played(spans: &[ReceivedSpan]) -> Vec<(String, Option<String>, String)> {
    let mut played: Vec<_> = spans
        .iter()
        .filter(|s| s.kind != SpanKind::Server)
        .map(|s| {
            let drawn = s.attr_f64("thespian.duration_ms").map(|ms| format!("{ms}"));
            let outcome = (s.attr_str("thespian.outcome"))
                .or(s.attr_str("thespian.fallback.path"))
                .unwrap_or("as written");
            (
                s.name.clone(),
                drawn,
                format!("{:?} {outcome}", s.status_code),
            )
        })
        .collect();
    played.sort();
    played
}

/// What a trace's spans drew for their attributes, by span name.
fn attributes_drawn(spans: &[ReceivedSpan]) -> Vec<(String, Option<i64>, Option<String>)> {
    let mut drawn: Vec<_> = spans
        .iter()
        .filter(|s| s.attr_i64("n").is_some())
        .map(|s| {
            (
                s.name.clone(),
                s.attr_i64("n"),
                s.attr_str("tier").map(str::to_owned),
            )
        })
        .collect();
    drawn.sort();
    drawn
}

/// A method that draws from every shape at once, each with a coin-flip
/// failure, and attribute values on its server span and one sleep, beside
/// sleeps that roll a `failures` list (a slow answer's extra drawn too) and
/// a fallback whose primary may fail; and a script that rolls `random()`
/// and draws a lognormal.
fn config() -> String {
    let sleep = |name: &str, duration: serde_json::Value| json!({ "Sleep": { "tracing_name": name, "duration": duration, "failure_chance": 0.5 } });
    let drawn = json!({
        "n": { "int_range": [1, 1_000_000_000] },
        "tier": { "one_of": [{ "value": "gold" }, { "value": "silver" }, { "value": "bronze" }] }
    });
    let flaky = |name: &str| {
        json!({ "Sleep": { "tracing_name": name, "duration_ms": 1, "failures": [
        { "chance": 0.3, "code": "UNAVAILABLE", "when": "before" },
        { "chance": 0.3, "slow": { "lognormal": { "median": 2, "p99": 8 } } },
        { "chance": 0.3, "code": 14 }
    ] } })
    };
    let fallback = json!({ "Fallback": { "tracing_name": "fall back",
        "primary": [{ "Action": sleep("primary", json!("1ms")) }],
        "fallback": [{ "Action": sleep("fallback", json!({ "uniform": { "min": 1, "max": 3 } })) }]
    } });
    let mut uniform = sleep("uniform", json!({ "uniform": { "min": 1, "max": "6ms" } }));
    uniform["Sleep"]["attributes"] = drawn.clone();
    json!({
        "grpc_method_a": { "tracing_name": "shapes", "attributes": drawn, "operations": [
            { "ConcurrentActions": [
                sleep("lognormal", json!({ "lognormal": { "median": 2, "p99": 8 } })),
                uniform,
                sleep("normal", json!({ "normal": { "mean": 3, "stddev": 1 } })),
                sleep("percentiles", json!({ "percentiles": { "p50": 2, "p90": 5 } })),
                sleep("weighted", json!({ "weighted": [
                    { "value": 1, "weight": 1 }, { "value": "4ms", "weight": 1 }
                ] })),
                flaky("flaky one"),
                flaky("flaky two"),
                flaky("flaky three"),
                fallback,
            ] }
        ] },
        "grpc_method_b": { "tracing_name": "scripted", "script_source": r#"
            sleep("rolled", random() * 5.0);
            concurrently([|| sleep("tail", #{ lognormal: #{ median: 2, p99: 8 } }), || sleep(1)]);
            sleep("flaky script", 1, #{ failures: [
                #{ chance: 0.5, slow: #{ uniform: #{ min: 1, max: "4ms" } } },
                #{ chance: 0.5, code: "UNAVAILABLE", when: "before" },
            ] });
        "# }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_and_trace_id_replay_the_same_draws_and_failures() {
    let receivers = [OtlpReceiver::start().await, OtlpReceiver::start().await];
    let mut instances = Vec::new();
    for receiver in &receivers {
        let instance = Instance::builder("replayed")
            .env("THESPIAN_SEED", SEED)
            .config(&config())
            .otlp(&receiver.endpoint())
            .start()
            .await;
        instances.push(instance);
    }
    let (same, other) = (trace_id(1), trace_id(2));
    for instance in &instances {
        call_in_trace(instance, "A", &same).await;
        call_in_trace(instance, "B", &same).await;
    }
    call_in_trace(&instances[0], "A", &other).await;
    call_in_trace(&instances[0], "B", &other).await;

    let first = played(&trace(&receivers[0], &same, 2).await);
    let second = played(&trace(&receivers[1], &same, 2).await);
    assert_eq!(first, second, "the same trace id plays out the same way");
    let rolled = first
        .iter()
        .filter(|(name, _, ended)| name.starts_with("flaky") && !ended.ends_with("as written"))
        .count();
    assert!(rolled >= 2, "some `failures` outcomes came up: {first:?}");
    let first_attributes = attributes_drawn(&trace(&receivers[0], &same, 2).await);
    assert_eq!(
        first_attributes,
        attributes_drawn(&trace(&receivers[1], &same, 2).await),
        "the same trace id draws the same attribute values"
    );
    assert_eq!(first_attributes.len(), 2, "{first_attributes:?}");
    for name in [
        "lognormal",
        "uniform",
        "normal",
        "percentiles",
        "weighted",
        "rolled",
        "tail",
    ] {
        assert!(
            first
                .iter()
                .any(|(n, drawn, _)| n == name && drawn.is_some()),
            "{name} drew a duration: {first:?}"
        );
    }

    let otherwise = played(&trace(&receivers[0], &other, 2).await);
    let draws = |played: &[(String, Option<String>, String)]| -> Vec<Option<String>> {
        played.iter().map(|(_, drawn, _)| drawn.clone()).collect()
    };
    let differ = draws(&first)
        .iter()
        .zip(draws(&otherwise))
        .filter(|(a, b)| **a != *b)
        .count();
    assert!(
        differ >= 5,
        "another trace id draws otherwise: {first:?} vs {otherwise:?}"
    );
    let otherwise_attributes = attributes_drawn(&trace(&receivers[0], &other, 2).await);
    assert_ne!(
        first_attributes, otherwise_attributes,
        "another trace id draws other attribute values"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripts_distribution_draws_and_reads_as_the_configs() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_a": { "tracing_name": "configured", "operations": [
            { "Action": { "Sleep": { "tracing_name": "nap",
                "duration": { "lognormal": { "median": "2ms", "p99": 9 } } } } }
        ] },
        "grpc_method_b": { "tracing_name": "scripted",
            "script_source": r#"sleep("nap", #{ lognormal: #{ median: "2ms", p99: 9 } });"# }
    });
    let instance = Instance::builder("shapes")
        .env("THESPIAN_SEED", SEED)
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let trace_id = trace_id(3);
    call_in_trace(&instance, "A", &trace_id).await;
    call_in_trace(&instance, "B", &trace_id).await;
    let spans = trace(&receiver, &trace_id, 2).await;

    let naps = spans.named("nap");
    assert_eq!(naps.len(), 2, "{naps:?}");
    let under = |nap: &ReceivedSpan| {
        let parent = spans.iter().find(|s| s.span_id == nap.parent_span_id);
        parent.map(|p| p.name.clone())
    };
    let mut parents: Vec<_> = naps.iter().map(|nap| under(nap)).collect();
    parents.sort();
    assert_eq!(
        parents,
        [Some("configured".to_owned()), Some("scripted".to_owned())]
    );
    let (json, script) = (naps[0], naps[1]);
    assert_eq!(json.attributes, script.attributes, "the same span shape");
    assert_eq!(json.attr_str("thespian.action"), Some("sleep"));
    assert_eq!(json.attr_str("thespian.latency"), Some("lognormal"));
    assert_eq!(json.attr_i64("duration_ms"), None);
    let drawn = json
        .attr_f64("thespian.duration_ms")
        .expect("a drawn duration");
    assert!(drawn > 0.0 && drawn < 3_600_000.0, "{drawn}");
    assert!(
        json.duration().as_secs_f64() * 1000.0 >= drawn,
        "the span lasts the drawn duration: {json}"
    );
}
