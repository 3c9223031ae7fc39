//! The host functions a script builds its steps with, grouped by area, each
//! group with its own `register`.
//!
//! None of them does anything while the script runs: each records a step
//! (see [`builder`](super::builder)), and the executor acts the steps out
//! afterwards, one span each.

use rhai::{Dynamic, Engine, EvalAltResult, FLOAT, INT, NativeCallContext, Position};

use super::{
    builder,
    error::{host_error, serde_reason},
};
use crate::behaviour::RetryPolicy;

mod load;
mod request;
mod trouble;

/// Registers every host function.
pub(super) fn register(engine: &mut Engine) {
    timing::register(engine);
    calls::register(engine);
    faults::register(engine);
    structure::register(engine);
    chance::register(engine);
    trouble::register(engine);
    load::register(engine);
    request::register(engine);
    super::annotations::register(engine);
}

/// The longest step name, in bytes: names become span names, and a
/// generated megabyte name would cost every span it lands on.
const MAX_NAME_BYTES: usize = 256;

/// Checks a step name given by the script.
pub(super) fn step_name(name: &str, position: Position) -> Result<String, Box<EvalAltResult>> {
    if name.trim().is_empty() {
        return Err(host_error("a step name must not be empty", position));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(host_error(
            format!(
                "a step name may be at most {MAX_NAME_BYTES} bytes; this one is {}",
                name.len()
            ),
            position,
        ));
    }
    Ok(name.to_owned())
}

/// Checks a number of retries given by the script: retries at once,
/// whatever the failure.
fn retries(count: INT, position: Position) -> Result<RetryPolicy, Box<EvalAltResult>> {
    rhai::serde::from_dynamic::<RetryPolicy>(&Dynamic::from_int(count))
        .map_err(|e| host_error(serde_reason(&e), position))
}

/// `sleep`: time passing, standing for I/O or computation.
pub(super) mod timing;

/// `call`: a call to another Thespian.
mod calls {
    use rhai::{EvalContext, Expression, FnPtr, ImmutableString, Map, ParseError};

    use super::*;
    use crate::behaviour::{
        Attributes, Call, CallTimeout, MethodName, OnFailure, Retry, Step, Target,
    };

    /// The most arguments `call` takes: name, target, method and options.
    const MAX_ARGUMENTS: usize = 4;

    /// Registers `call(target, method)`, `call(name, target, method)` and
    /// either with a trailing options map, `#{name: "..", retries: 2,
    /// on_failure: "propagate", optional: true, attributes: #{..},
    /// timeout_ms: 250}`, the attributes read as a config's `CallService`
    /// reads them, and `retries` also gRPC's retry policy as a map.
    ///
    /// `call` is a keyword in Rhai, reserved for calling function pointers,
    /// so it cannot be an ordinary function: it is a custom syntax that
    /// takes one to four comma-separated expressions. Given a function
    /// pointer first, it still calls that, as `call(f, x)` always did.
    pub(in super::super) fn register(engine: &mut Engine) {
        engine.register_custom_syntax_with_state_raw("call", parse, false, evaluate);
    }

    /// Asks for `(`, then expressions separated by commas, then `)`.
    fn parse(
        symbols: &[ImmutableString],
        look_ahead: &str,
        _state: &mut Dynamic,
    ) -> Result<Option<ImmutableString>, ParseError> {
        let arguments = symbols.iter().filter(|s| s.as_str() == "$expr$").count();
        let next = match symbols.last().map(ImmutableString::as_str) {
            Some("call") => "(",
            Some("(" | ",") => "$expr$",
            Some("$expr$") if look_ahead == "," && arguments < MAX_ARGUMENTS => ",",
            Some("$expr$") => ")",
            _ => return Ok(None),
        };
        Ok(Some(next.into()))
    }

