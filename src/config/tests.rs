//! How documents are read: refused at the JSON path of the value to fix,
//! or accepted in every form the original took.

use super::*;

fn error_of(text: &str) -> ConfigError {
    Config::from_str(text, "test.jsonc", &Scripting::default())
        .expect_err("the config should be refused")
}

#[test]
fn a_typo_is_reported_at_its_json_path() {
    let error = error_of(
        r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
            {"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1}}},
            {"ConcurrentActions": [{"Sleep": {"tracing_name": "s", "duraton_ms": 1}}]}
        ]}}"#,
    );
    assert_eq!(
        error.path.as_deref(),
        Some("grpc_method_a.operations[1].ConcurrentActions[0].Sleep")
    );
    assert!(
        error.message.contains("unknown field `duraton_ms`"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("test.jsonc: at `grpc_method_a")
    );
}

#[test]
fn values_out_of_range_are_reported_at_their_path() {
    let error = error_of(
        r#"{"grpc_method_b": {"tracing_name": "t", "operations": [
            {"Action": {"Function": {"tracing_name": "f", "operations": [
                {"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failure_chance": 1.5}}}
            ]}}}
        ]}}"#,
    );
    assert_eq!(
        error.path.as_deref(),
        Some(
            "grpc_method_b.operations[0].Action.Function.operations[0].Action.Sleep.failure_chance"
        )
    );
}

#[test]
fn bad_ports_and_methods_are_refused() {
    let call = |port: &str, method: &str| {
        format!(
            r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": [{{"Action": {{"CallService":
            {{"service_address": "http://localhost", "service_port": {port}, "grpc_method": "{method}"}}}}}}]}}}}"#
        )
    };
    assert!(
        error_of(&call("\"70000\"", "A"))
            .path
            .unwrap()
            .ends_with("service_port")
    );
    assert!(
        error_of(&call("0", "A"))
            .path
            .unwrap()
            .ends_with("service_port")
    );
    assert!(
        error_of(&call("6379", "D"))
            .path
            .unwrap()
            .ends_with("grpc_method")
    );
    assert!(Config::from_str(&call("\"6379\"", "B"), "x", &Scripting::default()).is_ok());
    assert!(Config::from_str(&call("6379", "C"), "x", &Scripting::default()).is_ok());
}

#[test]
fn comments_and_legacy_service_name_are_accepted() {
    let config = Config::from_str(
        "// leading\n{\"service_name\": \"old\", /* inline */ \"grpc_method_c\": null}",
        "x",
        &Scripting::default(),
    )
    .unwrap();
    assert_eq!(config.legacy_service_name.as_deref(), Some("old"));
    assert!(
        MethodName::ALL
            .iter()
            .all(|m| config.behaviour.get(*m).is_none())
    );
}

#[test]
fn syntax_errors_give_a_line_and_column() {
    let error = error_of("{\n  \"grpc_method_a\": {,\n}");
    assert!(error.message.contains("line 2"), "{error}");
}

#[test]
fn arrays_in_place_of_objects_are_refused_at_their_path() {
    for (text, path) in [
        ("[]", None),
        (r#"{"grpc_method_a": ["t", []]}"#, Some("grpc_method_a")),
        (
            r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
                {"ConcurrentActions": [{"Sleep": ["s", 10]}]}
            ]}}"#,
            Some("grpc_method_a.operations[0].ConcurrentActions[0].Sleep"),
        ),
        (
            r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
                {"Action": {"Function": ["f", []]}}
            ]}}"#,
            Some("grpc_method_a.operations[0].Action.Function"),
        ),
    ] {
        let error = error_of(text);
        assert_eq!(error.path.as_deref(), path, "{text}: {error}");
        assert!(error.message.contains("object"), "{text}: {error}");
    }
}

#[test]
fn arrays_serde_would_misread_are_refused_as_arrays() {
    // Read as a Sleep's field values, `["s", "10"]` fails on the
    // duration's type; the mistake is the array, so that is reported.
    let error = error_of(
        r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
            {"Action": {"Sleep": ["s", "10"]}}
        ]}}"#,
    );
    assert_eq!(
        error.path.as_deref(),
        Some("grpc_method_a.operations[0].Action.Sleep"),
        "{error}"
    );
    assert!(error.message.contains("found an array"), "{error}");
}

