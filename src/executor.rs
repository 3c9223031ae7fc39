//! The one interpreter of the behaviour model: acts out a step tree, one span
//! per step, without ever blocking a thread.
//!
//! A failure is reported once, by an error event on the span where it
//! starts; every span it then passes through on its way up is marked as an
//! error without logging it again.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{self, Poll},
    time::Duration,
};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use opentelemetry::{
    Context, KeyValue,
    trace::{SpanKind, Status as OtelStatus, TraceContextExt},
};

use crate::{
    behaviour::{Call, Concurrently, Fail, Latency, Log, LogLevel, Raise, Sleep, Step},
    client::Clients,
    failure::{DownstreamStatus, Failure, code_name},
    propagation,
    telemetry::{Metrics, Tracer, rpc_attributes},
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
    /// Opens each step's span.
    tracer: Tracer,
}

impl Executor {
    /// An executor whose spans are named as `names` says.
    pub fn new(names: SpanNames) -> Executor {
        Executor {
            clients: Clients::default(),
            names,
            metrics: Metrics::default(),
            tracer: Tracer::default(),
        }
    }

    /// The same executor, recording its spans through `tracer`.
    pub fn with_tracer(self, tracer: Tracer) -> Executor {
        Executor { tracer, ..self }
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

    /// Opens the spans of steps, and of the requests that act them out.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// The entry point: acts out `tree`, the steps of one request, under
    /// the current span, the request's own. That span is marked as failed
    /// if the tree fails, like every other span the failure passes through.
    pub async fn run_request(&self, tree: Arc<Step>) -> Result<(), Failure> {
        self.run_step(&tree).await.inspect_err(mark_failed)
    }

    /// Acts out one step of the tree and, through recursion, the steps it
    /// holds, each inside a span of its own for the kinds that have one.
    fn run_step<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), Failure>> {
        match step {
            Step::Sleep(sleep) => self
                .traced(step, SpanKind::Internal, self.sleep(sleep))
                .boxed(),
            Step::Call(call) => self.traced(step, SpanKind::Client, self.call(call)).boxed(),
            Step::Function(function) => self
                .traced(step, SpanKind::Internal, self.run_in_order(&function.steps))
                .boxed(),
            Step::Concurrently(group) if group.name.is_some() => self
                .traced(step, SpanKind::Internal, self.run_branches(group))
                .boxed(),
            Step::Concurrently(group) => self.run_branches(group).boxed(),
            Step::Fail(fail) => self
                .traced(step, SpanKind::Internal, async move { self.roll(fail) })
                .boxed(),
            Step::Raise(raise) => async move { Err(raise_failure(raise)) }.boxed(),
            Step::Log(log) => async move {
                write(log);
                Ok(())
            }
            .boxed(),
            Step::Sequence(steps) => self.run_in_order(steps).boxed(),
            Step::Retry(retry) => async move {
                let mut outcome = self.run_step(&retry.step).await;
                for _ in 0..retry.retries {
                    if outcome.is_ok() {
                        break;
                    }
                    outcome = self.run_step(&retry.step).await;
                }
                outcome
            }
            .boxed(),
        }
    }

    /// Runs `work`, the body of `step`, inside the step's span: opened
    /// under the current span now, as the step starts, and ended with the
    /// step's name and attributes when `work` finishes or is dropped.
    fn traced<'a, F>(&'a self, step: &'a Step, kind: SpanKind, work: F) -> Traced<'a, F> {
        Traced {
            cx: self
                .tracer
                .open(&Context::current(), self.span_name(step), kind),
            executor: self,
            step,
            work,
        }
    }

    /// Runs `steps` one after another; the first failure stops them.
    async fn run_in_order(&self, steps: &[Step]) -> Result<(), Failure> {
        for step in steps {
            self.run_step(step).await.inspect_err(mark_failed)?;
        }
        Ok(())
    }

