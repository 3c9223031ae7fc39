//! The host functions for how steps fail, read into the same model as the
//! JSON config's keys, and their mistakes placed at the script's line.

use super::*;
use crate::behaviour::{Effect, Fail, OnFailure};

#[test]
fn fail_with_chance_takes_a_code_by_name_or_number_or_options() {
    let steps = steps(&script(
        r#"fail_with_chance("a", 0.5, "unavailable");
           fail_with_chance("b", 1, 8);
           fail_with_chance("c", 0.1, #{ code: "NOT_FOUND", message: "gone" });"#,
    ));
    let faults: Vec<_> = steps
        .iter()
        .map(|step| match step {
            Step::Fail(Fail { fault, .. }) => (
                fault.chance(),
                fault.code(),
                fault.message().map(|m| m.as_str().to_owned()),
            ),
            other => panic!("a fail step, not {other:?}"),
        })
        .collect();
    assert_eq!(
        faults,
        [
            (0.5, tonic::Code::Unavailable, None),
            (1.0, tonic::Code::ResourceExhausted, None),
            (0.1, tonic::Code::NotFound, Some("gone".to_owned())),
        ]
    );
}

#[test]
fn a_sleep_takes_its_failures_and_a_call_its_on_failure() {
    let steps = steps(&script(
        r#"sleep("s", 5, #{ failures: [#{ chance: 0.5, hang: true }, #{ chance: 0.25, slow: 40 }] });
           call("c", "db:1", "B", #{ on_failure: "propagate", optional: true });
           fallback("f", || sleep(1), || sleep(2));"#,
    ));
    let Step::Sleep(sleep) = &steps[0] else {
        panic!("a sleep: {steps:?}");
    };
    let effects: Vec<_> = sleep
        .failures
        .outcomes()
        .iter()
        .map(|o| &o.effect)
        .collect();
    assert_eq!(effects[0], &Effect::Hang);
    assert!(matches!(effects[1], Effect::Slow { .. }));
    let Step::Call(call) = &steps[1] else {
        panic!("a call: {steps:?}");
    };
    assert_eq!(
        (call.on_failure, call.optional),
        (OnFailure::Propagate, true)
    );
    let Step::Fallback(fallback) = &steps[2] else {
        panic!("a fallback: {steps:?}");
    };
    assert_eq!(fallback.name, "f");
    // Each arm is a block, even of one step, as a config's lists are.
    let Step::Sequence(stand_in) = &*fallback.fallback else {
        panic!("a block: {fallback:?}");
    };
    assert_eq!(sleep_ms(&stand_in[0]).1, Duration::from_millis(2));
}

#[test]
fn mistakes_fail_the_request_at_their_line() {
    for (line, says) in [
        (r#"fail_with_chance("x", 0.5, "OK");"#, "gRPC error code"),
        (
            r#"fail_with_chance("x", 0.5, #{ hang: true });"#,
            "belongs in a sleep",
        ),
        (
            r#"fail_with_chance("x", 0.5, #{ colour: 1 });"#,
            "unknown field",
        ),
        (
            r#"sleep("s", 1, #{ failures: [#{ chance: 0.7 }, #{ chance: 0.7 }] });"#,
            "add up to at most 1",
        ),
        (
            r#"sleep("s", 1, #{ retries: 2 });"#,
            "sleep has no option `retries`",
        ),
        (
            r#"call("db:1", "B", #{ on_failure: "shrug" });"#,
            "on_failure",
        ),
        (r#"call("db:1", "B", #{ optional: 1 });"#, "true or false"),
    ] {
        let steps = steps(&script(&format!("sleep(1);\n{line}")));
        let raise = raise(steps.last().unwrap());
        assert!(
            raise.message.starts_with("test.rhai, line 2") && raise.message.contains(says),
            "{line}: {}",
            raise.message
        );
    }
}
