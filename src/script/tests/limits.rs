//! What the sandbox and the limits stop: a runaway script fails its own
//! request, quickly, and names the setting it ran into.

use super::*;

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
