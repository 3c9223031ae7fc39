//! What a script adds to a span beyond the work itself: the database or
//! queue a sleep stands for a call to, attributes to search on, and the
//! other ways a sleep can go.
//!
//! All are read by the same parsers as a config's `"as"`, `"attributes"`
//! and `"failures"`, through `rhai::serde::from_dynamic`, so a script and a
//! config take the same shapes and bounds.

use std::sync::Arc;

use rhai::{
    Dynamic, Engine, EvalAltResult, FLOAT, INT, ImmutableString, Map, NativeCallContext, Position,
};
use serde::de::DeserializeOwned;

use super::{
    builder,
    error::host_error,
    host::{step_name, timing::sleep_step},
};
use crate::behaviour::{Attribute, AttributeValue, Attributes, Dependency, Failures, Step};

/// Registers `sleep(duration, options)`, `sleep(name, duration, options)`
/// and `set_attribute(key, value)`. The duration is what a plain `sleep`
/// takes, save that an unnamed sleep with options cannot take a string:
/// `sleep("250ms", #{..})` reads as a name and a distribution.
pub(super) fn register(engine: &mut Engine) {
    engine
        .register_fn("sleep", |ctx: NativeCallContext, ms: INT, options: Map| {
            sleep(&ctx, None, ms.into(), options)
        })
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, ms: FLOAT, options: Map| sleep(&ctx, None, ms.into(), options),
        )
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, shape: Map, options: Map| {
                sleep(&ctx, None, shape.into(), options)
            },
        )
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, name: &str, ms: INT, options: Map| {
                sleep(&ctx, Some(name), ms.into(), options)
            },
        )
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, name: &str, ms: FLOAT, options: Map| {
                sleep(&ctx, Some(name), ms.into(), options)
            },
        )
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, name: &str, text: ImmutableString, options: Map| {
                sleep(&ctx, Some(name), text.into(), options)
            },
        )
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, name: &str, shape: Map, options: Map| {
                sleep(&ctx, Some(name), shape.into(), options)
            },
        )
        .register_fn(
            "set_attribute",
            |ctx: NativeCallContext, key: &str, value: Dynamic| {
                set_attribute(ctx.call_position(), key, &value)
            },
        );
}

/// A sleep with options: `dependency`, the database or queue it stands for
/// a call to (a config's `"as"`, which Rhai reserves as a keyword; quoted,
/// `"as"` works too), `attributes`, and `failures`, the outcomes of one
/// roll (a config's `"failures"`). Unnamed, a dependency's sleep takes
/// the name the conventions give its call.
fn sleep(
    ctx: &NativeCallContext,
    name: Option<&str>,
    duration: Dynamic,
    options: Map,
) -> Result<(), Box<EvalAltResult>> {
    let position = ctx.call_position();
    let mut dependency = None;
    let mut attributes = Attributes::NONE;
    let mut failures = Failures::default();
    for (key, value) in options {
        match key.as_str() {
            "dependency" | "as" => {
                dependency = Some(Arc::new(parse::<Dependency>(
                    &value,
                    "`dependency`",
                    position,
                )?));
            }
            "attributes" => attributes = parse(&value, "`attributes`", position)?,
            "failures" => failures = parse(&value, "sleep: `failures`", position)?,
            other => {
                return Err(host_error(
                    format!(
                        "sleep has no option `{other}`; it knows `dependency`, `attributes` \
                         and `failures`"
                    ),
                    position,
                ));
            }
        }
    }
    let name = match (name, &dependency) {
        (Some(name), _) => name,
        (None, Some(dependency)) => dependency.span_name(),
        (None, None) => "sleep",
    };
    let mut step = sleep_step(step_name(name, position)?, &duration, position)?;
    step.dependency = dependency;
    step.attributes = attributes;
    step.failures = failures;
    builder::record(Step::Sleep(step), position)
}

/// Sets a fixed attribute on the innermost `function` being built, or on
/// the method's span at the top of the script.
fn set_attribute(position: Position, key: &str, value: &Dynamic) -> Result<(), Box<EvalAltResult>> {
    let value = parse::<AttributeValue>(value, "set_attribute's value", position)?;
    let attribute = Attribute::fixed(key, value)
        .map_err(|e| host_error(format!("set_attribute: {e}"), position))?;
    builder::set_attribute(attribute, position)
}

/// Reads `value` with the parser the config uses, or says what is wrong
/// with `what` at the script's `position`.
pub(super) fn parse<T: DeserializeOwned>(
    value: &Dynamic,
    what: &str,
    position: Position,
) -> Result<T, Box<EvalAltResult>> {
    rhai::serde::from_dynamic(value).map_err(|e| {
        let reason = match *e {
            EvalAltResult::ErrorRuntime(message, _) => message.to_string(),
            other => other.to_string(),
        };
        host_error(format!("{what}: {reason}"), position)
    })
}
