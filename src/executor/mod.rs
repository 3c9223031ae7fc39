//! The one interpreter of the behaviour model: acts out a step tree, one span
//! per step, without ever blocking a thread.
//!
//! A failure is reported once, by an error event on the span where it
//! starts; every span it then passes through on its way up is marked as an
//! error without logging it again.
//!
//! Its parts, one file each:
//!
//! - here: the [`Executor`], and the recursion through a tree's steps.
//! - `leaf`: the steps that do the pretend work themselves.
//! - `load`: the steps whose work is real: CPU burnt, memory held.
//! - `span`: each step's span, from opening to end.
//! - `name` and `attributes`: what a step's span says of it.
//! - `dice`: where each step's rolls come from, seeded or not.
//! - `disruption`: how the scenarios in play change a request and its steps.

mod attributes;
mod dice;
mod disruption;
mod leaf;
mod load;
mod name;
mod span;

use std::{future::Future, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use opentelemetry::trace::{SpanKind, TraceId};

pub use dice::{Dice, Roll};
pub use disruption::SCENARIO_ATTRIBUTE;
use leaf::Attempt;
pub use load::{DEFAULT_MAX_HELD_BYTES, LoadLimits};
pub use name::SpanNames;
use span::{Traced, mark_failed};

use crate::{
    behaviour::{Call, Concurrently, Fallback, Retry, Step},
    client::Clients,
    deadline::Deadline,
    failure::Failure,
    incident::Incidents,
    relay::Relay,
    telemetry::{Metrics, Tracer},
};

/// Acts out step trees. Cheap to clone; clones share the connection cache.
#[derive(Debug, Clone, Default)]
pub struct Executor {
    /// Connections to the Thespians this one calls.
    clients: Clients,
    /// Whether spans take the user's names.
    names: SpanNames,
    /// Times each call to another Thespian.
    metrics: Metrics,
    /// Opens each step's span.
    tracer: Tracer,
    /// `THESPIAN_SEED`: when set, every roll of a request follows from it
    /// and the request's trace id.
    seed: Option<u64>,
    /// The burn threads and the memory held, shared by every request.
    load: load::Load,
    /// What each call passes on, and the hop limit requests are held to.
    relay: Relay,
    /// Which scenarios are active: each step loads one flag of it to know
    /// whether its request may carry scenarios at all.
    incidents: Incidents,
}

impl Executor {
    /// An executor whose spans are named as `names` says.
    pub fn new(names: SpanNames) -> Executor {
        Executor {
            clients: Clients::default(),
            names,
            metrics: Metrics::default(),
            tracer: Tracer::default(),
            seed: None,
            load: load::Load::default(),
            relay: Relay::default(),
            incidents: Incidents::default(),
        }
    }

    /// The same executor, acting out the scenarios `incidents` has active
    /// as they change each request.
    pub fn with_incidents(self, incidents: Incidents) -> Executor {
        Executor { incidents, ..self }
    }

    /// The same executor, burning CPU and holding memory within `limits`.
    pub fn with_load_limits(self, limits: LoadLimits) -> Executor {
        Executor {
            load: load::Load::new(limits),
            ..self
        }
    }

    /// The same executor, rolling every request's dice from `seed` and the
    /// request's trace id, or unseeded for `None`.
    pub fn with_seed(self, seed: Option<u64>) -> Executor {
        Executor { seed, ..self }
    }

    /// The dice of a request in the trace `trace_id`: what a script rolls
    /// while it builds the request's tree, and where the tree's own rolls
    /// start from.
    pub fn dice(&self, trace_id: TraceId) -> Dice {
        Dice::for_request(self.seed, trace_id)
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

    /// The same executor, passing context on and holding requests to the
    /// hop limit as `relay` says.
    pub fn with_relay(self, relay: Relay) -> Executor {
        Executor { relay, ..self }
    }

    /// Which scenarios are active, and which can reach a request.
    pub fn incidents(&self) -> &Incidents {
        &self.incidents
    }

    /// Reads what requests bring in and writes what their calls pass on.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Refuses a request, in the context `cx` it came in with, that has
    /// passed through too many Thespians, before anything is acted out:
    /// the refusal is reported on the request's span as any failure is.
    pub fn admit(&self, cx: &opentelemetry::Context) -> Result<(), Failure> {
        self.relay.admit(cx).map_err(|failure| {
            let _inside = cx.clone().attach();
            leaf::originate(failure)
        })
    }

    /// Opens the spans of steps, and of the requests that act them out.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// The entry point: acts out `tree`, the steps of one request, under
    /// the current span, the request's own. That span is marked as failed
    /// if the tree fails, like every other span the failure passes through.
    /// `dice` are the request's, from [`Executor::dice`]: the caller has
    /// them already, since the request's script and attributes roll them
    /// too.
    /// A request whose caller set a deadline stops when it passes (see
    /// [`Deadline`]).
    pub async fn run_request(&self, tree: Arc<Step>, dice: Dice) -> Result<(), Failure> {
        let work = self.disrupt_request(dice, || self.run_step(&tree, dice));
        // Boxed apart, so a request without a deadline holds no timer.
        let work = match Deadline::current() {
            Some(deadline) => leaf::within(deadline, work).boxed(),
            None => work,
        };
        work.await.inspect_err(mark_failed)
    }

    /// Acts out one step of the tree and, through recursion, the steps it
    /// holds, each inside a span of its own for the kinds that have one.
    /// `dice` is the step's own, by its place in the tree.
    fn run_step<'a>(&'a self, step: &'a Step, dice: Dice) -> BoxFuture<'a, Result<(), Failure>> {
        if let Some(disrupted) = self.disrupt_step(step, dice, None) {
            return disrupted;
        }
        match step {
            Step::Sleep(sleep) => self
                .traced(
                    step,
                    attributes::sleep_kind(sleep),
                    dice,
                    leaf::sleep(sleep, dice),
                )
                .boxed(),
            Step::Call(call) => self.run_call(step, call, dice, None).boxed(),
            Step::Function(function) => self
                .traced(
                    step,
                    SpanKind::Internal,
                    dice,
                    self.run_in_order(&function.steps, dice),
                )
                .boxed(),
            Step::Concurrently(group) if group.name.is_some() => self
                .traced(
                    step,
                    SpanKind::Internal,
                    dice,
                    self.run_branches(group, dice),
                )
                .boxed(),
            Step::Concurrently(group) => self.run_branches(group, dice).boxed(),
            Step::Fail(fail) => self
                .traced(step, SpanKind::Internal, dice, async move {
                    leaf::roll(fail, dice)
                })
                .boxed(),
            Step::Raise(raise) => async move { Err(leaf::raise_failure(raise)) }.boxed(),
            Step::Log(log) => async move {
                leaf::write(log);
                Ok(())
            }
            .boxed(),
            Step::Burn(burn) => self
                .traced(
                    step,
                    SpanKind::Internal,
                    dice,
                    load::burn(&self.load, burn, dice),
                )
                .boxed(),
            Step::HoldMemory(hold) => self
                .traced(
                    step,
                    SpanKind::Internal,
                    dice,
                    load::hold(&self.load, hold, dice),
                )
                .boxed(),
            Step::Sequence(steps) => self.run_in_order(steps, dice).boxed(),
            Step::Retry(retry) => self.run_retried(retry, dice).boxed(),
            Step::Fallback(fallback) => self
                .traced(
                    step,
                    SpanKind::Internal,
                    dice,
                    self.run_fallback(fallback, dice),
                )
                .boxed(),
        }
    }

    /// Calls another Thespian inside the call's span, as try `attempt`
    /// of a retried call, or as a call on its own.
    fn run_call<'a>(
        &'a self,
        step: &'a Step,
        call: &'a Call,
        dice: Dice,
        attempt: Option<Attempt<'a>>,
    ) -> impl Future<Output = Result<(), Failure>> + 'a {
        self.traced(
            step,
            SpanKind::Client,
            dice,
            leaf::call(&self.clients, &self.metrics, &self.relay, call, attempt),
        )
    }

    /// Runs `work`, the body of `step`, inside the step's span: opened
    /// under the current span now, as the step starts, and ended with the
    /// step's name and attributes when `work` finishes or is dropped.
    /// `dice` are the step's, for the attribute values its span draws.
    fn traced<'a, F>(
        &'a self,
        step: &'a Step,
        kind: SpanKind,
        dice: Dice,
        work: F,
    ) -> Traced<'a, F> {
        Traced::open(&self.tracer, self.names, step, kind, dice, work)
    }

    /// Runs `steps` one after another; the first failure stops them.
    async fn run_in_order(&self, steps: &[Step], dice: Dice) -> Result<(), Failure> {
        for (i, step) in steps.iter().enumerate() {
            self.run_step(step, dice.child(i))
                .await
                .inspect_err(mark_failed)?;
        }
        Ok(())
    }

    /// Runs the group's branches at the same time, each to its end, and
    /// fails with the first failure among them.
    async fn run_branches(&self, group: &Concurrently, dice: Dice) -> Result<(), Failure> {
        let mut branches: FuturesUnordered<_> = group
            .branches
            .iter()
            .enumerate()
            .map(|(i, step)| self.run_step(step, dice.child(i)))
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

    /// Runs the retried step, and again after each failure its policy
    /// retries, until it works or has no attempts left; the last try's
    /// outcome is the step's. Each try rolls its own dice, numbered by the
    /// try, and so does each backoff's jitter. A retried call's tries say
    /// which they are, as gRPC's retries do.
    async fn run_retried(&self, retry: &Retry, dice: Dice) -> Result<(), Failure> {
        let policy = &retry.policy;
        let (mut number, mut waited) = (1, None);
        loop {
            let tried = dice.child(number as usize - 1);
            let outcome = match &*retry.step {
                Step::Call(call) => {
                    let attempt = Some(Attempt {
                        number,
                        waited,
                        policy,
                    });
                    match self.disrupt_step(&retry.step, tried, attempt) {
                        // A try a scenario reaches is acted out as it says.
                        Some(disrupted) => disrupted.await,
                        None => self.run_call(&retry.step, call, tried, attempt).await,
                    }
                }
                step => self.run_step(step, tried).await,
            };
            let Err(failure) = &outcome else {
                return outcome;
            };
            match leaf::retry_code(failure) {
                Some(code) if policy.retries_after(number, code) => {}
                _ => return outcome,
            }
            if let Some(backoff) = policy.backoff() {
                let wait = backoff.before(number, &mut tried.rng(Roll::Backoff));
                tracing::info!(
                    "retrying `{}` in {} ms: try {number} of {} failed",
                    retry.step.name(),
                    wait.as_millis(),
                    policy.max_attempts()
                );
                tokio::time::sleep(wait).await;
                waited = Some(wait);
            }
            number += 1;
        }
    }

    /// Runs `steps` one after another, the first failure stopping them,
    /// without marking the current span with it. `dice` are the sequence's,
    /// so its steps roll as they would in [`Executor::run_in_order`].
    async fn run_unmarked(&self, steps: &[Step], dice: Dice) -> Result<(), Failure> {
        for (i, step) in steps.iter().enumerate() {
            self.run_step(step, dice.child(i)).await?;
        }
        Ok(())
    }

    /// Runs the primary and, only when it fails, the fallback, whose
    /// outcome is then the step's. The step's span says which path ran;
    /// the primary's failure stays on the spans where it happened. The
    /// primary rolls as child 0 and the fallback as child 1, like any
    /// other step's children, so a seeded request replays across them.
    async fn run_fallback(&self, fallback: &Fallback, dice: Dice) -> Result<(), Failure> {
        // The primary's steps run one by one here rather than as a
        // sequence, which would mark this span, the survivor's, as failed.
        let primary = match &*fallback.primary {
            Step::Sequence(steps) => self.run_unmarked(steps, dice.child(0)).boxed(),
            step => self.run_step(step, dice.child(0)),
        };
        let outcome = match primary.await {
            Ok(()) => {
                record_path("primary", None);
                Ok(())
            }
            Err(failure) => {
                record_path("fallback", Some(&failure));
                self.run_step(&fallback.fallback, dice.child(1)).await
            }
        };
        outcome.inspect_err(mark_failed)
    }
}

