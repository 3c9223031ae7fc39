//! Scenarios on a live instance, end to end over gRPC: started by their
//! schedules at boot, each strikes only its scope, two on the same step
//! combine in the order they started, and every span one changes names it,
//! beside the start line and the gauge that mark the incident window.

use crate::support::DEFAULT_WAIT;
use crate::support::config::sleep;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{Attributed as _, OtlpReceiver, SpansExt as _};
use serde_json::json;
use thespian::proto::Empty;

/// A and B both wait on `db`; A also on `cache`. `db` is slowed by two
/// scenarios, B is down, and C is left alone.
fn config() -> String {
    json!({
        "grpc_method_a": { "tracing_name": "serve A",
            "operations": [sleep("db", 2), sleep("cache", 1)] },
        "grpc_method_b": { "tracing_name": "serve B", "operations": [sleep("db", 2)] },
        "grpc_method_c": { "tracing_name": "serve C", "operations": [sleep("work", 1)] },
        "scenarios": [
            { "name": "db-slow", "scope": { "step": "db" }, "effect": { "multiply": 40 },
              "schedule": { "at": "0s" } },
            { "name": "db-more", "scope": { "step": "db" }, "effect": { "duration": "20ms" },
              "schedule": { "at": "300ms" } },
            { "name": "b-down", "scope": { "method": "B" }, "effect": { "outage": true },
              "schedule": { "at": "0s" } },
            { "name": "later", "scope": "service", "effect": { "hang": true },
              "schedule": { "at": "1h" } }
        ]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_strike_their_scope_and_combine_in_the_order_they_started() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("scenes")
        .config(&config())
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .start()
        .await;
    for name in ["db-slow", "db-more", "b-down"] {
        instance
            .wait_for_line(
                |l| l.contains(&format!("scenario `{name}` started")),
                DEFAULT_WAIT,
            )
            .await;
    }
    let mut client = instance.client().await;

    let answer = client.a(Empty {}).await.expect("A is slow but answers");
    let id = trace_id(answer.metadata());
    let trace = receiver.wait_for_answered_trace(&id).await;
    let db = trace.only_named("db");
    // 2 ms times 40 (started first), then 20 ms more (started second).
    assert_eq!(db.attr_f64("thespian.duration_ms"), Some(100.0), "{db}");
    assert_eq!(db.attr_str("thespian.scenario"), Some("db-slow,db-more"));
    let cache = trace.only_named("cache");
    assert_eq!(cache.attr_f64("thespian.duration_ms"), Some(1.0));
    assert_eq!(cache.attr_str("thespian.scenario"), None, "out of scope");
    let server = trace.only_named("thespian.Thespian/A");
    assert_eq!(server.attr_str("thespian.scenario"), None, "{server}");

    let refused = client.b(Empty {}).await.expect_err("B is down");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("b-down"), "{refused:?}");
    let id = trace_id(refused.metadata());
    let trace = receiver.wait_for_answered_trace(&id).await;
    let server = trace.only_named("thespian.Thespian/B");
    assert_eq!(server.attr_str("thespian.scenario"), Some("b-down"));
    assert!(trace.named("db").is_empty(), "an outage acts nothing out");

    let answer = client.c(Empty {}).await.expect("C is untouched");
    let id = trace_id(answer.metadata());
    let trace = receiver.wait_for_answered_trace(&id).await;
    assert!(
        trace
            .iter()
            .all(|s| s.attr_str("thespian.scenario").is_none()),
        "{trace:#?}"
    );

    let gauge = receiver
        .wait_for_metrics(
            |metrics| {
                metrics.iter().any(|m| {
                    m.name == "thespian.scenario.active"
                        && m.point_with(&[("scenario", "b-down")]).is_some()
                })
            },
            DEFAULT_WAIT,
        )
        .await;
    let gauge = gauge
        .iter()
        .rev()
        .find(|m| m.name == "thespian.scenario.active")
        .unwrap();
    for (name, value) in [("b-down", 1.0), ("db-slow", 1.0)] {
        let point = gauge.point_with(&[("scenario", name)]).expect(name);
        assert_eq!(point.value_f64(), Some(value), "{name}");
    }
    assert!(
        gauge.point_with(&[("scenario", "later")]).is_none(),
        "a scenario never started has no series yet"
    );
}
