//! Work that costs something real, end to end over gRPC: a burn really
//! uses the CPU time it is told, read from the instance's `/proc` entry;
//! a saturated pool of burn threads makes burns wait, and their spans say
//! so; a burn dropped with its request frees its thread; memory held
//! really is resident, is let go, and stops at `MAX_HELD_BYTES` with
//! `RESOURCE_EXHAUSTED`.

use std::time::Duration;

use serde_json::json;
use thespian::proto::Empty;

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{Attributed as _, OtlpReceiver, ReceivedSpan};

/// The CPU time the process `pid` has used, user and system, from
/// `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The name, in brackets, may hold spaces; the fields after it do not.
    let (_, fields) = stat.rsplit_once(')').expect("a stat line");
    let fields: Vec<u64> = fields
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let (user, system) = (fields[10], fields[11]);
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos((user + system) * 1_000_000_000 / ticks)
}

/// The resident memory of the process `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Waits, looking every few milliseconds, until the resident memory of
/// `pid` satisfies `predicate`, and returns it; panics after `DEFAULT_WAIT`.
async fn resident_until(pid: u32, what: &str, predicate: impl Fn(u64) -> bool) -> u64 {
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    loop {
        let now = resident(pid);
        if predicate(now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "resident memory never {what}: {now} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The spans of the trace of `response`, once its `count` step spans
/// named `step` have arrived.
async fn steps_of(
    receiver: &OtlpReceiver,
    metadata: &tonic::metadata::MetadataMap,
    step: &str,
    count: usize,
) -> Vec<ReceivedSpan> {
    let trace = receiver
        .wait_for_trace(
            &trace_id(metadata),
            |trace| trace.iter().filter(|s| s.name == step).count() >= count,
            DEFAULT_WAIT,
        )
        .await;
    trace.into_iter().filter(|s| s.name == step).collect()
}

#[tokio::test]
async fn a_burn_uses_the_cpu_time_it_was_given() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_a": { "tracing_name": "resize", "operations": [
            { "Action": { "Burn": { "tracing_name": "scale image", "duration_ms": 250 } } }
        ] }
    });
    let instance = Instance::builder("burner")
        .otlp(&receiver.endpoint())
        .config(&config.to_string())
        .start()
        .await;
    let before = cpu_time(instance.pid());
    let response = instance.call_a().await;
    let used = cpu_time(instance.pid()) - before;
    assert!(
        used >= Duration::from_millis(200),
        "a burn of 250 ms of CPU added only {used:?} to the process"
    );
    let [burn] = &steps_of(&receiver, response.metadata(), "scale image", 1).await[..] else {
        panic!("one burn span");
    };
    assert_eq!(burn.attr_str("thespian.action"), Some("burn"));
    assert_eq!(burn.attr_f64("thespian.burn.cpu_ms"), Some(250.0));
    let burnt = burn
        .attr_f64("thespian.burn.cpu_used_ms")
        .expect("cpu used");
    assert!(burnt >= 250.0, "the burn says it used {burnt} ms");
}

#[tokio::test]
async fn a_saturated_pool_makes_burns_wait_and_their_spans_say_so() {
    let receiver = OtlpReceiver::start().await;
    let script =
        r#"concurrently("both", [|| burn_cpu("first", 150), || burn_cpu("second", 150)]);"#;
    let config = json!({
        "grpc_method_a": { "tracing_name": "render", "script_source": script }
    });
    let instance = Instance::builder("one core")
        .otlp(&receiver.endpoint())
        .env("MAX_BURN_THREADS", "1")
        .config(&config.to_string())
        .start()
        .await;
    let response = instance.call_a().await;
    let mut burns = steps_of(&receiver, response.metadata(), "first", 1).await;
    burns.extend(steps_of(&receiver, response.metadata(), "second", 1).await);
    let wait = |span: &ReceivedSpan| span.attr_f64("thespian.burn.wait_ms").expect("wait");
    burns.sort_by(|a, b| wait(a).total_cmp(&wait(b)));
    let (ran, waited) = (&burns[0], &burns[1]);
    let used = ran.attr_f64("thespian.burn.cpu_used_ms").expect("cpu used");
    // The one thread was busy for at least the CPU time the other burn
    // used, and the clock cannot run slower than one thread's CPU time.
    assert!(
        wait(waited) >= used - 1.0,
        "`{}` waited {} ms while `{}` burnt {used} ms on the only thread",
        waited.name,
        wait(waited),
        ran.name
    );
    assert!(waited.attr_f64("thespian.burn.cpu_used_ms").unwrap() >= 150.0);
}

