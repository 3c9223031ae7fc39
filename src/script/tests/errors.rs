//! Where a runtime error lands in the steps, what status it fails the
//! request with, and how a compile error names its place.

use super::*;

#[test]
fn a_bad_method_fails_the_request_with_its_position() {
    let steps = steps(&script("sleep(1);\ncall(\"db:1\", \"D\");\nsleep(2);"));
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(sleep_ms(&steps[0]).1, Duration::from_millis(1));
    let raise = raise(&steps[1]);
    assert_eq!(raise.code, tonic::Code::Internal);
    assert!(
        raise
            .message
            .starts_with("test.rhai, line 2, column 14: call: unknown method `D`"),
        "{}",
        raise.message
    );
}

#[test]
fn steps_before_an_error_stay_and_the_error_lands_where_it_happened() {
    let steps = steps(&script(
        "sleep(1);\nfunction(\"f\", || {\n    sleep(2);\n    sleep(-5);\n    sleep(3);\n});\nsleep(4);",
    ));
    assert_eq!(steps.len(), 2, "{steps:?}");
    let (_, inner) = function(&steps[1]);
    assert_eq!(inner.len(), 2, "{inner:?}");
    assert_eq!(sleep_ms(&inner[0]).1, Duration::from_millis(2));
    let raise = raise(&inner[1]);
    assert!(
        raise
            .message
            .starts_with("test.rhai, line 4, column 5: sleep takes"),
        "{}",
        raise.message
    );
}

#[test]
fn an_error_in_one_branch_keeps_the_branches_before_it() {
    let steps = steps(&script(
        r#"concurrently("fan out", [|| sleep(1), || { sleep(2); throw "shard down"; }, || sleep(3)]);"#,
    ));
    let Step::Concurrently(group) = &steps[0] else {
        panic!("{steps:?}");
    };
    assert_eq!(group.branches.len(), 2, "{steps:?}");
    let Step::Sequence(failed) = &group.branches[1] else {
        panic!("{steps:?}");
    };
    assert!(raise(&failed[1]).message.ends_with(r#"threw "shard down""#));
}

#[test]
fn a_caught_error_is_taken_back() {
    let steps = steps(&script(
        r#"
        try {
            function("f", || { sleep(2); throw "ignored"; });
        } catch (e) {
            sleep("recover", 4);
        }
        "#,
    ));
    assert_eq!(steps.len(), 2, "{steps:?}");
    let (_, inner) = function(&steps[0]);
    assert_eq!(inner.len(), 1, "the raise is taken back: {inner:?}");
    assert_eq!(sleep_ms(&steps[1]).0, "recover");
}

#[test]
fn an_error_caught_inside_a_closure_is_taken_back_too() {
    let steps = steps(&script(
        r#"function("f", || { try { function("g", || throw "x") } catch { } });"#,
    ));
    let (_, inner) = function(&steps[0]);
    let (_, innermost) = function(&inner[0]);
    assert!(innermost.is_empty(), "{steps:?}");
}

#[test]
fn a_thrown_map_chooses_the_status() {
    for (thrown, code) in [
        (
            r#"#{code: "NOT_FOUND", message: "no such cart"}"#,
            tonic::Code::NotFound,
        ),
        (
            r#"#{code: "not_found", message: "no such cart"}"#,
            tonic::Code::NotFound,
        ),
        (
            r#"#{code: 14, message: "no such cart"}"#,
            tonic::Code::Unavailable,
        ),
    ] {
        let steps = steps(&script(&format!("throw {thrown};")));
        let raise = raise(&steps[0]);
        assert_eq!((raise.code, raise.message.as_str()), (code, "no such cart"));
    }
    let steps = steps(&script(r#"throw #{code: "BOGUS"};"#));
    let raise = raise(&steps[0]);
    assert_eq!(raise.code, tonic::Code::Internal);
    assert!(
        raise.message.contains("not a gRPC error code"),
        "{}",
        raise.message
    );
}

#[test]
fn a_syntax_error_names_the_line_and_column() {
    let error = compile_error("sleep(1);\nlet x = ;\n");
    assert_eq!((error.line, error.column), (Some(2), Some(9)), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("test.rhai, line 2, column 9: syntax error")
    );
}

#[test]
fn an_unknown_variable_is_a_compile_error() {
    let error = compile_error("sleep(delay);");
    assert_eq!(error.line, Some(1), "{error}");
}

#[test]
fn a_bad_distribution_fails_at_its_line_in_the_parsers_words() {
    for (call, expected) in [
        (
            r#"sleep("q", #{ normal: #{ mean: 5, stddev: -1 } });"#,
            "sleep: a duration must be 0 or more milliseconds, not -1",
        ),
        (
            r#"sleep(#{ percentiles: #{ p50: 10, p90: 5 } });"#,
            "sleep: p90 (5 ms) must not be less than p50 (10 ms)",
        ),
        (
            r#"sleep("q", #{ gamma: #{ shape: 2 } });"#,
            "sleep: unknown variant `gamma`",
        ),
        (
            r#"sleep("q", #{ weighted: [#{ value: 1, weight: 0 }] });"#,
            "sleep: the weights must not all be 0",
        ),
        (r#"sleep("soon");"#, "sleep: `soon` is not a duration"),
        (
            r#"sleep(#{ uniform: #{ min: 1, max: 2 }, normal: #{ mean: 1, stddev: 1 } });"#,
            "sleep: name one shape only",
        ),
    ] {
        let steps = steps(&script(&format!("sleep(1);\n{call}\nsleep(2);")));
        assert_eq!(steps.len(), 2, "{call}: {steps:?}");
        let message = &raise(&steps[1]).message;
        assert!(
            message.starts_with(&format!("test.rhai, line 2, column 1: {expected}")),
            "{call}: {message}"
        );
    }
}
