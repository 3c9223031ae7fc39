//! What a request passes on to the calls it makes: its trace context and
//! baggage (see [`propagation`](crate::propagation)), the hop count and
//! path that stop a call cycle, and the `x-request-id` a mesh follows a
//! request by.
//!
//! A request that brings in no hop count, path or request id keeps
//! nothing of its own here: its context holds a [`Relayed`] only when it
//! brought one in, so a plain request allocates nothing more. A script's
//! request also keeps its headers, as [`Headers`], while the script
//! directs, for its `header` function.

use opentelemetry::{Array, Context, KeyValue, StringValue, Value, trace::TraceContextExt as _};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};

use crate::{failure::Failure, propagation::Propagation};

/// How many Thespians a request has passed through before this one.
pub const HOPS: &str = "thespian-hops";

/// The names of those Thespians, oldest first, separated by commas.
pub const PATH: &str = "thespian-path";

/// The id an Envoy-based mesh gives a request and follows it by.
pub const REQUEST_ID: &str = "x-request-id";

/// The trailer on a hop-limit refusal, the hop count: every caller on the
/// way back passes the refusal on as it came, whatever its calls'
/// `on_failure` says, so the client at the top learns of the cycle.
pub const HOP_LIMIT: &str = "thespian-hop-limit";

/// The most Thespians a request may pass through when `MAX_HOPS` is not
/// set: deeper than any real call chain, shallow enough that a cycle ends
/// in milliseconds.
pub const DEFAULT_MAX_HOPS: u32 = 16;

/// The most names a path keeps: enough to show a cycle, whatever
/// `MAX_HOPS` is. Past it, the hop count still grows.
const MAX_PATH_NAMES: usize = 16;

/// The longest name a path keeps of a service, in bytes.
const MAX_NAME_BYTES: usize = 64;

/// The longest path read in, in bytes: a longer one did not come from a
/// Thespian, and is dropped rather than passed on.
const MAX_PATH_BYTES: usize = MAX_PATH_NAMES * (MAX_NAME_BYTES + 1);

/// This instance's part in passing things on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The formats trace context and baggage travel in.
    propagation: Propagation,
    /// `MAX_HOPS`: the most Thespians a request may pass through before
    /// this one; at that many, it is refused.
    max_hops: u32,
    /// This instance's name as a path shows it.
    me: String,
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new(Propagation::default(), "thespian", DEFAULT_MAX_HOPS)
    }
}

/// What one request brought in to pass on, held in its context.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// How many Thespians it passed through before this one.
    hops: u32,
    /// Their names, when they said.
    path: Option<MetadataValue<Ascii>>,
    /// Its `x-request-id`, when it had one.
    request_id: Option<MetadataValue<Ascii>>,
}

impl Relayed {
    /// The request's `x-request-id`, when it had a readable one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref()?.to_str().ok()
    }
}

impl Relay {
    /// Passes on context in `propagation`'s formats, naming this instance
    /// `service_name` in paths, and refusing requests that passed through
    /// `max_hops` Thespians already.
    pub fn new(propagation: Propagation, service_name: &str, max_hops: u32) -> Relay {
        Relay {
            propagation,
            max_hops,
            me: path_name(service_name),
        }
    }

    /// This instance's name, as paths and span counts show it.
    pub fn name(&self) -> &str {
        &self.me
    }

    /// The context a request brought in: its caller's trace context and
    /// baggage and, when it brought any, its [`Relayed`] values.
    pub fn read(&self, metadata: &MetadataMap) -> Context {
        let cx = self.propagation.extract(metadata);
        let hops = metadata
            .get(HOPS)
            .and_then(|hops| hops.to_str().ok()?.parse().ok());
        let path = metadata
            .get(PATH)
            .filter(|path| path.len() <= MAX_PATH_BYTES)
            .cloned();
        let request_id = metadata.get(REQUEST_ID).cloned();
        if hops.is_none() && path.is_none() && request_id.is_none() {
            return cx;
        }
        cx.with_value(Relayed {
            hops: hops.unwrap_or(0),
            path,
            request_id,
        })
    }

