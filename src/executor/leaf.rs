//! The steps that hold no others and do the pretend work themselves: wait,
//! roll the dice, call another Thespian, raise a script's error, write a
//! log line. A failure starts here, and is reported here, once.

use std::time::Duration;

use opentelemetry::{Context, KeyValue, trace::TraceContextExt};

use super::{
    dice::{Dice, Roll},
    span::mark_failed,
};
use crate::{
    behaviour::{Call, Fail, Log, LogLevel, Raise, Sleep},
    client::Clients,
    failure::{DownstreamStatus, Failure, code_name},
    propagation,
    telemetry::Metrics,
};

/// The target of the executor's own events: the module's, not this file's,
/// since log filters and the telemetry's scope name go by it.
const TARGET: &str = "thespian::executor";

/// Waits as long as the step's latency says, then rolls its fault, if it
/// has one. The span records the duration drawn.
pub(super) async fn sleep(sleep: &Sleep, dice: Dice) -> Result<(), Failure> {
    let duration = sleep.latency.sample(&mut dice.rng(Roll::Latency));
    Context::map_current(|cx| {
        cx.span().set_attribute(KeyValue::new(
            "thespian.duration_ms",
            duration.as_nanos() as f64 / 1_000_000.0,
        ))
    });
    tracing::info!(
        target: TARGET,
        "sleeping {} ms for `{}`",
        Milliseconds(duration),
        sleep.name
    );
    tokio::time::sleep(duration).await;
    let struck = sleep
        .fault
        .filter(|fault| fault.strikes(&mut dice.rng(Roll::Fault)));
    match struck {
        Some(fault) => Err(originate(Failure::Chance {
            action: sleep.name.clone(),
            code: fault.code(),
        })),
        _ => {
            tracing::info!(target: TARGET, "`{}` finished", sleep.name);
            Ok(())
        }
    }
}

/// Rolls the step's fault, without waiting.
pub(super) fn roll(fail: &Fail, dice: Dice) -> Result<(), Failure> {
    if fail.fault.strikes(&mut dice.rng(Roll::Fault)) {
        Err(originate(Failure::Chance {
            action: fail.name.clone(),
            code: fail.fault.code(),
        }))
    } else {
        Ok(())
    }
}

/// Calls the step's method on another Thespian, carrying the trace
/// context, and records how the call went in `metrics`.
pub(super) async fn call(clients: &Clients, metrics: &Metrics, call: &Call) -> Result<(), Failure> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    propagation::inject(&Context::current(), &mut metadata);
    tracing::info!(
        target: TARGET,
        "calling {} at {} for `{}`",
        call.method,
        call.target,
        call.name
    );
    let started = tokio::time::Instant::now();
    let outcome = clients.call(&call.target, call.method, metadata).await;
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
    outcome.map_err(|status| {
        originate(Failure::Downstream {
            target: call.target.clone(),
            method: call.method,
            status: DownstreamStatus {
                code: status.code(),
                message: status.message().to_owned(),
            },
        })
    })
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
fn originate(failure: Failure) -> Failure {
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
