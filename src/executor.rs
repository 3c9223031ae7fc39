//! The one interpreter of the behaviour model: acts out a step tree, one span
//! per step, without ever blocking a thread.
//!
//! A failure is reported once, by an error event on the span where it
//! starts; every span it then passes through on its way up is marked as an
//! error without logging it again.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use opentelemetry::trace::Status as OtelStatus;
use tracing::{Instrument, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    behaviour::{Call, Concurrently, Fail, Log, LogLevel, Raise, Sleep, Step},
    client::Clients,
    failure::{DownstreamStatus, Failure, code_name},
    propagation,
    telemetry::Metrics,
};

/// How spans are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SpanNames {
    /// By the configured `tracing_name`, so a trace reads as the story.
    #[default]
    Descriptive,
    /// By the kind of step (`Function.enact`, `sleep`, ...), as the original
    /// did, for dashboards that match on fixed names.
    Generic,
}

/// Acts out step trees. Cheap to clone; clones share the channel cache.
#[derive(Debug, Clone, Default)]
pub struct Executor {
    /// Channels to the Thespians this one calls.
    clients: Clients,
    /// Whether spans take the user's names.
    names: SpanNames,
    /// Times each call to another Thespian.
    metrics: Metrics,
}

impl Executor {
    /// An executor whose spans are named as `names` says.
    pub fn new(names: SpanNames) -> Executor {
        Executor {
            clients: Clients::default(),
            names,
            metrics: Metrics::default(),
        }
    }

    /// The same executor, giving up on a call after `timeout`.
    pub fn with_call_timeout(self, timeout: Duration) -> Executor {
        Executor {
            clients: Clients::new(timeout),
            ..self
        }
    }

