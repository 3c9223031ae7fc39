//! The executor's timing and failure rules, checked in paused tokio time so
//! that "two seconds" means exactly two seconds, however busy the machine.
//!
//! A recording span processor stands in for the export pipeline: it notes
//! when each step's span ends, in tokio time, and which spans carry an
//! error event.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry::{context::FutureExt as _, trace::TraceId};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanProcessor},
};
use serde::Deserialize as _;
use thespian::{
    behaviour::{
        Attributes, Concurrently, Fail, Fault, Function, Latency, Raise, Retry, RetryPolicy, Sleep,
        Step,
    },
    deadline::Deadline,
    executor::{Dice, Executor, SpanNames},
    failure::Failure,
    telemetry::{SpanEvents, Tracer},
};
use tokio::time::Instant;
use tracing_subscriber::prelude::*;

/// What the recording processor saw.
#[derive(Debug, Default)]
struct Seen {
    /// Each step span that ended: its `_tracing_name` and when, measured
    /// from the start of the test.
    closed: Vec<(String, Duration)>,
    /// The `_tracing_name` of the span of each ERROR event.
    errors: Vec<String>,
}

impl Seen {
    fn closed_at(&self, name: &str) -> Option<Duration> {
        self.closed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, at)| *at)
    }
}

#[derive(Debug)]
struct Recorder {
    started: Instant,
    seen: Arc<Mutex<Seen>>,
}

