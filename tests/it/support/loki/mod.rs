//! An in-process Grafana Loki push endpoint for integration tests.
//!
//! Thespian can ship its logs to Loki (through `tracing-loki`); a test proves
//! that by starting a [`LokiReceiver`], pointing the service at
//! [`LokiReceiver::address`], and waiting for the entries it expects with
//! [`LokiReceiver::wait_for_entries`]. The receiver speaks Loki's real push
//! API, `POST /loki/api/v1/push`, and decodes both bodies Loki accepts:
//! snappy *block*-compressed protobuf `logproto.PushRequest` (what
//! `tracing-loki` and promtail send) and the JSON push format. Stream label
//! strings such as `{service_name="x",level="info"}` are parsed into maps.
//!
//! It can also play a broken Loki ([`LokiBehaviour::Fail`],
//! [`LokiBehaviour::Delay`]) so tests can show that a slow or failing log
//! sink never breaks the service.

mod decode;
mod endpoint;
mod entry;
pub mod logproto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::receiver::{Dump as _, Server};
use endpoint::{Collected, Record};

pub use decode::parse_labels;
pub use endpoint::LokiBehaviour;
pub use entry::{LokiEntry, LokiPush, PushFormat};

/// The path Loki's push API lives at.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// A Loki push endpoint listening on `127.0.0.1` on a free port, recording
/// every entry pushed to it. Dropping it stops the server.
pub struct LokiReceiver {
    server: Server,
    record: Arc<Record>,
}

impl LokiReceiver {
    /// Starts a healthy receiver (must be called inside a tokio runtime).
    pub async fn start() -> LokiReceiver {
        LokiReceiver::start_with(LokiBehaviour::Accept).await
    }

    /// Starts a receiver that answers as `behaviour` says, e.g.
    /// `LokiReceiver::start_with(LokiBehaviour::Fail(500))`.
    pub async fn start_with(behaviour: LokiBehaviour) -> LokiReceiver {
        let record = Arc::new(Record::new(behaviour));
        let app = endpoint::router(record.clone());
        let server = Server::start("Loki test receiver", |listener, shutdown| {
            axum::serve(listener, app).with_graceful_shutdown(shutdown)
        })
        .await;
        LokiReceiver { server, record }
    }

    /// The base URL to give a Loki client: `http://127.0.0.1:PORT` (clients
    /// append `/loki/api/v1/push`).
    pub fn address(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes how later pushes are answered, e.g. to let a failing Loki
    /// recover.
    pub fn set_behaviour(&self, behaviour: LokiBehaviour) {
        self.record.set_behaviour(behaviour);
    }

    /// All entries received so far, in arrival order.
    pub fn entries(&self) -> Vec<LokiEntry> {
        self.record.lock().entries.clone()
    }

    /// Every push request that arrived, accepted or not, in order.
    pub fn pushes(&self) -> Vec<LokiPush> {
        self.record.lock().pushes.clone()
    }

    /// Waits until `predicate` holds for all entries received so far and
    /// returns them; panics with a dump of what arrived if `timeout` passes
    /// first. Wakes on every push, never sleeps blindly.
    pub async fn wait_for_entries(
        &self,
        predicate: impl FnMut(&[LokiEntry]) -> bool,
        timeout: Duration,
    ) -> Vec<LokiEntry> {
        self.wait_until("entries", |c| c.entries.clone(), predicate, timeout)
            .await
    }

    /// Waits for an entry whose line contains `text` and returns it.
    pub async fn wait_for_line_containing(&self, text: &str, timeout: Duration) -> LokiEntry {
        self.wait_until(
            &format!("an entry whose line contains {text:?}"),
            |c| c.entries.clone(),
            |e| e.iter().any(|e| e.line.contains(text)),
            timeout,
        )
        .await
        .into_iter()
        .find(|e| e.line.contains(text))
        .expect("predicate held")
    }

    /// Waits until `predicate` holds for the push requests so far (accepted
    /// or not; a push still in flight has `status == 0`) and returns them,
    /// e.g. to see that the service tried a failing Loki.
    pub async fn wait_for_pushes(
        &self,
        predicate: impl FnMut(&[LokiPush]) -> bool,
        timeout: Duration,
    ) -> Vec<LokiPush> {
        self.wait_until("push requests", |c| c.pushes.clone(), predicate, timeout)
            .await
    }

    /// A multi-line dump of everything received, for failure messages.
    pub fn dump(&self) -> String {
        self.record.lock().dump()
    }

    async fn wait_until<T>(
        &self,
        what: &str,
        snapshot: impl Fn(&Collected) -> Vec<T>,
        predicate: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Vec<T> {
        let receiver = format!("Loki receiver at {}", self.address());
        self.record
            .wait_until(&receiver, what, snapshot, predicate, timeout)
            .await
    }
}