    /// Refuses the request whose context is `cx` when it has passed
    /// through `MAX_HOPS` Thespians already: a call cycle, or a chain
    /// deeper than any meant. The failure names the count and the path.
    pub fn admit(&self, cx: &Context) -> Result<(), Failure> {
        let Some(relayed) = cx.get::<Relayed>() else {
            return Ok(());
        };
        if relayed.hops < self.max_hops {
            return Ok(());
        }
        let mut names: Vec<&str> = relayed
            .path
            .as_ref()
            .and_then(|path| path.to_str().ok())
            .map(|path| path.split(',').collect())
            .unwrap_or_default();
        let unnamed = (relayed.hops as usize).saturating_sub(names.len());
        if unnamed > 0 {
            names.push("…");
        }
        names.push(&self.me);
        Err(Failure::HopLimit {
            hops: relayed.hops,
            message: format!(
                "refused after {} hops, the most MAX_HOPS ({}) allows (a call cycle?): {}",
                relayed.hops,
                self.max_hops,
                names.join(" → ")
            ),
        })
    }

    /// Writes what a call made in the context `cx` passes on: trace
    /// context and baggage, one more hop, the path with this instance at
    /// its end, and the request id.
    pub fn write(&self, cx: &Context, metadata: &mut MetadataMap) {
        self.propagation.inject(cx, metadata);
        let relayed = cx.get::<Relayed>();
        let hops = relayed.map_or(0, |relayed| relayed.hops);
        metadata.insert(HOPS, MetadataValue::from(hops.saturating_add(1)));
        let path = relayed.and_then(|relayed| relayed.path.as_ref());
        if let Some(path) = self.extend(path) {
            metadata.insert(PATH, path);
        }
        if let Some(request_id) = relayed.and_then(|relayed| relayed.request_id.clone()) {
            metadata.insert(REQUEST_ID, request_id);
        }
    }

    /// `path` with this instance's name at its end, or as it was once it
    /// holds as many names as it may.
    fn extend(&self, path: Option<&MetadataValue<Ascii>>) -> Option<MetadataValue<Ascii>> {
        let Some(path) = path else {
            return MetadataValue::try_from(self.me.as_str()).ok();
        };
        let names = path.as_bytes().iter().filter(|b| **b == b',').count() + 1;
        if names >= MAX_PATH_NAMES {
            return Some(path.clone());
        }
        let mut extended = Vec::with_capacity(path.len() + 1 + self.me.len());
        extended.extend_from_slice(path.as_bytes());
        extended.push(b',');
        extended.extend_from_slice(self.me.as_bytes());
        MetadataValue::try_from(extended).ok()
    }
}

/// The attribute a request's `x-request-id` is recorded under on its
/// server span, as OpenTelemetry's gRPC conventions name captured request
/// metadata (a list of strings, for a key that may repeat).
pub const REQUEST_ID_ATTRIBUTE: &str = "rpc.grpc.request.metadata.x-request-id";

/// Records the `x-request-id` the request in `cx` came with, if it came
/// with one, on its span, so a trace can be found by a mesh's access log.
pub fn record_request_id(cx: &Context) {
    let Some(id) = cx.get::<Relayed>().and_then(Relayed::request_id) else {
        return;
    };
    let ids = Array::String(vec![StringValue::from(id.to_owned())]);
    cx.span()
        .set_attribute(KeyValue::new(REQUEST_ID_ATTRIBUTE, Value::Array(ids)));
}

/// A request's headers, held in its context while a script directs it, so
/// the script's `header` can read what it needs without every request
/// copying its headers. Dropped when the script has finished.
#[derive(Debug)]
pub struct Headers(Box<MetadataMap>);

impl Headers {
    /// Holds `metadata`, moved out of the request, not copied.
    pub fn new(metadata: MetadataMap) -> Headers {
        Headers(Box::new(metadata))
    }

    /// The value of the header `name`, when the request had one that is
    /// text. Binary (`-bin`) headers read as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.to_str().ok()
    }
}

/// A caller's refusal for the hop limit, passed on as it came: the
/// request fails as far up as the client that started it, with the
/// message of the Thespian that refused.
pub fn refusal(status: &tonic::Status) -> Option<Failure> {
    let hops = status
        .metadata()
        .get(HOP_LIMIT)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Failure::HopLimit {
        hops,
        message: status.message().to_owned(),
    })
}

