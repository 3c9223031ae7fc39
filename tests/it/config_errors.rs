//! Configs that load, and configs that do not: every kind of mistake gives
//! one clear line on stderr naming where it is, and a failing exit code,
//! whether the config is checked with `thespian check` or handed to a
//! serving instance through `CONFIG_JSON`.

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use tokio::process::Command;

use crate::support::instance::{Instance, run_to_exit};
use crate::support::settings;
use serde_json::{Value, json};

/// How long a refused input may take to stop the binary (see
/// [`run_to_exit`] for why there is a bound).
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Runs the binary with a clean environment plus `env`, and `args`, and
/// waits (at most [`EXIT_WAIT`]) for it to exit.
fn thespian(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
    settings::clear(&mut command);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        // A panic would print a backtrace; none may appear.
        .env("RUST_BACKTRACE", "1")
        .env("PORT", "0")
        .env("OTEL_BACKEND_ADDRESS", "")
        .envs(env.iter().copied());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime to wait on the binary");
    runtime.block_on(run_to_exit(
        command,
        EXIT_WAIT,
        &format!("thespian {args:?} with {env:?}"),
    ))
}

/// Asserts that `output` is a refusal: a failing exit code and one
/// `error:` line on stderr that contains every one of `expected`.
#[track_caller]
fn assert_refused(output: &Output, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "expected a failing exit code; stderr:\n{stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "no panic:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for text in expected {
        assert!(lines[0].contains(text), "expected {text:?} in:\n{stderr}");
    }
    assert!(
        stdout.trim().is_empty(),
        "nothing is served or logged on stdout:\n{stdout}"
    );
    lines[0].to_owned()
}

/// Checks `config` both ways a user hands it over: as a file to
/// `thespian check`, and as `CONFIG_JSON` to a serving instance. Both must
/// refuse it with the same message, naming the file or `CONFIG_JSON`.
#[track_caller]
fn assert_config_refused(config: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonc");
    std::fs::write(&file, config).unwrap();
    let file_name = file.display().to_string();

    let checked = thespian(&["check", &file_name], &[]);
    let checked = assert_refused(&checked, expected);
    assert!(
        checked.starts_with(&format!("error: {file_name}: ")),
        "the message names the file: {checked}"
    );

    let served = thespian(&[], &[("CONFIG_JSON", config)]);
    let served = assert_refused(&served, expected);
    assert!(
        served.starts_with("error: CONFIG_JSON: "),
        "the message names CONFIG_JSON: {served}"
    );
    assert_eq!(
        checked.replacen(&file_name, "CONFIG_JSON", 1),
        served,
        "the same problem reads the same wherever the config came from"
    );

    let via_config_file = thespian(&[], &[("CONFIG_FILE", &file_name)]);
    assert_eq!(assert_refused(&via_config_file, expected), checked);
}

/// A method whose operations are `operations`.
fn method_a(operations: Value) -> String {
    json!({ "grpc_method_a": { "tracing_name": "t", "operations": operations } }).to_string()
}

fn call(port: Value, method: &str) -> String {
    method_a(json!([ { "Action": { "CallService": {
        "tracing_name": "c",
        "service_address": "http://localhost",
        "service_port": port,
        "grpc_method": method
    } } } ]))
}

#[test]
fn an_unknown_key_is_reported_at_the_object_holding_it() {
    let config = method_a(json!([
        { "Action": { "Sleep": { "tracing_name": "ok", "duration_ms": 1 } } },
        { "ConcurrentActions": [ { "Sleep": { "tracing_name": "typo", "duraton_ms": 1 } } ] }
    ]));
    assert_config_refused(
        &config,
        &[
            "at `grpc_method_a.operations[1].ConcurrentActions[0].Sleep`",
            "unknown field `duraton_ms`",
        ],
    );
}

#[test]
fn a_json_syntax_error_gives_its_line_and_column() {
    // The comment is stripped without moving anything: positions still
    // match what the user sees in their editor.
    let config = "// invoicing\n{\n  \"grpc_method_a\": {,\n}";
    assert_config_refused(config, &["line 3 column 21"]);
}

#[test]
fn a_failure_chance_outside_zero_to_one_is_refused() {
    for chance in [1.5, -0.1] {
        let config = method_a(json!([ { "Action": { "Sleep": {
            "tracing_name": "s", "duration_ms": 1, "failure_chance": chance
        } } } ]));
        assert_config_refused(
            &config,
            &[
                "at `grpc_method_a.operations[0].Action.Sleep.failure_chance`",
                "between 0 and 1",
            ],
        );
    }
}

#[test]
fn a_bad_service_port_is_refused() {
    for port in [json!("70000"), json!(0), json!("http"), json!(-5)] {
        assert_config_refused(
            &call(port, "A"),
            &[
                "at `grpc_method_a.operations[0].Action.CallService.service_port`",
                "1 to 65535",
            ],
        );
    }
}

#[test]
fn an_unknown_grpc_method_is_refused() {
    assert_config_refused(
        &call(json!("6379"), "D"),
        &[
            "at `grpc_method_a.operations[0].Action.CallService.grpc_method`",
            "`D`",
        ],
    );
}