    /// The same executor, recording its calls in `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Executor {
        Executor { metrics, ..self }
    }

    /// Acts out `step` under the current span, which is marked as failed
    /// if the step fails, like every other span the failure passes through.
    pub async fn perform(&self, step: Arc<Step>) -> Result<(), Failure> {
        self.act(&step).await.inspect_err(mark_failed)
    }

    /// Makes the step's span now, while the caller's span is current, then
    /// runs the step inside it.
    fn act<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), Failure>> {
        match step {
            Step::Sleep(sleep) => {
                let span = self.sleep_span(sleep);
                self.sleep(sleep).instrument(span).boxed()
            }
            Step::Call(call) => {
                let span = self.call_span(call);
                self.call(call).instrument(span).boxed()
            }
            Step::Function(function) => {
                let span = tracing::info_span!(
                    "Function.enact",
                    otel.name = self.span_name(&function.name, "Function.enact"),
                    _tracing_name = function.name.as_str(),
                    thespian.action = "function",
                );
                self.sequence(&function.steps).instrument(span).boxed()
            }
            Step::Concurrently(group) => match &group.name {
                Some(name) => {
                    let span = tracing::info_span!(
                        "concurrently",
                        otel.name = self.span_name(name, "concurrently"),
                        _tracing_name = name.as_str(),
                        thespian.action = "concurrently",
                        thespian.branches = group.branches.len() as i64,
                    );
                    self.concurrently(group).instrument(span).boxed()
                }
                None => self.concurrently(group).boxed(),
            },
            Step::Fail(fail) => {
                let span = tracing::info_span!(
                    "fail_with_chance",
                    otel.name = self.span_name(&fail.name, "fail_with_chance"),
                    _tracing_name = fail.name.as_str(),
                    thespian.action = "fail_with_chance",
                    failure_chance = fail.fault.chance(),
                );
                async move { self.roll(fail) }.instrument(span).boxed()
            }
            Step::Raise(raise) => async move { Err(raise_failure(raise)) }.boxed(),
            Step::Log(log) => async move {
                write(log);
                Ok(())
            }
            .boxed(),
            Step::Sequence(steps) => self.sequence(steps).boxed(),
            Step::Retry(retry) => async move {
                let mut outcome = self.act(&retry.step).await;
                for _ in 0..retry.retries {
                    if outcome.is_ok() {
                        break;
                    }
                    outcome = self.act(&retry.step).await;
                }
                outcome
            }
            .boxed(),
        }
    }

    async fn sequence(&self, steps: &[Step]) -> Result<(), Failure> {
        for step in steps {
            self.act(step).await.inspect_err(mark_failed)?;
        }
        Ok(())
    }

    async fn concurrently(&self, group: &Concurrently) -> Result<(), Failure> {
        let mut branches: FuturesUnordered<_> =
            group.branches.iter().map(|step| self.act(step)).collect();
        let mut first_failure = None;
        while let Some(outcome) = branches.next().await {
            if let Err(failure) = outcome {
                first_failure.get_or_insert(failure);
            }
        }
        match first_failure {
            Some(failure) => {
                if group.name.is_some() {
                    mark_failed(&failure);
                }
                Err(failure)
            }
            None => Ok(()),
        }
    }

    async fn sleep(&self, sleep: &Sleep) -> Result<(), Failure> {
        let duration = sleep.latency.sample();
        tracing::info!(
            "sleeping {} ms for `{}`",
            Milliseconds(duration),
            sleep.name
        );
        tokio::time::sleep(duration).await;
        match sleep.fault {
            Some(fault) if fault.strikes() => Err(originate(Failure::Chance {
                action: sleep.name.clone(),
                code: fault.code(),
            })),
            _ => {
                tracing::info!("`{}` finished", sleep.name);
                Ok(())
            }
        }
    }

    fn roll(&self, fail: &Fail) -> Result<(), Failure> {
        if fail.fault.strikes() {
            Err(originate(Failure::Chance {
                action: fail.name.clone(),
                code: fail.fault.code(),
            }))
        } else {
            Ok(())
        }
    }

    async fn call(&self, call: &Call) -> Result<(), Failure> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        propagation::inject(&Span::current().context(), &mut metadata);
        tracing::info!(
            "calling {} at {} for `{}`",
            call.method,
            call.target,
            call.name
        );
        let started = tokio::time::Instant::now();
        let outcome = self.clients.call(&call.target, call.method, metadata).await;
        let elapsed = started.elapsed();
        let code = match &outcome {
            Ok(()) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.metrics
            .call_finished(&call.target, call.method, code, elapsed);
        tracing::info!(
            "{} at {} answered {} in {} ms for `{}`",
            call.method,
            call.target,
            code_name(code),
            elapsed.as_millis(),
            call.name
        );
        Span::current().record("rpc.grpc.status_code", code as i32);
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

    fn sleep_span(&self, sleep: &Sleep) -> Span {
        let crate::behaviour::Latency::Fixed(duration) = sleep.latency;
        // Integers go in as i64: the OpenTelemetry layer exports unsigned
        // ones as strings, which backends cannot compare or sum.
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        tracing::info_span!(
            "sleep",
            otel.name = self.span_name(&sleep.name, "sleep"),
            _tracing_name = sleep.name.as_str(),
            thespian.action = "sleep",
            duration_ms,
            failure_chance = sleep.fault.map(|fault| fault.chance()),
        )
    }

    fn call_span(&self, call: &Call) -> Span {
        tracing::info_span!(
            "call_service",
            otel.name = self.span_name(&call.name, "call_service"),
            otel.kind = "client",
            _tracing_name = call.name.as_str(),
            thespian.action = "call",
            thespian.target = call.target.as_str(),
            rpc.system = "grpc",
            rpc.service = "thespian.Thespian",
            rpc.method = call.method.as_str(),
            rpc.grpc.status_code = Empty,
            server.address = call.target.host(),
            server.port = i64::from(call.target.port()),
        )
    }

    /// The name a step's span goes by: the user's, or the step kind's
    /// `generic` one. Given when the span is made, so naming costs no
    /// second pass over the span.
    fn span_name<'a>(&self, name: &'a str, generic: &'static str) -> &'a str {
        match self.names {
            SpanNames::Descriptive => name,
            SpanNames::Generic => generic,
        }
    }
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

/// Reports a failure where it starts: one error event on the current span,
/// which also marks that span as failed.
fn originate(failure: Failure) -> Failure {
    tracing::error!(
        failure.cause = failure.cause(),
        rpc.grpc.status_code = failure.code() as i32,
        "{failure}"
    );
    mark_failed(&failure);
    failure
}

/// Writes a story's own log line, in the current span.
fn write(log: &Log) {
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

fn raise_failure(raise: &Raise) -> Failure {
    originate(Failure::Script {
        code: raise.code,
        message: raise.message.clone(),
    })
}

/// Marks the current span as failed without logging again.
fn mark_failed(failure: &Failure) {
    Span::current().set_status(OtelStatus::error(failure.to_string()));
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