#[test]
fn a_syntax_error_between_keys_names_the_object_not_a_question_mark() {
    let error = error_of(r#"{"grpc_method_a": {"tracing_name": "t" "operations": []}}"#);
    assert_eq!(error.path.as_deref(), Some("grpc_method_a"), "{error}");
    assert!(error.message.contains("line 1 column"), "{error}");
}

#[test]
fn bad_numbers_are_refused_in_the_formats_words() {
    let sleep = |fields: &str| {
        format!(
            r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": [
                {{"Action": {{"Sleep": {{"tracing_name": "s", {fields}}}}}}}
            ]}}}}"#
        )
    };
    for (fields, expected) in [
        (r#""duration_ms": -5"#, "a whole number of milliseconds"),
        (r#""duration_ms": 2.5"#, "a whole number of milliseconds"),
        (r#""duration_ms": "10""#, "a whole number of milliseconds"),
        (
            r#""duration_ms": 1, "failure_chance": "0.5""#,
            "a number from 0 to 1",
        ),
    ] {
        let error = error_of(&sleep(fields));
        assert!(error.message.contains(expected), "{fields}: {error}");
        assert!(!error.message.contains("u64"), "{fields}: {error}");
    }
    for fields in [
        r#""duration_ms": 0"#,
        r#""duration_ms": 1, "failure_chance": 1"#,
        r#""duration_ms": 1, "failure_chance": 0.25"#,
        r#""duration_ms": 1, "failure_chance": null"#,
    ] {
        Config::from_str(&sleep(fields), "x", &Scripting::default())
            .unwrap_or_else(|e| panic!("{fields}: {e}"));
    }
}

#[test]
fn params_may_hold_arrays() {
    let text = r#"{"grpc_method_a": {"tracing_name": "t", "script_source": "sleep(1);",
        "params": {"shards": [["a", 1], ["b", 2]]}}}"#;
    Config::from_str(text, "x", &Scripting::default()).unwrap();
}

#[test]
fn trailing_garbage_is_refused() {
    error_of("{} {}");
}

#[test]
fn bad_dependencies_and_attributes_are_reported_at_their_path() {
    let sleep = |extra: &str| {
        format!(
            r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": [{{"Action": {{"Function":
            {{"tracing_name": "f", "operations": [{{"Action": {{"Sleep":
            {{"tracing_name": "s", "duration_ms": 1, {extra}}}}}}}]}}}}}}]}}}}"#
        )
    };
    let at = "grpc_method_a.operations[0].Action.Function.operations[0].Action.Sleep";
    for (extra, path, reason) in [
        (
            r#""as": {"db": "pg", "table": "t"}"#,
            format!("{at}.as"),
            "unknown field `table`",
        ),
        (
            r#""as": {"name": "pg"}"#,
            format!("{at}.as"),
            "exactly one of `db` or `messaging`",
        ),
        (
            r#""as": {"db": "pg", "port": 70000}"#,
            format!("{at}.as.port"),
            "u16",
        ),
        (
            r#""as": {"messaging": "kafka", "operation": "publish"}"#,
            format!("{at}.as"),
            "not `publish`",
        ),
        (
            r#""attributes": {"tier": {"one_of": [{"value": "gold", "weight": -1}]}}"#,
            format!("{at}.attributes.tier.one_of[0].weight"),
            "a weight",
        ),
        (
            r#""attributes": {"n": {"int_range": [5, 1]}}"#,
            format!("{at}.attributes.n"),
            "5 is above 1",
        ),
        (
            r#""attributes": {"tier": null}"#,
            format!("{at}.attributes.tier"),
            "a string, a number or a boolean",
        ),
        (
            r#""attributes": []"#,
            format!("{at}.attributes"),
            "found an array",
        ),
    ] {
        let error = error_of(&sleep(extra));
        assert_eq!(
            error.path.as_deref(),
            Some(path.as_str()),
            "{extra}: {error}"
        );
        assert!(error.message.contains(reason), "{extra}: {error}");
    }
}

#[test]
fn attributes_of_methods_functions_and_calls_are_checked_at_their_path() {
    let long = "k".repeat(129);
    for (text, path) in [
        (
            format!(
                r#"{{"grpc_method_b": {{"tracing_name": "t", "operations": [], "attributes": {{"{long}": 1}}}}}}"#
            ),
            "grpc_method_b.attributes",
        ),
        (
            r#"{"grpc_method_a": {"tracing_name": "t", "operations": [{"Action": {"Function":
                {"tracing_name": "f", "operations": [], "attributes": {"a": {"one_of": []}}}}}]}}"#
                .to_owned(),
            "grpc_method_a.operations[0].Action.Function.attributes.a",
        ),
        (
            r#"{"grpc_method_a": {"tracing_name": "t", "operations": [{"Action": {"CallService":
                {"service_address": "x", "service_port": 1, "grpc_method": "A",
                 "attributes": {"a": "b", "a": "c"}}}}]}}"#
                .to_owned(),
            "grpc_method_a.operations[0].Action.CallService.attributes",
        ),
    ] {
        let error = error_of(&text);
        assert_eq!(error.path.as_deref(), Some(path), "{error}");
    }
}

#[test]
fn dependencies_and_attributes_are_accepted_in_every_place() {
    let config = Config::from_str(
        r#"{"grpc_method_a": {"tracing_name": "t", "attributes": {"tier": {"one_of": [{"value": "gold"}]}},
            "operations": [
                {"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1,
                    "as": {"db": "postgresql", "operation": "SELECT", "collection": "orders"},
                    "attributes": {"n": {"int_range": [1, 2]}}}}},
                {"ConcurrentActions": [{"Function": {"tracing_name": "f", "operations": [],
                    "attributes": {"ok": true}}}]}
            ]}}"#,
        "x",
        &Scripting::default(),
    )
    .unwrap();
    assert!(!config.behaviour.attributes(MethodName::A).is_empty());
    assert!(config.behaviour.attributes(MethodName::B).is_empty());
}
