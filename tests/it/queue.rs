//! `MAX_IN_FLIGHT` and `MAX_QUEUE` over gRPC: a request past the limit
//! waits for a slot and its trace shows the wait; one past the queue is
//! shed at once with `RESOURCE_EXHAUSTED`; one whose caller gives up
//! leaves the queue. The queue's arithmetic on a paused clock, Little's law
//! included, is tested beside the code (`src/admission/tests.rs`).

use std::time::{Duration, Instant};

use futures::{StreamExt as _, stream::FuturesUnordered};
use serde_json::json;
use thespian::proto::Empty;
use tonic::{Code, Request};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{OtlpReceiver, ReceivedMetric, ReceivedSpan, SpansExt as _, StatusCode};

/// A config whose `A`, named `handle`, sleeps `ms` in a step named `work`.
fn working(ms: u64) -> String {
    json!({ "grpc_method_a": { "tracing_name": "handle", "operations": [
        { "Action": { "Sleep": { "tracing_name": "work", "duration_ms": ms } } }
    ] } })
    .to_string()
}

/// An instance acting out [`working`] with these limits, exporting to
/// `receiver`, with metrics every 200 ms.
async fn limited(
    receiver: &OtlpReceiver,
    max_in_flight: &str,
    max_queue: &str,
    ms: u64,
) -> Instance {
    Instance::builder("queued")
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("MAX_IN_FLIGHT", max_in_flight)
        .env("MAX_QUEUE", max_queue)
        .config(&working(ms))
        .start()
        .await
}

