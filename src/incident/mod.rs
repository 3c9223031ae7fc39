//! Incidents: which scenarios are active right now, shared by the server,
//! the executor, the schedules and the control API.
//!
//! A request reads the board once, as it starts: with nothing active that
//! is one atomic load, and the request carries nothing more. With
//! scenarios active it takes a snapshot of those that can reach it, in the
//! order they started, and carries it in its `Context` (an [`InPlay`]) for
//! its steps to read, so a request finishes under the trouble it started
//! with. Starting and stopping a scenario writes a log line and moves the
//! `thespian.scenario.active` gauge.
//!
//! Its parts:
//!
//! - here: the [`Incidents`] board, started and stopped by name.
//! - `schedule`: the tasks that start and stop scenarios on their
//!   schedules, on tokio time.

mod schedule;

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

pub use schedule::Schedules;
use schedule::next_start;

use crate::{
    behaviour::{MAX_SCENARIOS, MethodName, Scenario},
    telemetry::Metrics,
};

/// The board of scenarios: those declared, and those active. Cheap to
/// clone; clones share the board. The default has none of either.
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    board: Arc<Board>,
}

#[derive(Debug, Default)]
struct Board {
    /// The scenarios the config declares, by name, in its order.
    declared: Vec<Arc<Scenario>>,
    /// How many are active: the one thing a request reads when it is 0.
    count: AtomicUsize,
    /// Whether any has ever been active: until then, a step reads only
    /// this to know no request carries scenarios.
    ever: AtomicBool,
    /// Those active, in the order they started.
    active: RwLock<Vec<Active>>,
    /// Numbers each start, so a timer ends only the start it belongs to.
    starts: AtomicU64,
    /// Moves the gauge.
    metrics: Metrics,
    /// When the board was made: when the instance started.
    boot: Option<Instant>,
    /// The wall-clock time then, from which cron times are counted on
    /// tokio's clock, so paused time moves them too.
    boot_wall: Option<SystemTime>,
}

/// A scenario that is active, and until when.
#[derive(Debug, Clone)]
struct Active {
    scenario: Arc<Scenario>,
    /// Which start this is.
    start: u64,
    /// When it ends on its own, if it does.
    until: Option<Instant>,
}

/// The scenarios that can reach one request, in the order they started:
/// what its steps read, from its `Context`.
#[derive(Debug, Clone)]
pub struct InPlay(pub Arc<[Arc<Scenario>]>);

/// What the control API shows of one scenario.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// Whether it is active now.
    pub active: bool,
    /// How long it stays active, when it is and ends on its own.
    pub ends_in: Option<Duration>,
    /// How long until its schedule next starts it, if it will.
    pub starts_in: Option<Duration>,
}

/// Why a scenario could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No scenario is declared with that name.
    #[error("no scenario is named `{0}`; the config declares {1}")]
    Unknown(String, String),
    /// As many scenarios are active as may be.
    #[error("{MAX_SCENARIOS} scenarios are active already; stop one first")]
    Full,
}

impl Incidents {
    /// A board of the scenarios `declared`, none active, moving `metrics`'
    /// gauge. Must be made inside a tokio runtime: its clock starts now.
    pub fn new(declared: Vec<Scenario>, metrics: Metrics) -> Incidents {
        Incidents {
            board: Arc::new(Board {
                declared: declared.into_iter().map(Arc::new).collect(),
                metrics,
                boot: Some(Instant::now()),
                boot_wall: Some(SystemTime::now()),
                ..Board::default()
            }),
        }
    }

    /// Whether any scenario is active: one atomic load.
    pub fn any(&self) -> bool {
        self.board.count.load(Ordering::Acquire) > 0
    }

    /// Whether any scenario has ever been active, so that a request in
    /// flight may carry some: one atomic load.
    pub fn ever(&self) -> bool {
        self.board.ever.load(Ordering::Acquire)
    }

    /// The scenarios active now that can reach a request to `method`, or
    /// `None` when there are none: with nothing active, one atomic load.
    pub fn in_play(&self, method: MethodName) -> Option<InPlay> {
        if !self.any() {
            return None;
        }
        let active = self
            .board
            .active
            .read()
            .expect("the board is never poisoned");
        let reaching: Arc<[Arc<Scenario>]> = active
            .iter()
            .filter(|a| a.scenario.scope.reaches(method))
            .map(|a| Arc::clone(&a.scenario))
            .collect();
        (!reaching.is_empty()).then_some(InPlay(reaching))
    }

