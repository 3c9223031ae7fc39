//! Lowers a read document into the behaviour model, checking what the
//! format alone cannot: chances, ports, addresses, method names, and which
//! of a method's ways of being described it uses.

use std::{sync::Arc, time::Duration};

use super::{
    error::Invalid,
    format::{ActionSpec, MethodSpec, OperationSpec, PortSpec, SleepSpec},
};
use crate::{
    behaviour::{
        Attributes, Call, Concurrently, Fallback, Fault, Function, Latency, Retry, Sleep, Step,
        Target,
    },
    script::{Script, Scripting},
};

/// A method lowered: a tree built once at startup, or a script that builds
/// one per request.
pub(super) enum Lowered {
    /// The same tree for every request.
    Constant(Arc<Step>),
    /// A script that builds each request's tree.
    Script(Arc<Script>),
}

/// Lowers one method: its operations into a tree built once, or its
/// script, compiled, into a director of its own.
pub(super) fn lower_method(
    spec: MethodSpec,
    path: &str,
    scripting: &Scripting,
) -> Result<Lowered, Invalid> {
    let params = spec.params.unwrap_or_default();
    match (spec.operations, spec.script, spec.script_source) {
        (Some(operations), None, None) => {
            if !params.is_empty() {
                return Err((
                    format!("{path}.params"),
                    "`params` are for scripts; this method has `operations`".to_owned(),
                ));
            }
            let steps = lower_operations(operations, &format!("{path}.operations"))?;
            Ok(Lowered::Constant(Arc::new(Step::Function(Function {
                name: spec.tracing_name,
                steps,
                attributes: Attributes::NONE,
            }))))
        }
        (None, Some(file), None) => scripting
            .load_file(&file, spec.tracing_name, &params)
            .map(Lowered::Script)
            .map_err(|e| (format!("{path}.script"), e.to_string())),
        (None, None, Some(source)) => scripting
            .load_source(
                &format!("{path}.script_source"),
                &source,
                spec.tracing_name,
                &params,
            )
            .map(Lowered::Script)
            .map_err(|e| (format!("{path}.script_source"), e.to_string())),
        _ => Err((
            path.to_owned(),
            "give exactly one of `operations`, `script` (a file) or `script_source` (inline)"
                .to_owned(),
        )),
    }
}

/// Lowers a list of operations, found at `path`, into steps run in order.
fn lower_operations(operations: Vec<OperationSpec>, path: &str) -> Result<Vec<Step>, Invalid> {
    operations
        .into_iter()
        .enumerate()
        .map(|(i, operation)| match operation {
            OperationSpec::Action(spec) => lower_action(spec, &format!("{path}[{i}].Action")),
            OperationSpec::ConcurrentActions(actions) => {
                let branches = actions
                    .into_iter()
                    .enumerate()
                    .map(|(j, spec)| {
                        lower_action(spec, &format!("{path}[{i}].ConcurrentActions[{j}]"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Step::Concurrently(Concurrently {
                    name: None,
                    branches,
                    attributes: Attributes::NONE,
                }))
            }
        })
        .collect()
}

/// Lowers one action, found at `path`, into a step.
fn lower_action(action: ActionSpec, path: &str) -> Result<Step, Invalid> {
    match action {
        ActionSpec::Function(function) => {
            let path = format!("{path}.Function");
            Ok(Step::Function(Function {
                name: function.tracing_name,
                steps: lower_operations(function.operations, &format!("{path}.operations"))?,
                attributes: function.attributes,
            }))
        }
        ActionSpec::Sleep(sleep) => {
            let path = format!("{path}.Sleep");
            let fault = lower_fault(&sleep, &path)?;
            let latency = match (sleep.duration_ms, sleep.duration) {
                (Some(ms), None) => Latency::Fixed(Duration::from_millis(ms)),
                (None, Some(latency)) => latency,
                _ => {
                    return Err((
                        path,
                        "give exactly one of `duration_ms` (whole milliseconds) or `duration` \
                         (a duration or a distribution)"
                            .to_owned(),
                    ));
                }
            };
            Ok(Step::Sleep(Sleep {
                name: sleep.tracing_name,
                latency,
                fault,
                failures: sleep.failures.unwrap_or_default(),
                dependency: sleep.dependency.map(|dependency| Arc::new(*dependency)),
                attributes: sleep.attributes,
            }))
        }
        ActionSpec::Fallback(fallback) => {
            let path = format!("{path}.Fallback");
            let primary = lower_operations(fallback.primary, &format!("{path}.primary"))?;
            let stand_in = lower_operations(fallback.fallback, &format!("{path}.fallback"))?;
            Ok(Step::Fallback(Fallback {
                name: fallback.tracing_name,
                primary: Box::new(Step::Sequence(primary)),
                fallback: Box::new(Step::Sequence(stand_in)),
                attributes: fallback.attributes,
            }))
        }
        ActionSpec::Burn(burn) => super::load::lower_burn(burn, &format!("{path}.Burn")),
        ActionSpec::HoldMemory(hold) => {
            super::load::lower_hold(hold, &format!("{path}.HoldMemory"))
        }
        ActionSpec::CallService(call) => {
            let path = format!("{path}.CallService");
            let port = match call.service_port {
                PortSpec::Number(n) => u16::try_from(n).ok(),
                PortSpec::Text(text) => text.trim().parse::<u16>().ok(),
            }
            .filter(|port| *port != 0)
            .ok_or_else(|| {
                (
                    format!("{path}.service_port"),
                    "must be a port number from 1 to 65535".to_owned(),
                )
            })?;
            let target = Target::from_parts(&call.service_address, port)
                .map_err(|e| (format!("{path}.service_address"), e))?;
            let method = call
                .grpc_method
                .parse()
                .map_err(|e| (format!("{path}.grpc_method"), e))?;
            let step = Step::Call(Call {
                name: call.tracing_name.unwrap_or_else(|| "call".to_owned()),
                target,
                method,
                on_failure: call.on_failure,
                optional: call.optional,
                timeout: call.timeout_ms.map(|timeout| timeout.0),
                attributes: call.attributes,
            });
            Ok(match call.retry_policy {
                Some(policy) if policy.max_attempts() > 1 => Step::Retry(Retry {
                    policy,
                    step: Box::new(step),
                }),
                _ => step,
            })
        }
    }
}

/// The fault of a Sleep found at `path`: its `failure_chance`, answering
/// with its `failure_code` and `failure_message`. A `failures` list is the
/// other way to say how a step fails, so the two are not mixed.
fn lower_fault(sleep: &SleepSpec, path: &str) -> Result<Option<Fault>, Invalid> {
    let single = sleep.failure_code.is_some() || sleep.failure_message.is_some();
    if sleep.failures.is_some() && (sleep.failure_chance.is_some() || single) {
        return Err((
            path.to_owned(),
            "give either `failures` or `failure_chance` (with `failure_code` and \
             `failure_message`), not both"
                .to_owned(),
        ));
    }
    let Some(chance) = sleep.failure_chance else {
        return match single {
            true => Err((
                path.to_owned(),
                "`failure_code` and `failure_message` need a `failure_chance`".to_owned(),
            )),
            false => Ok(None),
        };
    };
    let code = sleep.failure_code.map_or(tonic::Code::Internal, |c| c.0);
    Fault::new(chance, code)
        .map(|fault| Some(fault.with_message(sleep.failure_message.clone())))
        .map_err(|e| (format!("{path}.failure_chance"), e.to_string()))
}
