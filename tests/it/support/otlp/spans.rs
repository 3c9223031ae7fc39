//! Received spans, flattened with their resource and scope, and the
//! queries that let a test navigate a trace in one line.

use std::fmt;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::value::{Attributed, Attributes, attributes_map, flatten_resource, hex, scope_name};
use super::{SpanKind, StatusCode};
use crate::support::receiver::list;

/// One received span, flattened with its resource and scope, so a test can
/// assert on it without walking `ResourceSpans`/`ScopeSpans`.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// All resource attributes.
    pub resource: Attributes,
    /// The instrumentation scope's name.
    pub scope_name: String,
    /// The trace id as 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id as 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id as lowercase hex, or empty for a root span.
    pub parent_span_id: String,
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// Start time in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End time in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// The status code (`Unset` when no status was sent).
    pub status_code: StatusCode,
    /// The status message.
    pub status_message: String,
    /// The span's attributes.
    pub attributes: Attributes,
    /// The span's events, in order.
    pub events: Vec<ReceivedEvent>,
    /// The span's links, in order.
    pub links: Vec<ReceivedLink>,
}

impl Attributed for ReceivedSpan {
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

impl ReceivedSpan {
    /// Whether this span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// The span's duration (zero if the end is before the start).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(
            self.end_time_unix_nano
                .saturating_sub(self.start_time_unix_nano),
        )
    }

    /// The first event with this name.
    pub fn event(&self, name: &str) -> Option<&ReceivedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    /// The spans of one export request.
    pub(super) fn flatten(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for rs in &request.resource_spans {
            let (resource, service_name) = flatten_resource(rs.resource.as_ref());
            for ss in &rs.scope_spans {
                let scope_name = scope_name(ss.scope.as_ref());
                for span in &ss.spans {
                    let (status_code, status_message) = match &span.status {
                        Some(s) => (
                            StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset),
                            s.message.clone(),
                        ),
                        None => (StatusCode::Unset, String::new()),
                    };
                    out.push(ReceivedSpan {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        start_time_unix_nano: span.start_time_unix_nano,
                        end_time_unix_nano: span.end_time_unix_nano,
                        status_code,
                        status_message,
                        attributes: Attributes(attributes_map(&span.attributes)),
                        events: span
                            .events
                            .iter()
                            .map(|e| ReceivedEvent {
                                name: e.name.clone(),
                                time_unix_nano: e.time_unix_nano,
                                attributes: Attributes(attributes_map(&e.attributes)),
                            })
                            .collect(),
                        links: span
                            .links
                            .iter()
                            .map(|l| ReceivedLink {
                                trace_id: hex(&l.trace_id),
                                span_id: hex(&l.span_id),
                            })
                            .collect(),
                    });
                }
            }
        }
        out
    }
}

impl fmt::Display for ReceivedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "span {:?} [{}] kind={:?} status={:?}",
            self.name,
            self.service_name.as_deref().unwrap_or("<no service.name>"),
            self.kind,
            self.status_code,
        )?;
        if !self.status_message.is_empty() {
            write!(f, "({:?})", self.status_message)?;
        }
        write!(
            f,
            " trace={} span={} parent={} dur={:?} attrs={}",
            self.trace_id,
            self.span_id,
            if self.parent_span_id.is_empty() {
                "-"
            } else {
                &self.parent_span_id
            },
            self.duration(),
            self.attributes,
        )?;
        for e in &self.events {
            write!(f, "\n      event {:?} {}", e.name, e.attributes)?;
        }
        for l in &self.links {
            write!(f, "\n      link trace={} span={}", l.trace_id, l.span_id)?;
        }
        Ok(())
    }
}

/// One span event, flattened.
#[derive(Clone, Debug)]
pub struct ReceivedEvent {
    /// The event name (for events bridged from `tracing`, often the message).
    pub name: String,
    /// When the event happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The event's attributes.
    pub attributes: Attributes,
}

impl Attributed for ReceivedEvent {
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

/// One span link, flattened.
#[derive(Clone, Debug)]
pub struct ReceivedLink {
    /// The linked trace id as lowercase hex.
    pub trace_id: String,
    /// The linked span id as lowercase hex.
    pub span_id: String,
}

/// Queries over a batch of received spans, so tests can navigate a trace
/// (`spans.only_named("x")`, `spans.children_of(&root)`) in one line.
pub trait SpansExt {
    /// All spans with this name.
    fn named(&self, name: &str) -> Vec<&ReceivedSpan>;
    /// The single span with this name; panics with a dump unless there is
    /// exactly one.
    fn only_named(&self, name: &str) -> &ReceivedSpan;
    /// The spans whose parent is `parent`.
    fn children_of(&self, parent: &ReceivedSpan) -> Vec<&ReceivedSpan>;
    /// The spans of one trace.
    fn in_trace(&self, trace_id: &str) -> Vec<&ReceivedSpan>;
}

impl SpansExt for [ReceivedSpan] {
    fn named(&self, name: &str) -> Vec<&ReceivedSpan> {
        self.iter().filter(|s| s.name == name).collect()
    }

    fn only_named(&self, name: &str) -> &ReceivedSpan {
        let found = self.named(name);
        if found.len() != 1 {
            panic!(
                "expected exactly one span named {name:?}, found {}; received spans:\n{}",
                found.len(),
                list(self),
            );
        }
        found[0]
    }

    fn children_of(&self, parent: &ReceivedSpan) -> Vec<&ReceivedSpan> {
        self.iter()
            .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
            .collect()
    }

    fn in_trace(&self, trace_id: &str) -> Vec<&ReceivedSpan> {
        self.iter().filter(|s| s.trace_id == trace_id).collect()
    }
}
