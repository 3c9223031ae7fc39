//! The effective behaviour of a method as text: its steps, one a line,
//! indented by depth, each with the active scenarios that change it, so an
//! operator can see what a request does now without reading the config.

use std::{fmt::Write as _, sync::Arc};

use crate::{
    behaviour::{Behaviour, Latency, MethodName, Scenario, Scope, Step},
    failure::code_name,
    incident::InPlay,
};

/// The most lines one method's description runs to; a tree longer than
/// that is cut, and says so.
const MAX_LINES: usize = 500;

/// What `method` does now, under the scenarios `in_play`.
pub fn describe(behaviour: &Behaviour, method: MethodName, in_play: Option<&InPlay>) -> String {
    let scenarios: &[Arc<Scenario>] = in_play.map_or(&[], |p| &p.0);
    let mut text = String::new();
    let covering: Vec<&str> = scenarios
        .iter()
        .filter(|s| s.scope.covers_request(method))
        .map(|s| &*s.name)
        .collect();
    if !covering.is_empty() {
        let _ = writeln!(text, "every request: scenario {}", covering.join(", "));
    }
    let Some(director) = behaviour.get(method) else {
        text.push_str("answers at once: the config gives it nothing to do\n");
        return text;
    };
    if let Some(script) = director.script() {
        let _ = writeln!(
            text,
            "script {script}, which builds the steps afresh for each request; one such:"
        );
    }
    let tree = director.direct();
    let mut lines = 0;
    write_step(&tree, 0, scenarios, &mut text, &mut lines);
    if lines > MAX_LINES {
        let _ = writeln!(text, "... and {} more lines", lines - MAX_LINES);
    }
    text
}

/// Writes `step` at `depth`, then the steps it holds, one deeper.
fn write_step(
    step: &Step,
    depth: usize,
    scenarios: &[Arc<Scenario>],
    text: &mut String,
    lines: &mut usize,
) {
    *lines += 1;
    if *lines > MAX_LINES {
        return;
    }
    let indent = "  ".repeat(depth);
    let _ = write!(text, "{indent}{}", line(step));
    let touching: Vec<&str> = scenarios
        .iter()
        .filter(|s| matches!(&s.scope, Scope::Step(name) if **name == *step.name()))
        .map(|s| &*s.name)
        .collect();
    if !touching.is_empty() {
        let _ = write!(text, "  <- scenario {}", touching.join(", "));
    }
    text.push('\n');
    let children: Vec<&Step> = match step {
        Step::Function(f) => f.steps.iter().collect(),
        Step::Concurrently(c) => c.branches.iter().collect(),
        Step::Sequence(steps) => steps.iter().collect(),
        Step::Retry(r) => vec![&*r.step],
        Step::Fallback(f) => vec![&*f.primary, &*f.fallback],
        _ => Vec::new(),
    };
    for child in children {
        write_step(child, depth + 1, scenarios, text, lines);
    }
}

/// One step's own line.
fn line(step: &Step) -> String {
    match step {
        Step::Sleep(s) => {
            let mut line = format!("sleep `{}` {}", s.name, latency(&s.latency));
            if let Some(fault) = &s.fault {
                let _ = write!(line, ", fails {} of the time", fault.chance());
            }
            if !s.failures.is_empty() {
                let _ = write!(line, ", {} failures listed", s.failures.outcomes().len());
            }
            line
        }
        Step::Call(c) => format!("call `{}`: {} at {}", c.name, c.method, c.target),
        Step::Function(f) => format!("function `{}`", f.name),
        Step::Concurrently(c) => match &c.name {
            Some(name) => format!("concurrently `{name}`"),
            None => "concurrently".to_owned(),
        },
        Step::Fail(f) => format!(
            "fail `{}` {} of the time with {}",
            f.name,
            f.fault.chance(),
            code_name(f.fault.code())
        ),
        Step::Raise(r) => format!("raise {}: {}", code_name(r.code), r.message),
        Step::Sequence(_) => "in order".to_owned(),
        Step::Retry(r) => format!("retried, {} attempts at most", r.policy.max_attempts()),
        Step::Log(l) => format!("log \"{}\"", l.message),
        Step::Fallback(f) => format!("fallback `{}`: primary, then fallback", f.name),
        Step::Burn(b) => format!("burn `{}` {} of CPU", b.name, latency(&b.cpu)),
        Step::HoldMemory(h) => format!(
            "hold_memory `{}` {} bytes for {}",
            h.name,
            h.bytes.0,
            latency(&h.duration)
        ),
    }
}

/// A latency as a person reads it: a fixed wait in milliseconds, or the
/// shape it is drawn from.
fn latency(latency: &Latency) -> String {
    match latency {
        Latency::Fixed(wait) => format!("{} ms", wait.as_secs_f64() * 1000.0),
        other => format!("drawn from a {} distribution", other.kind()),
    }
}
