//! What each host function records: the steps, their names and how they nest.

use super::*;
use crate::behaviour::{Call, Concurrently, Fail, LogLevel, MethodName};

#[test]
fn sleep_records_a_step_in_milliseconds_and_never_blocks() {
    let started = Instant::now();
    // Rhai's own sleep(1.5) would block this thread for a second and a half.
    let steps = steps(&script(
        r#"sleep(1.5); sleep(2000.0); sleep("read from disk", 2);"#,
    ));
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(
        steps.iter().map(sleep_ms).collect::<Vec<_>>(),
        [
            ("sleep".to_owned(), Duration::from_micros(1500)),
            ("sleep".to_owned(), Duration::from_secs(2)),
            ("read from disk".to_owned(), Duration::from_millis(2)),
        ]
    );
}

#[test]
fn call_takes_a_target_a_method_and_optionally_a_name() {
    let steps = steps(&script(
        r#"
        call("orders:6379", "A");
        call("charge card", "http://payments:7000", "B");
        call("http://db:1", "C", #{name: "insert"});
        "#,
    ));
    let calls: Vec<_> = steps
        .iter()
        .map(|step| match step {
            Step::Call(Call {
                name,
                target,
                method,
                ..
            }) => (name.as_str(), target.as_str(), *method),
            other => panic!("expected a call, got {other:?}"),
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("call", "http://orders:6379", MethodName::A),
            ("charge card", "http://payments:7000", MethodName::B),
            ("insert", "http://db:1", MethodName::C),
        ]
    );
}

#[test]
fn call_still_calls_function_pointers() {
    let steps = steps(&script(
        r#"
        let extra = 3;
        let wait = |ms| sleep(ms + extra);
        call(wait, 2);
        "#,
    ));
    assert_eq!(sleep_ms(&steps[0]).1, Duration::from_millis(5));
}

#[test]
fn concurrently_and_function_nest_their_steps() {
    let steps = steps(&script(
        r#"
        function("load cart", || {
            concurrently([
                || sleep("prices", 5),
                || { sleep("stock", 1); call("db:1", "A"); },
            ]);
        });
        "#,
    ));
    let (name, inner) = function(&steps[0]);
    assert_eq!(name, "load cart");
    let Step::Concurrently(Concurrently {
        name: Some(group),
        branches,
        ..
    }) = &inner[0]
    else {
        panic!("expected a named group, got {inner:?}");
    };
    assert_eq!(group, "concurrently");
    assert_eq!(sleep_ms(&branches[0]).0, "prices");
    let Step::Sequence(second) = &branches[1] else {
        panic!("a branch of two steps is a sequence: {branches:?}");
    };
    assert_eq!(sleep_ms(&second[0]).0, "stock");
    assert!(matches!(second[1], Step::Call(_)));
}

#[test]
fn fail_with_chance_checks_its_probability() {
    let steps = steps(&script(
        r#"fail_with_chance(0); fail_with_chance("flaky", 1.0); fail_with_chance(1.5);"#,
    ));
    let chances: Vec<_> = steps[..2]
        .iter()
        .map(|step| match step {
            Step::Fail(Fail { name, fault, .. }) => (name.as_str(), fault.chance()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(chances, [("fail_with_chance", 0.0), ("flaky", 1.0)]);
    assert!(
        raise(&steps[2])
            .message
            .contains("between 0 and 1, not 1.5")
    );
}

#[test]
fn params_are_a_constant_map() {
    let script = script_with(
        Limits::DEFAULT,
        r#"call(params.orders, "A"); params.orders = "x";"#,
        serde_json::json!({"orders": "http://orders:6379"}),
    );
    let steps = steps(&script);
    assert!(matches!(&steps[0], Step::Call(call) if call.target.as_str() == "http://orders:6379"));
    assert!(raise(&steps[1]).message.contains("constant"), "{steps:?}");
}

#[test]
fn random_differs_between_requests() {
    let script = script("sleep(random() * 1000.0);");
    let durations: std::collections::BTreeSet<_> =
        (0..20).map(|_| sleep_ms(&steps(&script)[0]).1).collect();
    assert!(durations.len() > 1, "{durations:?}");
}

#[test]
fn print_and_debug_record_log_lines_in_story_order() {
    let steps = steps(&script(
        "sleep(1);\nprint(\"hello\");\nfunction(\"f\", || debug(42));",
    ));
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(matches!(steps[0], Step::Sleep(_)), "{steps:?}");
    let Step::Log(hello) = &steps[1] else {
        panic!("{steps:?}");
    };
    assert_eq!(
        (hello.level, hello.message.as_str(), &*hello.source),
        (LogLevel::Info, "hello", "test.rhai")
    );
    let (_, inside) = function(&steps[2]);
    let [Step::Log(detail)] = inside else {
        panic!("{inside:?}");
    };
    assert_eq!(
        (detail.level, detail.message.as_str(), detail.line),
        (LogLevel::Debug, "42", Some(3))
    );
}

#[test]
fn retry_wraps_a_block_and_call_takes_retries() {
    let steps = steps(&script(
        r#"
        retry(2, || { sleep("write row", 4); fail_with_chance("deadlock", 0.2); });
        call("db:1", "A", #{retries: 1});
        retry(11, || sleep(1));
        "#,
    ));
    let Step::Retry(first) = &steps[0] else {
        panic!("{steps:?}");
    };
    assert_eq!(first.policy.max_attempts(), 3);
    assert!(matches!(&*first.step, Step::Sequence(inner) if inner.len() == 2));
    let Step::Retry(second) = &steps[1] else {
        panic!("{steps:?}");
    };
    assert_eq!(second.policy.max_attempts(), 2);
    assert!(second.policy.backoff().is_none());
    assert!(matches!(&*second.step, Step::Call(_)));
    assert!(raise(&steps[2]).message.contains("from 0 to 10, not 11"));
}

#[test]
fn call_takes_a_timeout_and_a_grpc_retry_policy() {
    let tree = steps(&script(
        r#"
        call("db:1", "A", #{timeout_ms: 250, retries: #{
            max_attempts: 3, initial_backoff: "0.1s", max_backoff: "1s",
            backoff_multiplier: 2.0, retryable_status_codes: ["unavailable"]
        }});
        "#,
    ));
    let Step::Retry(retried) = &tree[0] else {
        panic!("{tree:?}");
    };
    assert_eq!(retried.policy.max_attempts(), 3);
    assert!(retried.policy.backoff().is_some());
    assert!(retried.policy.retries(tonic::Code::Unavailable));
    assert!(!retried.policy.retries(tonic::Code::Internal));
    let Step::Call(call) = &*retried.step else {
        panic!("{retried:?}");
    };
    assert_eq!(call.timeout, Some(std::time::Duration::from_millis(250)));
    let refused = steps(&script(
        "sleep(1);\ncall(\"db:1\", \"B\", #{timeout_ms: 0});",
    ));
    let refused = raise(&refused[1]);
    assert!(
        refused.message.contains("line 2")
            && refused.message.contains("`timeout_ms`")
            && refused.message.contains("from 1 to 3600000"),
        "{refused:?}"
    );
    let missing = steps(&script(
        r#"call("db:1", "B", #{retries: #{max_attempts: 3}});"#,
    ));
    let missing = raise(&missing[0]);
    assert!(missing.message.contains("initial_backoff"), "{missing:?}");
}

#[test]
fn sleep_takes_a_duration_string_or_a_distribution_with_or_without_a_name() {
    let steps = steps(&script(
        r#"
        sleep("250ms");
        sleep("parse", "1.5s");
        sleep(#{ uniform: #{ min: 1, max: "2ms" } });
        sleep("query", #{ lognormal: #{ median: 20, p99: 400 } });
        sleep("cache", #{ normal: #{ mean: 5, stddev: 1.5 } });
        sleep("disk", #{ percentiles: #{ p50: 2, p90: 10, p99: 50, max: 90 } });
        sleep("dns", #{ weighted: [#{ value: 1, weight: 9 }, #{ value: "1s", weight: 1 }] });
        "#,
    ));
    let shapes: Vec<(&str, &str)> = steps
        .iter()
        .map(|step| match step {
            Step::Sleep(sleep) => (sleep.name.as_str(), sleep.latency.kind()),
            other => panic!("expected a sleep, got {other:?}"),
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("sleep", "fixed"),
            ("parse", "fixed"),
            ("sleep", "uniform"),
            ("query", "lognormal"),
            ("cache", "normal"),
            ("disk", "percentiles"),
            ("dns", "weighted"),
        ]
    );
    assert_eq!(sleep_ms(&steps[0]).1, Duration::from_millis(250));
    assert_eq!(sleep_ms(&steps[1]).1, Duration::from_millis(1500));
}

#[test]
fn random_follows_the_request_dice_when_seeded() {
    let script = script("sleep(random() * 1000.0); sleep(random() * 1000.0);");
    let drawn = |dice: Dice| -> Vec<Duration> {
        match Arc::unwrap_or_clone(script.direct_with(dice)) {
            Step::Function(Function { steps, .. }) => {
                steps.iter().map(|step| sleep_ms(step).1).collect()
            }
            other => panic!("{other:?}"),
        }
    };
    let trace = |n: u8| opentelemetry::trace::TraceId::from_bytes([n; 16]);
    let seeded = drawn(Dice::for_request(Some(7), trace(1)));
    assert_ne!(seeded[0], seeded[1], "each call draws anew");
    assert_eq!(seeded, drawn(Dice::for_request(Some(7), trace(1))));
    assert_ne!(seeded, drawn(Dice::for_request(Some(7), trace(2))));
    assert_ne!(seeded, drawn(Dice::for_request(Some(8), trace(1))));
    assert_ne!(drawn(Dice::default()), drawn(Dice::default()));
}
