//! Scripted behaviour, end to end: the real binary runs Rhai scripts, and
//! what they do is checked through gRPC statuses, the spans an OTLP
//! receiver gets, and the instance's own log lines.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{
    Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _, StatusCode,
};
use serde_json::json;
use thespian::proto::Empty;

/// The fixture scripts.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scripts");

/// How long a test waits for an instance to show a change.
const WAIT: Duration = Duration::from_secs(20);

/// A config whose method A runs `script` (a file) with `params`.
fn script_file(script: &str, params: serde_json::Value) -> String {
    json!({ "grpc_method_a": {
        "tracing_name": "checkout", "script": script, "params": params
    } })
    .to_string()
}

/// A config whose method A runs `source` inline, and whose method B just
/// answers, to show the instance is still well.
fn inline(source: &str, params: serde_json::Value) -> String {
    json!({
        "grpc_method_a": { "tracing_name": "checkout", "script_source": source, "params": params },
        "grpc_method_b": { "tracing_name": "healthy", "script_source": "sleep(1);" }
    })
    .to_string()
}

/// Waits until the trace's server span for method A has arrived (it ends
/// last, so the whole trace has), and returns the trace's spans.
async fn trace(receiver: &OtlpReceiver, trace_id: &str) -> Vec<ReceivedSpan> {
    receiver
        .wait_for_trace(
            trace_id,
            |trace| {
                trace
                    .iter()
                    .any(|s| s.name == "thespian.Thespian/A" && s.kind == SpanKind::Server)
            },
            DEFAULT_WAIT,
        )
        .await
}

