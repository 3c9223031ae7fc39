//! Admission: what the layer does for each line, deciding under one lock
//! which session takes it, or dropping and counting it when none has room.

use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::{sync::Notify, time::Instant};

use super::{SESSION_LINES, session::Session};

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
pub(super) struct Slots {
    /// The session taking lines, how many it took, and since when.
    pub(super) current: Option<Taking>,
    /// The session that takes over when the current one is full.
    pub(super) spare: Option<Arc<Session>>,
    /// Sessions the layer retired, for the supervisor to stop.
    pub(super) retired: Vec<(Arc<Session>, usize)>,
}

/// The session taking lines, with what the layer and the supervisor need
/// to know to retire it: how full it is and how old.
pub(super) struct Taking {
    pub(super) session: Arc<Session>,
    pub(super) lines: usize,
    pub(super) since: Instant,
}

impl Taking {
    /// Starts `session` taking lines now.
    pub(super) fn new(session: Arc<Session>) -> Taking {
        Taking {
            session,
            lines: 0,
            since: Instant::now(),
        }
    }
}

impl Shared {
    /// Locks the slots, and keeps using them after a panic elsewhere
    /// poisoned the lock.
    pub(super) fn slots(&self) -> MutexGuard<'_, Slots> {
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
}