    fn evaluate(
        context: &mut EvalContext,
        inputs: &[Expression],
        _state: &Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut arguments = Vec::with_capacity(inputs.len());
        for input in inputs {
            arguments.push(context.eval_expression_tree(input)?);
        }
        if arguments.first().is_some_and(Dynamic::is_fnptr) {
            let function = arguments.remove(0).cast::<FnPtr>();
            let mut values: Vec<Dynamic> = function.curry().to_vec();
            values.extend(arguments);
            let mut values: Vec<&mut Dynamic> = values.iter_mut().collect();
            return context.call_fn_raw(function.fn_name(), false, false, &mut values);
        }

        let position = inputs.first().map_or(Position::NONE, Expression::position);
        let usage = || {
            host_error(
                "call takes a target and a method, such as `call(\"orders:6379\", \"A\")`, \
                 optionally after a name and before an options map",
                position,
            )
        };
        let mut name = None;
        let mut policy = None;
        let mut timeout = None;
        let (mut on_failure, mut optional) = (OnFailure::default(), false);
        let mut attributes = Attributes::NONE;
        if arguments.last().is_some_and(Dynamic::is_map) {
            let options = arguments
                .pop()
                .map(Dynamic::cast::<Map>)
                .unwrap_or_default();
            for (key, value) in options {
                match key.as_str() {
                    "name" => name = Some(text(value, "the `name` option", position)?),
                    "retries" => policy = Some(option::<RetryPolicy>(&value, "retries", position)?),
                    "timeout_ms" => {
                        timeout = Some(option::<CallTimeout>(&value, "timeout_ms", position)?.0);
                    }
                    "on_failure" => on_failure = super::trouble::on_failure(&value, position)?,
                    "optional" => optional = super::trouble::optional(&value, position)?,
                    "attributes" => {
                        attributes = crate::script::annotations::parse(
                            &value,
                            "call: `attributes`",
                            position,
                        )?;
                    }
                    other => {
                        return Err(host_error(
                            format!(
                                "call has no option `{other}`; it knows `name`, `retries`, \
                                 `timeout_ms`, `on_failure`, `optional` and `attributes`"
                            ),
                            position,
                        ));
                    }
                }
            }
        }
        // Where the target sits among the arguments: after the name, if any.
        let (given_name, target, method, at) = match <[Dynamic; 3]>::try_from(arguments) {
            Ok([name, target, method]) => (Some(name), target, method, 1),
            Err(arguments) => match <[Dynamic; 2]>::try_from(arguments) {
                Ok([target, method]) => (None, target, method, 0),
                Err(_) => return Err(usage()),
            },
        };
        if let Some(given) = given_name {
            name = Some(text(given, "the name", position)?);
        }
        let name = step_name(name.as_deref().unwrap_or("call"), position)?;
        let (target_position, method_position) = (inputs[at].position(), inputs[at + 1].position());
        let target = Target::parse(&text(target, "the target", target_position)?)
            .map_err(|e| host_error(format!("call: {e}"), target_position))?;
        let method = text(method, "the method", method_position)?
            .parse::<MethodName>()
            .map_err(|e| host_error(format!("call: {e}"), method_position))?;
        let call = Step::Call(Call {
            name,
            target,
            method,
            on_failure,
            optional,
            timeout,
            attributes,
        });
        let step = match policy {
            Some(policy) if policy.max_attempts() > 1 => Step::Retry(Retry {
                policy,
                step: Box::new(call),
            }),
            _ => call,
        };
        builder::record(step, position)?;
        Ok(Dynamic::UNIT)
    }

    /// An option's value, read by the same `Deserialize` impl as the
    /// config key of the same name.
    fn option<T: serde::de::DeserializeOwned>(
        value: &Dynamic,
        key: &str,
        position: Position,
    ) -> Result<T, Box<EvalAltResult>> {
        rhai::serde::from_dynamic::<T>(value)
            .map_err(|e| host_error(format!("call: `{key}`: {}", serde_reason(&e)), position))
    }

    /// A string argument, or an error naming what it should have been.
    fn text(value: Dynamic, what: &str, position: Position) -> Result<String, Box<EvalAltResult>> {
        let type_name = value.type_name();
        value
            .into_immutable_string()
            .map(|s| s.to_string())
            .map_err(|_| {
                host_error(
                    format!("call: {what} must be a string, not {type_name}"),
                    position,
                )
            })
    }
}

/// `fail_with_chance`: pretend chaos.
mod faults {
    use super::*;
    use crate::behaviour::{Attributes, Fail, Fault, Step};

    /// Registers `fail_with_chance(p)` and `fail_with_chance(name, p)`.
    pub(in super::super) fn register(engine: &mut Engine) {
        engine
            .register_fn("fail_with_chance", |ctx: NativeCallContext, p: FLOAT| {
                fail(&ctx, None, p)
            })
            .register_fn("fail_with_chance", |ctx: NativeCallContext, p: INT| {
                fail(&ctx, None, p as FLOAT)
            })
            .register_fn(
                "fail_with_chance",
                |ctx: NativeCallContext, name: &str, p: FLOAT| fail(&ctx, Some(name), p),
            )
            .register_fn(
                "fail_with_chance",
                |ctx: NativeCallContext, name: &str, p: INT| fail(&ctx, Some(name), p as FLOAT),
            );
    }

