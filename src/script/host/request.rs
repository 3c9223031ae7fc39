//! The host functions that read the request a script directs: its baggage
//! and its headers, for per-tenant or per-client pretend logic.
//!
//! Both read the request's context, attached while the script runs, and
//! copy only the one value asked for.

use opentelemetry::{Context, baggage::BaggageExt as _};
use rhai::{Dynamic, Engine};

use crate::relay::Headers;

/// Registers `baggage(key)` and `header(name)`.
pub(in super::super) fn register(engine: &mut Engine) {
    engine
        .register_fn("baggage", baggage)
        .register_fn("header", header);
}

/// The value of the baggage entry `key` the request came with, or `()`.
fn baggage(key: &str) -> Dynamic {
    Context::map_current(|cx| {
        cx.baggage()
            .get(key)
            .map_or(Dynamic::UNIT, |value| value.as_str().into())
    })
}

/// The value of the request header `name` (in any case), or `()` when the
/// request had none, or only a binary one.
fn header(name: &str) -> Dynamic {
    let name = name.to_ascii_lowercase();
    Context::map_current(|cx| {
        cx.get::<Headers>()
            .and_then(|headers| headers.get(&name))
            .map_or(Dynamic::UNIT, |value| value.into())
    })
}
