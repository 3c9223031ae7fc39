//! How a config says that steps fail and what callers do about it: each
//! new key read into the model, and each mistake refused at its JSON path.

use super::*;
use crate::behaviour::{Effect, OnFailure, Step, When};

fn read(operations: &str) -> Result<Step, ConfigError> {
    let text =
        format!(r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": {operations}}}}}"#);
    let config = Config::from_str(&text, "test.jsonc", &Scripting::default())?;
    let tree = config.behaviour.get(MethodName::A).expect("A").direct();
    let Step::Function(function) = Arc::unwrap_or_clone(tree) else {
        panic!("a method is a function");
    };
    Ok(function.steps.into_iter().next().expect("one step"))
}

fn refused(operations: &str) -> ConfigError {
    read(operations).expect_err("the config should be refused")
}

const SLEEP: &str = "grpc_method_a.operations[0].Action.Sleep";

#[test]
fn a_failure_code_and_message_go_with_the_chance() {
    let Step::Sleep(sleep) = read(
        r#"[{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failure_chance": 0.5,
            "failure_code": "unavailable", "failure_message": "pool exhausted"}}}]"#,
    )
    .unwrap() else {
        panic!("a sleep");
    };
    let fault = sleep.fault.expect("a fault");
    assert_eq!(fault.code(), tonic::Code::Unavailable);
    assert_eq!(fault.message().unwrap().as_str(), "pool exhausted");
    let Step::Sleep(sleep) = read(
        r#"[{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failure_chance": 0.5,
            "failure_code": 8}}}]"#,
    )
    .unwrap() else {
        panic!("a sleep");
    };
    assert_eq!(sleep.fault.unwrap().code(), tonic::Code::ResourceExhausted);
}

#[test]
fn a_failures_list_is_read_in_order() {
    let Step::Sleep(sleep) = read(
        r#"[{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failures": [
            {"chance": 0.02, "code": "UNAVAILABLE", "when": "before"},
            {"chance": 0.01, "hang": true},
            {"chance": 0.1, "slow": 400}]}}}]"#,
    )
    .unwrap() else {
        panic!("a sleep");
    };
    let kinds: Vec<_> = sleep
        .failures
        .outcomes()
        .iter()
        .map(|o| o.effect.kind())
        .collect();
    assert_eq!(kinds, ["error", "hang", "slow"]);
    assert!(matches!(
        sleep.failures.outcomes()[0].effect,
        Effect::Error {
            when: When::Before,
            ..
        }
    ));
}

#[test]
fn a_slow_answer_takes_any_duration() {
    let Step::Sleep(sleep) = read(
        r#"[{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failures": [
            {"chance": 0.1, "slow": "400ms"},
            {"chance": 0.1, "slow": {"lognormal": {"median": 200, "p99": "2s"}}}]}}}]"#,
    )
    .unwrap() else {
        panic!("a sleep");
    };
    let extras: Vec<_> = sleep
        .failures
        .outcomes()
        .iter()
        .map(|o| match &o.effect {
            Effect::Slow { extra } => extra.kind(),
            other => panic!("a slow answer, not {other:?}"),
        })
        .collect();
    assert_eq!(extras, ["fixed", "lognormal"]);
    let Effect::Slow { extra } = &sleep.failures.outcomes()[0].effect else {
        unreachable!("checked above");
    };
    assert_eq!(
        extra.sample(&mut rand::rng()),
        std::time::Duration::from_millis(400)
    );
    let error = refused(
        r#"[{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failures": [
            {"chance": 0.1, "slow": {"lognormal": {"median": 200, "p99": 100}}}]}}}]"#,
    );
    let path = error.path.as_deref().unwrap_or_default();
    assert!(
        path.starts_with(&format!("{SLEEP}.failures[0].slow")),
        "{error}"
    );
    assert!(error.to_string().contains("p99"), "{error}");
}

