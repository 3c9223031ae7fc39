//! The steps that hold no others and do the pretend work themselves: wait,
//! roll the dice, call another Thespian, raise a script's error, write a
//! log line. A failure starts here, and is reported here, once.

use std::time::Duration;

use opentelemetry::{Context, KeyValue, trace::TraceContextExt};

use super::{
    dice::{Dice, Roll},
    span::mark_failed,
};
use futures::future::BoxFuture;

use crate::{
    attempts,
    behaviour::{Call, Effect, ErrorMessage, Fail, Log, LogLevel, Raise, RetryPolicy, Sleep, When},
    client::Clients,
    deadline::Deadline,
    failure::{DownstreamStatus, Failure, code_name},
    relay::{self, Relay},
    telemetry::Metrics,
};

/// The target of the executor's own events: the module's, not this file's,
/// since log filters and the telemetry's scope name go by it.
const TARGET: &str = "thespian::executor";

/// Waits as long as the step's latency says, then rolls its fault, if it
/// has one. Its `failures` are rolled once, first: an error before the wait
/// ends the step at once, a hang never ends it, a slow answer waits longer.
/// Every roll comes from the step's `dice`, so a seeded request replays its
/// outcomes too. The span records the duration drawn.
pub(super) async fn sleep(sleep: &Sleep, dice: Dice) -> Result<(), Failure> {
    let mut duration = sleep.latency.sample(&mut dice.rng(Roll::Latency));
    let mut error_after = None;
    let rolled = sleep.failures.roll(&mut dice.rng(Roll::Outcome));
    if let Some(effect) = rolled {
        Context::map_current(|cx| {
            cx.span()
                .set_attribute(KeyValue::new("thespian.outcome", effect.kind()))
        });
        match effect {
            Effect::Error {
                when: When::Before,
                code,
                message,
            } => return Err(originate(chance(&sleep.name, *code, message.clone()))),
            Effect::Error { code, message, .. } => error_after = Some((*code, message)),
            Effect::Hang => return hang(sleep).await,
            Effect::Slow { extra } => duration += extra.sample(&mut dice.rng(Roll::Slow)),
        }
    }
    let _drawn = Drawn(duration.as_nanos() as f64 / 1_000_000.0);
    // The start of a sleep is a debug line: its span's start time and
    // `thespian.duration_ms` already say when it began and how long it
    // waits, and at `info` it doubled the log records, lines and span
    // events of every sleep, held while the sleep waits and while they
    // wait for export (`docs/performance.md`).
    tracing::debug!(
        target: TARGET,
        "sleeping {} ms for `{}`",
        Milliseconds(duration),
        sleep.name
    );
    tokio::time::sleep(duration).await;
    if let Some((code, message)) = error_after {
        return Err(originate(chance(&sleep.name, code, message.clone())));
    }
    match &sleep.fault {
        Some(fault) if fault.strikes(&mut dice.rng(Roll::Fault)) => Err(originate(chance(
            &sleep.name,
            fault.code(),
            fault.message().cloned(),
        ))),
        _ => {
            tracing::info!(target: TARGET, "`{}` finished", sleep.name);
            Ok(())
        }
    }
}

/// The duration a sleep drew, in milliseconds, recorded on its span as the
/// sleep ends, whether it finished or was cut short, rather than as it
/// starts: told at the start, the span held a list of attributes for as
/// long as it slept, some 180 bytes of every request asleep.
struct Drawn(f64);

impl Drop for Drawn {
    fn drop(&mut self) {
        let milliseconds = self.0;
        Context::map_current(|cx| {
            cx.span()
                .set_attribute(KeyValue::new("thespian.duration_ms", milliseconds))
        });
    }
}

/// Never answers, as a stuck dependency does: the request's future stays
/// pending until its caller's deadline, a call timeout or the caller
/// giving up drops it, and its spans end with it.
async fn hang(sleep: &Sleep) -> Result<(), Failure> {
    tracing::warn!(target: TARGET, "`{}` hangs until its caller gives up", sleep.name);
    std::future::pending().await
}

