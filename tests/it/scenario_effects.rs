//! What each scenario effect does to a request, acted out in process in
//! paused tokio time, so "300 ms" means exactly that: the order two
//! scenarios combine in, each scope, failures before and after the steps,
//! hangs, an outage of a call, and a request that keeps the scenarios it
//! started with.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry::{Context, context::FutureExt as _};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanProcessor},
};
use thespian::{
    behaviour::{
        Attributes, Call, Function, Latency, MethodName, OnFailure, Retry, RetryPolicy, Scenario,
        Sleep, Step, Target,
    },
    executor::{Dice, Executor, SpanNames},
    failure::Failure,
    incident::Incidents,
    telemetry::{Metrics, Tracer},
};
use tokio::time::Instant;

/// Each ended span's `_tracing_name` and its `thespian.scenario`, if any;
/// a try of a retried call also under its name and try, as `pay#2`.
#[derive(Debug, Default)]
struct Marks(Mutex<BTreeMap<String, Option<String>>>);

#[derive(Debug)]
struct Recorder(Arc<Marks>);

impl SpanProcessor for Recorder {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        let value = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.as_str().into_owned())
        };
        if let Some(name) = value("_tracing_name") {
            let mark = value("thespian.scenario");
            let mut marks = self.0.0.lock().unwrap();
            if let Some(attempt) = value("thespian.retry.attempt") {
                marks.insert(format!("{name}#{attempt}"), mark.clone());
            }
            marks.insert(name, mark);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn scenario(json: &str) -> Arc<Scenario> {
    Arc::new(serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}")))
}

/// Starts `scenarios` in order, then acts out `step` as a request to A,
/// returning the outcome, how long it took, and each span's mark.
async fn act(
    step: Step,
    scenarios: &[&str],
) -> (
    Result<(), Failure>,
    Duration,
    BTreeMap<String, Option<String>>,
) {
    let incidents = Incidents::new(Vec::new(), Metrics::default());
    for json in scenarios {
        incidents.start_scenario(scenario(json), None).unwrap();
    }
    act_under(step, &incidents).await
}

/// Acts out `step` as a request to A under what `incidents` has active.
async fn act_under(
    step: Step,
    incidents: &Incidents,
) -> (
    Result<(), Failure>,
    Duration,
    BTreeMap<String, Option<String>>,
) {
    let in_play = incidents.in_play(MethodName::A);
    act_with(step, incidents, in_play).await
}

async fn act_with(
    step: Step,
    incidents: &Incidents,
    in_play: Option<thespian::incident::InPlay>,
) -> (
    Result<(), Failure>,
    Duration,
    BTreeMap<String, Option<String>>,
) {
    let marks = Arc::new(Marks::default());
    let tracer = Tracer::new(Some(Arc::new(Recorder(Arc::clone(&marks)))));
    let executor = Executor::new(SpanNames::Descriptive)
        .with_tracer(tracer)
        .with_incidents(incidents.clone());
    let cx = match in_play {
        Some(in_play) => Context::current().with_value(in_play),
        None => Context::current(),
    };
    let started = Instant::now();
    let outcome = executor
        .run_request(Arc::new(step), Dice::default())
        .with_context(cx)
        .await;
    let marks = std::mem::take(&mut *marks.0.lock().unwrap());
    (outcome, started.elapsed(), marks)
}

fn sleep(name: &str, ms: u64) -> Step {
    Step::Sleep(Sleep {
        name: name.to_owned(),
        latency: Latency::Fixed(Duration::from_millis(ms)),
        fault: None,
        failures: Default::default(),
        dependency: None,
        attributes: Attributes::NONE,
    })
}

fn function(steps: Vec<Step>) -> Step {
    Step::Function(Function {
        name: "serve".to_owned(),
        steps,
        attributes: Attributes::NONE,
    })
}

fn mark(marks: &BTreeMap<String, Option<String>>, name: &str) -> Option<String> {
    marks
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no span `{name}`: {marks:?}"))
}

const REPLACE: &str =
    r#"{"name": "replace", "scope": {"step": "db"}, "effect": {"replace": "100ms"}}"#;
const TRIPLE: &str = r#"{"name": "triple", "scope": {"step": "db"}, "effect": {"multiply": 3}}"#;

#[tokio::test(start_paused = true)]
async fn two_scenarios_change_a_wait_in_the_order_they_started() {
    let (outcome, elapsed, marks) = act(sleep("db", 1_000), &[REPLACE, TRIPLE]).await;
    outcome.unwrap();
    assert_eq!(
        elapsed,
        Duration::from_millis(300),
        "drawn anew, then tripled"
    );
    assert_eq!(mark(&marks, "db").as_deref(), Some("replace,triple"));

    let (_, elapsed, marks) = act(sleep("db", 1_000), &[TRIPLE, REPLACE]).await;
    assert_eq!(
        elapsed,
        Duration::from_millis(100),
        "tripled, then drawn anew"
    );
    assert_eq!(mark(&marks, "db").as_deref(), Some("triple,replace"));

    let (_, elapsed, _) = act(sleep("db", 1_000), &[]).await;
    assert_eq!(elapsed, Duration::from_secs(1), "none in play");
}

#[tokio::test(start_paused = true)]
async fn a_service_scope_reaches_every_wait_and_a_step_scope_only_its_own() {
    let tree = || function(vec![sleep("db", 100), sleep("cache", 100)]);
    let slower = r#"{"name": "slower", "scope": "service", "effect": {"duration": "50ms"}}"#;
    let (outcome, elapsed, marks) = act(tree(), &[slower]).await;
    outcome.unwrap();
    assert_eq!(elapsed, Duration::from_millis(300));
    assert_eq!(mark(&marks, "db").as_deref(), Some("slower"));
    assert_eq!(mark(&marks, "cache").as_deref(), Some("slower"));

    let (_, elapsed, marks) = act(tree(), &[TRIPLE]).await;
    assert_eq!(elapsed, Duration::from_millis(400));
    assert_eq!(mark(&marks, "cache"), None);

    let elsewhere = r#"{"name": "b", "scope": {"method": "B"}, "effect": {"hang": true}}"#;
    let (outcome, elapsed, _) = act(tree(), &[elsewhere]).await;
    outcome.expect("a scenario scoped to B leaves A alone");
    assert_eq!(elapsed, Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn a_request_fails_before_or_after_its_steps_as_the_failure_says() {
    let tree = || function(vec![sleep("db", 1_000)]);
    let after = r#"{"name": "late", "scope": {"method": "A"},
        "effect": {"failures": [{"chance": 1, "code": "DATA_LOSS"}]}}"#;
    let (outcome, elapsed, marks) = act(tree(), &[after]).await;
    let failure = outcome.expect_err("fails after its steps");
    assert_eq!(failure.code(), tonic::Code::DataLoss);
    assert_eq!(failure.cause(), "scenario");
    assert_eq!(elapsed, Duration::from_secs(1));
    assert!(marks.contains_key("db"), "its steps ran first");

    let before = r#"{"name": "early", "scope": "service",
        "effect": {"failures": [{"chance": 1, "code": "ABORTED", "when": "before"}]}}"#;
    let (outcome, elapsed, marks) = act(tree(), &[before]).await;
    assert_eq!(outcome.unwrap_err().code(), tonic::Code::Aborted);
    assert_eq!(elapsed, Duration::ZERO);
    assert!(marks.is_empty(), "nothing acted out: {marks:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hang_never_answers_until_the_caller_gives_up() {
    let stuck = r#"{"name": "stuck", "scope": {"step": "db"}, "effect": {"hang": true}}"#;
    let scenarios = [stuck];
    let acted = act(function(vec![sleep("db", 1)]), &scenarios);
    let waited = tokio::time::timeout(Duration::from_secs(3_600), acted).await;
    assert!(waited.is_err(), "still waiting after an hour");
}

fn pay() -> Step {
    Step::Call(Call {
        name: "pay".to_owned(),
        target: Target::parse("127.0.0.1:1").unwrap(),
        method: MethodName::B,
        on_failure: OnFailure::Internal,
        optional: false,
        timeout: None,
        attributes: Attributes::NONE,
    })
}

#[tokio::test(start_paused = true)]
async fn every_try_of_a_retried_call_meets_the_outage() {
    let policy: RetryPolicy = serde_json::from_str(
        r#"{"max_attempts": 3, "initial_backoff": "1s", "max_backoff": "1s",
            "backoff_multiplier": 1, "retryable_status_codes": ["UNAVAILABLE"]}"#,
    )
    .unwrap();
    let retried = Step::Retry(Retry {
        policy,
        step: Box::new(pay()),
    });
    let down = r#"{"name": "payments-down", "scope": {"step": "pay"}, "effect": {"outage": true}}"#;
    let (outcome, elapsed, marks) = act(function(vec![retried]), &[down]).await;
    let failure = outcome.unwrap_err();
    assert_eq!(failure.cause(), "scenario", "{failure}");
    assert_eq!(failure.code(), tonic::Code::Unavailable);
    // Three tries, each refused at once: only the two backoffs between
    // them, a second each jittered by ±20%, take any time.
    assert!(
        (Duration::from_millis(1_600)..Duration::from_millis(2_400)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(mark(&marks, "pay").as_deref(), Some("payments-down"));
}

#[tokio::test(start_paused = true)]
async fn a_try_a_scenario_lets_through_is_still_a_try_of_the_retried_call() {
    let policy: RetryPolicy = serde_json::from_str(
        r#"{"max_attempts": 3, "initial_backoff": "1s", "max_backoff": "1s",
            "backoff_multiplier": 1,
            "retryable_status_codes": ["UNAVAILABLE", "DEADLINE_EXCEEDED"]}"#,
    )
    .unwrap();
    let Step::Call(mut optional) = pay() else {
        unreachable!()
    };
    optional.optional = true;
    let retried = Step::Retry(Retry {
        policy,
        step: Box::new(Step::Call(optional)),
    });
    // It reaches the call but never strikes, so every try goes out.
    let watched = r#"{"name": "payments-watched", "scope": {"step": "pay"},
        "effect": {"failures": [{"chance": 0, "code": "UNAVAILABLE"}]}}"#;
    let (outcome, _, marks) = act(function(vec![retried]), &[watched]).await;
    assert!(outcome.is_ok(), "the call is optional: {outcome:?}");
    // An optional call is tried again while its policy retries it: all
    // three tries went out, each saying which it was.
    for attempt in ["pay#1", "pay#2", "pay#3"] {
        assert_eq!(
            marks.get(attempt),
            Some(&Some("payments-watched".to_owned())),
            "{attempt}: {marks:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_of_a_call_fails_it_without_calling() {
    let call = pay();
    let down = r#"{"name": "payments-down", "scope": {"step": "pay"}, "effect": {"outage": true}}"#;
    let (outcome, elapsed, marks) = act(function(vec![call]), &[down]).await;
    let failure = outcome.unwrap_err();
    assert_eq!(failure.code(), tonic::Code::Unavailable);
    assert!(failure.to_string().contains("payments-down"), "{failure}");
    assert_eq!(elapsed, Duration::ZERO);
    assert_eq!(mark(&marks, "pay").as_deref(), Some("payments-down"));
}

#[tokio::test(start_paused = true)]
async fn a_request_keeps_the_scenarios_it_started_with() {
    let incidents = Incidents::new(Vec::new(), Metrics::default());
    incidents.start_scenario(scenario(TRIPLE), None).unwrap();
    let in_play = incidents.in_play(MethodName::A);
    assert!(incidents.stop("triple"));
    let (_, elapsed, _) = act_with(sleep("db", 100), &incidents, in_play).await;
    assert_eq!(elapsed, Duration::from_millis(300), "started under it");
    let (_, elapsed, _) = act_under(sleep("db", 100), &incidents).await;
    assert_eq!(elapsed, Duration::from_millis(100), "the next one is not");
}
