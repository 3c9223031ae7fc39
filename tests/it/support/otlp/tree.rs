//! A received trace as a tree that can be compared with another: what the
//! spans say and how they nest, without what differs between any two runs
//! of the same story (ids, times, the order in which concurrent spans
//! arrived).

use std::fmt;

use super::value::Attributes;
use super::{ReceivedSpan, SpanKind, StatusCode};

/// One span and the spans under it, reduced to what the story decides:
/// its name, kind, status, attributes and events. Children are kept in a
/// canonical order (by how they print), so concurrent branches that ended
/// in another order still compare equal.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanTree {
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// The status code.
    pub status_code: StatusCode,
    /// The status message.
    pub status_message: String,
    /// The span's attributes.
    pub attributes: Attributes,
    /// The span's events, in order: each a name, with how long anything
    /// took masked out of it, and the event's attributes.
    pub events: Vec<(String, Attributes)>,
    /// The spans whose parent this is, in canonical order.
    pub children: Vec<SpanTree>,
}

impl SpanTree {
    /// The tree under `root`, from `spans`: every span of its trace whose
    /// parent is in the tree. The spans may come from several receivers,
    /// since each instance of an ecosystem may export to its own.
    pub fn under(root: &ReceivedSpan, spans: &[ReceivedSpan]) -> SpanTree {
        let children = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id && s.parent_span_id == root.span_id)
            .map(|child| SpanTree::under(child, spans))
            .collect();
        SpanTree {
            name: root.name.clone(),
            kind: root.kind,
            status_code: root.status_code,
            status_message: root.status_message.clone(),
            attributes: root.attributes.clone(),
            events: root
                .events
                .iter()
                .map(|e| (mask_elapsed(&e.name), e.attributes.clone()))
                .collect(),
            children,
        }
        .sorted()
    }

    /// The same tree with every span for which `spliced` holds taken out,
    /// its children handed to its parent: for a span one way of telling a
    /// story makes and another does not. The root is never taken out.
    pub fn splice(mut self, spliced: &impl Fn(&SpanTree) -> bool) -> SpanTree {
        let mut children = Vec::new();
        for child in std::mem::take(&mut self.children) {
            let child = child.splice(spliced);
            if spliced(&child) {
                children.extend(child.children);
            } else {
                children.push(child);
            }
        }
        self.children = children;
        self.sorted()
    }

    /// Every span of the tree, the root first, depth first.
    pub fn spans(&self) -> Vec<&SpanTree> {
        let mut spans = vec![self];
        for child in &self.children {
            spans.extend(child.spans());
        }
        spans
    }

    fn sorted(mut self) -> SpanTree {
        self.children.sort_by_cached_key(|child| child.to_string());
        self
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let indent = "  ".repeat(depth);
        writeln!(
            f,
            "{indent}{:?} {:?} {:?} {:?} {}",
            self.name, self.kind, self.status_code, self.status_message, self.attributes
        )?;
        for (name, attributes) in &self.events {
            writeln!(f, "{indent}  . event {name:?} {attributes}")?;
        }
        for child in &self.children {
            child.write(f, depth + 1)?;
        }
        Ok(())
    }
}

/// One line a span, indented by depth, each followed by its events: a
/// readable diff when two trees differ.
impl fmt::Display for SpanTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

/// An event name with how long something took, written `in 12 ms` (as a
/// call's answer is), masked as `in _ ms`: the network decides it, not
/// the story.
fn mask_elapsed(name: &str) -> String {
    let mut masked = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find(" in ") {
        let (before, after) = rest.split_at(at + " in ".len());
        masked.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && after[digits..].starts_with(" ms") {
            masked.push('_');
            rest = &after[digits..];
        } else {
            rest = after;
        }
    }
    masked.push_str(rest);
    masked
}

#[cfg(test)]
mod tests {
    use super::mask_elapsed;

    #[test]
    fn only_elapsed_milliseconds_are_masked() {
        assert_eq!(
            mask_elapsed("A at http://h:1 answered UNAVAILABLE in 12 ms for `x`"),
            "A at http://h:1 answered UNAVAILABLE in _ ms for `x`"
        );
        assert_eq!(
            mask_elapsed("sleeping 1.5 ms for `in 3 steps`"),
            "sleeping 1.5 ms for `in 3 steps`"
        );
    }
}