/// Rolls the step's fault, without waiting.
pub(super) fn roll(fail: &Fail, dice: Dice) -> Result<(), Failure> {
    if fail.fault.strikes(&mut dice.rng(Roll::Fault)) {
        Err(originate(chance(
            &fail.name,
            fail.fault.code(),
            fail.fault.message().cloned(),
        )))
    } else {
        Ok(())
    }
}

/// A failure by chance of the step named `action`.
fn chance(action: &str, code: tonic::Code, message: Option<ErrorMessage>) -> Failure {
    Failure::Chance {
        action: action.to_owned(),
        code,
        message,
    }
}

/// Which try of a retried call this is, and by what policy it was tried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt<'a> {
    /// The try, counting from 1.
    pub(super) number: u32,
    /// The backoff waited before it, if any.
    pub(super) waited: Option<Duration>,
    /// The policy the call is retried by.
    pub(super) policy: &'a RetryPolicy,
}

/// Calls the step's method on another Thespian, carrying what `relay`
/// passes on and the time left, and records how the call went in
/// `metrics`. The call waits for its own timeout, or the instance's, but
/// never past the request's deadline: whichever is sooner travels as its
/// `grpc-timeout`. A try of a retried call (`attempt`) says which it is,
/// in its span and, past the first, in `grpc-previous-rpc-attempts`.
pub(super) async fn call(
    clients: &Clients,
    metrics: &Metrics,
    relay: &Relay,
    call: &Call,
    attempt: Option<Attempt<'_>>,
) -> Result<(), Failure> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    relay.write(&Context::current(), &mut metadata);
    if let Some(attempt) = attempt {
        attempts::write(&mut metadata, attempt.number - 1);
        record_attempt(attempt);
    }
    let own = call.timeout.unwrap_or_else(|| clients.timeout());
    let deadline = Deadline::current();
    let bounded = deadline.map(Deadline::remaining).filter(|left| *left < own);
    if let Some(left) = bounded {
        Context::map_current(|cx| {
            cx.span().set_attribute(KeyValue::new(
                "thespian.deadline.budget_ms",
                left.as_nanos() as f64 / 1_000_000.0,
            ))
        });
    }
    // The start of a call is a debug line, as a sleep's is: the call's
    // span starts with it and names the method and the target, and at
    // `info` it added a log record, a line and a span event to every call
    // (`docs/performance.md`).
    tracing::debug!(
        target: TARGET,
        "calling {} at {} for `{}`",
        call.method,
        call.target,
        call.name
    );
    let started = tokio::time::Instant::now();
    let outcome = clients
        .call_within(&call.target, call.method, metadata, bounded.unwrap_or(own))
        .await;
    let elapsed = started.elapsed();
    let code = match &outcome {
        Ok(()) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    metrics.call_finished(&call.target, call.method, code, elapsed);
    tracing::info!(
        target: TARGET,
        "{} at {} answered {} in {} ms for `{}`",
        call.method,
        call.target,
        code_name(code),
        elapsed.as_millis(),
        call.name
    );
    Context::map_current(|cx| {
        cx.span()
            .set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64))
    });
    let Err(status) = outcome else {
        return Ok(());
    };
    if bounded.is_some() && code == tonic::Code::DeadlineExceeded {
        // The request's own time ran out, not just the call's: no policy
        // or fallback makes up for that.
        return Err(originate(Failure::Deadline));
    }
    // A hop-limit refusal passes up as it came, whatever `on_failure`
    // says: the client at the top is to learn of the cycle.
    let failure = originate(
        relay::refusal(&status).unwrap_or_else(|| Failure::Downstream {
            target: call.target.clone(),
            method: call.method,
            code: call.on_failure.code(status.code()),
            status: DownstreamStatus {
                code: status.code(),
                message: status.message().to_owned(),
            },
        }),
    );
    let tried_again = attempt.is_some_and(|a| a.policy.retries_after(a.number, code));
    if call.optional && !tried_again {
        // The caller does without: the failure ends here, on the call's span.
        tracing::info!(
            target: TARGET,
            "carrying on without `{}`: the call is optional",
            call.name
        );
        return Ok(());
    }
    Err(failure)
}