    /// The scenarios the config declares.
    pub fn declared(&self) -> &[Arc<Scenario>] {
        &self.board.declared
    }

    /// Starts the declared scenario `name`, for `length`, else its
    /// schedule's `for`, else until it is stopped. One already active
    /// starts again, with the new length.
    pub fn start(&self, name: &str, length: Option<Duration>) -> Result<(), Refusal> {
        let scenario = self
            .board
            .declared
            .iter()
            .find(|s| &*s.name == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = self
                    .board
                    .declared
                    .iter()
                    .map(|s| format!("`{}`", s.name))
                    .collect();
                let names = if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                };
                Refusal::Unknown(name.to_owned(), names)
            })?;
        self.start_scenario(scenario, length)
    }

    /// Starts `scenario`, declared or given inline, for `length`, else its
    /// schedule's `for`, else until it is stopped; it takes the place of an
    /// active one of its name.
    pub fn start_scenario(
        &self,
        scenario: Arc<Scenario>,
        length: Option<Duration>,
    ) -> Result<(), Refusal> {
        let start = self.board.starts.fetch_add(1, Ordering::Relaxed);
        let length = length.or(scenario.schedule.length);
        let until = length.map(|length| Instant::now() + length);
        {
            let mut active = self.board.active.write().expect("never poisoned");
            let again = active.iter().position(|a| a.scenario.name == scenario.name);
            if again.is_none() && active.len() >= MAX_SCENARIOS {
                return Err(Refusal::Full);
            }
            if let Some(again) = again {
                active.remove(again);
            }
            active.push(Active {
                scenario: Arc::clone(&scenario),
                start,
                until,
            });
            self.board.count.store(active.len(), Ordering::Release);
            self.board.ever.store(true, Ordering::Release);
        }
        tracing::info!(
            scenario = &*scenario.name,
            scope = %scenario.scope,
            effect = %scenario.disruption,
            for_ms = length.map(|l| l.as_millis() as u64),
            "scenario `{}` started",
            scenario.name
        );
        self.board.metrics.scenario_changed(&scenario.name, true);
        if let Some(length) = length {
            let board = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(length).await;
                board.end(&scenario.name, Some(start));
            });
        }
        Ok(())
    }

    /// Stops the active scenario `name`; false when none by that name was.
    pub fn stop(&self, name: &str) -> bool {
        self.end(name, None)
    }

    /// Ends the active scenario `name`: any start of it, or only `start`.
    fn end(&self, name: &str, start: Option<u64>) -> bool {
        {
            let mut active = self.board.active.write().expect("never poisoned");
            let Some(at) = active
                .iter()
                .position(|a| &*a.scenario.name == name && start.is_none_or(|s| s == a.start))
            else {
                return false;
            };
            active.remove(at);
            self.board.count.store(active.len(), Ordering::Release);
        }
        let why = if start.is_some() {
            "its time is up"
        } else {
            "it was stopped"
        };
        tracing::info!(scenario = name, "scenario `{name}` ended: {why}");
        self.board.metrics.scenario_changed(name, false);
        true
    }

    /// Every scenario declared or active, and its state: declared ones in
    /// the config's order, then those given inline.
    pub fn list(&self) -> Vec<Listing> {
        let now = Instant::now();
        let active = self.board.active.read().expect("never poisoned").clone();
        let since_boot = now - self.board.boot.unwrap_or(now);
        let listing = |scenario: &Arc<Scenario>| {
            let on = active.iter().find(|a| a.scenario.name == scenario.name);
            Listing {
                scenario: Arc::clone(scenario),
                active: on.is_some(),
                ends_in: on.and_then(|a| a.until).map(|until| until - now),
                starts_in: next_start(&scenario.schedule, since_boot, true, self.boot_wall())
                    .map(|at| at.saturating_sub(since_boot)),
            }
        };
        let mut listed: Vec<Listing> = self.board.declared.iter().map(listing).collect();
        for inline in &active {
            if !self
                .board
                .declared
                .iter()
                .any(|s| s.name == inline.scenario.name)
            {
                listed.push(listing(&inline.scenario));
            }
        }
        listed
    }

    /// The wall-clock time the board was made.
    fn boot_wall(&self) -> SystemTime {
        self.board.boot_wall.unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// How long since the board was made.
    fn since_boot(&self) -> Duration {
        self.board
            .boot
            .map_or(Duration::ZERO, |boot| boot.elapsed())
    }
}

#[cfg(test)]
mod tests;
