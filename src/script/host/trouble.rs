//! The host functions for how steps go wrong and what a story does about
//! it: a sleep's `failures`, `fail_with_chance` with a code or options,
//! a call's `on_failure` and `optional`, and `fallback`.
//!
//! Options maps are read through the same `Deserialize` impls as a JSON
//! config's keys, by `rhai::serde::from_dynamic`, so both front ends take
//! the same values and refuse the same mistakes.

use rhai::{Dynamic, Engine, EvalAltResult, FLOAT, FnPtr, INT, Map, NativeCallContext, Position};

use super::{builder, host_error, step_name};
use crate::{
    behaviour::{Attributes, Effect, Fallback, Fault, OnFailure, Outcome, Step},
    script::annotations::parse as read,
};

/// Registers `fail_with_chance(name, p, code)`, `fail_with_chance(name, p,
/// #{code, message, when})` and `fallback`.
pub(in super::super) fn register(engine: &mut Engine) {
    engine
        .register_fn(
            "fail_with_chance",
            |ctx: NativeCallContext, name: &str, p: FLOAT, code: &str| {
                fail_with_code(&ctx, name, p, code.into())
            },
        )
        .register_fn(
            "fail_with_chance",
            |ctx: NativeCallContext, name: &str, p: INT, code: &str| {
                fail_with_code(&ctx, name, p as FLOAT, code.into())
            },
        )
        .register_fn(
            "fail_with_chance",
            |ctx: NativeCallContext, name: &str, p: FLOAT, code: INT| {
                fail_with_code(&ctx, name, p, code.into())
            },
        )
        .register_fn(
            "fail_with_chance",
            |ctx: NativeCallContext, name: &str, p: INT, code: INT| {
                fail_with_code(&ctx, name, p as FLOAT, code.into())
            },
        )
        .register_fn(
            "fail_with_chance",
            |ctx: NativeCallContext, name: &str, p: FLOAT, options: Map| {
                fail_with_options(&ctx, name, p, options)
            },
        )
        .register_fn(
            "fail_with_chance",
            |ctx: NativeCallContext, name: &str, p: INT, options: Map| {
                fail_with_options(&ctx, name, p as FLOAT, options)
            },
        )
        .register_fn(
            "fallback",
            |ctx: NativeCallContext, primary: FnPtr, stand_in: FnPtr| {
                fallback(&ctx, "fallback", &primary, &stand_in)
            },
        )
        .register_fn(
            "fallback",
            |ctx: NativeCallContext, name: &str, primary: FnPtr, stand_in: FnPtr| {
                fallback(&ctx, name, &primary, &stand_in)
            },
        );
}

/// `fail_with_chance(name, p, code)`: the code by name or number.
fn fail_with_code(
    ctx: &NativeCallContext,
    name: &str,
    chance: FLOAT,
    code: Dynamic,
) -> Result<(), Box<EvalAltResult>> {
    let mut options = Map::new();
    options.insert("code".into(), code);
    fail_with_options(ctx, name, chance, options)
}

/// `fail_with_chance(name, p, #{code, message, when})`: read as one entry
/// of a `failures` list with the chance `p`, which must be an error.
fn fail_with_options(
    ctx: &NativeCallContext,
    name: &str,
    chance: FLOAT,
    mut options: Map,
) -> Result<(), Box<EvalAltResult>> {
    let position = ctx.call_position();
    let name = step_name(name, position)?;
    if options.contains_key("chance") {
        return Err(host_error(
            "fail_with_chance: the chance is its second argument, not an option",
            position,
        ));
    }
    options.insert("chance".into(), Dynamic::from_float(chance));
    let outcome: Outcome = read(&Dynamic::from_map(options), "fail_with_chance", position)?;
    // A fail step does not wait, so `when` makes no difference to it.
    let Effect::Error { code, message, .. } = outcome.effect else {
        return Err(host_error(
            "fail_with_chance fails with an error; a hang or a slow answer belongs in \
             a sleep's `failures`",
            position,
        ));
    };
    let fault = Fault::new(outcome.chance, code)
        .map_err(|e| host_error(format!("fail_with_chance's chance {e}"), position))?
        .with_message(message);
    super::faults::record_fail(name, fault, position)
}

/// A call's `on_failure` option: `"internal"`, `"propagate"` or a code.
pub(super) fn on_failure(
    value: &Dynamic,
    position: Position,
) -> Result<OnFailure, Box<EvalAltResult>> {
    read(value, "call: `on_failure`", position)
}

/// A call's `optional` option.
pub(super) fn optional(value: &Dynamic, position: Position) -> Result<bool, Box<EvalAltResult>> {
    value.as_bool().map_err(|type_name| {
        host_error(
            format!("call: `optional` must be true or false, not {type_name}"),
            position,
        )
    })
}

/// `fallback(primary, fallback)`: the second closure's steps run only when
/// the first's fail.
fn fallback(
    ctx: &NativeCallContext,
    name: &str,
    primary: &FnPtr,
    stand_in: &FnPtr,
) -> Result<(), Box<EvalAltResult>> {
    let position = ctx.call_position();
    let name = step_name(name, position)?;
    builder::begin(position)?;
    // Each arm stays a block of steps even when it holds one, as a
    // config's `primary` and `fallback` lists do: the block is a level of
    // the tree its steps' dice are numbered under, so the same fallback
    // written either way rolls the same numbers.
    let (primary_steps, outcome) =
        builder::nest(position, || primary.call_within_context::<Dynamic>(ctx, ()));
    let primary = Step::Sequence(primary_steps);
    if outcome.is_err() {
        // A script error is not pretend trouble: falling back would hide it.
        builder::attach(primary);
        return outcome;
    }
    let (stand_in_steps, outcome) = builder::nest(position, || {
        stand_in.call_within_context::<Dynamic>(ctx, ())
    });
    let stand_in = Step::Sequence(stand_in_steps);
    builder::attach(match outcome {
        Ok(()) => Step::Fallback(Fallback {
            name,
            primary: Box::new(primary),
            fallback: Box::new(stand_in),
            attributes: Attributes::NONE,
        }),
        Err(_) => Step::Sequence(vec![primary, stand_in]),
    });
    outcome
}