/// Notes on the current span, a fallback step's, which path ran and, when
/// it was the fallback, the code the primary failed with.
fn record_path(path: &'static str, primary: Option<&Failure>) {
    use opentelemetry::{KeyValue, trace::TraceContextExt};
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        span.set_attribute(KeyValue::new("thespian.fallback.path", path));
        if let Some(failure) = primary {
            span.set_attribute(KeyValue::new(
                "thespian.fallback.primary_status_code",
                failure.code() as i64,
            ));
        }
    });
}

#[cfg(test)]
mod tests {
    use std::mem;

    use super::*;
    use crate::behaviour::{Function, Latency, Sleep};

    #[test]
    fn a_sleeping_step_and_its_function_stay_within_their_allocation_sizes() {
        // Each step of a request in flight is one allocation, rounded up by
        // the allocator to a size class: ten thousand requests asleep in a
        // function hold both, so a few bytes over a class cost 64 bytes of
        // each request (248 and 152 bytes when this was written).
        let sleep = Sleep {
            name: "wait".into(),
            latency: Latency::Fixed(Duration::from_millis(1)),
            fault: None,
            failures: Default::default(),
            dependency: None,
            attributes: Default::default(),
        };
        let steps = vec![Step::Sleep(sleep.clone())];
        let function = Step::Function(Function {
            name: "handle".into(),
            steps: steps.clone(),
            attributes: Default::default(),
        });
        let executor = Executor::default();
        let dice = Dice::default();
        let asleep = executor.traced(
            &steps[0],
            SpanKind::Internal,
            dice,
            leaf::sleep(&sleep, dice),
        );
        assert!(
            mem::size_of_val(&asleep) <= 256,
            "{}",
            mem::size_of_val(&asleep)
        );
        let running = executor.traced(
            &function,
            SpanKind::Internal,
            dice,
            executor.run_in_order(&steps, dice),
        );
        assert!(
            mem::size_of_val(&running) <= 160,
            "{}",
            mem::size_of_val(&running)
        );
    }
}
