//! How the scenarios in play change what a request acts out.
//!
//! A scenario whose scope is the service or a method covers whole
//! requests: its outage, hang or failures strike the request once, before
//! its steps (an error `"when": "after"` once they are done), and its
//! changed waits apply to every `Sleep` of the request and its added CPU to
//! every `Burn`. A scenario scoped to a step name does the same to each
//! `Sleep`, `Burn` or `Call` of that name: its failures strike the step,
//! its waits change the step's.
//!
//! Several in play combine in the order they started: waits are changed
//! by each in turn (a `replace` draws afresh, a `multiply` scales what the
//! ones before made, a `duration` adds to it); an outage wins over a hang,
//! a hang over failures, and the failures of each are rolled in turn, the
//! first to strike deciding. Every span a scenario changes carries its
//! name in `thespian.scenario`.

use std::{future::Future, sync::Arc, time::Duration};

use futures::{FutureExt, future::BoxFuture};
use opentelemetry::{Context, KeyValue, trace::TraceContextExt};

use super::{
    Executor, attributes,
    dice::{Dice, Roll},
    leaf::{self, Attempt},
    load,
};
use crate::{
    behaviour::{Effect, Latency, MAX_LATENCY, Scenario, Scope, Slowdown, Step, When},
    failure::Failure,
    incident::InPlay,
};

/// The span attribute naming the scenarios that changed a span.
pub const SCENARIO_ATTRIBUTE: &str = "thespian.scenario";

/// What the scenarios' rolls decided for a request or a step.
enum Verdict {
    /// Go ahead, after waiting `extra`, then fail with `after` if set.
    Go {
        extra: Duration,
        after: Option<Failure>,
    },
    /// Fail at once.
    Fail(Failure),
    /// Never answer.
    Hang(Arc<str>),
}

/// The scenarios in play for the current request: those active when it
/// started, even if they have ended since, so a request finishes under the
/// trouble it started with. Until a scenario has ever been active, one
/// atomic load.
fn in_play(executor: &Executor) -> Option<InPlay> {
    if !executor.incidents.ever() {
        return None;
    }
    Context::map_current(|cx| cx.get::<InPlay>().cloned())
}

/// Whether a scenario strikes failures: an outage, a hang or failures.
fn strikes(scenario: &Scenario) -> bool {
    let d = &scenario.disruption;
    d.outage || d.hang || !d.failures.is_empty()
}

impl Executor {
    /// `work`, the whole request's steps, as the service- and
    /// method-scoped scenarios in play change it; `work` itself when none
    /// are. `work` is made only when the request goes ahead, so a request
    /// failed at once opens no span for steps it never acts out.
    pub(super) fn disrupt_request<'a>(
        &'a self,
        dice: Dice,
        work: impl FnOnce() -> BoxFuture<'a, Result<(), Failure>> + Send + 'a,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        let Some(in_play) = in_play(self) else {
            return work();
        };
        let covering: Vec<&Arc<Scenario>> = in_play
            .0
            .iter()
            .filter(|s| !matches!(s.scope, Scope::Step(_)))
            .collect();
        if covering.is_empty() {
            return work();
        }
        mark(&covering);
        let verdict = roll(
            covering.iter().copied().filter(|s| strikes(s)),
            dice,
            "the request",
        );
        gate(verdict, async move { work().await }).boxed()
    }

    /// The step as the scenarios in play change it, or `None` when none
    /// touch it and it runs as written. `attempt` is the try of a retried
    /// call this is, which a try the scenarios let through still says.
    pub(super) fn disrupt_step<'a>(
        &'a self,
        step: &'a Step,
        dice: Dice,
        attempt: Option<Attempt<'a>>,
    ) -> Option<BoxFuture<'a, Result<(), Failure>>> {
        if !matches!(step, Step::Sleep(_) | Step::Burn(_) | Step::Call(_)) {
            return None;
        }
        let in_play = in_play(self)?;
        let named = |s: &&Arc<Scenario>| match &s.scope {
            Scope::Step(name) => **name == *step.name(),
            _ => true,
        };
        let own = |s: &&Arc<Scenario>| matches!(&s.scope, Scope::Step(n) if **n == *step.name());
        // A scenario scoped to this step by name may strike it; any that
        // reaches it may change its wait, or its burn.
        let changes = |s: &&Arc<Scenario>| match step {
            Step::Sleep(_) => s.disruption.slowdown.is_some(),
            Step::Burn(_) => s.disruption.burn.is_some(),
            _ => false,
        };
        let touching: Vec<Arc<Scenario>> = in_play
            .0
            .iter()
            .filter(|s| (named(s) && changes(s)) || (own(s) && strikes(s)))
            .cloned()
            .collect();
        if touching.is_empty() {
            return None;
        }
        let striking = touching
            .iter()
            .filter(|s| matches!(s.scope, Scope::Step(_)) && strikes(s));
        let verdict = roll(striking, dice, &format!("`{}`", step.name()));
        let names = touching.clone();
        let work = match step {
            Step::Sleep(sleep) => {
                let mut sleep = sleep.clone();
                let drawn = slowed(&sleep.latency, &touching, dice);
                if let Some(drawn) = drawn {
                    sleep.latency = Latency::Fixed(drawn);
                }
                let kind = attributes::sleep_kind(&sleep);
                let acted = async move { leaf::sleep(&sleep, dice).await };
                let marked = async move {
                    mark(&names.iter().collect::<Vec<_>>());
                    gate(verdict, acted).await
                };
                self.traced(step, kind, dice, marked).boxed()
            }
            Step::Burn(burn) => {
                let mut burn = burn.clone();
                let extra: Vec<&Latency> = touching
                    .iter()
                    .filter_map(|s| s.disruption.burn.as_ref())
                    .collect();
                if !extra.is_empty() {
                    let mut cpu = burn.cpu.sample(&mut dice.rng(Roll::Latency));
                    let rng = &mut dice.rng(Roll::Scenario);
                    for more in extra {
                        cpu += more.sample(rng);
                    }
                    burn.cpu = Latency::Fixed(cpu.min(MAX_LATENCY));
                }
                let acted = async move { load::burn(&self.load, &burn, dice).await };
                let marked = async move {
                    mark(&names.iter().collect::<Vec<_>>());
                    gate(verdict, acted).await
                };
                let kind = opentelemetry::trace::SpanKind::Internal;
                self.traced(step, kind, dice, marked).boxed()
            }
            Step::Call(call) => {
                let (clients, metrics, relay) = (&self.clients, &self.metrics, &self.relay);
                let acted = leaf::call(clients, metrics, relay, call, attempt);
                let marked = async move {
                    mark(&names.iter().collect::<Vec<_>>());
                    gate(verdict, acted).await
                };
                let kind = opentelemetry::trace::SpanKind::Client;
                self.traced(step, kind, dice, marked).boxed()
            }
            _ => return None,
        };
        Some(work)
    }
}

