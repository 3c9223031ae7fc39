//! `set_attribute` and a sleep's options: where attributes land, what a
//! dependency's sleep is called, and errors at the script's line.

use opentelemetry::KeyValue;

use super::*;
use crate::behaviour::{Attributes, DependencyKind};

fn drawn(attributes: &Attributes) -> Vec<KeyValue> {
    let mut drawn = Vec::new();
    attributes.draw_into(&mut rand::rng(), &mut drawn);
    drawn
}

fn tree(text: &str) -> Function {
    match Arc::unwrap_or_clone(script(text).direct()) {
        Step::Function(function) => function,
        other => panic!("a script's tree is a function, not {other:?}"),
    }
}

#[test]
fn set_attribute_lands_on_the_innermost_function_or_the_method() {
    let method = tree(
        r#"set_attribute("customer.tier", "free");
        function("charge", || {
            set_attribute("amount", 12.5);
            set_attribute("amount", 13);
            sleep(1);
        });
        set_attribute("customer.tier", "gold");
        set_attribute("customer.new", true);"#,
    );
    // In key order, as every step's attributes are.
    assert_eq!(
        drawn(&method.attributes),
        [
            KeyValue::new("customer.new", true),
            KeyValue::new("customer.tier", "gold")
        ]
    );
    let Step::Function(charge) = &method.steps[0] else {
        panic!("{:?} is a function", method.steps[0]);
    };
    assert_eq!(drawn(&charge.attributes), [KeyValue::new("amount", 13)]);
}

#[test]
fn a_sleep_takes_a_dependency_and_attributes() {
    let steps = steps(&script(
        r#"sleep("load order", 5, #{ dependency: #{ db: "postgresql", name: "orders-db", port: 5432 } });
        sleep(2, #{ "as": #{ messaging: "kafka", destination: "orders" }, attributes: #{ n: #{ int_range: [1, 1] } } });"#,
    ));
    let Step::Sleep(load) = &steps[0] else {
        panic!("{:?} is a sleep", steps[0]);
    };
    assert_eq!(load.name, "load order");
    let dependency = load.dependency.as_deref().expect("a dependency");
    assert_eq!(
        (dependency.name.as_str(), dependency.port),
        ("orders-db", Some(5432))
    );
    assert!(matches!(dependency.kind, DependencyKind::Database { .. }));
    let Step::Sleep(send) = &steps[1] else {
        panic!("{:?} is a sleep", steps[1]);
    };
    assert_eq!(
        send.name, "send orders",
        "unnamed, it takes the conventions' name"
    );
    assert_eq!(drawn(&send.attributes), [KeyValue::new("n", 1)]);
}

#[test]
fn a_sleep_takes_a_dependency_and_failures_in_one_map() {
    let steps = steps(&script(
        r#"sleep(3, #{ dependency: #{ db: "redis", name: "cache" }, failures: [#{ chance: 0.5, slow: 10 }] });"#,
    ));
    let Step::Sleep(sleep) = &steps[0] else {
        panic!("{:?} is a sleep", steps[0]);
    };
    assert!(sleep.dependency.is_some());
    assert_eq!(sleep.failures.outcomes().len(), 1);
}

#[test]
fn bad_annotations_fail_at_their_line() {
    let many = (0..=32)
        .map(|i| format!("set_attribute(\"k{i}\", {i});"))
        .collect::<String>();
    for (text, reason) in [
        ("set_attribute(\"\", 1);", "must not be empty"),
        (
            "set_attribute(\"k\", [1]);",
            "a string, a number or a boolean",
        ),
        (
            "set_attribute(\"k\", #{ int_range: [1, 2] });",
            "a string, a number or a boolean",
        ),
        (many.as_str(), "at most 32 attributes"),
        ("sleep(1, #{ retries: 2 });", "no option `retries`"),
        (
            "sleep(1, #{ dependency: #{ db: \"pg\", table: \"t\" } });",
            "unknown field `table`",
        ),
        (
            "sleep(1, #{ dependency: #{ db: \"pg\", port: 0 } });",
            "from 1 to 65535",
        ),
        (
            "sleep(1, #{ attributes: #{ k: #{ one_of: [] } } });",
            "1 to 64 choices",
        ),
    ] {
        let steps = steps(&script(&format!("sleep(1);\n{text}")));
        let raise = raise(steps.last().expect("a raise"));
        assert!(
            raise.message.contains("test.rhai, line 2") && raise.message.contains(reason),
            "{text}: {}",
            raise.message
        );
    }
}

#[test]
fn a_sleep_with_options_takes_any_duration_a_sleep_takes() {
    let steps = steps(&script(
        r#"sleep("load", #{ lognormal: #{ median: 20, p99: 400 } }, #{ dependency: #{ db: "postgresql" } });
        sleep("poll", "250ms", #{ attributes: #{ n: 1 } });
        sleep(#{ uniform: #{ min: 1, max: 2 } }, #{ "as": #{ messaging: "kafka", destination: "orders" } });
        sleep("bad", "soon", #{});"#,
    ));
    let sleeps: Vec<_> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Sleep(sleep) => Some(sleep),
            _ => None,
        })
        .collect();
    let shape = |i: usize| (sleeps[i].name.as_str(), sleeps[i].latency.kind());
    assert_eq!(shape(0), ("load", "lognormal"));
    assert!(sleeps[0].dependency.is_some());
    assert!(
        matches!(sleeps[1].latency, Latency::Fixed(d) if d == Duration::from_millis(250)),
        "{:?}",
        sleeps[1].latency
    );
    assert_eq!(drawn(&sleeps[1].attributes), [KeyValue::new("n", 1)]);
    assert_eq!(shape(2), ("send orders", "uniform"));
    let raise = raise(steps.last().expect("a raise"));
    assert!(
        raise.message.contains("line 4") && raise.message.contains("not a duration"),
        "{}",
        raise.message
    );
}
