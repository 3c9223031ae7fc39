//! Stopping an instance the way a container runtime does: SIGTERM while
//! requests are in flight. Those requests finish, their spans are exported,
//! new connections are refused, and a request that outlives the grace
//! period is cut off without keeping the process alive.
//!
//! To know that requests really are in flight, each one first calls a
//! gate: a tiny Thespian server inside the test that counts its callers.

use std::time::{Duration, Instant};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::Instance;
use crate::support::otlp::{OtlpReceiver, SpansExt as _};
use serde_json::json;
use thespian::proto::{
    Empty,
    thespian_server::{Thespian, ThespianServer},
};
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// Counts the calls it answers, so a test can wait until requests have
/// reached the instance under test.
struct Gate {
    calls: watch::Sender<usize>,
}

#[tonic::async_trait]
impl Thespian for Gate {
    async fn a(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.calls.send_modify(|n| *n += 1);
        Ok(Response::new(Empty {}))
    }

    async fn b(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.a(request).await
    }

    async fn c(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.a(request).await
    }
}

/// A running gate: its port, and how many calls it has answered.
struct RunningGate {
    port: u16,
    calls: watch::Receiver<usize>,
}

impl RunningGate {
    async fn start() -> RunningGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (calls, counted) = watch::channel(0);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ThespianServer::new(Gate { calls }))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        RunningGate {
            port,
            calls: counted,
        }
    }

    /// Waits until `n` calls have passed the gate.
    async fn wait_for(&mut self, n: usize) {
        tokio::time::timeout(DEFAULT_WAIT, self.calls.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} calls never reached the gate"))
            .expect("the gate is running");
    }
}

/// Method A: pass the gate, then work for `work_ms`.
fn gated_work(gate: &RunningGate, work_ms: u64) -> String {
    json!({
        "grpc_method_a": {
            "tracing_name": "handle order",
            "operations": [
                { "Action": { "CallService": {
                    "tracing_name": "pass the gate",
                    "service_address": "127.0.0.1",
                    "service_port": gate.port,
                    "grpc_method": "A"
                } } },
                { "Action": { "Sleep": { "tracing_name": "finish work", "duration_ms": work_ms } } }
            ]
        }
    })
    .to_string()
}

/// Starts `n` calls to method A, each on its own task.
async fn start_requests(
    instance: &Instance,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Response<Empty>, Status>>> {
    let client = instance.client().await;
    (0..n)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.a(Empty {}).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_requests_in_flight_finish_and_loses_none_of_their_spans() {
    const REQUESTS: usize = 5;
    let receiver = OtlpReceiver::start().await;
    let mut gate = RunningGate::start().await;
    let mut instance = Instance::builder("draining")
        .config(&gated_work(&gate, 600))
        .otlp(&receiver.endpoint())
        // A long batch delay: only the flush at shutdown can deliver the spans.
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .start()
        .await;
    let port = instance.port;

    let requests = start_requests(&instance, REQUESTS).await;
    gate.wait_for(REQUESTS).await;
    instance.terminate();
    instance
        .wait_for_line(|l| l.contains("shutting down"), DEFAULT_WAIT)
        .await;

    // New connections are refused while the old requests are still running.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            outcome => {
                assert!(
                    Instant::now() < deadline,
                    "connections still accepted after SIGTERM: {outcome:?}"
                );
                // Polling a condition against a deadline; the pause only
                // keeps the loop from hogging a core.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    assert!(
        requests.iter().any(|r| !r.is_finished()),
        "the check for refused connections ran while requests were in flight"
    );

    for (i, request) in requests.into_iter().enumerate() {
        request
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i} was cut off: {e:?}"));
    }
    let status = instance.wait_for_exit(DEFAULT_WAIT).await;
    assert_eq!(status.code(), Some(0), "a clean exit after draining");

    let spans = receiver
        .wait_for_spans(
            |s| s.named("thespian.Thespian/A").len() >= REQUESTS,
            Duration::from_secs(5),
        )
        .await;
    assert!(
        spans
            .iter()
            .all(|s| s.service_name.as_deref() == Some("draining")),
        "{}",
        receiver.dump()
    );
    for name in [
        "thespian.Thespian/A",
        "handle order",
        "pass the gate",
        "finish work",
    ] {
        assert_eq!(
            spans.named(name).len(),
            REQUESTS,
            "every {name:?} span reached the collector:\n{}",
            receiver.dump()
        );
    }
    for server in spans.named("thespian.Thespian/A") {
        let work = spans
            .in_trace(&server.trace_id)
            .into_iter()
            .find(|s| s.name == "finish work")
            .expect("each trace has its work");
        assert!(work.duration() >= Duration::from_millis(600), "{work}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_outliving_the_grace_period_is_cut_off_and_the_process_exits() {
    let mut gate = RunningGate::start().await;
    let mut instance = Instance::builder("impatient")
        .config(&gated_work(&gate, 60_000))
        .env("SHUTDOWN_GRACE_MS", "300")
        .start()
        .await;

    let requests = start_requests(&instance, 1).await;
    gate.wait_for(1).await;
    let signalled = Instant::now();
    instance.terminate();
    let status = instance.wait_for_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; output:\n{}",
        instance.lines().join("\n")
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "exit should follow the 300 ms grace period, took {took:?}"
    );
    // The output pipe may still hold the last lines after the exit.
    instance
        .wait_for_line(|l| l.contains("cut off"), DEFAULT_WAIT)
        .await;
    for request in requests {
        let outcome = request.await.unwrap();
        assert!(
            outcome.is_err(),
            "the request cannot have finished: {outcome:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_instance_stops_at_once_on_sigint() {
    let mut instance = Instance::builder("idle").start().await;
    instance
        .client()
        .await
        .b(Empty {})
        .await
        .expect("B answers");
    let signalled = Instant::now();
    instance.interrupt();
    let status = instance.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_the_serving_line_still_shuts_down_cleanly() {
    // Orchestrators treat the serving line as ready and may stop the
    // instance at once; the signal handlers must already be listening.
    let starts = (0..5).map(|i| Instance::builder(&format!("hasty-{i}")).start());
    for mut instance in futures::future::join_all(starts).await {
        instance.terminate();
        let status = instance.wait_for_exit(Duration::from_secs(10)).await;
        assert_eq!(
            status.code(),
            Some(0),
            "{status}; output:\n{}",
            instance.lines().join("\n")
        );
        instance
            .wait_for_line(|l| l.contains("shutting down"), DEFAULT_WAIT)
            .await;
    }
}