fn error_events(span: &ReceivedSpan) -> usize {
    span.events
        .iter()
        .filter(|e| e.attr_str("level") == Some("ERROR"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_host_function_emits_a_named_span_nested_as_the_script_nests_it() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("storefront")
        .env("SCRIPTS_DIR", FIXTURES)
        .config(&script_file("shapes.rhai", json!({})))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let answer = instance.call_a().await;
    let spans = trace(&receiver, &trace_id(answer.metadata())).await;

    let server = spans.only_named("thespian.Thespian/A");
    let method = spans.only_named("checkout");
    assert_eq!(method.parent_span_id, server.span_id);
    let under_method: Vec<&str> = spans
        .children_of(method)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        under_method.len(),
        4,
        "warm up, sleep, never fails, load cart: {under_method:?}"
    );

    let warm_up = spans.only_named("warm up");
    assert_eq!(warm_up.parent_span_id, method.span_id);
    assert_eq!(warm_up.attr_str("thespian.action"), Some("sleep"));
    assert_eq!(warm_up.attr_str("_tracing_name"), Some("warm up"));
    assert_eq!(warm_up.attr_i64("duration_ms"), Some(5));
    assert!(warm_up.duration() >= Duration::from_millis(5), "{warm_up}");

    let unnamed = spans.only_named("sleep");
    assert_eq!(unnamed.attr_str("thespian.action"), Some("sleep"));
    assert_eq!(unnamed.attr_i64("duration_ms"), Some(1));

    let chance = spans.only_named("never fails");
    assert_eq!(chance.attr_str("thespian.action"), Some("fail_with_chance"));
    assert_eq!(chance.attr_f64("failure_chance"), Some(0.0));

    let function = spans.only_named("load cart");
    assert_eq!(function.attr_str("thespian.action"), Some("function"));
    let group = spans.only_named("fan out");
    assert_eq!(group.parent_span_id, function.span_id);
    assert_eq!(group.attr_str("thespian.action"), Some("concurrently"));
    assert_eq!(group.attr_i64("thespian.branches"), Some(2));
    for name in ["prices", "stock", "reserve"] {
        assert_eq!(
            spans.only_named(name).parent_span_id,
            group.span_id,
            "{name} hangs from the group"
        );
    }

    // The branches overlap: each starts before the other ends.
    let (prices, stock) = (spans.only_named("prices"), spans.only_named("stock"));
    assert!(prices.start_time_unix_nano < stock.end_time_unix_nano);
    assert!(stock.start_time_unix_nano < prices.end_time_unix_nano);
    // ...and the step after `stock` in its branch waits for it.
    assert!(spans.only_named("reserve").start_time_unix_nano >= stock.end_time_unix_nano);
    assert!(
        group.duration() < Duration::from_millis(390),
        "two 200 ms branches side by side: {group}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_call_continues_the_trace_in_the_called_instance() {
    let receiver = OtlpReceiver::start().await;
    let database = Instance::builder("database")
        .config(&inline(r#"sleep("insert row", 1);"#, json!({})))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let frontend = Instance::builder("frontend")
        .config(&inline(
            r#"call("place order", params.orders, "A");"#,
            json!({ "orders": format!("127.0.0.1:{}", database.port) }),
        ))
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let trace_id = trace_id(frontend.call_a().await.metadata());
    let trace = receiver
        .wait_for_trace(
            &trace_id,
            |trace| {
                trace.iter().any(|s| s.name == "insert row")
                    && trace
                        .iter()
                        .filter(|s| s.name == "thespian.Thespian/A")
                        .count()
                        == 2
            },
            DEFAULT_WAIT,
        )
        .await;
    let client = trace.only_named("place order");
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.service_name.as_deref(), Some("frontend"));
    assert_eq!(client.attr_str("thespian.action"), Some("call"));
    assert_eq!(client.attr_str("rpc.method"), Some("A"));
    let downstream = trace
        .iter()
        .find(|s| s.name == "thespian.Thespian/A" && s.service_name.as_deref() == Some("database"))
        .expect("the database's server span is in the same trace");
    assert_eq!(downstream.parent_span_id, client.span_id);
    assert_eq!(
        trace.only_named("insert row").service_name.as_deref(),
        Some("database")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_chance_of_one_always_fails_and_of_zero_never_does() {
    let instance = Instance::builder("coin")
        .config(
            &json!({
                "grpc_method_a": { "tracing_name": "never", "script_source": r#"fail_with_chance("coin", 0);"# },
                "grpc_method_b": { "tracing_name": "always", "script_source": r#"fail_with_chance("coin", 1.0);"# }
            })
            .to_string(),
        )
        .start()
        .await;
    let mut client = instance.client().await;
    for _ in 0..20 {
        client.a(Empty {}).await.expect("a chance of 0 never fails");
        let status = client
            .b(Empty {})
            .await
            .expect_err("a chance of 1 always fails");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status.message().contains("`coin` failed by chance"),
            "{status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_syntax_error_names_the_file_line_and_column_and_the_instance_does_not_start() {
    let config = script_file("broken.rhai", json!({}));
    for subcommand in [None, Some("check")] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"));
        command
            .args(subcommand)
            .env_remove("CONFIG_FILE")
            .env("CONFIG_JSON", &config)
            .env("SCRIPTS_DIR", FIXTURES)
            .env("PORT", "0")
            .env("OTEL_BACKEND_ADDRESS", "")
            .kill_on_drop(true);
        let output = tokio::time::timeout(WAIT, command.output())
            .await
            .expect("the binary exits")
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{subcommand:?}: {stderr}");
        let expected = format!(
            "{}, line 3, column 9: syntax error",
            Path::new(FIXTURES).join("broken.rhai").display()
        );
        assert!(stderr.contains(&expected), "{subcommand:?}: {stderr}");
        assert!(stderr.contains("grpc_method_a.script"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_error_fails_the_request_with_its_position_and_one_error_event() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("validator")
        .env("SCRIPTS_DIR", FIXTURES)
        .config(&script_file("runtime_error.rhai", json!({})))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let mut client = instance.client().await;
    let status = client.a(Empty {}).await.expect_err("the script fails");
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status.message().contains(&format!(
            "{}, line 4, column 5: sleep takes a duration of 0 or more milliseconds, not -5",
            Path::new(FIXTURES).join("runtime_error.rhai").display()
        )),
        "{status:?}"
    );

    let trace = trace(&receiver, &trace_id(status.metadata())).await;
    // The step before the error ran; the one after it was never built.
    trace.only_named("before the error");
    assert!(trace.named("never reached").is_empty());
    // The error is reported once, in the function where it happened.
    let validate = trace.only_named("validate");
    assert_eq!(error_events(validate), 1, "{validate}");
    assert_eq!(trace.iter().map(error_events).sum::<usize>(), 1);
    assert_eq!(validate.status_code, StatusCode::Error);

    // The instance is unharmed.
    client
        .a(Empty {})
        .await
        .expect_err("fails the same way again");
    thespian::health::check(&instance.address)
        .await
        .expect("still SERVING");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thrown_map_chooses_the_status_and_anything_else_thrown_is_internal() {
    let instance = Instance::builder("cart")
        .config(
            &json!({
                "grpc_method_a": { "tracing_name": "map", "script_source":
                    r#"throw #{ code: "NOT_FOUND", message: "no such cart" };"# },
                "grpc_method_b": { "tracing_name": "number", "script_source":
                    r#"throw #{ code: 8, message: "slow down" };"# },
                "grpc_method_c": { "tracing_name": "text", "script_source":
                    "sleep(1);\nthrow \"out of stock\";" }
            })
            .to_string(),
        )
        .start()
        .await;
    let mut client = instance.client().await;
    let status = client.a(Empty {}).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::NotFound, "no such cart")
    );
    let status = client.b(Empty {}).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::ResourceExhausted, "slow down")
    );
    let status = client.c(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.message(),
        r#"grpc_method_c.script_source, line 2, column 1: threw "out of stock""#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sandbox_limit_fails_only_the_request_that_breaks_it() {
    let cases = [
        (
            "SCRIPT_MAX_OPERATIONS",
            "1000",
            "loop {}",
            "ran more than 1000 operations",
        ),
        (
            "SCRIPT_TIMEOUT_MS",
            "50",
            "loop {}",
            "ran longer than 50 ms",
        ),
        (
            "SCRIPT_MAX_STEPS",
            "5",
            "loop { sleep(0); }",
            "built more than 5 steps",
        ),
        (
            "SCRIPT_MAX_CALL_DEPTH",
            "8",
            "fn down() { down() } down();",
            "more than 8 deep",
        ),
        (
            "SCRIPT_MAX_STRING_BYTES",
            "1024",
            r#"let s = "x"; loop { s += s; }"#,
            "past 1024 bytes",
        ),
        (
            "SCRIPT_MAX_ARRAY_LEN",
            "100",
            "let a = []; loop { a.push(a.len()); }",
            "past 100 elements",
        ),
        (
            "SCRIPT_MAX_ARRAY_LEN",
            "100",
            "let a = [].pad(1000000000, 0);",
            "past 100 elements",
        ),
        (
            "SCRIPT_MAX_MAP_LEN",
            "100",
            "let m = #{}; for i in 0..1000 { m[`k${i}`] = i; } m.keys();",
            "past 100 properties",
        ),
    ];
    for (variable, value, script, expected) in cases {
        let mut builder = Instance::builder("sandboxed").config(&inline(script, json!({})));
        if variable == "SCRIPT_TIMEOUT_MS" {
            // Only the clock can stop this loop.
            builder = builder.env("SCRIPT_MAX_OPERATIONS", "0");
        }
        let instance = builder.env(variable, value).start().await;
        let mut client = instance.client().await;
        let started = Instant::now();
        let status = client.a(Empty {}).await.expect_err(script);
        assert!(started.elapsed() < Duration::from_secs(10), "{script}");
        assert_eq!(status.code(), tonic::Code::Internal, "{script}: {status:?}");
        assert!(
            status.message().contains(expected) && status.message().contains(variable),
            "{script}: {status:?}"
        );
        thespian::health::check(&instance.address)
            .await
            .expect("still SERVING");
        client.b(Empty {}).await.expect("the next request succeeds");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_cannot_reach_the_file_system_or_eval() {
    for script in [r#"import "os" as os;"#, r#"eval("sleep(1)");"#] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"));
        command
            .arg("check")
            .env_remove("CONFIG_FILE")
            .env("CONFIG_JSON", inline(script, json!({})));
        let output = command.output().await.expect("the binary runs");
        assert_eq!(output.status.code(), Some(1), "{script}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("line 1, column 1: syntax error"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scripted_sleeps_wait_without_holding_a_thread() {
    // Rhai's own sleep(1.5) would block a runtime thread for a second and a
    // half; forty of them on a small machine would take most of a minute.
    let instance = Instance::builder("sleepy")
        .config(&inline("sleep(1.5); sleep(500);", json!({})))
        .start()
        .await;
    let client = instance.client().await;
    let started = Instant::now();
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.a(Empty {}).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap().expect("A answers");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn random_differs_from_one_request_to_the_next() {
    let instance = Instance::builder("dice")
        .config(&inline(
            r#"throw #{ code: "NOT_FOUND", message: `${random()}` };"#,
            json!({}),
        ))
        .start()
        .await;
    let mut client = instance.client().await;
    let mut rolls = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let status = client.a(Empty {}).await.unwrap_err();
        let roll: f64 = status.message().parse().expect("a number");
        assert!((0.0..1.0).contains(&roll), "{roll}");
        rolls.insert(status.message().to_owned());
    }
    assert!(rolls.len() > 1, "{rolls:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn print_and_debug_become_log_lines_not_raw_output() {
    let instance = Instance::builder("chatty")
        .env("RUST_LOG", "info,thespian::script=debug")
        .config(&inline(
            r#"print(`hello from ${params.who}`); debug("details");"#,
            json!({ "who": "the script" }),
        ))
        .start()
        .await;
    instance.call_a().await;
    let line = instance
        .wait_for_line(|line| line.contains("hello from the script"), WAIT)
        .await;
    let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(line["level"], "INFO", "{line}");
    let line = instance
        .wait_for_line(|line| line.contains("details"), WAIT)
        .await;
    let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(line["level"], "DEBUG", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_print_is_written_when_the_story_reaches_it_inside_its_block() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("storyteller")
        .config(&inline(
            r#"function("fill cart", || { sleep("load cart", 5); print("cart loaded"); });"#,
            json!({}),
        ))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let answer = instance.call_a().await;
    let printed = instance
        .wait_for_line(|line| line.contains("cart loaded"), WAIT)
        .await;
    let lines = instance.lines();
    let slept = lines
        .iter()
        .position(|line| line.contains("`load cart` finished"))
        .expect("the sleep's last line");
    let said = lines
        .iter()
        .position(|line| *line == printed)
        .expect("the printed line");
    assert!(
        slept < said,
        "printed before the sleep ended:\n{}",
        lines.join("\n")
    );
    let printed: serde_json::Value = serde_json::from_str(&printed).expect("a JSON log line");
    assert_eq!(printed["level"], "INFO", "{printed}");
    let spans = trace(&receiver, &trace_id(answer.metadata())).await;
    let block = spans.only_named("fill cart");
    assert_eq!(printed["span_id"], block.span_id.as_str(), "{printed}");
    assert!(
        block.event("cart loaded").is_some(),
        "the print is an event of its block's span: {block}"
    );
}

/// Replaces `path` the way many editors save: write a new file beside it,
/// then rename it over the old one.
fn save_by_rename(path: &Path, text: &str) {
    let temporary = path.with_extension("rhai.swp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Asks method A until its status message is `expected`, or panics at the
/// deadline: the reload happens in the background, shortly after a save.
async fn wait_for_message(instance: &Instance, expected: &str) {
    let mut client = instance.client().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let message = match client.a(Empty {}).await {
            Ok(_) => "ok".to_owned(),
            Err(status) => status.message().to_owned(),
        };
        if message == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "A still answers {message:?}, not {expected:?}; output:\n{}",
            instance.lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn version(n: u32) -> String {
    format!("throw #{{ code: \"NOT_FOUND\", message: \"version {n}\" }};\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_script_serves_the_next_request_and_a_broken_edit_keeps_the_last_good_one() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("live.rhai");
    std::fs::write(&path, version(1)).unwrap();
    let instance = Instance::builder("live")
        .env("SCRIPTS_DIR", folder.path().to_str().unwrap())
        .config(&script_file("live.rhai", json!({})))
        .start()
        .await;
    wait_for_message(&instance, "version 1").await;

    // Saved by rename, as editors do.
    save_by_rename(&path, &version(2));
    wait_for_message(&instance, "version 2").await;

    // Written in place.
    std::fs::write(&path, version(3)).unwrap();
    wait_for_message(&instance, "version 3").await;

    // A broken save is logged with its position; version 3 keeps serving.
    save_by_rename(&path, "sleep(1);\nlet = 5;\n");
    let line = instance
        .wait_for_line(|line| line.contains("last good version"), WAIT)
        .await;
    let logged: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(logged["level"], "ERROR", "{line}");
    assert!(
        line.contains("live.rhai, line 2, column 5: syntax error"),
        "{line}"
    );
    wait_for_message(&instance, "version 3").await;

    // Fixed again, it serves again.
    save_by_rename(&path, &version(4));
    wait_for_message(&instance, "version 4").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_block_is_tried_again_with_spans_for_every_try() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("flaky")
        .config(&inline(
            r#"retry(2, || { sleep("attempt", 1); fail_with_chance("deadlock", 1.0); });"#,
            json!({}),
        ))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let status = instance.client().await.a(Empty {}).await.unwrap_err();
    assert!(
        status.message().contains("`deadlock` failed by chance"),
        "{status:?}"
    );
    let trace = trace(&receiver, &trace_id(status.metadata())).await;
    assert_eq!(trace.named("attempt").len(), 3, "one try and two retries");
    let mut failures = trace.named("deadlock");
    assert_eq!(failures.len(), 3);
    assert!(
        failures
            .iter()
            .all(|f| error_events(f) == 1 && f.status_code == StatusCode::Error)
    );
    // Each try starts only once the one before it has failed.
    let mut attempts = trace.named("attempt");
    attempts.sort_by_key(|a| a.start_time_unix_nano);
    failures.sort_by_key(|f| f.start_time_unix_nano);
    for i in 1..3 {
        assert!(attempts[i].start_time_unix_nano >= failures[i - 1].end_time_unix_nano);
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_script_mounted_from_a_kubernetes_config_map_reloads_when_the_map_changes() {
    use std::os::unix::fs::symlink;
    // Kubernetes mounts a ConfigMap as files that link through `..data` to
    // a timestamped folder, and updates it by swapping `..data`.
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    std::fs::create_dir(root.join("..2026_01")).unwrap();
    std::fs::write(root.join("..2026_01/live.rhai"), version(1)).unwrap();
    symlink("..2026_01", root.join("..data")).unwrap();
    symlink("..data/live.rhai", root.join("live.rhai")).unwrap();
    let instance = Instance::builder("mounted")
        .env("SCRIPTS_DIR", root.to_str().unwrap())
        .config(&script_file("live.rhai", json!({})))
        .start()
        .await;
    wait_for_message(&instance, "version 1").await;

    std::fs::create_dir(root.join("..2026_02")).unwrap();
    std::fs::write(root.join("..2026_02/live.rhai"), version(2)).unwrap();
    symlink("..2026_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_01")).unwrap();
    wait_for_message(&instance, "version 2").await;
}

/// The repository's root, where `scripts/` and `example_configs/` are.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The scripted method A of an example config, with its `params` replaced.
fn example_method_a(config: &str, params: serde_json::Value) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(config)).unwrap();
    let document: serde_json::Value =
        serde_json::from_reader(json_comments::StripComments::new(text.as_bytes())).unwrap();
    let mut method = document["grpc_method_a"].clone();
    method["params"] = params;
    json!({ "grpc_method_a": method }).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_scripts_play_the_sample_ecosystem() {
    let receiver = OtlpReceiver::start().await;
    let scripts = Path::new(ROOT).join("scripts");
    let scripts = scripts.to_str().unwrap();
    // Each service runs method A of its namesake in the Compose rendering of
    // example_configs/ecosystem.yaml.
    let start = |service: &str, params: serde_json::Value| {
        let config = format!("deploy/compose/configs/{service}.jsonc");
        Instance::builder(service)
            .env("SCRIPTS_DIR", scripts)
            .config(&example_method_a(&config, params))
            .otlp(&receiver.endpoint())
            .start()
    };
    let database = start("database", json!({})).await;
    let orders = start("orders", json!({ "database": database.address })).await;
    let frontend = start("frontend", json!({ "orders": orders.address })).await;

    // The scripts fail now and then on purpose; most checkouts get through.
    let mut client = frontend.client().await;
    let mut succeeded = Vec::new();
    for _ in 0..20 {
        match client.a(Empty {}).await {
            Ok(answer) => succeeded.push(trace_id(answer.metadata())),
            Err(status) => assert_ne!(status.code(), tonic::Code::Unknown, "{status:?}"),
        }
    }
    assert!(succeeded.len() >= 10, "{} of 20 succeeded", succeeded.len());

    let trace = receiver
        .wait_for_trace(
            &succeeded[0],
            |trace| {
                trace
                    .iter()
                    .filter(|s| s.name == "thespian.Thespian/A")
                    .count()
                    // Three, or more when `place order` was retried.
                    >= 3
            },
            DEFAULT_WAIT,
        )
        .await;
    for (service, span) in [
        ("frontend", "place order"),
        ("orders", "fan out to shards"),
        ("orders", "read orders shard 3"),
        ("orders", "insert order"),
        ("database", "transaction"),
    ] {
        assert!(
            trace
                .iter()
                .any(|s| s.name == span && s.service_name.as_deref() == Some(service)),
            "{service} has a span {span:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_config_checks_out_and_every_example_script_is_used() {
    let scripts = Path::new(ROOT).join("scripts");
    let mut used = std::collections::BTreeSet::new();
    for folder in [
        "example_configs",
        "deploy/compose/configs",
        "example_configs/chain",
        "example_configs/realistic",
    ] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jsonc") {
                continue;
            }
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"))
                .arg("check")
                .arg(&path)
                .env("SCRIPTS_DIR", &scripts)
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            let text = std::fs::read_to_string(&path).unwrap();
            for entry in std::fs::read_dir(&scripts).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if text.contains(&format!("\"{name}\"")) {
                    used.insert(name);
                }
            }
        }
    }
    for entry in std::fs::read_dir(&scripts).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".rhai") {
            assert!(
                used.contains(&name),
                "no example config uses scripts/{name}"
            );
        }
    }
}