/// The sum of a metric's points, or of a histogram's counts.
fn total(metric: &ReceivedMetric) -> f64 {
    metric
        .data_points
        .iter()
        .map(|p| p.value_f64().unwrap_or(p.count.unwrap_or(0) as f64))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_max_in_flight_waits_for_a_slot_and_its_trace_shows_the_wait() {
    let receiver = OtlpReceiver::start().await;
    let instance = limited(&receiver, "2", "10", 1000).await;
    let client = instance.client().await;
    let answers = futures::future::join_all((0..3).map(|_| {
        let mut client = client.clone();
        async move { client.a(Empty {}).await.expect("A answers") }
    }))
    .await;
    let traces: Vec<String> = answers.iter().map(|a| trace_id(a.metadata())).collect();

    let spans = receiver
        .wait_for_spans(
            // Every span the checks read: a trace's spans may leave in
            // more than one export, arriving in either order.
            |spans| {
                traces.iter().all(|t| {
                    let trace = spans.in_trace(t);
                    ["thespian.Thespian/A", "handle"]
                        .iter()
                        .all(|name| trace.iter().any(|s| s.name == *name))
                }) && !spans.named("queued").is_empty()
            },
            DEFAULT_WAIT,
        )
        .await;
    let queued: Vec<&ReceivedSpan> = spans
        .named("queued")
        .into_iter()
        .filter(|s| traces.contains(&s.trace_id))
        .collect();
    // Two take the slots at once; the third waits for one of them to end,
    // a second's work less how much later it arrived.
    assert_eq!(
        queued.len(),
        1,
        "only the third waited:\n{}",
        receiver.dump()
    );
    let queued = queued[0];
    assert!(
        queued.duration() >= Duration::from_millis(500),
        "waited {:?}",
        queued.duration()
    );
    let trace: Vec<ReceivedSpan> = spans
        .in_trace(&queued.trace_id)
        .into_iter()
        .cloned()
        .collect();
    let server = trace.only_named("thespian.Thespian/A");
    assert_eq!(queued.parent_span_id, server.span_id);
    assert_eq!(queued.attributes.i64("thespian.queue.ahead"), Some(0));
    // Nothing was acted out before the request had its slot.
    let work = trace.only_named("handle");
    assert!(work.start_time_unix_nano >= queued.end_time_unix_nano);
    assert!(server.duration() >= queued.duration() + Duration::from_millis(1000));

    // The metrics: three waits, of which one long; nothing left waiting or in flight.
    let metrics = receiver
        .wait_for_metrics(
            |metrics| {
                let latest = |name: &str| metrics.iter().rev().find(|m| m.name == name);
                latest("thespian.queue.wait_time").is_some_and(|m| total(m) == 3.0)
                    && latest("thespian.in_flight").is_some_and(|m| total(m) == 0.0)
                    && latest("thespian.queue.length").is_some_and(|m| total(m) == 0.0)
            },
            DEFAULT_WAIT,
        )
        .await;
    let wait = metrics
        .iter()
        .rev()
        .find(|m| m.name == "thespian.queue.wait_time")
        .unwrap();
    assert_eq!(wait.unit, "s");
    let point = wait.point_with(&[("rpc.method", "A")]).unwrap();
    assert!(point.max.unwrap() >= 0.5, "{point}");
    assert_eq!(point.min, Some(0.0), "{point}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_a_full_queue_is_shed_at_once_with_resource_exhausted() {
    let receiver = OtlpReceiver::start().await;
    let instance = limited(&receiver, "1", "1", 5000).await;
    let client = instance.client().await;
    let sent = Instant::now();
    let mut answers: FuturesUnordered<_> = (0..3)
        .map(|_| {
            let mut client = client.clone();
            async move { client.a(Empty {}).await }
        })
        .collect();
    // One takes the slot and one the queue's only place, for five seconds
    // at least: the first answer is the third request's, shed.
    let shed = answers
        .next()
        .await
        .unwrap()
        .expect_err("one of three is shed");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert_eq!(
        shed.message(),
        "this instance is at its limit: all 1 slots are busy (MAX_IN_FLIGHT) and 1 requests \
         are already waiting for one (MAX_QUEUE)"
    );

    let trace = trace_id(shed.metadata());
    let spans = receiver
        .wait_for_trace(&trace, |spans| !spans.is_empty(), DEFAULT_WAIT)
        .await;
    assert_eq!(spans.len(), 1, "nothing acted out: {spans:#?}");
    let server = &spans[0];
    assert_eq!(server.name, "thespian.Thespian/A");
    assert_eq!(server.attributes.i64("rpc.grpc.status_code"), Some(8));
    assert_eq!(server.status_code, StatusCode::Error);
    let event = server
        .events
        .iter()
        .find(|e| e.attributes.str("level") == Some("ERROR"))
        .expect("an error event on the server span");
    assert_eq!(event.attributes.str("failure.cause"), Some("queue_full"));

    let failures = receiver
        .wait_for_metrics(
            |metrics| {
                metrics.iter().any(|m| {
                    m.name == "thespian.failures"
                        && m.point_with(&[("failure.cause", "queue_full")]).is_some()
                })
            },
            DEFAULT_WAIT,
        )
        .await;
    let failures = failures
        .iter()
        .rev()
        .find(|m| m.name == "thespian.failures")
        .unwrap();
    let point = failures
        .point_with(&[("failure.cause", "queue_full")])
        .unwrap();
    assert_eq!(point.value_f64(), Some(1.0), "{point}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_whose_deadline_passes_in_the_queue_leaves_it() {
    let receiver = OtlpReceiver::start().await;
    let instance = limited(&receiver, "1", "1", 10_000).await;
    let mut client = instance.client().await;
    let holder = tokio::spawn({
        let mut client = client.clone();
        async move { client.a(Empty {}).await }
    });
    receiver
        .wait_for_metrics(
            |metrics| {
                metrics
                    .iter()
                    .any(|m| m.name == "thespian.in_flight" && total(m) == 1.0)
            },
            DEFAULT_WAIT,
        )
        .await;

    // Each of these finds the slot taken and the queue's one place free:
    // were a place not given back when its request gives up, the second
    // would be shed.
    for attempt in 0..2 {
        let mut request = Request::new(Empty {});
        request.set_timeout(Duration::from_millis(300));
        let status = client.a(request).await.expect_err("the slot stays taken");
        // The caller's own timer and the instance's race: either way the
        // request gave up waiting, and was not shed.
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "attempt {attempt}: {status:?}"
        );
        // Its `queued` span is written as it leaves the queue: once it is
        // exported, its place is free.
        let parent = |spans: &[ReceivedSpan]| {
            let queued = spans.named("queued");
            let queued = queued.get(attempt)?;
            spans
                .iter()
                .find(|s| s.span_id == queued.parent_span_id)
                .cloned()
        };
        let spans = receiver
            .wait_for_spans(|spans| parent(spans).is_some(), DEFAULT_WAIT)
            .await;
        assert_eq!(spans.named("queued").len(), attempt + 1);
        let server = parent(&spans).unwrap();
        assert!(
            [1, 4].contains(&server.attributes.i64("rpc.grpc.status_code").unwrap()),
            "CANCELLED or DEADLINE_EXCEEDED: {server:?}"
        );
    }
    holder.abort();
}
