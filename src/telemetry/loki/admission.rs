//! Admission: the line of sessions waiting to take log lines, and what
//! the layer does for each line: hand it to the session taking lines, or
//! drop and count it when none has room. Every move along the line, by
//! the layer or by the supervisor, happens here under one lock.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::session::Session;

/// Lines one session takes: below the 512 slots of tracing-loki's channel,
/// so however late its task runs, the channel never overflows.
pub(super) const SESSION_LINES: usize = 500;

/// How long a session takes lines before the next one takes over, so that
/// a push that hangs is noticed even when lines are few.
pub(super) const SESSION_AGE: Duration = Duration::from_secs(2);

/// What the layer and the supervisor share: the slots, the count of lost
/// lines, and the bell the layer rings when it fills a session.
#[derive(Default)]
pub(super) struct Shared {
    /// Which sessions take lines.
    slots: Mutex<Slots>,
    /// Lines dropped because no session had room, plus lines held by
    /// sessions that failed (some of those may have arrived).
    pub(super) undelivered: AtomicU64,
    /// Set once shutdown has begun: later lines are not counted as lost.
    pub(super) closed: AtomicBool,
    /// Wakes the supervisor when the layer retires a full session.
    pub(super) wake: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("undelivered", &self.undelivered)
            .finish_non_exhaustive()
    }
}

/// The sessions in line to take lines, and those the layer has filled.
#[derive(Default)]
struct Slots {
    /// The session taking lines, how many it took, and since when.
    current: Option<Taking>,
    /// The session that takes over when the current one is full.
    spare: Option<Arc<Session>>,
    /// Sessions the layer retired, for the supervisor to stop.
    retired: Vec<(Arc<Session>, usize)>,
}

/// The session taking lines, with what the layer and the supervisor need
/// to know to retire it: how full it is and how old.
pub(super) struct Taking {
    pub(super) session: Arc<Session>,
    pub(super) lines: usize,
    since: Instant,
}

impl Taking {
    /// Starts `session` taking lines now.
    fn new(session: Arc<Session>) -> Taking {
        Taking {
            session,
            lines: 0,
            since: Instant::now(),
        }
    }
}

/// The session that was taking lines and the spare, taken out of line.
pub(super) type InLine = (Option<Taking>, Option<Arc<Session>>);

impl Shared {
    /// Locks the slots, and keeps using them after a panic elsewhere
    /// poisoned the lock.
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session that takes the next line, or `None` (and the line is
    /// counted) when none has room.
    pub(super) fn admit(&self) -> Option<Arc<Session>> {
        let mut guard = self.slots();
        let slots = &mut *guard;
        if slots
            .current
            .as_ref()
            .is_some_and(|taking| taking.lines >= SESSION_LINES)
            && let Some(spare) = slots.spare.take()
            && let Some(full) = slots.current.replace(Taking::new(spare))
        {
            slots.retired.push((full.session, full.lines));
            self.wake.notify_one();
        }
        match &mut slots.current {
            Some(taking) if taking.lines < SESSION_LINES => {
                taking.lines += 1;
                Some(Arc::clone(&taking.session))
            }
            _ => {
                drop(guard);
                if !self.closed.load(Ordering::Relaxed) {
                    self.undelivered.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
        }
    }

    /// Puts a new session in line: taking lines when none is, or else as
    /// the spare.
    pub(super) fn line_up(&self, session: &Arc<Session>) {
        let mut slots = self.slots();
        if slots.current.is_none() {
            slots.current = Some(Taking::new(Arc::clone(session)));
        } else {
            slots.spare = Some(Arc::clone(session));
        }
    }

    /// How many of the two places in line, taking lines and spare, are
    /// empty.
    pub(super) fn vacancies(&self) -> usize {
        let slots = self.slots();
        usize::from(slots.current.is_none()) + usize::from(slots.spare.is_none())
    }

    /// The sessions the layer retired since the last call, with how many
    /// lines each took.
    pub(super) fn take_retired(&self) -> Vec<(Arc<Session>, usize)> {
        std::mem::take(&mut self.slots().retired)
    }

    /// Takes the current session out of line, the spare taking over, once
    /// it has taken lines for [`SESSION_AGE`].
    pub(super) fn retire_if_old(&self, now: Instant) -> Option<Taking> {
        let mut slots = self.slots();
        let due = slots
            .current
            .as_ref()
            .is_some_and(|t| t.lines > 0 && now.duration_since(t.since) >= SESSION_AGE);
        if !due {
            return None;
        }
        let next = slots.spare.take().map(Taking::new);
        std::mem::replace(&mut slots.current, next)
    }

    /// Takes `session` out of line and returns how many lines it took.
    pub(super) fn withdraw(&self, session: &Arc<Session>) -> usize {
        let mut slots = self.slots();
        if slots
            .current
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.session, session))
        {
            let taken = slots.current.take().map_or(0, |t| t.lines);
            slots.current = slots.spare.take().map(Taking::new);
            return taken;
        }
        if slots
            .spare
            .as_ref()
            .is_some_and(|spare| Arc::ptr_eq(spare, session))
        {
            slots.spare = None;
        }
        0
    }

    /// Takes both sessions out of line, so no line is taken until the
    /// supervisor lines up new ones.
    pub(super) fn empty_line(&self) -> InLine {
        let mut slots = self.slots();
        (slots.current.take(), slots.spare.take())
    }
}
