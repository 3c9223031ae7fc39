//! What a sleep that stands for a database or queue call, and attributes to
//! search on, look like in a tracing backend: span kinds and attributes,
//! received over OTLP, from a config and from a script alike.

use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _};
use serde_json::json;

/// The spans of the trace `instance`'s method A answers with, once its
/// server span, which ends last, has arrived.
async fn spans_of_a(instance: &Instance, receiver: &OtlpReceiver) -> Vec<ReceivedSpan> {
    let trace_id = trace_id(instance.call_a().await.metadata());
    receiver.wait_for_answered_trace(&trace_id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_sleep_is_a_client_or_producer_span_with_the_conventions_attributes() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({ "grpc_method_a": {
        "tracing_name": "place order",
        "attributes": { "customer.tier": { "one_of": [ { "value": "gold" } ] } },
        "operations": [
            { "Action": { "Sleep": {
                "tracing_name": "load order", "duration_ms": 2,
                "as": { "db": "postgresql", "name": "orders-db", "operation": "SELECT",
                        "collection": "orders", "query": "SELECT * FROM orders WHERE id = ?",
                        "port": 5432 },
                "attributes": { "order.items": { "int_range": [3, 3] } }
            } } },
            { "Action": { "Sleep": {
                "tracing_name": "announce", "duration_ms": 1,
                "as": { "messaging": "kafka", "destination": "orders", "operation": "send" }
            } } },
            { "Action": { "Function": {
                "tracing_name": "bill", "operations": [],
                "attributes": { "billing.retry": false }
            } } }
        ]
    } });
    let instance = Instance::builder("orders")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let spans = spans_of_a(&instance, &receiver).await;

    let query = spans.only_named("load order");
    assert_eq!(query.kind, SpanKind::Client);
    for (key, value) in [
        ("db.system.name", "postgresql"),
        ("db.namespace", "orders-db"),
        ("db.operation.name", "SELECT"),
        ("db.collection.name", "orders"),
        ("db.query.text", "SELECT * FROM orders WHERE id = ?"),
        ("server.address", "orders-db"),
        ("peer.service", "orders-db"),
        ("thespian.action", "sleep"),
    ] {
        assert_eq!(query.attr_str(key), Some(value), "{key}: {query}");
    }
    assert_eq!(query.attr_i64("server.port"), Some(5432));
    assert_eq!(query.attr_i64("order.items"), Some(3));

    let send = spans.only_named("announce");
    assert_eq!(send.kind, SpanKind::Producer);
    for (key, value) in [
        ("messaging.system", "kafka"),
        ("messaging.destination.name", "orders"),
        ("messaging.operation.type", "send"),
        ("messaging.operation.name", "send"),
        ("peer.service", "kafka"),
    ] {
        assert_eq!(send.attr_str(key), Some(value), "{key}: {send}");
    }
    assert!(!send.attributes.contains("db.namespace"), "{send}");

    assert_eq!(
        spans.only_named("bill").attr_bool("billing.retry"),
        Some(false)
    );
    let server = spans.only_named("thespian.Thespian/A");
    assert_eq!(server.attr_str("customer.tier"), Some("gold"));
    assert_eq!(server.attr_str("rpc.method"), Some("A"));
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_span_names_name_a_dependency_call_by_the_conventions() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({ "grpc_method_a": { "tracing_name": "t", "operations": [
        { "Action": { "Sleep": { "tracing_name": "load order", "duration_ms": 1,
            "as": { "db": "postgresql", "operation": "SELECT", "collection": "orders" } } } },
        { "Action": { "Sleep": { "tracing_name": "think", "duration_ms": 1 } } }
    ] } });
    let instance = Instance::builder("generic")
        .config(&config.to_string())
        .env("SPAN_NAMES", "generic")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let spans = spans_of_a(&instance, &receiver).await;
    assert_eq!(spans.only_named("SELECT orders").kind, SpanKind::Client);
    assert_eq!(spans.only_named("sleep").kind, SpanKind::Internal);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_sets_attributes_and_dependencies_on_its_spans() {
    let receiver = OtlpReceiver::start().await;
    let source = r#"
        set_attribute("customer.tier", "gold");
        function("charge", || {
            set_attribute("amount", 12.5);
            sleep(2, #{ dependency: #{ db: "redis", operation: "GET", namespace: "0" } });
        });
        sleep("ack", 1, #{ "as": #{ messaging: "rabbitmq", operation: "settle" } });
    "#;
    let config =
        json!({ "grpc_method_a": { "tracing_name": "checkout", "script_source": source } });
    let instance = Instance::builder("scripted")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let spans = spans_of_a(&instance, &receiver).await;

    assert_eq!(
        spans.only_named("checkout").attr_str("customer.tier"),
        Some("gold")
    );
    let charge = spans.only_named("charge");
    assert_eq!(charge.attr_f64("amount"), Some(12.5));
    let get = spans.only_named("GET 0");
    assert_eq!(get.parent_span_id, charge.span_id);
    assert_eq!(get.kind, SpanKind::Client);
    assert_eq!(get.attr_str("db.system.name"), Some("redis"));
    assert_eq!(get.attr_str("peer.service"), Some("redis"));
    let ack = spans.only_named("ack");
    assert_eq!(ack.kind, SpanKind::Client);
    assert_eq!(ack.attr_str("messaging.operation.type"), Some("settle"));
}