#[test]
fn an_https_target_is_refused_rather_than_called_in_the_clear() {
    let config = method_a(json!([ { "Action": { "CallService": {
        "tracing_name": "c",
        "service_address": "https://orders",
        "service_port": 443,
        "grpc_method": "A"
    } } } ]));
    assert_config_refused(
        &config,
        &[
            "at `grpc_method_a.operations[0].Action.CallService.service_address`",
            "plaintext",
            "use http://",
        ],
    );
}

#[test]
fn an_unknown_operation_kind_is_refused() {
    let config = method_a(json!([ { "Action": { "Wait": { "tracing_name": "w" } } } ]));
    assert_config_refused(
        &config,
        &[
            "at `grpc_method_a.operations[0].Action`",
            "unknown variant `Wait`",
            "Sleep",
        ],
    );
    let config = method_a(json!([ { "Actions": [] } ]));
    assert_config_refused(
        &config,
        &[
            "at `grpc_method_a.operations[0]`",
            "unknown variant `Actions`",
        ],
    );
}

#[test]
fn a_missing_required_field_is_refused() {
    let config = method_a(json!([ { "Action": { "Sleep": { "tracing_name": "s" } } } ]));
    assert_config_refused(
        &config,
        &[
            "at `grpc_method_a.operations[0].Action.Sleep`",
            "give exactly one of `duration_ms`",
        ],
    );
    let config = json!({ "grpc_method_b": { "operations": [] } }).to_string();
    assert_config_refused(
        &config,
        &["at `grpc_method_b`", "missing field `tracing_name`"],
    );
}

#[test]
fn a_missing_config_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.jsonc");
    let missing = missing.to_str().unwrap();

    let checked = thespian(&["check", missing], &[]);
    assert_refused(&checked, &[missing, "cannot read"]);
    let served = thespian(&[], &[("CONFIG_FILE", missing)]);
    assert_refused(&served, &[missing, "cannot read"]);
}

#[test]
fn config_file_and_config_json_together_are_refused() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/standalone.jsonc");
    let env = [
        ("CONFIG_FILE", file.to_str().unwrap()),
        ("CONFIG_JSON", "{}"),
    ];
    assert_refused(&thespian(&["check"], &env), &["CONFIG_FILE", "CONFIG_JSON"]);
    assert_refused(&thespian(&[], &env), &["CONFIG_FILE", "CONFIG_JSON"]);
}

#[test]
fn a_bad_port_variable_is_refused_before_serving() {
    let output = thespian(&[], &[("PORT", "99999")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("PORT") && first.contains("99999"),
        "{stderr}"
    );
}

#[test]
fn an_https_otlp_endpoint_is_refused_with_the_reason() {
    let output = thespian(&[], &[("OTEL_BACKEND_ADDRESS", "https://tempo:4317")]);
    assert_refused(&output, &["https://tempo:4317", "plaintext"]);
}

#[test]
fn a_port_already_in_use_is_refused_with_one_line() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = thespian(&[], &[("PORT", &port)]);
    assert_refused(&output, &["cannot listen on port", &port]);
}

#[test]
fn the_seed_configs_load_unchanged() {
    for name in ["standalone.jsonc", "call_service.jsonc"] {
        let path = format!("tests/fixtures/seed/{name}");
        let output = thespian(&["check", &path], &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(&format!("{path}: ok")), "{stdout}");
        // The original's top-level `service_name` is accepted, with a note.
        assert!(stdout.contains("service_name"), "{stdout}");
    }
}

/// Whether a JSON value has a `script` key anywhere inside it.
fn mentions_a_script(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key == "script" || mentions_a_script(value)),
        Value::Array(items) => items.iter().any(mentions_a_script),
        _ => false,
    }
}

fn jsonc_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            jsonc_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "jsonc") {
            found.push(path);
        }
    }
}

#[test]
fn every_example_config_without_a_script_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    jsonc_files(&root.join("example_configs"), &mut files);
    files.sort();
    let mut checked = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let stripped = json_comments::StripComments::new(text.as_bytes());
        let document: Value = serde_json::from_reader(stripped)
            .unwrap_or_else(|e| panic!("{} is not JSON with comments: {e}", file.display()));
        if mentions_a_script(&document) {
            continue;
        }
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let output = thespian(&["check", &relative], &[]);
        assert!(
            output.status.success(),
            "{relative}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        checked.push(relative);
    }
    for expected in [
        "example_configs/standalone.jsonc",
        "example_configs/call_service.jsonc",
        "example_configs/chain/gateway.jsonc",
        "example_configs/chain/inventory.jsonc",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} was not checked: {checked:?}"
        );
    }
}

#[tokio::test]
async fn the_seed_standalone_config_serves_unchanged() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/standalone.jsonc");
    let mut instance = Instance::builder("starfox")
        .env("CONFIG_FILE", file.to_str().unwrap())
        .start()
        .await;
    // The original's top-level service name is ignored, and the user is told.
    let warning = instance
        .wait_for_line(|l| l.contains("service_name"), Duration::from_secs(5))
        .await;
    assert!(warning.contains("starfox_simulator"), "{warning}");
    instance.stop_cleanly(Duration::from_secs(10)).await;
}
