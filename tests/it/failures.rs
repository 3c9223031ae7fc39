//! How failures look to a caller, in the exported trace and in the log
//! lines: pretend failures by chance, and a real one when a downstream is
//! gone or never answers. Also that calls to another instance share one
//! connection.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{
    Attributed as _, OtlpReceiver, ReceivedSpan, SpansExt as _, StatusCode,
};
use serde_json::json;
use thespian::proto::Empty;
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
};

/// Events that report an error: the span events made from
/// an ERROR-level event.
fn error_events(span: &ReceivedSpan) -> usize {
    span.events
        .iter()
        .filter(|e| e.attr_str("level") == Some("ERROR"))
        .count()
}

fn sleep(name: &str, duration_ms: u64, failure_chance: f64) -> serde_json::Value {
    json!({ "Action": { "Sleep": {
        "tracing_name": name, "duration_ms": duration_ms, "failure_chance": failure_chance
    } } })
}

/// A config whose method A fails for certain two levels down.
/// A config whose `A`, named `function`, makes one call, named `call`, to
/// `method` on the local port `port`.
fn calling(function: &str, call: &str, port: u16, method: &str) -> String {
    json!({
        "grpc_method_a": {
            "tracing_name": function,
            "operations": [ { "Action": { "CallService": {
                "tracing_name": call,
                "service_address": "http://127.0.0.1",
                "service_port": port.to_string(),
                "grpc_method": method
            } } } ]
        }
    })
    .to_string()
}

