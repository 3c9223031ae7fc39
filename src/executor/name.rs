//! The name a step's span goes by: the user's own, or the one the original
//! Thespian gave every step of its kind.

use crate::behaviour::Step;

/// How spans are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SpanNames {
    /// By the configured `tracing_name`, so a trace reads as the story.
    #[default]
    Descriptive,
    /// By the kind of step (`Function.enact`, `sleep`, ...), as the original
    /// did, for dashboards that match on fixed names.
    Generic,
}

/// The name of `step`'s span, as `names` says spans are named.
pub(super) fn span_name(step: &Step, names: SpanNames) -> &str {
    match names {
        SpanNames::Descriptive => step.name(),
        SpanNames::Generic => generic_name(step),
    }
}

/// The name the original gave a kind of step's span, for
/// [`SpanNames::Generic`]. Steps without a span of their own have none.
/// A sleep that stands for a call to a dependency is named as a client
/// library would name the call, by the conventions, which is the generic
/// name of such a call.
fn generic_name(step: &Step) -> &str {
    match step {
        Step::Sleep(sleep) => sleep
            .dependency
            .as_deref()
            .map_or("sleep", |dependency| dependency.span_name()),
        Step::Call(_) => "call_service",
        Step::Function(_) => "Function.enact",
        Step::Concurrently(_) => "concurrently",
        Step::Fail(_) => "fail_with_chance",
        Step::Fallback(_) => "fallback",
        Step::Burn(_) => "burn",
        Step::HoldMemory(_) => "hold_memory",
        Step::Raise(_) | Step::Sequence(_) | Step::Retry(_) | Step::Log(_) => "",
    }
}
