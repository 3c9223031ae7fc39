//! The step builder: where a script's host functions record the steps of one
//! request while the script runs.
//!
//! Evaluation is synchronous, so the builder lives in a thread-local for the
//! length of one evaluation. Each host function that takes a closure
//! (`function`, `concurrently`) opens a fresh frame, runs the closure, and
//! closes the frame into one step of the enclosing frame.
//!
//! `set_attribute` adds to the attributes of the innermost `function` being
//! built, or at the top of the script to the method's own: each function
//! opens a scope for them, closed into the function with its steps.
//!
//! A runtime error becomes a [`Raise`] step at the point it happened, in the
//! innermost frame open then: the steps recorded before it still run, inside
//! the spans of the functions around it, and then the request fails. A script
//! that catches the error with `try`/`catch` takes that step back.

use std::{cell::RefCell, sync::Arc, time::Instant};

use rand::{RngExt, rngs::SmallRng};
use rhai::{Dynamic, EvalAltResult, Position};

use super::{error, limits::Limits};
use crate::{
    behaviour::{Attribute, Attributes, Log, LogLevel, MAX_ATTRIBUTES, Raise, Step},
    executor::{Dice, Roll},
};

/// The state of one evaluation.
struct Build {
    /// The script's label, for messages and log lines.
    label: Arc<str>,
    /// The limits in force.
    limits: Limits,
    /// When the evaluation must stop, unless the limit is off.
    deadline: Option<Instant>,
    /// Open frames, outermost first; each collects the steps recorded in it.
    frames: Vec<Vec<Step>>,
    /// Steps recorded so far, against [`Limits::max_steps`].
    steps: usize,
    /// The attributes set in each function being built, outermost (the
    /// method's) first.
    scopes: Vec<Vec<Attribute>>,
    /// Whether a [`Raise`] for an error still on its way up sits at the end
    /// of the newest frame's last steps.
    raised: bool,
    /// The step limit, if a `print` or `debug` ran past it: they cannot
    /// fail the script where they stand, so it fails when it ends.
    overflow: Option<Box<EvalAltResult>>,
    /// What the script's `random()` draws from: seeded from the request's
    /// dice, so a replayed request makes the same choices.
    rng: SmallRng,
}

thread_local! {
    static BUILD: RefCell<Option<Build>> = const { RefCell::new(None) };
}

/// Clears the thread's build even if evaluation panics, so the next request
/// on this thread starts clean.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        BUILD.with(|build| build.borrow_mut().take());
    }
}

/// Runs `evaluate` with a fresh builder and returns the steps it recorded,
/// ending with a [`Raise`] placed where the script failed, if it failed,
/// and the attributes it set at its top, for the method's span.
pub(super) fn build(
    label: &Arc<str>,
    limits: &Limits,
    dice: Dice,
    evaluate: impl FnOnce() -> Result<(), Box<EvalAltResult>>,
) -> (Vec<Step>, Attributes) {
    let _reset = Reset;
    BUILD.with(|build| {
        *build.borrow_mut() = Some(Build {
            label: Arc::clone(label),
            limits: *limits,
            deadline: (limits.timeout_ms > 0).then(|| Instant::now() + limits.timeout()),
            frames: vec![Vec::new()],
            steps: 0,
            scopes: vec![Vec::new()],
            raised: false,
            overflow: None,
            rng: dice.rng(Roll::Script),
        });
    });
    // Rhai is not meant to panic, but if it does, the request fails with a
    // message rather than taking its connection down with it.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(evaluate)).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(error::host_error(
                format!("the script engine failed: {what}"),
                Position::NONE,
            ))
        });
    let Some(mut build) = BUILD.with(|build| build.borrow_mut().take()) else {
        return (Vec::new(), Attributes::NONE);
    };
    let mut steps = build.frames.swap_remove(0);
    let attributes = Attributes::new(build.scopes.swap_remove(0)).unwrap_or_default();
    match outcome {
        Ok(()) => {
            if build.raised {
                take_back_raise(&mut steps);
            }
            if let Some(overflow) = build.overflow {
                steps.push(Step::Raise(error::raise(
                    &overflow,
                    &build.label,
                    &build.limits,
                )));
            }
        }
        Err(e) => {
            let raise = error::raise(&e, &build.label, &build.limits);
            if build.raised {
                // The script caught an error and then threw another without
                // recording anything in between: keep the place, say what
                // finally ended the script.
                replace_raise(&mut steps, raise);
            } else {
                steps.push(Step::Raise(raise));
            }
        }
    }
    (steps, attributes)
}

