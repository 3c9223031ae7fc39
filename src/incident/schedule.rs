//! Starts scenarios on their schedules: one task per scheduled scenario,
//! sleeping on tokio time until its next start, so tests move the clock
//! with paused time instead of waiting.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::task::JoinSet;

use super::Incidents;
use crate::behaviour::{Schedule, Start};

/// The running schedules; dropping this stops them (scenarios they
/// started still end on time).
#[derive(Debug)]
pub struct Schedules(#[allow(dead_code)] JoinSet<()>);

impl Incidents {
    /// Starts a task for each declared scenario that has a schedule.
    /// Must run inside a tokio runtime.
    pub fn run_schedules(&self) -> Schedules {
        let mut tasks = JoinSet::new();
        for scenario in self.declared() {
            if scenario.schedule.start.is_none() {
                continue;
            }
            let (incidents, scenario) = (self.clone(), Arc::clone(scenario));
            tasks.spawn(async move {
                // Counted from boot, not from now: a scenario due at boot
                // starts even though this task began a moment later.
                let (mut from, mut inclusive) = (Duration::ZERO, true);
                while let Some(at) =
                    next_start(&scenario.schedule, from, inclusive, incidents.boot_wall())
                {
                    let now = incidents.since_boot();
                    tokio::time::sleep(at.saturating_sub(now)).await;
                    if let Err(refused) = incidents.start_scenario(Arc::clone(&scenario), None) {
                        tracing::warn!(
                            scenario = &*scenario.name,
                            "the schedule could not start scenario `{}`: {refused}",
                            scenario.name
                        );
                    }
                    (from, inclusive) = (at, false);
                }
            });
        }
        Schedules(tasks)
    }
}

/// When, counted from boot, `schedule` next starts its scenario at or
/// after `from` (after it, unless `inclusive`); `None` when it never will
/// again. Cron times are read in UTC from `boot_wall`, the wall-clock time
/// at boot.
pub(super) fn next_start(
    schedule: &Schedule,
    from: Duration,
    inclusive: bool,
    boot_wall: SystemTime,
) -> Option<Duration> {
    match schedule.start.as_ref()? {
        Start::After { at, every } => {
            if from < *at || (inclusive && from == *at) {
                return Some(*at);
            }
            let every = (*every)?;
            let past = (from - *at).as_nanos() / every.as_nanos();
            let mut next = *at + every * u32::try_from(past).ok()?;
            if next < from || (!inclusive && next == from) {
                next += every;
            }
            Some(next)
        }
        Start::Cron(cron, _) => {
            let now = chrono::DateTime::<chrono::Utc>::from(boot_wall + from);
            let next = cron.find_next_occurrence(&now, inclusive).ok()?;
            let wait = (next - now).to_std().ok()?;
            Some(from + wait)
        }
    }
}
