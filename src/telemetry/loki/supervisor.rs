//! The supervisor: the one task that opens, retires and reaps sessions,
//! backs off while Loki fails, and pushes what is left at shutdown.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{sync::oneshot, task::JoinHandle, time::Instant};
use tracing_loki::url::Url;

use super::{
    MAX_SESSIONS, PUSH_TIMEOUT, RETRY_FIRST, RETRY_MAX, SHUTDOWN_WAIT, TARGET, TICK,
    admission::{InLine, Shared},
    session::{Outcome, Session, open},
};

/// Owns every session from opening to reaping; the layer only moves
/// sessions along the line it shares with it.
pub(super) struct Supervisor {
    shared: Arc<Shared>,
    /// Makes each session's layer and task, with the labels.
    builder: tracing_loki::Builder,
    /// Where sessions push.
    url: Url,
    /// Every session whose task has not been reaped yet.
    running: Vec<Running>,
    /// Failures since Loki last accepted a push; 0 while it is healthy.
    failures: u64,
    /// How long the last failure made lines wait.
    retry_wait: Duration,
    /// When sessions may take lines again after a failure.
    resume_at: Option<Instant>,
}

/// A session the supervisor has opened and not yet reaped.
struct Running {
    session: Arc<Session>,
    task: JoinHandle<Outcome>,
    /// Lines it took; known once it stopped taking them.
    lines: usize,
    /// When it stopped taking lines.
    retired_at: Option<Instant>,
    /// Whether it was asked to push and finish.
    stopping: bool,
}

impl Supervisor {
    /// A supervisor with no sessions yet, sharing `shared` with the layer.
    pub(super) fn new(shared: Arc<Shared>, builder: tracing_loki::Builder, url: Url) -> Supervisor {
        Supervisor {
            shared,
            builder,
            url,
            running: Vec::new(),
            failures: 0,
            retry_wait: Duration::ZERO,
            resume_at: None,
        }
    }