impl SpanProcessor for Recorder {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let attribute = |attributes: &[opentelemetry::KeyValue], key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.as_str().into_owned())
        };
        let Some(name) = attribute(&span.attributes, "_tracing_name") else {
            return;
        };
        let errors = span
            .events
            .iter()
            .filter(|e| attribute(&e.attributes, "level").as_deref() == Some("ERROR"))
            .count();
        let mut seen = self.seen.lock().unwrap();
        seen.errors
            .extend(std::iter::repeat_n(name.clone(), errors));
        seen.closed.push((name, self.started.elapsed()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Acts out `step` with a recording tracer, returning the outcome, how
/// long it took in tokio time, and what was recorded.
async fn perform(step: Step) -> (Result<(), Failure>, Duration, Seen) {
    perform_with(step, Dice::default()).await
}

/// [`perform`], rolling `dice`.
async fn perform_with(step: Step, dice: Dice) -> (Result<(), Failure>, Duration, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let started = Instant::now();
    let tracer = Tracer::new(Some(Arc::new(Recorder {
        started,
        seen: Arc::clone(&seen),
    })));
    // Paused-time tests run on one thread, so a thread-local default
    // subscriber sees every event the executor logs.
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(SpanEvents));
    let outcome = Executor::new(SpanNames::Descriptive)
        .with_tracer(tracer)
        .run_request(Arc::new(step), dice)
        .await;
    let elapsed = started.elapsed();
    drop(_guard);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (outcome, elapsed, seen)
}

fn sleep(name: &str, millis: u64) -> Step {
    Step::Sleep(Sleep {
        name: name.to_owned(),
        latency: Latency::Fixed(Duration::from_millis(millis)),
        fault: None,
        failures: Default::default(),
        dependency: None,
        attributes: Attributes::NONE,
    })
}

fn failing_sleep(name: &str, millis: u64) -> Step {
    Step::Sleep(Sleep {
        name: name.to_owned(),
        latency: Latency::Fixed(Duration::from_millis(millis)),
        fault: Some(Fault::internal(1.0).unwrap()),
        failures: Default::default(),
        dependency: None,
        attributes: Attributes::NONE,
    })
}

fn function(name: &str, steps: Vec<Step>) -> Step {
    Step::Function(Function {
        name: name.to_owned(),
        steps,
        attributes: Attributes::NONE,
    })
}

fn concurrently(branches: Vec<Step>) -> Step {
    Step::Concurrently(Concurrently {
        name: None,
        branches,
        attributes: Attributes::NONE,
    })
}

/// The step a failure names, for failures by chance.
fn failed_action(outcome: Result<(), Failure>) -> String {
    match outcome {
        Err(Failure::Chance { action, code, .. }) => {
            assert_eq!(code, tonic::Code::Internal);
            action
        }
        other => panic!("expected a failure by chance, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_concurrent_group_takes_as_long_as_its_longest_branch() {
    let (outcome, elapsed, seen) = perform(concurrently(vec![
        sleep("one second", 1_000),
        sleep("two seconds", 2_000),
    ]))
    .await;
    outcome.expect("nothing can fail");
    assert_eq!(elapsed, Duration::from_secs(2));
    assert_eq!(seen.closed_at("one second"), Some(Duration::from_secs(1)));
    assert_eq!(seen.closed_at("two seconds"), Some(Duration::from_secs(2)));
}

#[tokio::test(start_paused = true)]
async fn a_sequence_takes_the_sum_of_its_steps() {
    let (outcome, elapsed, seen) = perform(function(
        "in order",
        vec![
            sleep("first", 1_000),
            sleep("second", 2_000),
            function("nested", vec![sleep("third", 500)]),
        ],
    ))
    .await;
    outcome.expect("nothing can fail");
    assert_eq!(elapsed, Duration::from_millis(3_500));
    assert_eq!(seen.closed_at("first"), Some(Duration::from_secs(1)));
    assert_eq!(seen.closed_at("second"), Some(Duration::from_secs(3)));
    assert_eq!(seen.closed_at("nested"), Some(Duration::from_millis(3_500)));
    assert_eq!(
        seen.closed_at("in order"),
        Some(Duration::from_millis(3_500))
    );
    assert!(seen.errors.is_empty(), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn groups_nest_inside_sequences_and_sequences_inside_groups() {
    // 1 s, then max(2 s, 0.5 s + 1 s), then 0.25 s.
    let (outcome, elapsed, _) = perform(function(
        "outer",
        vec![
            sleep("start", 1_000),
            concurrently(vec![
                sleep("long branch", 2_000),
                function("two-step branch", vec![sleep("a", 500), sleep("b", 1_000)]),
            ]),
            sleep("finish", 250),
        ],
    ))
    .await;
    outcome.expect("nothing can fail");
    assert_eq!(elapsed, Duration::from_millis(3_250));
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_wins_in_a_concurrent_group_while_every_branch_runs_to_completion() {
    let (outcome, elapsed, seen) = perform(function(
        "fan out",
        vec![concurrently(vec![
            failing_sleep("fails second", 2_000),
            failing_sleep("fails first", 1_000),
            sleep("bystander", 3_000),
        ])],
    ))
    .await;
    // The earliest failure in time is the answer, whatever the order the
    // branches were written in.
    assert_eq!(failed_action(outcome), "fails first");
    // Nothing was cancelled: the group waited for its slowest branch.
    assert_eq!(elapsed, Duration::from_secs(3));
    assert_eq!(seen.closed_at("fails first"), Some(Duration::from_secs(1)));
    assert_eq!(seen.closed_at("fails second"), Some(Duration::from_secs(2)));
    assert_eq!(seen.closed_at("bystander"), Some(Duration::from_secs(3)));
    // Each failure is logged once, in the span where it happened; the
    // function it passes through logs nothing more.
    let mut errors = seen.errors.clone();
    errors.sort();
    assert_eq!(errors, ["fails first", "fails second"]);
}

#[tokio::test(start_paused = true)]
async fn a_failure_stops_the_rest_of_its_sequence() {
    let (outcome, elapsed, seen) = perform(function(
        "checkout",
        vec![
            sleep("before", 100),
            failing_sleep("breaks", 200),
            sleep("never runs", 5_000),
        ],
    ))
    .await;
    assert_eq!(failed_action(outcome), "breaks");
    // A failing sleep still takes its time.
    assert_eq!(elapsed, Duration::from_millis(300));
    assert_eq!(seen.closed_at("never runs"), None, "{seen:?}");
    assert_eq!(seen.errors, ["breaks"]);
}

#[tokio::test(start_paused = true)]
async fn a_fail_step_fails_without_waiting_and_a_raise_chooses_its_status() {
    let fail = Step::Fail(Fail {
        name: "coin toss".to_owned(),
        fault: Fault::new(1.0, tonic::Code::Unavailable).unwrap(),
        attributes: Attributes::NONE,
    });
    let (outcome, elapsed, seen) = perform(function("toss", vec![fail])).await;
    let failure = outcome.expect_err("a chance of one always fails");
    assert_eq!(failure.code(), tonic::Code::Unavailable);
    assert!(failure.to_string().contains("coin toss"), "{failure}");
    assert_eq!(elapsed, Duration::ZERO);
    assert_eq!(seen.errors, ["coin toss"]);

    let raise = Step::Raise(Raise {
        name: "refuse".to_owned(),
        code: tonic::Code::NotFound,
        message: "no such order".to_owned(),
    });
    let (outcome, _, _) = perform(function("lookup", vec![sleep("search", 10), raise])).await;
    let failure = outcome.expect_err("a raise always fails");
    assert_eq!(failure.code(), tonic::Code::NotFound);
    assert_eq!(failure.to_string(), "no such order");
    let status = tonic::Status::from(failure);
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no such order");
}

#[tokio::test(start_paused = true)]
async fn a_failure_chance_of_zero_never_fails() {
    let step = Arc::new(Step::Sleep(Sleep {
        name: "safe".to_owned(),
        latency: Latency::Fixed(Duration::from_millis(1)),
        fault: Some(Fault::internal(0.0).unwrap()),
        failures: Default::default(),
        dependency: None,
        attributes: Attributes::NONE,
    }));
    let executor = Executor::default();
    for _ in 0..1_000 {
        executor
            .run_request(Arc::clone(&step), Dice::default())
            .await
            .expect("a chance of zero never fails");
    }
}

/// A 10 ms step that always fails with `code`, retried by gRPC's policy:
/// four attempts, backing off 100 ms, then 200, then the 250 ms cap.
fn retried(code: tonic::Code) -> Step {
    let policy = RetryPolicy::deserialize(serde_json::json!({
        "max_attempts": 4, "initial_backoff": "0.1s", "max_backoff": "250ms",
        "backoff_multiplier": 2, "retryable_status_codes": ["UNAVAILABLE"]
    }))
    .unwrap();
    let failing = Step::Fail(Fail {
        name: "flaky".to_owned(),
        fault: Fault::new(1.0, code).unwrap(),
        attributes: Attributes::NONE,
    });
    Step::Retry(Retry {
        policy,
        step: Box::new(function("attempt", vec![sleep("work", 10), failing])),
    })
}

#[tokio::test(start_paused = true)]
async fn a_retry_policy_backs_off_exponentially_with_jitter_that_replays() {
    let dice = Dice::for_request(Some(7), TraceId::from_bytes([3; 16]));
    let (outcome, elapsed, seen) = perform_with(retried(tonic::Code::Unavailable), dice).await;
    assert_eq!(outcome.unwrap_err().code(), tonic::Code::Unavailable);
    let ends: Vec<Duration> = seen
        .closed
        .iter()
        .filter(|(name, _)| name == "attempt")
        .map(|(_, at)| *at)
        .collect();
    assert_eq!(ends.len(), 4, "{seen:?}");
    assert_eq!(ends[0], Duration::from_millis(10));
    for (i, base) in [100.0, 200.0, 250.0].into_iter().enumerate() {
        // Each attempt starts after its backoff and takes its 10 ms.
        let waited = (ends[i + 1] - ends[i] - Duration::from_millis(10)).as_secs_f64() * 1e3;
        assert!(
            (base * 0.8..=base * 1.2).contains(&waited),
            "backoff {}: {waited} ms",
            i + 1
        );
    }
    assert_eq!(elapsed, ends[3]);
    // The same seed and trace wait the same; another seed does not.
    let (_, again, _) = perform_with(retried(tonic::Code::Unavailable), dice).await;
    assert_eq!(again, elapsed);
    let other = Dice::for_request(Some(8), TraceId::from_bytes([3; 16]));
    let (_, otherwise, _) = perform_with(retried(tonic::Code::Unavailable), other).await;
    assert_ne!(otherwise, elapsed);
}

#[tokio::test(start_paused = true)]
async fn a_code_the_policy_does_not_name_is_not_retried() {
    let (outcome, elapsed, seen) = perform(retried(tonic::Code::Internal)).await;
    assert_eq!(outcome.unwrap_err().code(), tonic::Code::Internal);
    assert_eq!(elapsed, Duration::from_millis(10));
    assert_eq!(seen.errors, ["flaky"]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_cuts_the_request_at_once_and_answers_deadline_exceeded() {
    let deadline = Deadline::before(Instant::now() + Duration::from_secs(1));
    let step = function("checkout", vec![sleep("quick", 100), sleep("slow", 5_000)]);
    let (outcome, elapsed, seen) = perform(step)
        .with_context(deadline.within(&opentelemetry::Context::current()))
        .await;
    assert!(matches!(outcome, Err(Failure::Deadline)), "{outcome:?}");
    assert_eq!(outcome.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    // The caller allowed a second; the request kept back 50 ms of it to
    // answer in.
    assert_eq!(elapsed, Duration::from_millis(950));
    assert_eq!(seen.closed_at("quick"), Some(Duration::from_millis(100)));
    assert_eq!(seen.closed_at("slow"), Some(Duration::from_millis(950)));
}
