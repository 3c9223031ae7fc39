//! A step's `failures`, acted out in paused tokio time: an error before the
//! wait takes no time, one after it takes the whole wait, a slow answer
//! takes the extra, and a hang never ends on its own.

use std::{sync::Arc, time::Duration};

use thespian::{
    behaviour::{Attributes, Failures, Latency, Sleep, Step},
    executor::{Dice, Executor},
};
use tokio::time::Instant;

/// A 100 ms sleep whose only outcome, certain, is `outcome` (JSON).
fn sleep_with(outcome: &str) -> Arc<Step> {
    let failures: Failures =
        serde_json::from_str(&format!("[{outcome}]")).expect("a valid failures list");
    Arc::new(Step::Sleep(Sleep {
        name: "query".to_owned(),
        latency: Latency::Fixed(Duration::from_millis(100)),
        fault: None,
        failures,
        dependency: None,
        attributes: Attributes::NONE,
    }))
}

/// Runs `step`, giving up after an hour of tokio time.
async fn run(step: Arc<Step>) -> (Option<Result<(), tonic::Code>>, Duration) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3600),
        Executor::default().run_request(step, Dice::default()),
    )
    .await
    .ok()
    .map(|outcome| outcome.map_err(|failure| failure.code()));
    (outcome, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn an_error_before_the_wait_fails_at_once_and_one_after_takes_the_wait() {
    let (outcome, elapsed) = run(sleep_with(
        r#"{"chance": 1, "code": "UNAVAILABLE", "when": "before"}"#,
    ))
    .await;
    assert_eq!(outcome, Some(Err(tonic::Code::Unavailable)));
    assert_eq!(elapsed, Duration::ZERO);

    let (outcome, elapsed) = run(sleep_with(r#"{"chance": 1, "code": 4}"#)).await;
    assert_eq!(outcome, Some(Err(tonic::Code::DeadlineExceeded)));
    assert_eq!(elapsed, Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_adds_its_extra_and_fails_nothing() {
    let (outcome, elapsed) = run(sleep_with(r#"{"chance": 1, "slow": 400}"#)).await;
    assert_eq!(outcome, Some(Ok(())));
    assert_eq!(elapsed, Duration::from_millis(500));

    let (outcome, elapsed) = run(sleep_with(r#"{"chance": 0, "slow": 400}"#)).await;
    assert_eq!(outcome, Some(Ok(())));
    assert_eq!(elapsed, Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_hang_never_ends_on_its_own() {
    let (outcome, elapsed) = run(sleep_with(r#"{"chance": 1, "hang": true}"#)).await;
    assert_eq!(outcome, None, "still pending after an hour");
    assert_eq!(elapsed, Duration::from_secs(3600));
}