    fn fail(
        ctx: &NativeCallContext,
        name: Option<&str>,
        chance: FLOAT,
    ) -> Result<(), Box<EvalAltResult>> {
        let position = ctx.call_position();
        let name = step_name(name.unwrap_or("fail_with_chance"), position)?;
        let fault = Fault::internal(chance)
            .map_err(|e| host_error(format!("fail_with_chance's chance {e}"), position))?;
        record_fail(name, fault, position)
    }

    /// Records a `fail_with_chance` step, whichever form of the call
    /// described its fault.
    pub(in super::super) fn record_fail(
        name: String,
        fault: Fault,
        position: Position,
    ) -> Result<(), Box<EvalAltResult>> {
        builder::record(
            Step::Fail(Fail {
                name,
                fault,
                attributes: Attributes::NONE,
            }),
            position,
        )
    }
}

/// `function` and `concurrently`: the shape of the trace.
mod structure {
    use rhai::{Array, FnPtr};

    use super::*;
    use crate::behaviour::{Attributes, Concurrently, Function, Retry, Step};

    /// Registers `function(name, || ..)`, `concurrently([|| .., || ..])`,
    /// `concurrently(name, [..])` and `retry(times, || ..)`.
    pub(in super::super) fn register(engine: &mut Engine) {
        engine
            .register_fn(
                "retry",
                |ctx: NativeCallContext, times: INT, body: FnPtr| retry(&ctx, times, &body),
            )
            .register_fn(
                "function",
                |ctx: NativeCallContext, name: &str, body: FnPtr| function(&ctx, name, &body),
            )
            .register_fn("concurrently", |ctx: NativeCallContext, branches: Array| {
                concurrently(&ctx, "concurrently", branches)
            })
            .register_fn(
                "concurrently",
                |ctx: NativeCallContext, name: &str, branches: Array| {
                    concurrently(&ctx, name, branches)
                },
            );
    }

    fn function(
        ctx: &NativeCallContext,
        name: &str,
        body: &FnPtr,
    ) -> Result<(), Box<EvalAltResult>> {
        let position = ctx.call_position();
        let name = step_name(name, position)?;
        builder::begin(position)?;
        builder::open_scope();
        let (steps, outcome) =
            builder::nest(position, || body.call_within_context::<Dynamic>(ctx, ()));
        let attributes = builder::close_scope();
        builder::attach(Step::Function(Function {
            name,
            steps,
            attributes,
        }));
        outcome
    }

    /// The closure's steps, tried again up to `times` times when they fail.
    fn retry(ctx: &NativeCallContext, times: INT, body: &FnPtr) -> Result<(), Box<EvalAltResult>> {
        let position = ctx.call_position();
        let policy = retries(times, position)?;
        builder::begin(position)?;
        let (steps, outcome) =
            builder::nest(position, || body.call_within_context::<Dynamic>(ctx, ()));
        let step = builder::branch(steps);
        builder::attach(match outcome {
            Ok(()) => Step::Retry(Retry {
                policy,
                step: Box::new(step),
            }),
            // A script error is not pretend trouble: trying it again would
            // only report it again.
            Err(_) => step,
        });
        outcome
    }

    fn concurrently(
        ctx: &NativeCallContext,
        name: &str,
        branches: Array,
    ) -> Result<(), Box<EvalAltResult>> {
        let position = ctx.call_position();
        let name = step_name(name, position)?;
        let closures = branches
            .into_iter()
            .enumerate()
            .map(|(i, branch)| {
                let type_name = branch.type_name();
                branch.try_cast::<FnPtr>().ok_or_else(|| {
                    host_error(
                        format!(
                            "concurrently takes an array of closures such as `|| sleep(5)`; \
                             element {i} is {type_name}"
                        ),
                        position,
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        builder::begin(position)?;
        let mut branches = Vec::with_capacity(closures.len());
        let mut outcome = Ok(());
        for closure in &closures {
            let (steps, result) =
                builder::nest(position, || closure.call_within_context::<Dynamic>(ctx, ()));
            branches.push(builder::branch(steps));
            if result.is_err() {
                outcome = result;
                break;
            }
        }
        builder::attach(Step::Concurrently(Concurrently {
            name: Some(name),
            branches,
            attributes: Attributes::NONE,
        }));
        outcome
    }
}

/// `random`: the dice a script rolls to branch.
mod chance {
    use super::*;

    /// Registers `random()`, a float in `[0, 1)`, different on every call
    /// and every request, unless `THESPIAN_SEED` makes a request's numbers
    /// follow from its trace id.
    pub(in super::super) fn register(engine: &mut Engine) {
        engine.register_fn("random", || -> FLOAT { builder::random() });
    }
}