/// The wait drawn for a step of `latency` as the slowdowns among
/// `scenarios` change it, in order, or `None` when none do.
fn slowed(latency: &Latency, scenarios: &[Arc<Scenario>], dice: Dice) -> Option<Duration> {
    let mut slowdowns = scenarios
        .iter()
        .filter_map(|s| s.disruption.slowdown.as_ref())
        .peekable();
    slowdowns.peek()?;
    let mut wait = latency.sample(&mut dice.rng(Roll::Latency));
    let rng = &mut dice.rng(Roll::Scenario);
    for slowdown in slowdowns {
        wait = match slowdown {
            Slowdown::Add(extra) => wait + extra.sample(rng),
            Slowdown::Multiply(factor) => wait.mul_f64(*factor),
            Slowdown::Replace(latency) => latency.sample(rng),
        };
    }
    Some(wait.min(MAX_LATENCY))
}

/// Rolls the failures of `scenarios`, in order, for `what` (the request
/// or a step): an outage first, then a hang, then each one's failures.
fn roll<'s>(
    scenarios: impl Iterator<Item = &'s Arc<Scenario>> + Clone,
    dice: Dice,
    what: &str,
) -> Verdict {
    if let Some(down) = scenarios.clone().find(|s| s.disruption.outage) {
        return Verdict::Fail(Failure::Scenario {
            scenario: Arc::clone(&down.name),
            code: tonic::Code::Unavailable,
            message: format!("{what} is unavailable: scenario `{}` (outage)", down.name),
        });
    }
    if let Some(stuck) = scenarios.clone().find(|s| s.disruption.hang) {
        return Verdict::Hang(Arc::clone(&stuck.name));
    }
    let rng = &mut dice.rng(Roll::Scenario);
    let mut extra = Duration::ZERO;
    for scenario in scenarios {
        match scenario.disruption.failures.roll(rng) {
            None => {}
            Some(Effect::Hang) => return Verdict::Hang(Arc::clone(&scenario.name)),
            Some(Effect::Slow { extra: slow }) => extra += slow.sample(rng),
            Some(Effect::Error {
                code,
                message,
                when,
            }) => {
                let failure = Failure::Scenario {
                    scenario: Arc::clone(&scenario.name),
                    code: *code,
                    message: match message {
                        Some(message) => format!("{what} failed: {}", message.as_str()),
                        None => format!("{what} failed: scenario `{}`", scenario.name),
                    },
                };
                return match when {
                    When::Before => Verdict::Fail(failure),
                    When::After => Verdict::Go {
                        extra,
                        after: Some(failure),
                    },
                };
            }
        }
    }
    Verdict::Go { extra, after: None }
}

/// Runs `work` as `verdict` says.
async fn gate(
    verdict: Verdict,
    work: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    match verdict {
        Verdict::Fail(failure) => Err(leaf::originate(failure)),
        Verdict::Hang(scenario) => {
            tracing::warn!(
                scenario = &*scenario,
                "hangs until its caller gives up: scenario `{scenario}`"
            );
            std::future::pending().await
        }
        Verdict::Go { extra, after } => {
            if !extra.is_zero() {
                tokio::time::sleep(extra).await;
            }
            work.await?;
            after.map_or(Ok(()), |failure| Err(leaf::originate(failure)))
        }
    }
}

/// Names `scenarios` on the current span in `thespian.scenario`, joined
/// by commas when there are several.
fn mark(scenarios: &[&Arc<Scenario>]) {
    let names: Vec<&str> = scenarios.iter().map(|s| &*s.name).collect();
    let value = names.join(",");
    Context::map_current(|cx| {
        cx.span()
            .set_attribute(KeyValue::new(SCENARIO_ATTRIBUTE, value))
    });
}