/// Runs `f` on the thread's build. Host functions are only reachable while
/// a script evaluates, so there always is one; outside of that this is an
/// error rather than a panic.
fn with<T>(
    position: Position,
    f: impl FnOnce(&mut Build) -> Result<T, Box<EvalAltResult>>,
) -> Result<T, Box<EvalAltResult>> {
    BUILD.with(|build| match build.borrow_mut().as_mut() {
        Some(build) => f(build),
        None => Err(error::host_error(
            "Thespian's functions work only while a request is being directed",
            position,
        )),
    })
}

impl Build {
    /// Takes back a [`Raise`] left by an error the script then caught: the
    /// script has moved on, so the error is not the story any more.
    fn settle(&mut self) {
        if self.raised {
            if let Some(frame) = self.frames.last_mut() {
                take_back_raise(frame);
            }
            self.raised = false;
        }
    }

    /// Counts one more step against the limit.
    fn count(&mut self, position: Position) -> Result<(), Box<EvalAltResult>> {
        if self.limits.max_steps > 0 && self.steps >= self.limits.max_steps {
            return Err(error::host_error(
                format!(
                    "built more than {} steps (SCRIPT_MAX_STEPS)",
                    self.limits.max_steps
                ),
                position,
            ));
        }
        self.steps += 1;
        Ok(())
    }

    /// Counts `step` and adds it to the newest frame.
    fn push(&mut self, step: Step, position: Position) -> Result<(), Box<EvalAltResult>> {
        self.settle();
        self.count(position)?;
        if let Some(frame) = self.frames.last_mut() {
            frame.push(step);
        }
        Ok(())
    }
}

/// Records a step that holds no others (a sleep, a call, a fail chance).
pub(super) fn record(step: Step, position: Position) -> Result<(), Box<EvalAltResult>> {
    with(position, |build| build.push(step, position))
}

/// A float in `[0, 1)` for the script's `random()`, from the request's
/// dice while a script builds its tree, from the thread's RNG otherwise.
pub(super) fn random() -> f64 {
    BUILD.with(|build| match build.borrow_mut().as_mut() {
        Some(build) => build.rng.random(),
        None => rand::random(),
    })
}

/// Records a `print` or `debug` line as a step. Past the step limit the
/// line is dropped, and the script fails when it ends, as it would have at
/// its next host function.
pub(super) fn log(level: LogLevel, text: &str, line: Option<usize>) {
    let _ = with(Position::NONE, |build| {
        let step = Step::Log(Log {
            level,
            message: text.to_owned(),
            source: Arc::clone(&build.label),
            line,
        });
        if let Err(overflow) = build.push(step, Position::NONE) {
            build.overflow.get_or_insert(overflow);
        }
        Ok(())
    });
}

/// Starts a step that holds others (a function, a group of branches): counts
/// it, before any of what it holds.
pub(super) fn begin(position: Position) -> Result<(), Box<EvalAltResult>> {
    with(position, |build| {
        build.settle();
        build.count(position)
    })
}

/// Runs `body` in a fresh frame and returns the steps it recorded, with a
/// [`Raise`] at the end when it failed, along with the failure itself to
/// pass on up.
pub(super) fn nest(
    position: Position,
    body: impl FnOnce() -> Result<Dynamic, Box<EvalAltResult>>,
) -> (Vec<Step>, Result<(), Box<EvalAltResult>>) {
    if let Err(e) = with(position, |build| {
        build.settle();
        build.frames.push(Vec::new());
        Ok(())
    }) {
        return (Vec::new(), Err(e));
    }
    let outcome = body().map(|_| ());
    let steps = with(position, |build| {
        let mut steps = build.frames.pop().unwrap_or_default();
        match &outcome {
            Ok(()) if build.raised => {
                take_back_raise(&mut steps);
                build.raised = false;
            }
            Ok(()) => {}
            Err(_) if build.raised => {}
            Err(e) => {
                steps.push(Step::Raise(error::raise(e, &build.label, &build.limits)));
                build.raised = true;
            }
        }
        Ok(steps)
    })
    .unwrap_or_default();
    (steps, outcome)
}

