//! `thespian poke` run as users run it, against a real instance: what it
//! counts, how it paces requests, and how it fails when it cannot run.

use std::{
    process::{Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::DEFAULT_WAIT;
use crate::support::{
    instance::Instance,
    otlp::{OtlpReceiver, SpansExt as _},
};
use serde_json::Value;
use tokio::process::Command;

/// A is a no-op, B always fails with INTERNAL, C takes far longer than any
/// timeout these tests give.
const CONFIG: &str = r#"{
    "grpc_method_b": {"tracing_name": "b", "operations": [
        {"Action": {"Sleep": {"tracing_name": "doomed", "duration_ms": 0, "failure_chance": 1.0}}}
    ]},
    "grpc_method_c": {"tracing_name": "c", "operations": [
        {"Action": {"Sleep": {"tracing_name": "slow", "duration_ms": 5000}}}
    ]}
}"#;

/// How long a poke that should end on its own may take.
const POKE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn poke_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
    // Only what each test sets, as for every instance the tests start.
    crate::support::settings::clear(&mut command);
    command
        .arg("poke")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `thespian poke ARGS` to the end; returns its output and how long it ran.
pub(crate) async fn poke(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = tokio::time::timeout(POKE_TIMEOUT, poke_command(args).output())
        .await
        .expect("poke ends on its own")
        .expect("run thespian poke");
    (output, started.elapsed())
}

/// The JSON summary a successful `--json` poke printed.
pub(crate) fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "poke failed ({}); stdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the summary is not one JSON object ({e}):\n{stdout}"))
}

#[tokio::test]
async fn fifty_requests_are_counted_by_the_status_each_one_got() {
    let instance = Instance::builder("poked").config(CONFIG).start().await;

    let (ok, _) = poke(&[&instance.address, "A", "--requests", "50", "--json"]).await;
    let ok = summary(&ok);
    assert_eq!(ok["requests"], 50);
    assert_eq!(ok["errors"], 0);
    assert_eq!(ok["status_codes"], serde_json::json!({"OK": 50}));

    let (failing, _) = poke(&[&instance.address, "b", "--requests", "50", "--json"]).await;
    let failing = summary(&failing);
    assert_eq!(failing["requests"], 50);
    assert_eq!(failing["errors"], 50);
    assert_eq!(failing["status_codes"], serde_json::json!({"INTERNAL": 50}));
    assert_eq!(failing["interrupted"], false);
    let latency = &failing["latency_ms"];
    assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
    assert!(latency["p99"].as_f64().unwrap() <= latency["max"].as_f64().unwrap());
}

#[tokio::test]
async fn the_summary_for_a_person_names_each_status() {
    let instance = Instance::builder("poked").config(CONFIG).start().await;
    let (output, _) = poke(&[&instance.address, "B", "--requests", "5"]).await;
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("5 requests"), "{text}");
    assert!(text.contains("status: INTERNAL 5"), "{text}");
    assert!(text.contains("p99"), "{text}");
    // No progress line when stderr is not a terminal.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_rate_spaces_requests_out_and_each_one_starts_its_own_trace() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("paced")
        .config(CONFIG)
        .otlp(&receiver.endpoint())
        .start()
        .await;

    // At 100 a second, 20 requests start over 19 intervals of 10 ms: however
    // fast the machine, the run cannot be shorter. Untraced, they carry no
    // trace context.
    let (output, ran_for) = poke(&[
        &instance.address,
        "A",
        "--rate",
        "100",
        "--requests",
        "20",
        "--no-traces",
        "--json",
    ])
    .await;
    let summary = summary(&output);
    assert_eq!(summary["requests"], 20);
    assert!(ran_for >= Duration::from_millis(190), "ran for {ran_for:?}");
    assert!(summary["elapsed_seconds"].as_f64().unwrap() >= 0.19);
    assert!(summary["requests_per_second"].as_f64().unwrap() <= 20.0 / 0.19);

    let spans = receiver
        .wait_for_spans(|s| s.named("thespian.Thespian/A").len() >= 20, DEFAULT_WAIT)
        .await;
    let served = spans.named("thespian.Thespian/A");
    assert_eq!(served.len(), 20);
    assert!(
        served.iter().all(|s| s.is_root()),
        "untraced pokes carry no trace context"
    );
    let mut traces: Vec<_> = served.iter().map(|s| &s.trace_id).collect();
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 20, "each poke starts its own trace");
    // The server saw them arrive spread out too (the first may lag a little
    // behind the schedule while the connection warms up).
    let first = served.iter().map(|s| s.start_time_unix_nano).min().unwrap();
    let last = served.iter().map(|s| s.start_time_unix_nano).max().unwrap();
    let spread = Duration::from_nanos(last - first);
    assert!(spread >= Duration::from_millis(170), "spread {spread:?}");
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_counts_as_deadline_exceeded() {
    let instance = Instance::builder("slow").config(CONFIG).start().await;
    let (output, ran_for) = poke(&[
        &instance.address,
        "C",
        "--requests",
        "3",
        "--timeout",
        "100ms",
        "--json",
    ])
    .await;
    let summary = summary(&output);
    assert_eq!(
        summary["status_codes"],
        serde_json::json!({"DEADLINE_EXCEEDED": 3})
    );
    // C takes 5 s; the run ends once the timeouts fire.
    assert!(ran_for < Duration::from_secs(4), "ran for {ran_for:?}");
}

