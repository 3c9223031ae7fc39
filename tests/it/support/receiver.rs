//! What the in-process receivers ([`otlp`](super::otlp) and
//! [`loki`](super::loki)) share: a server on a free local port that a test
//! can stop, and a record of what arrived that plays the behaviour the test
//! chose and wakes whoever waits on every change.

use std::fmt;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt as _};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How many items a timeout panic prints, so a flood of telemetry does not
/// bury the message.
const DUMP_LIMIT: usize = 200;

/// A receiver's server, running in the background on `127.0.0.1` on a port
/// the OS picks. Dropping it stops the server.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds a free port and spawns `serve` on it (must be called inside a
    /// tokio runtime). `serve` is handed the listener and a future that
    /// completes when the server should shut down; `what` names the
    /// receiver if binding fails.
    pub async fn start<S>(
        what: &str,
        serve: impl FnOnce(TcpListener, BoxFuture<'static, ()>) -> S,
    ) -> Server
    where
        S: IntoFuture<Output: Send + 'static, IntoFuture: Send + 'static>,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the {what} to 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local address of the {what}: {e}"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let served = serve(listener, stopped.map(drop).boxed()).into_future();
        // A server that fails ends its task; tests then see no data arrive.
        let task = tokio::spawn(served.map(drop));
        Server {
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits (at most 5 s) until it no longer accepts
    /// connections, so a test can check that the service copes with a
    /// backend that went away. What was recorded stays readable.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// What a receiver collected (`C`) and how it answers (`B`), shared by its
/// request handlers and the test, so that a test can switch a healthy
/// backend to a failing one and back, and wait for data without polling.
pub struct Record<C, B> {
    collected: Mutex<C>,
    behaviour: Mutex<B>,
    /// Bumped on every change, so waiters wake up without polling.
    changed: watch::Sender<u64>,
}

/// What a receiver collected, printed whole for a failure message.
pub trait Dump {
    /// A summary, then everything received, one item a line.
    fn dump(&self) -> String;
}

impl<C: Default + Dump, B: Copy> Record<C, B> {
    /// An empty record of a receiver that starts out as `behaviour` says.
    pub fn new(behaviour: B) -> Self {
        Record {
            collected: Mutex::new(C::default()),
            behaviour: Mutex::new(behaviour),
            changed: watch::channel(0).0,
        }
    }

    /// What was collected so far. A panicking test thread must not hide the
    /// data from the next one, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, C> {
        self.collected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiter: called after each change to what was collected.
    pub fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// How requests are answered now.
    pub fn behaviour(&self) -> B {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes how later requests are answered, e.g. to let a backend that
    /// was down come back.
    pub fn set_behaviour(&self, behaviour: B) {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Waits until `predicate` holds for `snapshot` of what was collected,
    /// and returns that snapshot. If `timeout` passes first, panics naming
    /// `receiver` and `what`, followed by everything received.
    pub async fn wait_until<T>(
        &self,
        receiver: &str,
        what: &str,
        snapshot: impl Fn(&C) -> Vec<T>,
        mut predicate: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Vec<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.subscribe();
        loop {
            // Mark the current version seen *before* looking, so a change
            // landing in between still wakes the next `changed()`.
            changed.borrow_and_update();
            let items = snapshot(&self.lock());
            if predicate(&items) {
                return items;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                let items = snapshot(&self.lock());
                if predicate(&items) {
                    return items;
                }
                panic!(
                    "{receiver}: timed out after {timeout:?} waiting for {what}\n{}",
                    self.lock().dump()
                );
            }
        }
    }

    /// Watches for `window` and panics, naming `receiver` and `what`, if
    /// `predicate` ever holds for `snapshot` of what was collected: for
    /// "this must not arrive" checks.
    pub async fn assert_never<T>(
        &self,
        receiver: &str,
        what: &str,
        snapshot: impl Fn(&C) -> Vec<T>,
        mut predicate: impl FnMut(&[T]) -> bool,
        window: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + window;
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if predicate(&snapshot(&self.lock())) {
                panic!(
                    "{receiver}: unexpected {what} arrived\n{}",
                    self.lock().dump()
                );
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// `items` one per line, numbered, for a failure message: only the last
/// [`DUMP_LIMIT`] of them.
pub fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "    (nothing)\n".to_owned();
    }
    let skip = items.len().saturating_sub(DUMP_LIMIT);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("    ... {skip} earlier items left out ...\n"));
    }
    for (i, item) in items.iter().enumerate().skip(skip) {
        out.push_str(&format!("    #{i}: {item}\n"));
    }
    out
}