fn certain_failure() -> String {
    json!({
        "grpc_method_a": {
            "tracing_name": "place order",
            "operations": [
                sleep("reserve items", 1, 0.0),
                { "Action": { "Function": {
                    "tracing_name": "take payment",
                    "operations": [ sleep("charge card", 1, 1.0) ]
                } } },
                sleep("ship parcel", 1, 0.0)
            ]
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_chance_of_one_always_fails_and_is_reported_once_where_it_starts() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("orders")
        .config(&certain_failure())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let mut client = instance.client().await;

    let mut trace_ids = Vec::new();
    for _ in 0..5 {
        let status = client.a(Empty {}).await.expect_err("A must fail");
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        assert!(
            status.message().contains("charge card"),
            "the message names the step that failed: {status:?}"
        );
        trace_ids.push(trace_id(status.metadata()));
    }

    // A trace's spans may leave in more than one export, and exports on
    // their way at once may arrive in either order: wait for every span
    // the checks below read, not only the server span.
    let expected = [
        "thespian.Thespian/A",
        "reserve items",
        "take payment",
        "charge card",
    ];
    let spans = receiver
        .wait_for_spans(
            |s| {
                trace_ids.iter().all(|t| {
                    let trace = s.in_trace(t);
                    expected
                        .iter()
                        .all(|name| trace.iter().any(|s| s.name == *name))
                })
            },
            DEFAULT_WAIT,
        )
        .await;
    for trace_id in &trace_ids {
        let trace: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| &s.trace_id == trace_id)
            .cloned()
            .collect();
        let charge = trace.only_named("charge card");
        assert_eq!(charge.status_code, StatusCode::Error, "{charge}");
        assert_eq!(error_events(charge), 1, "{charge}");
        let event = charge
            .events
            .iter()
            .find(|e| e.attr_str("level") == Some("ERROR"))
            .unwrap();
        assert!(event.name.contains("charge card"), "{charge}");

        // The failure is logged once, where it starts...
        let total: usize = trace.iter().map(error_events).sum();
        assert_eq!(total, 1, "one error event in the whole trace: {trace:#?}");
        // ...and every span it passes through on the way up is failed.
        let mut span = charge;
        loop {
            assert_eq!(span.status_code, StatusCode::Error, "{span}");
            if span.is_root() {
                break;
            }
            span = trace
                .iter()
                .find(|s| s.span_id == span.parent_span_id)
                .unwrap_or_else(|| panic!("the parent of {span} was exported"));
        }
        assert_eq!(span.name, "thespian.Thespian/A");
        assert_eq!(span.attr_i64("rpc.grpc.status_code"), Some(13));

        // The step after the failure never ran; the one before it did not fail.
        assert!(trace.named("ship parcel").is_empty(), "{trace:#?}");
        assert_ne!(
            trace.only_named("reserve items").status_code,
            StatusCode::Error
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_chance_of_zero_never_fails() {
    let receiver = OtlpReceiver::start().await;
    let config = json!({
        "grpc_method_b": {
            "tracing_name": "lucky",
            "operations": [ sleep("never fails", 0, 0.0) ]
        }
    });
    let instance = Instance::builder("lucky")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let client = instance.client().await;

    let calls = (0..200).map(|_| {
        let mut client = client.clone();
        async move { client.b(Empty {}).await.map(|_| ()) }
    });
    let outcomes = futures::future::join_all(calls).await;
    let failures: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );

    // The chance really was configured as zero, on every one of them.
    let spans = receiver
        .wait_for_spans(|s| s.named("never fails").len() >= 200, DEFAULT_WAIT)
        .await;
    let steps = spans.named("never fails");
    assert_eq!(steps.len(), 200);
    assert!(
        steps
            .iter()
            .all(|s| s.attr_f64("failure_chance") == Some(0.0))
    );
    assert!(steps.iter().all(|s| s.status_code != StatusCode::Error));
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_carry_the_trace_of_the_request_they_describe() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("orders")
        .config(&certain_failure())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let status = instance
        .client()
        .await
        .a(Empty {})
        .await
        .expect_err("A fails");
    let trace_id = trace_id(status.metadata());
    let line = instance
        .wait_for_line(
            |l| l.contains("ERROR") && l.contains(&trace_id),
            DEFAULT_WAIT,
        )
        .await;
    let line: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["service"], "orders", "{line}");
    assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("charge card")),
        "{line}"
    );
    let timestamp = line["timestamp"].as_str().expect("a timestamp");
    assert!(
        timestamp.len() >= 20 && timestamp.contains('T'),
        "an RFC 3339 timestamp: {line}"
    );

    // The line names the span the failure started in, as exported.
    let spans = receiver
        .wait_for_spans(|s| !s.in_trace(&trace_id).is_empty(), DEFAULT_WAIT)
        .await;
    let charge = spans.only_named("charge card");
    assert_eq!(charge.trace_id, trace_id);
    assert_eq!(line["span_id"], charge.span_id.as_str(), "{line}");

    // Every JSON line has the common fields; lines outside a request simply
    // have no trace.
    for line in instance.json_lines() {
        for field in ["timestamp", "level", "message", "service"] {
            assert!(line.get(field).is_some(), "no {field}: {line}");
        }
        assert_eq!(line["trace_id"].is_string(), line["span_id"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_downstream_fails_the_caller_quickly_and_leaves_it_healthy() {
    let receiver = OtlpReceiver::start().await;
    // A port nothing listens on: bound, then released.
    let dead_port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = calling("look up prices", "ask pricing", dead_port, "C");
    let instance = Instance::builder("catalogue")
        .config(&config)
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let mut client = instance.client().await;

    for _ in 0..3 {
        let started = Instant::now();
        let status = client.a(Empty {}).await.expect_err("A must fail");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a refused connection fails at once, took {:?}",
            started.elapsed()
        );
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        let target = format!("127.0.0.1:{dead_port}");
        assert!(
            status.message().contains(&target)
                && status
                    .message()
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == "C"),
            "the message names the target and method: {status:?}"
        );
    }

    // Still healthy, and still serving its other methods.
    let channel = tonic::transport::Endpoint::from_shared(instance.address.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    client.b(Empty {}).await.expect("B still answers");

    let spans = receiver
        .wait_for_spans(|s| s.named("ask pricing").len() >= 3, DEFAULT_WAIT)
        .await;
    for call in spans.named("ask pricing") {
        assert_eq!(call.status_code, StatusCode::Error, "{call}");
        assert_eq!(error_events(call), 1, "{call}");
        assert_eq!(call.attr_i64("server.port"), Some(i64::from(dead_port)));
        assert_ne!(call.attr_i64("rpc.grpc.status_code"), Some(0), "{call}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downstream_that_never_answers_fails_the_call_at_its_deadline() {
    let receiver = OtlpReceiver::start().await;
    // Accepts connections and reads whatever comes, but never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let silence = tokio::spawn(async move {
        while let Ok((mut socket, _)) = silent.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0; 4096];
                while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });
    let config = calling("check stock", "ask warehouse", silent_port, "B");
    let instance = Instance::builder("shop")
        .config(&config)
        .otlp(&receiver.endpoint())
        .env("CALL_TIMEOUT_MS", "300")
        .start()
        .await;
    let mut client = instance.client().await;

    let status = tokio::time::timeout(Duration::from_secs(20), client.a(Empty {}))
        .await
        .expect("the call gives up at its deadline instead of waiting forever")
        .expect_err("A must fail");
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("127.0.0.1:{silent_port}"))
            && status.message().contains("DEADLINE_EXCEEDED")
            && status.message().contains("300 ms"),
        "the message names the target and the deadline: {status:?}"
    );
    client.b(Empty {}).await.expect("B still answers");

    let spans = receiver
        .wait_for_spans(|s| !s.named("ask warehouse").is_empty(), DEFAULT_WAIT)
        .await;
    let call = spans.named("ask warehouse")[0];
    assert_eq!(call.status_code, StatusCode::Error, "{call}");
    assert_eq!(error_events(call), 1, "{call}");
    assert_eq!(
        call.attr_i64("rpc.grpc.status_code"),
        Some(tonic::Code::DeadlineExceeded as i64),
        "{call}"
    );
    silence.abort();
}

/// A TCP forwarder that counts the connections made through it, so a test
/// can see how many connections one instance opens to another.
struct CountingProxy {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream_port: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CountingProxy {
            port,
            connections,
            task,
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_to_another_instance_share_one_connection() {
    let backend = Instance::builder("backend").start().await;
    let proxy = CountingProxy::start(backend.port).await;
    let config = json!({
        "grpc_method_a": {
            "tracing_name": "front",
            "operations": [ { "Action": { "CallService": {
                "tracing_name": "to backend",
                "service_address": "127.0.0.1",
                "service_port": proxy.port,
                "grpc_method": "B"
            } } } ]
        }
    });
    let front = Instance::builder("front")
        .config(&config.to_string())
        .start()
        .await;
    let mut client = front.client().await;

    for i in 0..50 {
        client
            .a(Empty {})
            .await
            .unwrap_or_else(|e| panic!("call {i} failed: {e:?}"));
    }
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        1,
        "50 calls through one instance should reuse one connection"
    );
}
