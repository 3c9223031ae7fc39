//! `sleep`: time passing, standing for I/O or computation.
//!
//! A sleep's duration is a number of milliseconds, or anything a config's
//! `duration` takes: a string such as `"250ms"` or a distribution map such
//! as `#{ lognormal: #{ median: 20, p99: 400 } }`, read by the same parser.

use std::time::Duration;

use rhai::{
    Dynamic, Engine, EvalAltResult, FLOAT, INT, ImmutableString, Map, NativeCallContext, Position,
};

use super::{
    super::{
        builder,
        error::{host_error, serde_reason},
    },
    step_name,
};
use crate::behaviour::{Attributes, Failures, Latency, Sleep, Step};

/// Registers `sleep(duration)` and `sleep(name, duration)`, for a duration
/// in integer or float milliseconds, as a string or as a distribution map.
/// These shadow every overload of Rhai's own blocking `sleep(seconds)`,
/// which the engine does not load in the first place.
pub(in super::super) fn register(engine: &mut Engine) {
    engine
        .register_fn("sleep", |ctx: NativeCallContext, ms: INT| {
            sleep(&ctx, None, ms.into())
        })
        .register_fn("sleep", |ctx: NativeCallContext, ms: FLOAT| {
            sleep(&ctx, None, ms.into())
        })
        .register_fn("sleep", |ctx: NativeCallContext, text: ImmutableString| {
            sleep(&ctx, None, text.into())
        })
        .register_fn("sleep", |ctx: NativeCallContext, shape: Map| {
            sleep(&ctx, None, shape.into())
        })
        .register_fn("sleep", |ctx: NativeCallContext, name: &str, ms: INT| {
            sleep(&ctx, Some(name), ms.into())
        })
        .register_fn("sleep", |ctx: NativeCallContext, name: &str, ms: FLOAT| {
            sleep(&ctx, Some(name), ms.into())
        })
        .register_fn(
            "sleep",
            |ctx: NativeCallContext, name: &str, text: ImmutableString| {
                sleep(&ctx, Some(name), text.into())
            },
        )
        .register_fn("sleep", |ctx: NativeCallContext, name: &str, shape: Map| {
            sleep(&ctx, Some(name), shape.into())
        });
}

fn sleep(
    ctx: &NativeCallContext,
    name: Option<&str>,
    duration: Dynamic,
) -> Result<(), Box<EvalAltResult>> {
    let position = ctx.call_position();
    let name = step_name(name.unwrap_or("sleep"), position)?;
    builder::record(
        Step::Sleep(sleep_step(name, &duration, position)?),
        position,
    )
}

/// A sleep named `name` for `duration`, checked.
pub(in super::super) fn sleep_step(
    name: String,
    duration: &Dynamic,
    position: Position,
) -> Result<Sleep, Box<EvalAltResult>> {
    Ok(Sleep {
        name,
        latency: latency(duration, position)?,
        fault: None,
        failures: Failures::default(),
        dependency: None,
        attributes: Attributes::NONE,
    })
}

/// A sleep's duration: fixed for a number of milliseconds, and otherwise
/// read as a config's `duration` is, the one parser of latencies, so a
/// script and a config mean the same thing.
fn latency(duration: &Dynamic, position: Position) -> Result<Latency, Box<EvalAltResult>> {
    latency_of("sleep", duration, position)
}

/// A duration given to the host function `function`, read as `sleep`
/// reads its own, with errors that name `function`.
pub(in super::super) fn latency_of(
    function: &str,
    duration: &Dynamic,
    position: Position,
) -> Result<Latency, Box<EvalAltResult>> {
    let ms = match (duration.as_int(), duration.as_float()) {
        (Ok(ms), _) => ms as FLOAT,
        (_, Ok(ms)) => ms,
        _ => {
            return rhai::serde::from_dynamic::<Latency>(duration)
                .map_err(|e| host_error(format!("{function}: {}", serde_reason(&e)), position));
        }
    };
    (ms.is_finite() && ms >= 0.0)
        .then(|| Duration::try_from_secs_f64(ms / 1000.0).ok())
        .flatten()
        .map(Latency::Fixed)
        .ok_or_else(|| {
            host_error(
                format!("{function} takes a duration of 0 or more milliseconds, not {ms}"),
                position,
            )
        })
}
