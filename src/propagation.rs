//! Carries trace context and baggage across gRPC metadata, so a chain of
//! Thespians reads as one trace, in the header formats `OTEL_PROPAGATORS`
//! names: W3C `traceparent` and `baggage` by default, Zipkin's B3 for
//! meshes and tracers that speak it.
//!
//! The formats are chosen once, at startup, into one composite propagator
//! from the OpenTelemetry crates; the SDK does not read `OTEL_PROPAGATORS`
//! itself.

mod b3;
mod propagators;

use std::{fmt, sync::Arc};

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator},
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

pub use propagators::{Propagator, Propagators, UnknownPropagator};

/// The configured formats, ready to write and read. Cheap to clone.
#[derive(Clone)]
pub struct Propagation {
    /// Every format, in the configured order.
    composite: Arc<TextMapCompositePropagator>,
}

impl fmt::Debug for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Propagation")
            .field("fields", &self.composite.fields().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Propagation {
    /// W3C trace context and baggage, the specification's default.
    fn default() -> Self {
        Propagation::new(&Propagators::default())
    }
}

impl Propagation {
    /// Carries the formats `propagators` names, in its order.
    pub fn new(propagators: &Propagators) -> Propagation {
        let formats = propagators.formats.iter().map(|format| format_of(*format));
        Propagation {
            composite: Arc::new(TextMapCompositePropagator::new(formats.collect())),
        }
    }

    /// Writes `cx` into outgoing request metadata, in every format.
    pub fn inject(&self, cx: &Context, metadata: &mut MetadataMap) {
        self.composite
            .inject_context(cx, &mut MetadataInjector(metadata));
    }

    /// Reads the caller's trace context and baggage from incoming metadata.
    /// Without a valid context in any format the result has no span, and
    /// the request starts a new trace.
    pub fn extract(&self, metadata: &MetadataMap) -> Context {
        self.composite.extract(&MetadataExtractor(metadata))
    }
}

/// The OpenTelemetry propagator for one format.
fn format_of(format: Propagator) -> Box<dyn TextMapPropagator + Send + Sync> {
    match format {
        Propagator::TraceContext => Box::new(TraceContextPropagator::new()),
        Propagator::Baggage => Box::new(BaggagePropagator::new()),
        Propagator::B3 => b3::single(),
        Propagator::B3Multi => b3::multi(),
    }
}

/// The headers whose values callers set and repeat from request to
/// request; every other propagated header names this request's own span.
const REPEATED: [&str; 2] = ["baggage", "tracestate"];

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(mut value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            // A span's ids are new on every call, so HTTP/2's header
            // compression is told never to index them: indexed, they only
            // crowded the connection's table, and every later call then
            // compared its own against each one there.
            if !REPEATED.contains(&key.as_str()) {
                value.set_sensitive(true);
            }
            self.0.insert(key, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::{
        KeyValue,
        baggage::BaggageExt as _,
        trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
    };

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn sampled() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(SPAN).unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    fn propagation(value: &str) -> Propagation {
        Propagation::new(&value.parse().unwrap())
    }

    fn keys(metadata: &MetadataMap) -> Vec<String> {
        let mut keys: Vec<String> = metadata
            .keys()
            .map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => key.as_str().to_owned(),
                tonic::metadata::KeyRef::Binary(key) => key.as_str().to_owned(),
            })
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn each_format_writes_its_own_headers() {
        let cx = sampled().with_baggage([KeyValue::new("tenant", "acme")]);
        for (value, expected) in [
            (
                "tracecontext,baggage",
                vec!["baggage", "traceparent", "tracestate"],
            ),
            ("b3", vec!["b3"]),
            (
                "b3multi",
                vec!["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"],
            ),
            ("none", vec![]),
        ] {
            let mut metadata = MetadataMap::new();
            propagation(value).inject(&cx, &mut metadata);
            assert_eq!(keys(&metadata), expected, "{value}");
        }
        let mut metadata = MetadataMap::new();
        propagation("b3").inject(&cx, &mut metadata);
        assert_eq!(metadata.get("b3").unwrap(), &format!("{TRACE}-{SPAN}-1"));
    }

    #[test]
    fn a_b3_context_is_read_in_either_encoding_by_either_b3_format() {
        let single = [("b3", format!("{TRACE}-{SPAN}-1"))];
        let multi = [
            ("x-b3-traceid", TRACE.to_owned()),
            ("x-b3-spanid", SPAN.to_owned()),
            ("x-b3-sampled", "1".to_owned()),
        ];
        for format in ["b3", "b3multi"] {
            for headers in [&single[..], &multi[..]] {
                let mut metadata = MetadataMap::new();
                for (key, value) in headers {
                    metadata.insert(*key, value.parse().unwrap());
                }
                let cx = propagation(format).extract(&metadata);
                let span = cx.span();
                assert_eq!(span.span_context().trace_id().to_string(), TRACE);
                assert!(span.span_context().is_remote());
            }
        }
    }

    #[test]
    fn baggage_read_in_is_written_out_again() {
        let mut inbound = MetadataMap::new();
        inbound.insert("baggage", "tenant=acme,plan=gold".parse().unwrap());
        let propagation = Propagation::default();
        let cx = propagation.extract(&inbound);
        assert_eq!(cx.baggage().get("tenant").map(|v| v.as_str()), Some("acme"));
        let mut outbound = MetadataMap::new();
        propagation.inject(&cx, &mut outbound);
        let written = outbound.get("baggage").unwrap().to_str().unwrap();
        assert!(written.contains("tenant=acme") && written.contains("plan=gold"));
    }

    #[test]
    fn without_any_format_nothing_is_read() {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            "traceparent",
            format!("00-{TRACE}-{SPAN}-01").parse().unwrap(),
        );
        let cx = propagation("none").extract(&metadata);
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn a_spans_ids_are_never_indexed_and_baggage_and_trace_state_may_be() {
        let cx = sampled().with_baggage([KeyValue::new("tenant", "acme")]);
        let mut metadata = MetadataMap::new();
        propagation("tracecontext,baggage,b3,b3multi").inject(&cx, &mut metadata);
        for key in ["traceparent", "b3", "x-b3-traceid", "x-b3-spanid"] {
            let value = metadata.get(key).unwrap_or_else(|| panic!("{key} written"));
            assert!(value.is_sensitive(), "{key} is never indexed");
        }
        assert!(!metadata.get("baggage").unwrap().is_sensitive());
    }
}
