//! `burn_cpu` and `hold_memory`: pretend work that costs something real,
//! the same steps as a config's `Burn` and `HoldMemory`.
//!
//! A duration is anything `sleep` takes, read by the same parser; a size
//! is a whole number of bytes or a string such as `"64MiB"`, read by the
//! one parser a config's `bytes` and `MAX_HELD_BYTES` use.

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Position};

use super::{
    super::{
        builder,
        error::{host_error, serde_reason},
    },
    step_name,
    timing::latency_of,
};
use crate::behaviour::{Attributes, Burn, Bytes, HoldMemory, Latency, MAX_LATENCY, Step};

/// Registers `burn_cpu(duration)`, `burn_cpu(name, duration)`,
/// `hold_memory(bytes, duration)` and `hold_memory(name, bytes, duration)`.
pub(in super::super) fn register(engine: &mut Engine) {
    engine
        .register_fn("burn_cpu", |ctx: NativeCallContext, cpu: Dynamic| {
            burn(&ctx, None, &cpu)
        })
        .register_fn(
            "burn_cpu",
            |ctx: NativeCallContext, name: &str, cpu: Dynamic| burn(&ctx, Some(name), &cpu),
        )
        .register_fn(
            "hold_memory",
            |ctx: NativeCallContext, bytes: Dynamic, duration: Dynamic| {
                hold(&ctx, None, &bytes, &duration)
            },
        )
        .register_fn(
            "hold_memory",
            |ctx: NativeCallContext, name: &str, bytes: Dynamic, duration: Dynamic| {
                hold(&ctx, Some(name), &bytes, &duration)
            },
        );
}

fn burn(
    ctx: &NativeCallContext,
    name: Option<&str>,
    cpu: &Dynamic,
) -> Result<(), Box<EvalAltResult>> {
    let position = ctx.call_position();
    let name = step_name(name.unwrap_or("burn_cpu"), position)?;
    let cpu = capped("burn_cpu", cpu, position)?;
    builder::record(
        Step::Burn(Burn {
            name,
            cpu,
            attributes: Attributes::NONE,
        }),
        position,
    )
}

fn hold(
    ctx: &NativeCallContext,
    name: Option<&str>,
    bytes: &Dynamic,
    duration: &Dynamic,
) -> Result<(), Box<EvalAltResult>> {
    let position = ctx.call_position();
    let name = step_name(name.unwrap_or("hold_memory"), position)?;
    let bytes = rhai::serde::from_dynamic::<Bytes>(bytes)
        .map_err(|e| host_error(format!("hold_memory: {}", serde_reason(&e)), position))?;
    let duration = capped("hold_memory", duration, position)?;
    builder::record(
        Step::HoldMemory(HoldMemory {
            name,
            bytes,
            duration,
            attributes: Attributes::NONE,
        }),
        position,
    )
}

/// A duration for `function`, no longer than a config's may be: an hour
/// of CPU or of held memory is past any story worth telling.
fn capped(
    function: &str,
    duration: &Dynamic,
    position: Position,
) -> Result<Latency, Box<EvalAltResult>> {
    match latency_of(function, duration, position)? {
        Latency::Fixed(fixed) if fixed > MAX_LATENCY => Err(host_error(
            format!(
                "{function} takes at most {} ms ({}), not {} ms",
                MAX_LATENCY.as_millis(),
                humantime::format_duration(MAX_LATENCY),
                fixed.as_millis()
            ),
            position,
        )),
        latency => Ok(latency),
    }
}
