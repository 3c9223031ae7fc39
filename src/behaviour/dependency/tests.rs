//! The `"as"` object: its defaults, the names the conventions give its
//! calls, and what it refuses.

use serde_json::json;

use super::*;

fn read(value: serde_json::Value) -> Result<Dependency, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[test]
fn a_database_names_its_call_by_operation_and_collection() {
    let db = read(json!({
        "db": "postgresql", "name": "orders-db", "operation": "SELECT",
        "collection": "orders", "query": "SELECT * FROM orders WHERE id = ?", "port": 5432
    }))
    .unwrap();
    assert_eq!(db.span_name(), "SELECT orders");
    assert_eq!(db.name, "orders-db");
    assert_eq!(db.address, "orders-db");
    assert_eq!(db.port, Some(5432));
    let DependencyKind::Database {
        system, namespace, ..
    } = &db.kind
    else {
        panic!("{db:?} is a database");
    };
    assert_eq!(
        (system.as_str(), namespace.as_str()),
        ("postgresql", "orders-db")
    );
}

#[test]
fn a_database_falls_back_to_its_namespace_and_system() {
    let redis = read(json!({"db": "redis"})).unwrap();
    assert_eq!(redis.name, "redis");
    assert_eq!(redis.span_name(), "redis");
    let named =
        read(json!({"db": "redis", "namespace": "0", "operation": "GET", "address": "cache"}))
            .unwrap();
    assert_eq!(named.span_name(), "GET 0");
    assert_eq!(named.address, "cache");
}

#[test]
fn messaging_sends_unless_told_otherwise() {
    let kafka = read(json!({"messaging": "kafka", "destination": "orders"})).unwrap();
    assert_eq!(kafka.span_name(), "send orders");
    let DependencyKind::Messaging { operation, .. } = kafka.kind else {
        panic!("kafka is messaging");
    };
    assert_eq!(operation, MessagingOperation::Send);
    let ack =
        read(json!({"messaging": "rabbitmq", "operation": "settle", "operation_name": "ack"}))
            .unwrap();
    assert_eq!(ack.span_name(), "ack");
}

#[test]
fn bad_dependencies_are_refused_with_a_reason() {
    for (value, reason) in [
        (json!({"name": "x"}), "exactly one of `db` or `messaging`"),
        (
            json!({"db": "a", "messaging": "b"}),
            "exactly one of `db` or `messaging`",
        ),
        (
            json!({"db": "a", "destination": "q"}),
            "`destination` is not for a database",
        ),
        (
            json!({"messaging": "kafka", "query": "q"}),
            "`query` is not for a messaging",
        ),
        (
            json!({"messaging": "kafka", "operation": "publish"}),
            "not `publish`",
        ),
        (json!({"db": "a", "port": 0}), "from 1 to 65535"),
        (json!({"db": "a", "port": 70000}), "u16"),
        (json!({"db": " "}), "`db` must not be empty"),
        (
            json!({"db": "a", "query": "q".repeat(MAX_QUERY_BYTES + 1)}),
            "at most 2048 bytes",
        ),
        (
            json!({"db": "a", "name": "n".repeat(MAX_TEXT_BYTES + 1)}),
            "at most 256 bytes",
        ),
        (json!({"db": "a", "table": "t"}), "unknown field `table`"),
    ] {
        let error = read(value.clone()).expect_err(&format!("{value} should be refused"));
        assert!(error.contains(reason), "{value}: {error}");
    }
}