/// Opens the attribute scope of a function about to be built.
pub(super) fn open_scope() {
    let _ = with(Position::NONE, |build| {
        build.scopes.push(Vec::new());
        Ok(())
    });
}

/// Closes the newest attribute scope into the attributes of the function
/// that opened it.
pub(super) fn close_scope() -> Attributes {
    with(Position::NONE, |build| {
        Ok(Attributes::new(build.scopes.pop().unwrap_or_default()).unwrap_or_default())
    })
    .unwrap_or_default()
}

/// Sets `attribute` on the innermost function being built, in place of an
/// earlier one with its key.
pub(super) fn set_attribute(
    attribute: Attribute,
    position: Position,
) -> Result<(), Box<EvalAltResult>> {
    with(position, |build| {
        build.settle();
        let Some(scope) = build.scopes.last_mut() else {
            return Ok(());
        };
        if let Some(earlier) = scope.iter_mut().find(|a| a.key() == attribute.key()) {
            *earlier = attribute;
        } else if scope.len() == MAX_ATTRIBUTES {
            return Err(error::host_error(
                format!("a step may carry at most {MAX_ATTRIBUTES} attributes"),
                position,
            ));
        } else {
            scope.push(attribute);
        }
        Ok(())
    })
}

/// Adds a step begun with [`begin`] and filled with [`nest`] to the frame
/// that was open when it began.
pub(super) fn attach(step: Step) {
    BUILD.with(|build| {
        if let Some(frame) = build
            .borrow_mut()
            .as_mut()
            .and_then(|build| build.frames.last_mut())
        {
            frame.push(step);
        }
    });
}

/// Makes one step of a branch's steps: the step itself when there is one,
/// else a sequence without a span of its own.
pub(super) fn branch(mut steps: Vec<Step>) -> Step {
    if steps.len() == 1 {
        steps.remove(0)
    } else {
        Step::Sequence(steps)
    }
}

/// How often, in operations, the deadline is checked: reading the clock on
/// every operation would cost more than the operations themselves.
const DEADLINE_CHECK_EVERY: u64 = 256;

/// The engine's progress callback: stops an evaluation past its deadline.
pub(super) fn progress(operations: u64) -> Option<Dynamic> {
    if !operations.is_multiple_of(DEADLINE_CHECK_EVERY) {
        return None;
    }
    BUILD.with(|build| {
        let build = build.try_borrow().ok()?;
        let build = build.as_ref()?;
        let deadline = build.deadline?;
        (Instant::now() >= deadline).then(|| Dynamic::from("deadline"))
    })
}

/// The [`Raise`] at the end of the last steps, found by following each
/// newest step down: where an error still on its way up was placed.
fn last_raise(steps: &mut Vec<Step>) -> Option<&mut Vec<Step>> {
    if matches!(steps.last(), Some(Step::Raise(_))) {
        return Some(steps);
    }
    match steps.last_mut()? {
        Step::Function(function) => last_raise(&mut function.steps),
        Step::Sequence(steps) => last_raise(steps),
        Step::Concurrently(group) => last_raise(&mut group.branches),
        // A retry or a fallback holds only blocks that finished without an
        // error.
        Step::Sleep(_)
        | Step::Call(_)
        | Step::Fail(_)
        | Step::Raise(_)
        | Step::Retry(_)
        | Step::Fallback(_)
        | Step::Log(_)
        | Step::Burn(_)
        | Step::HoldMemory(_) => None,
    }
}

fn take_back_raise(steps: &mut Vec<Step>) {
    if let Some(holder) = last_raise(steps) {
        holder.pop();
    }
}

fn replace_raise(steps: &mut Vec<Step>, raise: Raise) {
    match last_raise(steps).and_then(|holder| holder.last_mut()) {
        Some(last) => *last = Step::Raise(raise),
        None => steps.push(Step::Raise(raise)),
    }
}