#[test]
fn failure_mistakes_are_refused_at_their_path() {
    let sleep = |extra: &str| {
        format!(
            r#"[{{"Action": {{"Sleep": {{"tracing_name": "s", "duration_ms": 1, {extra}}}}}}}]"#
        )
    };
    for (extra, path, says) in [
        (
            r#""failure_chance": 0.1, "failure_code": "OK""#,
            format!("{SLEEP}.failure_code"),
            "gRPC error code",
        ),
        (
            r#""failure_chance": 0.1, "failure_code": 17"#,
            format!("{SLEEP}.failure_code"),
            "gRPC error code",
        ),
        (
            r#""failure_code": "UNAVAILABLE""#,
            SLEEP.to_owned(),
            "need a `failure_chance`",
        ),
        (
            &format!(
                r#""failure_chance": 1, "failure_message": "{}""#,
                "x".repeat(2000)
            ),
            format!("{SLEEP}.failure_message"),
            "at most 1024 bytes",
        ),
        (
            r#""failure_chance": 0.1, "failures": []"#,
            SLEEP.to_owned(),
            "not both",
        ),
        (
            r#""failures": [{"chance": 0.7}, {"chance": 0.4, "hang": true}]"#,
            format!("{SLEEP}.failures"),
            "add up to at most 1",
        ),
        (
            r#""failures": [{"chance": 0.1}, {"chance": 2}]"#,
            format!("{SLEEP}.failures[1].chance"),
            "between 0 and 1",
        ),
        (
            r#""failures": [{"chance": 0.1, "hang": true, "code": 14}]"#,
            format!("{SLEEP}.failures[0]"),
            "fails with none",
        ),
        (
            r#""failures": [{"chance": 0.1, "when": "sometime"}]"#,
            format!("{SLEEP}.failures[0].when"),
            "unknown variant",
        ),
        (
            r#""failures": [{"chance": 0.1, "slow": "fast"}]"#,
            format!("{SLEEP}.failures[0].slow"),
            "not a duration",
        ),
        (
            r#""failures": [{"chance": 0.1, "sticky": true}]"#,
            format!("{SLEEP}.failures[0]"),
            "unknown field `sticky`",
        ),
    ] {
        let error = refused(&sleep(extra));
        assert_eq!(
            error.path.as_deref(),
            Some(path.as_str()),
            "{extra}: {error}"
        );
        assert!(error.message.contains(says), "{extra}: {error}");
    }
}

#[test]
fn a_call_says_how_its_failure_shows_upstream() {
    let call = |extra: &str| {
        format!(
            r#"[{{"Action": {{"CallService": {{"service_address": "localhost", "service_port": 1,
            "grpc_method": "B" {extra}}}}}}}]"#
        )
    };
    for (extra, on_failure, optional) in [
        ("", OnFailure::Internal, false),
        (
            r#", "on_failure": "propagate""#,
            OnFailure::Propagate,
            false,
        ),
        (
            r#", "on_failure": "NOT_FOUND", "optional": true"#,
            OnFailure::Map(tonic::Code::NotFound),
            true,
        ),
        (
            r#", "on_failure": 14"#,
            OnFailure::Map(tonic::Code::Unavailable),
            false,
        ),
    ] {
        let Step::Call(read) = read(&call(extra)).unwrap() else {
            panic!("a call");
        };
        assert_eq!((read.on_failure, read.optional), (on_failure, optional));
    }
    let error = refused(&call(r#", "on_failure": "shrug""#));
    assert_eq!(
        error.path.as_deref(),
        Some("grpc_method_a.operations[0].Action.CallService.on_failure")
    );
    assert!(error.message.contains("\"propagate\""), "{error}");
    let error = refused(&call(r#", "optional": "yes""#));
    assert_eq!(
        error.path.as_deref(),
        Some("grpc_method_a.operations[0].Action.CallService.optional")
    );
}

#[test]
fn a_fallback_holds_two_lists_of_operations() {
    let sleep = r#"{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1}}}"#;
    let step = read(&format!(
        r#"[{{"Action": {{"Fallback": {{"tracing_name": "read", "primary": [{sleep}],
            "fallback": [{sleep}, {sleep}]}}}}}}]"#
    ))
    .unwrap();
    let Step::Fallback(fallback) = step else {
        panic!("a fallback");
    };
    assert_eq!(fallback.name, "read");
    assert!(matches!(&*fallback.primary, Step::Sequence(s) if s.len() == 1));
    assert!(matches!(&*fallback.fallback, Step::Sequence(s) if s.len() == 2));

    let error = refused(
        r#"[{"Action": {"Fallback": {"tracing_name": "read", "primary": [],
            "fallback": [{"Action": {"Sleep": {"tracing_name": "s", "duration_ms": -1}}}]}}}]"#,
    );
    assert_eq!(
        error.path.as_deref(),
        Some("grpc_method_a.operations[0].Action.Fallback.fallback[0].Action.Sleep.duration_ms")
    );
    let error = refused(r#"[{"Action": {"Fallback": {"tracing_name": "read", "primary": []}}}]"#);
    assert!(
        error.message.contains("missing field `fallback`"),
        "{error}"
    );
}

