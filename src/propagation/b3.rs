//! Zipkin's B3 headers, from the `opentelemetry-zipkin` crate: the only
//! home of the B3 propagator for this OpenTelemetry release, deprecated
//! with the crate's exporter, hence the `allow(deprecated)` here and
//! nowhere else.

#![allow(deprecated)]

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
};
use opentelemetry_zipkin::{B3Encoding, Propagator};

/// The single header.
const SINGLE: &str = "b3";

/// B3 in its single `b3` header, as the specification's `b3` means.
pub(super) fn single() -> Box<dyn TextMapPropagator + Send + Sync> {
    Box::new(SingleOnly(Propagator::with_encoding(
        B3Encoding::SingleHeader,
    )))
}

/// B3 in `x-b3-traceid`, `x-b3-spanid` and `x-b3-sampled`, as
/// `b3multi` means.
pub(super) fn multi() -> Box<dyn TextMapPropagator + Send + Sync> {
    Box::new(Propagator::with_encoding(B3Encoding::MultipleHeader))
}

/// The crate's propagator asked for the single header writes the
/// `x-b3-*` headers as well (its encoding check takes every encoding to
/// include "unspecified", which it writes as multiple headers), so this
/// one passes on only what it writes under `b3`. It reads either, as the
/// specification asks.
#[derive(Debug)]
struct SingleOnly(Propagator);

impl TextMapPropagator for SingleOnly {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.0.inject_context(cx, &mut OnlySingle(injector));
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.0.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.0.fields()
    }
}

/// Lets through only the single header.
struct OnlySingle<'a>(&'a mut dyn Injector);

impl Injector for OnlySingle<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key == SINGLE {
            self.0.set(key, value);
        }
    }
}