#[tokio::test]
async fn ctrl_c_ends_a_poke_early_and_still_prints_the_summary() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("interrupted")
        .config(CONFIG)
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let child = poke_command(&[
        &instance.address,
        "A",
        "--rate",
        "50",
        "--duration",
        "1h",
        "--json",
    ])
    .spawn()
    .expect("start thespian poke");

    // Interrupt once the instance has demonstrably been poked.
    receiver
        .wait_for_spans(|s| s.named("thespian.Thespian/A").len() >= 5, DEFAULT_WAIT)
        .await;
    let pid = child.id().expect("poke is running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());

    let output = tokio::time::timeout(POKE_TIMEOUT, child.wait_with_output())
        .await
        .expect("poke stops on Ctrl-C")
        .expect("wait for poke");
    let summary = summary(&output);
    assert_eq!(summary["interrupted"], true);
    assert!(summary["requests"].as_u64().unwrap() >= 5, "{summary}");
    assert_eq!(summary["errors"], 0);
}

#[tokio::test]
async fn a_malformed_address_is_refused_with_a_clear_error() {
    let (output, _) = poke(&["http://no port here", "A", "--requests", "1"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`http://no port here` is not a valid address"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn an_address_where_nothing_listens_is_a_clear_error() {
    // Bind a port, then free it, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let (output, _) = poke(&[&address, "A", "--requests", "1"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
}

/// A TCP relay in front of `upstream` that counts the connections it is
/// opened with.
async fn counting_relay(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&opened);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (address.to_string(), opened)
}

#[tokio::test]
async fn requests_take_turns_over_the_connections_asked_for() {
    let instance = Instance::builder("spread").config(CONFIG).start().await;
    let upstream = instance.address.trim_start_matches("http://").to_owned();
    let (relay, opened) = counting_relay(upstream).await;

    let (output, _) = poke(&[
        &relay,
        "A",
        "--requests",
        "30",
        "--connections",
        "3",
        "--no-traces",
        "--json",
    ])
    .await;
    assert_eq!(
        summary(&output)["status_codes"],
        serde_json::json!({"OK": 30})
    );
    assert_eq!(opened.load(Ordering::SeqCst), 3);

    // Never more connections than requests in flight.
    let (output, _) = poke(&[
        &relay,
        "A",
        "--requests",
        "5",
        "--connections",
        "8",
        "--concurrency",
        "2",
        "--no-traces",
        "--json",
    ])
    .await;
    assert_eq!(
        summary(&output)["status_codes"],
        serde_json::json!({"OK": 5})
    );
    assert_eq!(opened.load(Ordering::SeqCst), 3 + 2);
}