#[test]
fn a_fallback_carries_attributes_and_a_dependency_sleep_its_failures() {
    let step = read(
        r#"[{"Action": {"Fallback": {"tracing_name": "read", "attributes": {"tier": "gold"},
            "primary": [{"Action": {"Sleep": {"tracing_name": "q", "duration_ms": 1,
                "as": {"db": "postgresql", "name": "orders-db"},
                "failures": [{"chance": 1, "code": "UNAVAILABLE"}]}}}],
            "fallback": []}}}]"#,
    )
    .unwrap();
    assert!(
        !step.attributes().is_empty(),
        "the fallback's own attributes"
    );
    let Step::Fallback(fallback) = step else {
        panic!("a fallback");
    };
    let Step::Sequence(primary) = &*fallback.primary else {
        panic!("a sequence");
    };
    let Step::Sleep(sleep) = &primary[0] else {
        panic!("a sleep");
    };
    assert!(sleep.dependency.is_some());
    assert_eq!(sleep.failures.outcomes().len(), 1);

    let error = refused(
        r#"[{"Action": {"Fallback": {"tracing_name": "read", "primary": [], "fallback": [],
            "attributes": {"tier": {"one_of": []}}}}}]"#,
    );
    assert_eq!(
        error.path.as_deref(),
        Some("grpc_method_a.operations[0].Action.Fallback.attributes.tier")
    );
}

/// A call to `127.0.0.1:7000` with `extra` keys.
fn call_with(extra: &str) -> String {
    format!(
        r#"[{{"Action": {{"CallService": {{"tracing_name": "c", "service_address": "127.0.0.1",
            "service_port": 7000, "grpc_method": "A"{extra}}}}}}}]"#
    )
}

#[test]
fn a_call_takes_its_own_timeout_and_a_grpc_retry_policy() {
    let Step::Retry(retry) = read(&call_with(
        r#", "timeout_ms": 250, "retry_policy": {"max_attempts": 3, "initial_backoff": "0.1s",
            "max_backoff": "1s", "backoff_multiplier": 2, "retryable_status_codes": ["UNAVAILABLE"]}"#,
    ))
    .unwrap() else {
        panic!("a retried call");
    };
    assert_eq!(retry.policy.max_attempts(), 3);
    assert!(retry.policy.retries(tonic::Code::Unavailable));
    assert!(!retry.policy.retries(tonic::Code::Internal));
    let Step::Call(call) = *retry.step else {
        panic!("the call is what is retried");
    };
    assert_eq!(call.timeout, Some(std::time::Duration::from_millis(250)));
    let Step::Call(plain) = read(&call_with("")).unwrap() else {
        panic!("a call without a policy stays a call");
    };
    assert_eq!(plain.timeout, None);
}

#[test]
fn call_timeout_and_retry_mistakes_are_refused_at_their_path() {
    const CALL: &str = "grpc_method_a.operations[0].Action.CallService";
    for (extra, path, says) in [
        (r#", "timeout_ms": 0"#, "timeout_ms", "from 1 to 3600000"),
        (r#", "timeout_ms": -5"#, "timeout_ms", "from 1 to 3600000"),
        (r#", "retry_policy": 11"#, "retry_policy", "from 0 to 10"),
        (
            r#", "retry_policy": {"max_attempts": 3, "initial_backoff": "0.1s", "max_backoff": "1s",
                "backoff_multiplier": 2, "retryable_status_codes": ["SOMETIMES"]}"#,
            "retry_policy.retryable_status_codes[0]",
            "gRPC error code",
        ),
        (
            r#", "retry_policy": {"max_attempts": 3, "initial_backoff": "0s", "max_backoff": "1s",
                "backoff_multiplier": 2, "retryable_status_codes": ["UNAVAILABLE"]}"#,
            "retry_policy.initial_backoff",
            "more than 0",
        ),
    ] {
        let error = refused(&call_with(extra));
        assert_eq!(
            error.path.as_deref(),
            Some(format!("{CALL}.{path}").as_str()),
            "{extra}: {error}"
        );
        assert!(error.message.contains(says), "{extra}: {error}");
    }
}