/// `service_name` as a path keeps it: printable ASCII, no commas, at most
/// [`MAX_NAME_BYTES`].
fn path_name(service_name: &str) -> String {
    service_name
        .chars()
        .map(|c| match c {
            ',' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .take(MAX_NAME_BYTES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(name: &str, max_hops: u32) -> Relay {
        Relay::new(Propagation::default(), name, max_hops)
    }

    /// What `relay` writes for a call made by a request that came in with
    /// `inbound`.
    fn passed_on(relay: &Relay, inbound: &MetadataMap) -> MetadataMap {
        let mut outbound = MetadataMap::new();
        relay.write(&relay.read(inbound), &mut outbound);
        outbound
    }

    #[test]
    fn a_plain_request_keeps_nothing_and_its_calls_start_the_count() {
        let orders = relay("orders", 16);
        let cx = orders.read(&MetadataMap::new());
        assert!(cx.get::<Relayed>().is_none());
        let outbound = passed_on(&orders, &MetadataMap::new());
        assert_eq!(outbound.get(HOPS).unwrap(), "1");
        assert_eq!(outbound.get(PATH).unwrap(), "orders");
        assert!(outbound.get(REQUEST_ID).is_none());
    }

    #[test]
    fn each_instance_adds_a_hop_and_its_name_and_passes_the_request_id_on() {
        let (gateway, orders) = (relay("gateway", 16), relay("orders", 16));
        let mut inbound = MetadataMap::new();
        inbound.insert(REQUEST_ID, "req-7".parse().unwrap());
        let first = passed_on(&gateway, &inbound);
        let second = passed_on(&orders, &first);
        assert_eq!(second.get(HOPS).unwrap(), "2");
        assert_eq!(second.get(PATH).unwrap(), "gateway,orders");
        assert_eq!(second.get(REQUEST_ID).unwrap(), "req-7");
        let cx = orders.read(&inbound);
        assert_eq!(cx.get::<Relayed>().unwrap().request_id(), Some("req-7"));
    }

    #[test]
    fn a_request_past_the_limit_is_refused_naming_the_count_and_path() {
        let (a, b) = (relay("a", 3), relay("b", 3));
        let mut metadata = MetadataMap::new();
        for instance in [&a, &b, &a] {
            assert!(instance.admit(&instance.read(&metadata)).is_ok());
            metadata = passed_on(instance, &metadata);
        }
        let failure = b.admit(&b.read(&metadata)).unwrap_err();
        assert_eq!(failure.code(), tonic::Code::FailedPrecondition);
        let message = failure.to_string();
        assert!(message.contains("3 hops"), "{message}");
        assert!(message.contains("MAX_HOPS (3)"), "{message}");
        assert!(message.ends_with("a → b → a → b"), "{message}");
    }

    #[test]
    fn the_path_stops_growing_and_names_are_made_safe() {
        let looping = relay("a,b\u{e9}", 1_000);
        let mut metadata = MetadataMap::new();
        for _ in 0..40 {
            metadata = passed_on(&looping, &metadata);
        }
        assert_eq!(metadata.get(HOPS).unwrap(), "40");
        let path = metadata.get(PATH).unwrap().to_str().unwrap();
        assert_eq!(path.split(',').count(), MAX_PATH_NAMES);
        assert!(path.split(',').all(|name| name == "a_b_"), "{path}");
        let long = relay(&"x".repeat(500), 1);
        assert_eq!(long.me.len(), MAX_NAME_BYTES);
    }

    #[test]
    fn a_refusal_comes_back_as_it_went() {
        let failure = relay("a", 1)
            .admit(&relay("a", 1).read(&passed_on(&relay("b", 1), &MetadataMap::new())))
            .unwrap_err();
        let status = tonic::Status::from(failure.clone());
        let again = refusal(&status).expect("a hop-limit refusal");
        assert_eq!(again.to_string(), failure.to_string());
        assert!(refusal(&tonic::Status::failed_precondition("other")).is_none());
    }
}