#[tokio::test]
async fn a_burn_dropped_with_its_request_frees_its_thread() {
    let config = json!({
        "grpc_method_a": { "tracing_name": "forever", "operations": [
            { "Action": { "Burn": { "tracing_name": "an hour", "duration": "1h" } } }
        ] },
        "grpc_method_b": { "tracing_name": "brief", "operations": [
            { "Action": { "Burn": { "tracing_name": "a moment", "duration_ms": 10 } } }
        ] }
    });
    let instance = Instance::builder("one core")
        .env("MAX_BURN_THREADS", "1")
        .config(&config.to_string())
        .start()
        .await;
    let mut client = instance.client().await;
    let mut forever = client.clone();
    let call = tokio::spawn(async move { forever.a(Empty {}).await });
    instance
        .wait_for_line(|line| line.contains("burning 3600000 ms"), DEFAULT_WAIT)
        .await;
    call.abort();
    // Were the hour's burn still running, B's would wait for the only
    // thread far longer than this.
    tokio::time::timeout(DEFAULT_WAIT, client.b(Empty {}))
        .await
        .expect("B's burn got the thread")
        .expect("B answers");
}

#[tokio::test]
async fn memory_held_is_resident_until_let_go_and_capped() {
    let config = json!({
        "grpc_method_a": { "tracing_name": "warm cache", "operations": [
            { "Action": { "HoldMemory": {
                "tracing_name": "cache", "bytes": "64MiB", "duration": "1h" } } }
        ] },
        "grpc_method_b": { "tracing_name": "spike", "script_source":
            r#"hold_memory("buffer", "32MiB", 1);"# },
        "grpc_method_c": { "tracing_name": "greedy", "operations": [
            { "Action": { "HoldMemory": {
                "tracing_name": "everything", "bytes": "1GiB", "duration_ms": 1 } } }
        ] }
    });
    let instance = Instance::builder("holder")
        .env("MAX_HELD_BYTES", "80MiB")
        .config(&config.to_string())
        .start()
        .await;
    let pid = instance.pid();
    let mut client = instance.client().await;

    let refused = client.c(Empty {}).await.expect_err("past the cap");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("MAX_HELD_BYTES (80 MiB)"),
        "{}",
        refused.message()
    );
    client.b(Empty {}).await.expect("32 MiB fits under the cap");

    let baseline = resident(pid);
    let mut holder = client.clone();
    let held = tokio::spawn(async move { holder.a(Empty {}).await });
    instance
        .wait_for_line(|line| line.contains("holding 64 MiB"), DEFAULT_WAIT)
        .await;
    let during = resident(pid);
    assert!(
        during >= baseline + (60 << 20),
        "holding 64 MiB took resident memory from {baseline} only to {during}"
    );
    let refused = client.b(Empty {}).await.expect_err("64 + 32 MiB pass 80");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("64 MiB is held already"),
        "{}",
        refused.message()
    );

    // The caller gives up: the memory goes back, to the cap and the system.
    held.abort();
    resident_until(pid, "fell back", |now| now < during - (48 << 20)).await;
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    while let Err(status) = client.b(Empty {}).await {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cap never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_burn_in_flight_does_not_hold_up_shutdown() {
    let config = json!({
        "grpc_method_a": { "tracing_name": "forever", "script_source": r#"burn_cpu("an hour", "1h");"# }
    });
    let mut instance = Instance::builder("stopping")
        .env("SHUTDOWN_GRACE_MS", "100")
        .config(&config.to_string())
        .start()
        .await;
    let mut client = instance.client().await;
    let _call = tokio::spawn(async move { client.a(Empty {}).await });
    instance
        .wait_for_line(|line| line.contains("burning 3600000 ms"), DEFAULT_WAIT)
        .await;
    // The runtime waits for its blocking threads as it stops: the burn's
    // thread must notice that its request is gone.
    instance.stop_cleanly(DEFAULT_WAIT).await;
}
