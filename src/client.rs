//! Outbound calls to other Thespians over one long-lived HTTP/2 connection
//! per target.
//!
//! Connections are made on first use and kept: every call to a target is
//! multiplexed over the same connection, which the next call opens again
//! after it breaks, so no call but the first pays for a handshake
//! (`connection` has how, and why not through tonic's channel). Every call
//! has a deadline, so a target that accepts calls and never answers cannot
//! pile up the requests waiting on it.
//!
//! A script can name a new target on every request, so the cache is
//! bounded: past [`MAX_CONNECTIONS`] targets, the longest-kept connection
//! is let go to make room, and a later call to its target connects again.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use indexmap::IndexMap;
use tonic::{Code, metadata::MetadataMap, transport::Endpoint};

use crate::{
    behaviour::{MethodName, Target},
    connection::Connection,
    deadline,
    span_count::SpanCount,
};

/// How long a call waits for a TCP connection before it gives up: a target
/// that swallows packets must not hold requests forever.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a call waits for its answer when `CALL_TIMEOUT_MS` is not set.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many targets may have a connection at once: far more than any
/// ecosystem has services, few enough that a script inventing a target per
/// request cannot grow memory and connections without bound.
pub const MAX_CONNECTIONS: usize = 1_024;

/// How a one-off connection to `target` is made, for a health probe:
/// without Nagle's delay, and giving up on a target that does not accept
/// within `CONNECT_TIMEOUT`.
pub fn endpoint(target: &Target) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(target.as_str().to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}

/// The connection cache. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct Clients {
    /// One lazily opened connection per target.
    connections: Arc<RwLock<Connections>>,
    /// How long a call may wait for its answer.
    timeout: Duration,
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new(DEFAULT_CALL_TIMEOUT)
    }
}

/// The connections, in the order they were made, oldest first.
#[derive(Debug)]
struct Connections {
    /// The connection to each target; the first is the next to let go.
    by_target: IndexMap<Target, Arc<Connection>>,
    /// How many connections may be kept.
    limit: usize,
}

impl Connections {
    /// Keeps `connection` for `target`, letting the oldest go if the cache
    /// is full. Calls in flight on a connection let go finish on it, and
    /// it closes after them.
    fn insert(&mut self, target: Target, connection: Arc<Connection>) {
        if self.by_target.len() >= self.limit {
            self.by_target.shift_remove_index(0);
        }
        self.by_target.insert(target, connection);
    }
}

impl Clients {
    /// A cache whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Clients {
        Clients::with_limit(timeout, MAX_CONNECTIONS)
    }

    /// A cache that keeps at most `limit` connections (at least one).
    fn with_limit(timeout: Duration, limit: usize) -> Clients {
        let connections = Connections {
            by_target: IndexMap::new(),
            limit: limit.max(1),
        };
        Clients {
            connections: Arc::new(RwLock::new(connections)),
            timeout,
        }
    }

    /// How long a call waits for its answer unless it says otherwise.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls `method` on `target`, with `metadata` (the trace context)
    /// attached, giving up after `timeout` with `DEADLINE_EXCEEDED`; giving
    /// up resets the stream, so the target stops acting for a caller that
    /// has gone. The timeout also travels as the call's `grpc-timeout`, so
    /// the target knows how long it has and stops when its caller would.
    pub async fn call_within(
        &self,
        target: &Target,
        method: MethodName,
        mut metadata: MetadataMap,
        timeout: Duration,
    ) -> Result<(), tonic::Status> {
        let connection = self.connection(target)?;
        deadline::write(&mut metadata, timeout);
        let spans = SpanCount::current();
        let Ok(answer) = tokio::time::timeout(timeout, connection.call(method, metadata)).await
        else {
            return Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {} ms",
                timeout.as_millis()
            )));
        };
        // What the target's answer says it made counts towards this request.
        if let Some(spans) = spans {
            spans.add_answer(&answer.metadata);
        }
        match answer.code() {
            Code::Ok => Ok(()),
            _ => Err(answer.status),
        }
    }

    /// The connection to `target`, made on first use.
    fn connection(&self, target: &Target) -> Result<Arc<Connection>, tonic::Status> {
        if let Some(connection) = self.read().by_target.get(target) {
            return Ok(Arc::clone(connection));
        }
        let mut connections = self.connections.write().unwrap_or_else(|e| e.into_inner());
        if let Some(connection) = connections.by_target.get(target) {
            return Ok(Arc::clone(connection));
        }
        let connection = Connection::lazy(target, crate::USER_AGENT)
            .map(Arc::new)
            .map_err(|e| tonic::Status::invalid_argument(format!("bad target {target}: {e}")))?;
        connections.insert(target.clone(), Arc::clone(&connection));
        Ok(connection)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Connections> {
        // A poisoned lock only means another request panicked mid-insert;
        // the map itself is still whole.
        self.connections.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cache_keeps_the_newest_connections_up_to_its_limit() {
        let clients = Clients::with_limit(DEFAULT_CALL_TIMEOUT, 3);
        let targets: Vec<Target> = (1..=5)
            .map(|port| Target::parse(&format!("127.0.0.1:{port}")).unwrap())
            .collect();
        for target in &targets {
            clients.connection(target).unwrap();
        }
        // Asking again for a kept target makes no new connection.
        let again = clients.connection(&targets[4]).unwrap();
        let connections = clients.read();
        assert!(Arc::ptr_eq(&again, &connections.by_target[&targets[4]]));
        let kept: Vec<&Target> = connections.by_target.keys().collect();
        assert_eq!(kept, targets[2..].iter().collect::<Vec<_>>());
    }
}