    /// Keeps sessions going until `stopped` fires, then drains them.
    pub(super) async fn run(
        mut self,
        first: (Arc<Session>, JoinHandle<Outcome>),
        mut stopped: oneshot::Receiver<()>,
    ) {
        self.adopt(first);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.shared.wake.notified() => {}
                _ = &mut stopped => break,
            }
            self.step().await;
        }
        self.drain().await;
    }

    /// Makes a new session the spare, or the current one when there is none.
    fn adopt(&mut self, (session, task): (Arc<Session>, JoinHandle<Outcome>)) {
        self.shared.line_up(&session);
        self.running.push(Running {
            session,
            task,
            lines: 0,
            retired_at: None,
            stopping: false,
        });
    }

    async fn step(&mut self) {
        let now = Instant::now();
        self.collect_retired(now);
        self.retire_old(now);
        self.stop_retired().await;
        self.reap(now).await;
        self.provision(now);
    }

    /// Takes over the sessions the layer retired.
    fn collect_retired(&mut self, now: Instant) {
        for (session, lines) in self.shared.take_retired() {
            self.mark_retired(&session, lines, now);
        }
    }

    fn mark_retired(&mut self, session: &Arc<Session>, lines: usize, now: Instant) {
        if let Some(running) = self
            .running
            .iter_mut()
            .find(|r| Arc::ptr_eq(&r.session, session))
        {
            running.lines = lines;
            running.retired_at = Some(now);
        }
    }

    /// Retires the current session once it has taken lines for long enough.
    fn retire_old(&mut self, now: Instant) {
        if let Some(old) = self.shared.retire_if_old(now) {
            self.mark_retired(&old.session, old.lines, now);
        }
    }

    /// Asks retired sessions to push and finish, once no line is on its way
    /// into them.
    async fn stop_retired(&mut self) {
        for running in &mut self.running {
            // The supervisor's own reference is the only one left once the
            // layer has handed over its last line.
            if running.retired_at.is_some()
                && !running.stopping
                && Arc::strong_count(&running.session) == 1
            {
                running.stopping = true;
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    running.session.controller.shutdown(),
                )
                .await;
            }
        }
    }

    /// Collects finished sessions and those that took too long.
    async fn reap(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.running.len() {
            let running = &self.running[index];
            let overdue = running
                .retired_at
                .is_some_and(|at| now.duration_since(at) >= PUSH_TIMEOUT);
            if !running.task.is_finished() && !overdue {
                index += 1;
                continue;
            }
            let mut running = self.running.swap_remove(index);
            let outcome = if running.task.is_finished() {
                match (&mut running.task).await {
                    Ok(outcome) => outcome,
                    Err(e) => Outcome::Failed(format!("the push task ended: {e}")),
                }
            } else {
                running.task.abort();
                Outcome::Failed(format!(
                    "Loki did not answer within {} s",
                    PUSH_TIMEOUT.as_secs()
                ))
            };
            // A session that failed while still taking lines stops now.
            let lines = if running.retired_at.is_some() {
                running.lines
            } else {
                self.shared.withdraw(&running.session)
            };
            self.settle(outcome, lines, now);
        }
    }

    /// Counts the lines of a failed session as undelivered, and notes
    /// whether Loki is failing or answering again.
    fn settle(&mut self, outcome: Outcome, lines: usize, now: Instant) {
        match outcome {
            Outcome::Delivered => {
                if self.failures > 0 && lines > 0 {
                    tracing::info!(
                        target: TARGET,
                        undelivered = self.shared.undelivered.load(Ordering::Relaxed) as i64,
                        "Loki accepts log lines again"
                    );
                    self.failures = 0;
                    self.retry_wait = Duration::ZERO;
                    self.resume_at = None;
                }
            }
            Outcome::Failed(error) => {
                self.shared
                    .undelivered
                    .fetch_add(lines as u64, Ordering::Relaxed);
                self.failed(&error, now);
            }
        }
    }

    /// Stops taking lines for a while, longer after each failure. Only the
    /// first failure after a healthy spell is a warning.
    fn failed(&mut self, error: &str, now: Instant) {
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(
                target: TARGET,
                loki = %self.url,
                "cannot push log lines to Loki, they are dropped and counted until it answers: {error}"
            );
        } else {
            tracing::debug!(
                target: TARGET,
                failures = self.failures as i64,
                "Loki push failed again: {error}"
            );
        }
        // Failures of sessions opened before the wait started do not make
        // it longer.
        if self.resume_at.is_none_or(|at| now >= at) {
            self.retry_wait = if self.retry_wait.is_zero() {
                RETRY_FIRST
            } else {
                (self.retry_wait * 2).min(RETRY_MAX)
            };
            self.resume_at = Some(now + self.retry_wait);
        }
        // The sessions taking lines would fail the same way.
        let in_line = self.shared.empty_line();
        self.retire_in_line(in_line, now);
    }

    /// Retires the sessions that were taking lines or waiting as the spare.
    fn retire_in_line(&mut self, (current, spare): InLine, now: Instant) {
        if let Some(current) = current {
            self.mark_retired(&current.session, current.lines, now);
        }
        if let Some(spare) = spare {
            self.mark_retired(&spare, 0, now);
        }
    }

    /// Keeps a current and a spare session open, unless waiting after a
    /// failure or at the limit.
    fn provision(&mut self, now: Instant) {
        if self.resume_at.is_some_and(|at| now < at) {
            return;
        }
        loop {
            let missing = self.shared.vacancies();
            if missing == 0 || self.running.len() >= MAX_SESSIONS {
                return;
            }
            match open(&self.builder, &self.url) {
                Ok(opened) => self.adopt(opened),
                Err(e) => {
                    self.failed(&e.to_string(), now);
                    return;
                }
            }
        }
    }

    /// At shutdown: retires every session, lets them push, and gives up on
    /// those still pushing after [`SHUTDOWN_WAIT`].
    async fn drain(mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let now = Instant::now();
        // Emptied first, the line can no longer retire a session behind
        // the supervisor's back.
        let in_line = self.shared.empty_line();
        self.collect_retired(now);
        self.retire_in_line(in_line, now);
        let deadline = now + SHUTDOWN_WAIT;
        while !self.running.is_empty() && Instant::now() < deadline {
            self.stop_retired().await;
            self.reap(Instant::now()).await;
            tokio::time::sleep(TICK.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        for running in std::mem::take(&mut self.running) {
            running.task.abort();
            self.shared
                .undelivered
                .fetch_add(running.lines as u64, Ordering::Relaxed);
        }
    }
}