/// Says on the current span, a call's, which try of a retried call it is
/// and how long it waited for its turn.
fn record_attempt(attempt: Attempt<'_>) {
    Context::map_current(|cx| {
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "thespian.retry.attempt",
            i64::from(attempt.number),
        ));
        if attempt.number > 1 {
            span.set_attribute(KeyValue::new(
                attempts::PREVIOUS_ATTEMPTS_ATTRIBUTE,
                i64::from(attempt.number - 1),
            ));
        }
        if let Some(waited) = attempt.waited {
            span.set_attribute(KeyValue::new(
                "thespian.retry.backoff_ms",
                waited.as_nanos() as f64 / 1_000_000.0,
            ));
        }
    });
}

/// Runs `work`, a whole request, until it finishes or `deadline` passes;
/// then the request answers `DEADLINE_EXCEEDED` itself, said by an error
/// event on the current span, the request's. The steps still running are
/// dropped, and their spans say they were cut.
pub(super) async fn within(
    deadline: Deadline,
    work: BoxFuture<'_, Result<(), Failure>>,
) -> Result<(), Failure> {
    match tokio::time::timeout_at(deadline.answer_by(), work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(originate(Failure::Deadline)),
    }
}

/// Whether a failure is worth another try by a retry policy, and with
/// which code: a call's by the code its target answered, as a gRPC client
/// sees it; any other step's by its own. A passed deadline never is.
pub(super) fn retry_code(failure: &Failure) -> Option<tonic::Code> {
    match failure {
        Failure::Downstream { status, .. } => Some(status.code),
        // A retry would meet the same cycle again, one level down.
        Failure::Deadline | Failure::HopLimit { .. } => None,
        other => Some(other.code()),
    }
}

/// Fails as the script said, with its status and message.
pub(super) fn raise_failure(raise: &Raise) -> Failure {
    originate(Failure::Script {
        code: raise.code,
        message: raise.message.clone(),
    })
}

/// Writes a story's own log line, in the current span.
pub(super) fn write(log: &Log) {
    let line = log.line.map(|line| line as i64);
    // An event's level is fixed where it is written, so one call per level.
    macro_rules! write_at {
        ($level:expr) => {
            tracing::event!(
                target: "thespian::script",
                $level,
                script = &*log.source,
                line,
                "{}",
                log.message
            )
        };
    }
    match log.level {
        LogLevel::Info => write_at!(tracing::Level::INFO),
        LogLevel::Debug => write_at!(tracing::Level::DEBUG),
    }
}

/// Reports a failure where it starts: one error event on the current span,
/// which also marks that span as failed.
pub(super) fn originate(failure: Failure) -> Failure {
    tracing::error!(
        target: TARGET,
        {
            failure.cause = failure.cause(),
            rpc.grpc.status_code = failure.code() as i32,
        },
        "{failure}"
    );
    mark_failed(&failure);
    failure
}

/// A duration in milliseconds as a person writes it: `250`, or `1.5` for a
/// script's fractional sleep, which whole milliseconds would show as `1`.
struct Milliseconds(Duration);

impl std::fmt::Display for Milliseconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        let (whole, mut fraction) = (micros / 1000, micros % 1000);
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        // Three decimal places, less the trailing zeros.
        let mut digits = 3;
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{fraction:0digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_show_a_fraction_only_when_there_is_one() {
        for (duration, shown) in [
            (Duration::from_millis(250), "250"),
            (Duration::ZERO, "0"),
            (Duration::from_micros(1_500), "1.5"),
            (Duration::from_micros(2_125), "2.125"),
            (Duration::from_micros(300), "0.3"),
        ] {
            assert_eq!(Milliseconds(duration).to_string(), shown);
        }
    }
}