    /// Runs the group's branches at the same time, each to its end, and
    /// fails with the first failure among them.
    async fn run_branches(&self, group: &Concurrently) -> Result<(), Failure> {
        let mut branches: FuturesUnordered<_> = group
            .branches
            .iter()
            .map(|step| self.run_step(step))
            .collect();
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
        propagation::inject(&Context::current(), &mut metadata);
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

    /// The name a step's span goes by: the user's, or the step kind's
    /// generic one.
    fn span_name<'a>(&self, step: &'a Step) -> &'a str {
        match self.names {
            SpanNames::Descriptive => step.name(),
            SpanNames::Generic => generic_name(step),
        }
    }
}

/// The name the original gave a kind of step's span, for
/// [`SpanNames::Generic`]. Steps without a span of their own have none.
fn generic_name(step: &Step) -> &'static str {
    match step {
        Step::Sleep(_) => "sleep",
        Step::Call(_) => "call_service",
        Step::Function(_) => "Function.enact",
        Step::Concurrently(_) => "concurrently",
        Step::Fail(_) => "fail_with_chance",
        Step::Raise(_) | Step::Sequence(_) | Step::Retry(_) | Step::Log(_) => "",
    }
}

pin_project_lite::pin_project! {
    /// A step acting inside its span, which is the current span whenever
    /// the step runs. The span ends when the step finishes, or when it is
    /// dropped unfinished with its request. One context serves both, where
    /// `WithContext` and a drop guard would each keep one, in every step of
    /// every request in flight.
    struct Traced<'a, F> {
        #[pin]
        work: F,
        executor: &'a Executor,
        step: &'a Step,
        cx: Context,
    }

    impl<F> PinnedDrop for Traced<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            end_span(this.executor, this.step, this.cx);
        }
    }
}

impl<F: Future> Future for Traced<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = {
            let _inside = this.cx.clone().attach();
            this.work.poll(task)
        };
        if polled.is_ready() {
            end_span(this.executor, this.step, this.cx);
        }
        polled
    }
}

/// Ends the span of `step` that is active in `cx`, giving it the step's
/// name and attributes, unless it has ended already.
fn end_span(executor: &Executor, step: &Step, cx: &Context) {
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    span.update_name(executor.span_name(step).to_owned());
    span.set_attributes(attributes(step));
    span.end();
}

/// The attributes of a step's span: its own name, its kind, and what it
/// was told to do. Made to size: they wait in the export queue with the span.
fn attributes(step: &Step) -> Vec<KeyValue> {
    fn named<const N: usize>(
        name: &str,
        action: &'static str,
        rest: [KeyValue; N],
    ) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(2 + N);
        attributes.push(KeyValue::new("_tracing_name", name.to_owned()));
        attributes.push(KeyValue::new("thespian.action", action));
        attributes.extend(rest);
        attributes
    }
    match step {
        Step::Sleep(sleep) => {
            let Latency::Fixed(duration) = sleep.latency;
            let duration_ms = KeyValue::new(
                "duration_ms",
                i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            );
            match sleep.fault {
                Some(fault) => named(
                    &sleep.name,
                    "sleep",
                    [duration_ms, KeyValue::new("failure_chance", fault.chance())],
                ),
                None => named(&sleep.name, "sleep", [duration_ms]),
            }
        }
        Step::Call(call) => {
            let [system, service, method] = rpc_attributes(call.method);
            named(
                &call.name,
                "call",
                [
                    KeyValue::new("thespian.target", call.target.as_str().to_owned()),
                    system,
                    service,
                    method,
                    KeyValue::new("server.address", call.target.host().to_owned()),
                    KeyValue::new("server.port", i64::from(call.target.port())),
                ],
            )
        }
        Step::Function(function) => named(&function.name, "function", []),
        Step::Concurrently(group) => named(
            group.name.as_deref().unwrap_or_default(),
            "concurrently",
            [KeyValue::new(
                "thespian.branches",
                group.branches.len() as i64,
            )],
        ),
        Step::Fail(fail) => named(
            &fail.name,
            "fail_with_chance",
            [KeyValue::new("failure_chance", fail.fault.chance())],
        ),
        Step::Raise(_) | Step::Sequence(_) | Step::Retry(_) | Step::Log(_) => Vec::new(),
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
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.set_status(OtelStatus::error(failure.to_string()));
        }
    });
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
