//! Outbound calls to other Thespians over one long-lived channel per target.
//!
//! Channels are made on first use and kept: tonic multiplexes every call to
//! a target over the same HTTP/2 connection and reconnects on its own when
//! the target comes back, so no call ever pays for a handshake. Every call
//! has a deadline, so a target that accepts calls and never answers cannot
//! pile up the requests waiting on it.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use tonic::transport::{Channel, Endpoint};

use crate::{
    behaviour::{MethodName, Target},
    proto::{Empty, thespian_client::ThespianClient},
};

/// How long a call waits for a TCP connection before it gives up: a target
/// that swallows packets must not hold requests forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a call waits for its answer when `CALL_TIMEOUT_MS` is not set.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How every outbound connection to `target` is made: without Nagle's
/// delay, and giving up on a target that does not accept within
/// [`CONNECT_TIMEOUT`].
pub fn endpoint(target: &Target) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(target.as_str().to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}

/// The channel cache. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct Clients {
    /// One lazily connected channel per target.
    channels: Arc<RwLock<HashMap<Target, Channel>>>,
    /// How long a call may wait for its answer.
    timeout: Duration,
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new(DEFAULT_CALL_TIMEOUT)
    }
}

impl Clients {
    /// A cache whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Clients {
        Clients {
            channels: Arc::default(),
            timeout,
        }
    }

    /// Calls `method` on `target`, with `metadata` (the trace context)
    /// attached. A call unanswered within the timeout fails with
    /// `DEADLINE_EXCEEDED`, and giving up resets its stream, so the target
    /// stops acting for a caller that has gone.
    pub async fn call(
        &self,
        target: &Target,
        method: MethodName,
        metadata: tonic::metadata::MetadataMap,
    ) -> Result<(), tonic::Status> {
        let mut client = ThespianClient::new(self.channel(target)?);
        let request = tonic::Request::from_parts(metadata, Default::default(), Empty {});
        let answer = async {
            match method {
                MethodName::A => client.a(request).await?,
                MethodName::B => client.b(request).await?,
                MethodName::C => client.c(request).await?,
            };
            Ok(())
        };
        tokio::time::timeout(self.timeout, answer)
            .await
            .unwrap_or_else(|_| {
                Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                )))
            })
    }

    /// The channel to `target`, made on first use.
    fn channel(&self, target: &Target) -> Result<Channel, tonic::Status> {
        if let Some(channel) = self.read().get(target) {
            return Ok(channel.clone());
        }
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(target) {
            return Ok(channel.clone());
        }
        let channel = endpoint(target)
            .map_err(|e| tonic::Status::invalid_argument(format!("bad target {target}: {e}")))?
            .connect_lazy();
        channels.insert(target.clone(), channel.clone());
        Ok(channel)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Target, Channel>> {
        // A poisoned lock only means another request panicked mid-insert;
        // the map itself is still whole.
        self.channels.read().unwrap_or_else(|e| e.into_inner())
    }
}
