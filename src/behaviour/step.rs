//! The step vocabulary: every kind of pretend work a tree can hold, and
//! what each kind is told to do.

use std::{sync::Arc, time::Duration};

use super::{
    attribute::Attributes,
    dependency::Dependency,
    fault::{Fault, OnFailure},
    latency::Latency,
    load::{Burn, HoldMemory},
    method::MethodName,
    outcome::Failures,
    retry::RetryPolicy,
    target::Target,
};

/// One unit of pretend work. Most steps become one span when acted out; an
/// unnamed [`Concurrently`], a [`Sequence`](Step::Sequence) and a
/// [`Retry`] only shape the tree, and a [`Raise`] or a [`Log`] marks a
/// moment in the span around it.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait, standing for I/O or computation, then maybe fail.
    Sleep(Sleep),
    /// Call a method on another Thespian.
    Call(Call),
    /// A named group of steps run in order, like a function in real code.
    Function(Function),
    /// Branches run at the same time; waits for all of them.
    Concurrently(Concurrently),
    /// Fail with some probability, without waiting.
    Fail(Fail),
    /// Fail for certain with a given status: how a script's error or
    /// thrown value takes its place in the story.
    Raise(Raise),
    /// Steps run in order with no span of their own: a script's branch
    /// of several steps inside a group of concurrent branches.
    Sequence(Vec<Step>),
    /// A step tried again when it fails, as a client's retry policy or a
    /// transaction's retry loop would.
    Retry(Retry),
    /// Write a log line when the story gets here, in the span around it.
    Log(Log),
    /// Steps run only when others fail: a cache miss falling back to the
    /// database, a replica standing in for a primary.
    Fallback(Fallback),
    /// Keep a core busy for an amount of CPU time.
    Burn(Burn),
    /// Allocate, touch and hold memory for a while.
    HoldMemory(HoldMemory),
}

impl Step {
    /// The name the step goes by, as the user wrote it: its span's name,
    /// when spans take the user's names.
    pub fn name(&self) -> &str {
        match self {
            Step::Sleep(s) => &s.name,
            Step::Call(c) => &c.name,
            Step::Function(f) => &f.name,
            Step::Concurrently(c) => c.name.as_deref().unwrap_or("concurrently"),
            Step::Fail(f) => &f.name,
            Step::Raise(r) => &r.name,
            Step::Sequence(_) => "sequence",
            Step::Retry(r) => r.step.name(),
            Step::Log(_) => "log",
            Step::Fallback(f) => &f.name,
            Step::Burn(b) => &b.name,
            Step::HoldMemory(h) => &h.name,
        }
    }

    /// The attributes the user gave the step's span, to search on. Steps
    /// without a span of their own have none.
    pub fn attributes(&self) -> &Attributes {
        match self {
            Step::Sleep(s) => &s.attributes,
            Step::Call(c) => &c.attributes,
            Step::Function(f) => &f.attributes,
            Step::Concurrently(c) => &c.attributes,
            Step::Fail(f) => &f.attributes,
            Step::Fallback(f) => &f.attributes,
            Step::Burn(b) => &b.attributes,
            Step::HoldMemory(h) => &h.attributes,
            Step::Raise(_) | Step::Sequence(_) | Step::Retry(_) | Step::Log(_) => &Attributes::NONE,
        }
    }
}

/// Wait, then maybe fail.
#[derive(Debug, Clone)]
pub struct Sleep {
    /// The span name: the story the user is telling.
    pub name: String,
    /// How long to wait.
    pub latency: Latency,
    /// Rolled after the wait, so a failed step still takes its time.
    pub fault: Option<Fault>,
    /// Other ways the wait can go, rolled once before it: errors before or
    /// after the wait, hangs and slow answers. Empty for most steps.
    pub failures: Failures,
    /// The database or queue the wait stands for a call to, if any: its
    /// span then says what a client library's would.
    pub dependency: Option<Arc<Dependency>>,
    /// What the span carries to search on.
    pub attributes: Attributes,
}

/// A call to another Thespian's method.
#[derive(Debug, Clone)]
pub struct Call {
    /// The span name.
    pub name: String,
    /// The instance to call.
    pub target: Target,
    /// The method to call there.
    pub method: MethodName,
    /// What the caller answers when the call fails.
    pub on_failure: OnFailure,
    /// Whether the caller carries on when the call fails, as it would
    /// without a recommendation or a cache: the failure ends at the call.
    pub optional: bool,
    /// How long the call waits for its answer, when not the instance's
    /// `CALL_TIMEOUT_MS`.
    pub timeout: Option<Duration>,
    /// What the span carries to search on.
    pub attributes: Attributes,
}

/// A named block of steps run in order; the first failure stops it.
#[derive(Debug, Clone)]
pub struct Function {
    /// The span name.
    pub name: String,
    /// What the function does, in order.
    pub steps: Vec<Step>,
    /// What the span carries to search on.
    pub attributes: Attributes,
}

/// Branches acted out at the same time.
#[derive(Debug, Clone)]
pub struct Concurrently {
    /// A span around the branches, when the author asked for one. JSON's
    /// `ConcurrentActions` has none, so its branches hang from the enclosing
    /// function as they did in the original.
    pub name: Option<String>,
    /// Each branch; all run to completion even when one fails.
    pub branches: Vec<Step>,
    /// What the span carries to search on, when it has one.
    pub attributes: Attributes,
}

/// Fail with some probability, without waiting.
#[derive(Debug, Clone)]
pub struct Fail {
    /// The span name.
    pub name: String,
    /// The chance and the status.
    pub fault: Fault,
    /// What the span carries to search on.
    pub attributes: Attributes,
}

/// A certain failure with a chosen status and message.
#[derive(Debug, Clone)]
pub struct Raise {
    /// The span name.
    pub name: String,
    /// The status code the request answers with.
    pub code: tonic::Code,
    /// What went wrong, as the caller will read it.
    pub message: String,
}

/// A log line that is part of the story: written when the executor reaches
/// it, so it lands between the steps around it, in the span of the block
/// that holds it, and once per try of a retried block.
#[derive(Debug, Clone)]
pub struct Log {
    /// How loud the line is.
    pub level: LogLevel,
    /// What the line says.
    pub message: String,
    /// Who wrote it (a script's file or place in the config), for the
    /// line's `script` field.
    pub source: Arc<str>,
    /// The source line that wrote it, when known.
    pub line: Option<usize>,
}

/// The levels a story's own log lines are written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// A script's `print`.
    Info,
    /// A script's `debug`.
    Debug,
}

/// A step tried again after a failure, as its policy says. Each try has
/// its own spans, so a trace shows the failed tries before the one that
/// worked; the step fails only if the last try does.
#[derive(Debug, Clone)]
pub struct Retry {
    /// How many times, after which failures, and how long to wait between.
    pub policy: RetryPolicy,
    /// What is tried.
    pub step: Box<Step>,
}

/// A step with a stand-in: `fallback` runs only when `primary` fails, and
/// the step's outcome is then the fallback's.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// The span name.
    pub name: String,
    /// What is tried first.
    pub primary: Box<Step>,
    /// What runs when it fails.
    pub fallback: Box<Step>,
    /// What the span carries to search on.
    pub attributes: Attributes,
}
