//! Outbound calls to other Thespians over one long-lived channel per target.
//!
//! Channels are made on first use and kept: tonic multiplexes every call to
//! a target over the same HTTP/2 connection and reconnects on its own when
//! the target comes back, so no call ever pays for a handshake. Every call
//! has a deadline, so a target that accepts calls and never answers cannot
//! pile up the requests waiting on it.
//!
//! A script can name a new target on every request, so the cache is
//! bounded: past [`MAX_CHANNELS`] targets, the longest-kept channel is
//! closed to make room, and a later call to its target connects again.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use indexmap::IndexMap;

use tonic::transport::{Channel, Endpoint};

use crate::{
    behaviour::{MethodName, Target},
    proto::{Empty, thespian_client::ThespianClient},
    span_count::SpanCount,
};

/// How long a call waits for a TCP connection before it gives up: a target
/// that swallows packets must not hold requests forever.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a call waits for its answer when `CALL_TIMEOUT_MS` is not set.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many targets may have a channel at once: far more than any
/// ecosystem has services, few enough that a script inventing a target per
/// request cannot grow memory and connections without bound.
pub const MAX_CHANNELS: usize = 1_024;

/// How every outbound connection to `target` is made: without Nagle's
/// delay, and giving up on a target that does not accept within
/// `CONNECT_TIMEOUT`.
pub fn endpoint(target: &Target) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(target.as_str().to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}

/// Sends `request` to `method` of the Thespian behind `client` and waits
/// for its answer, with no deadline of its own, and returns the answer's
/// headers (the span count and trace id among them). The one place a
/// [`MethodName`] picks a generated client method.
async fn call_method(
    client: &mut ThespianClient<Channel>,
    method: MethodName,
    request: tonic::Request<Empty>,
) -> Result<tonic::metadata::MetadataMap, tonic::Status> {
    let answer = match method {
        MethodName::A => client.a(request).await?,
        MethodName::B => client.b(request).await?,
        MethodName::C => client.c(request).await?,
    };
    Ok(answer.into_parts().0)
}

/// Whether `status` is tonic's own report of a `grpc-timeout` that ran out
/// on the calling side: `CANCELLED`, caused by [`tonic::TimeoutExpired`].
fn timed_out(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The channel cache. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct Clients {
    /// One lazily connected channel per target.
    channels: Arc<RwLock<Channels>>,
    /// How long a call may wait for its answer.
    timeout: Duration,
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new(DEFAULT_CALL_TIMEOUT)
    }
}

/// The channels, in the order they were made, oldest first.
#[derive(Debug)]
struct Channels {
    /// The channel to each target; the first is the next to close.
    by_target: IndexMap<Target, Channel>,
    /// How many channels may be kept.
    limit: usize,
}

impl Channels {
    /// Keeps `channel` for `target`, closing the oldest channel if the
    /// cache is full. Calls in flight on a closed channel finish on it.
    fn insert(&mut self, target: Target, channel: Channel) {
        if self.by_target.len() >= self.limit {
            self.by_target.shift_remove_index(0);
        }
        self.by_target.insert(target, channel);
    }
}

impl Clients {
    /// A cache whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Clients {
        Clients::with_limit(timeout, MAX_CHANNELS)
    }

    /// A cache that keeps at most `limit` channels (at least one).
    fn with_limit(timeout: Duration, limit: usize) -> Clients {
        let channels = Channels {
            by_target: IndexMap::new(),
            limit: limit.max(1),
        };
        Clients {
            channels: Arc::new(RwLock::new(channels)),
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
        metadata: tonic::metadata::MetadataMap,
        timeout: Duration,
    ) -> Result<(), tonic::Status> {
        let mut client = ThespianClient::new(self.channel(target)?);
        let mut request = tonic::Request::from_parts(metadata, Default::default(), Empty {});
        request.set_timeout(timeout);
        let no_answer = || {
            tonic::Status::deadline_exceeded(format!("no answer within {} ms", timeout.as_millis()))
        };
        let spans = SpanCount::current();
        // tonic's channel enforces the header too, and may give up first;
        // either way the call had no answer in time.
        let answered =
            match tokio::time::timeout(timeout, call_method(&mut client, method, request)).await {
                Err(_) => return Err(no_answer()),
                Ok(Err(status)) if timed_out(&status) => return Err(no_answer()),
                Ok(answered) => answered,
            };
        // What the target's answer says it made counts towards this request.
        if let Some(spans) = spans {
            match &answered {
                Ok(headers) => spans.add_answer(headers),
                Err(status) => spans.add_answer(status.metadata()),
            }
        }
        answered.map(drop)
    }

    /// The channel to `target`, made on first use.
    fn channel(&self, target: &Target) -> Result<Channel, tonic::Status> {
        if let Some(channel) = self.read().by_target.get(target) {
            return Ok(channel.clone());
        }
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.by_target.get(target) {
            return Ok(channel.clone());
        }
        let channel = endpoint(target)
            .map_err(|e| tonic::Status::invalid_argument(format!("bad target {target}: {e}")))?
            .connect_lazy();
        channels.insert(target.clone(), channel.clone());
        Ok(channel)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Channels> {
        // A poisoned lock only means another request panicked mid-insert;
        // the map itself is still whole.
        self.channels.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cache_keeps_the_newest_channels_up_to_its_limit() {
        let clients = Clients::with_limit(DEFAULT_CALL_TIMEOUT, 3);
        let targets: Vec<Target> = (1..=5)
            .map(|port| Target::parse(&format!("127.0.0.1:{port}")).unwrap())
            .collect();
        for target in &targets {
            clients.channel(target).unwrap();
        }
        // Asking again for a kept target makes no new channel.
        clients.channel(&targets[4]).unwrap();
        let channels = clients.read();
        let kept: Vec<&Target> = channels.by_target.keys().collect();
        assert_eq!(kept, targets[2..].iter().collect::<Vec<_>>());
    }
}
