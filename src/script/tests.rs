//! What a script builds, checked on the tree itself: the shape of the steps,
//! where errors land and what the limits stop. The spans those steps become
//! are checked end to end in `tests/scripts.rs`.

use std::time::{Duration, Instant};

use super::*;
use crate::behaviour::{Call, Concurrently, Fail, Latency, LogLevel, MethodName, Raise, Sleep};

fn scripting(limits: Limits) -> Scripting {
    Scripting::new(&ScriptSettings {
        scripts_dir: PathBuf::from("."),
        limits,
    })
}

fn script_with(limits: Limits, text: &str, params: serde_json::Value) -> Arc<Script> {
    let serde_json::Value::Object(params) = params else {
        panic!("params must be an object");
    };
    scripting(limits)
        .load_source("test.rhai", text, "method".to_owned(), &params)
        .unwrap_or_else(|e| panic!("the script should compile: {e}"))
}

fn script(text: &str) -> Arc<Script> {
    script_with(Limits::DEFAULT, text, serde_json::json!({}))
}

/// The steps one request gets, inside the method's function.
fn steps(script: &Script) -> Vec<Step> {
    match Arc::unwrap_or_clone(script.direct()) {
        Step::Function(Function { name, steps }) => {
            assert_eq!(name, "method");
            steps
        }
        other => panic!("a script's tree is a function, not {other:?}"),
    }
}

fn compile_error(text: &str) -> ScriptError {
    scripting(Limits::DEFAULT)
        .load_source("test.rhai", text, "method".to_owned(), &Default::default())
        .expect_err("the script should not compile")
}

fn sleep_ms(step: &Step) -> (String, Duration) {
    match step {
        Step::Sleep(Sleep {
            name,
            latency: Latency::Fixed(duration),
            ..
        }) => (name.clone(), *duration),
        other => panic!("expected a sleep, got {other:?}"),
    }
}

fn raise(step: &Step) -> &Raise {
    match step {
        Step::Raise(raise) => raise,
        other => panic!("expected a raise, got {other:?}"),
    }
}

fn function(step: &Step) -> (&str, &[Step]) {
    match step {
        Step::Function(Function { name, steps }) => (name, steps),
        other => panic!("expected a function, got {other:?}"),
    }
}

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
fn fail_with_chance_checks_its_probability() {
    let steps = steps(&script(
        r#"fail_with_chance(0); fail_with_chance("flaky", 1.0); fail_with_chance(1.5);"#,
    ));
    let chances: Vec<_> = steps[..2]
        .iter()
        .map(|step| match step {
            Step::Fail(Fail { name, fault }) => (name.as_str(), fault.chance()),
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
fn eval_and_import_are_not_available() {
    compile_error(r#"eval("sleep(1)");"#);
    compile_error(r#"import "os" as os;"#);
}

fn limit_message(limits: Limits, text: &str) -> String {
    let started = Instant::now();
    let steps = steps(&script_with(limits, text, serde_json::json!({})));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    match steps.last() {
        Some(Step::Raise(raise)) => raise.message.clone(),
        other => panic!("expected the script to fail, got {other:?}"),
    }
}

#[test]
fn an_endless_loop_runs_out_of_operations() {
    let message = limit_message(Limits::DEFAULT, "loop {}");
    assert!(message.contains("SCRIPT_MAX_OPERATIONS"), "{message}");
}

#[test]
fn an_endless_loop_runs_out_of_time() {
    let limits = Limits {
        max_operations: 0,
        timeout_ms: 50,
        ..Limits::DEFAULT
    };
    let message = limit_message(limits, "loop {}");
    assert!(message.contains("ran longer than 50 ms"), "{message}");
}

#[test]
fn memory_bombs_hit_the_size_limits() {
    for bomb in [
        r#"let s = "x"; loop { s += s; }"#,
        "let a = []; loop { a.push(1); }",
        "let a = [].pad(100000000, 0);",
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
    ] {
        // Whichever limit comes first: in a debug build, checking an
        // array's size on every push may run out of time before space.
        let message = limit_message(Limits::DEFAULT, bomb);
        assert!(message.contains("(SCRIPT_"), "{bomb}: {message}");
    }
}

#[test]
fn deep_recursion_hits_the_call_depth() {
    let message = limit_message(Limits::DEFAULT, "fn down(n) { down(n + 1) } down(0);");
    assert!(message.contains("SCRIPT_MAX_CALL_DEPTH"), "{message}");
}

#[test]
fn too_many_steps_fail_the_request() {
    let limits = Limits {
        max_steps: 10,
        ..Limits::DEFAULT
    };
    let steps = steps(&script_with(
        limits,
        "loop { sleep(1); }",
        serde_json::json!({}),
    ));
    assert_eq!(steps.len(), 11);
    assert!(raise(&steps[10]).message.contains("more than 10 steps"));
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
fn prints_past_the_step_limit_fail_the_request_when_the_script_ends() {
    let limits = Limits {
        max_steps: 5,
        ..Limits::DEFAULT
    };
    let steps = steps(&script_with(
        limits,
        "for i in 0..100 { print(i); }",
        serde_json::json!({}),
    ));
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert!(steps[..5].iter().all(|step| matches!(step, Step::Log(_))));
    assert!(raise(&steps[5]).message.contains("more than 5 steps"));
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
    assert_eq!(first.retries, 2);
    assert!(matches!(&*first.step, Step::Sequence(inner) if inner.len() == 2));
    let Step::Retry(second) = &steps[1] else {
        panic!("{steps:?}");
    };
    assert_eq!(second.retries, 1);
    assert!(matches!(&*second.step, Step::Call(_)));
    assert!(raise(&steps[2]).message.contains("from 0 to 10, not 11"));
}
