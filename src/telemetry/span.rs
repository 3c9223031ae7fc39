//! Spans as Thespian makes them: light while they run, whole when they end.
//!
//! Each request and each step gets an OpenTelemetry span that, while it
//! runs, holds only its identity, its start time and whatever is logged or
//! set on it meanwhile. Its name and the attributes that describe the step
//! are given when it ends, by the code that opened it, and the finished span
//! goes straight to the batch pipeline. A request asleep in a step thus
//! holds a few hundred bytes of spans, where a `tracing` span bridged to
//! OpenTelemetry held kilobytes (`docs/performance.md` has the
//! measurements).
//!
//! A span is the active span of an OpenTelemetry [`Context`], which the
//! step's future carries (`FutureExt::with_context`). So whatever runs
//! inside it finds it through `Context::current()`: log lines take their
//! trace and span ids from it, calls propagate it, and [`SpanEvents`](super::SpanEvents) adds
//! every event logged inside it to it as a span event.

use std::{borrow::Cow, sync::Arc, time::SystemTime};

use opentelemetry::{
    Context, InstrumentationScope, KeyValue,
    trace::{Event, Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt},
};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{
        Config, IdGenerator, RandomIdGenerator, SamplingDecision, ShouldSample, SpanData,
        SpanLinks, SpanProcessor,
    },
};

/// The most events one span keeps, as the SDK's default limit has it; the
/// rest are counted as dropped, so a script that logs in a loop cannot
/// grow a span without bound.
const MAX_EVENTS: usize = 128;

/// Room for the attributes a span is told as it ends: a step's name, kind
/// and settings, or a request's RPC attributes and status.
const ENDING_ATTRIBUTES: usize = 8;

/// Opens the spans of requests and steps, and hands each to the span
/// pipeline when it ends. Cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Shared>,
}

struct Shared {
    /// Where finished spans go; with none, spans still have ids, so log
    /// lines and responses still name a trace, but nothing is recorded.
    processor: Option<Arc<dyn SpanProcessor>>,
    /// Decides which traces are recorded: `OTEL_TRACES_SAMPLER`, or every
    /// trace whose caller recorded it (or that starts here), by default.
    sampler: Box<dyn ShouldSample>,
    /// Makes trace and span ids.
    ids: RandomIdGenerator,
    /// Names Thespian as the maker of every span.
    scope: InstrumentationScope,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("exporting", &self.inner.processor.is_some())
            .finish()
    }
}

impl Default for Tracer {
    /// A tracer that records nothing: ids only.
    fn default() -> Self {
        Tracer::new(None)
    }
}

impl Tracer {
    /// A tracer whose finished spans go to `processor`, if there is one.
    pub fn new(processor: Option<Arc<dyn SpanProcessor>>) -> Tracer {
        Tracer {
            inner: Arc::new(Shared {
                processor,
                sampler: Config::default().sampler,
                ids: RandomIdGenerator::default(),
                scope: scope(),
            }),
        }
    }

    /// Exports the spans still queued, then stops the pipeline; a tracer
    /// that exports nothing has nothing to stop.
    pub fn shutdown(&self) -> OTelSdkResult {
        match &self.inner.processor {
            Some(processor) => {
                let _ = processor.force_flush();
                processor.shutdown()
            }
            None => Ok(()),
        }
    }

    /// Opens a span called `name` (for the sampler; the span's own name is
    /// given when it ends) as a child of `parent`'s active span, or as the
    /// root of a new trace when `parent` has none. Returns `parent` with the
    /// new span active. End it with [`SpanRef::end`](opentelemetry::trace::SpanRef::end).
    pub fn open(&self, parent: &Context, name: &str, kind: SpanKind) -> Context {
        self.open_at(parent, name, kind, opentelemetry::time::now())
    }

    /// Opens a span as [`Tracer::open`] does, but as if it had started at
    /// `start`: for a span written after the fact, such as the time a
    /// request spent queued, which then costs nothing while it lasts.
    pub fn open_at(
        &self,
        parent: &Context,
        name: &str,
        kind: SpanKind,
        start: SystemTime,
    ) -> Context {
        let shared = &*self.inner;
        let parent_span = parent.span();
        let parent_context = parent_span.span_context();
        let trace_id = if parent_context.is_valid() {
            parent_context.trace_id()
        } else {
            shared.ids.new_trace_id()
        };
        let sampling = shared
            .sampler
            .should_sample(Some(parent), trace_id, name, &kind, &[], &[]);
        let flags = parent_context
            .trace_flags()
            .with_sampled(sampling.decision == SamplingDecision::RecordAndSample);
        let span_context = SpanContext::new(
            trace_id,
            shared.ids.new_span_id(),
            flags,
            false,
            sampling.trace_state,
        );
        if shared.processor.is_none() || sampling.decision == SamplingDecision::Drop {
            // Nothing will be recorded: the context alone carries the ids.
            return parent.with_remote_span_context(span_context);
        }
        let mut span = OpenSpan {
            span_context,
            parent_span_id: parent_context.span_id(),
            parent_is_remote: parent_context.is_valid() && parent_context.is_remote(),
            kind,
            start,
            told: None,
            tracer: Some(self.clone()),
        };
        if !sampling.attributes.is_empty() {
            span.told().attributes = sampling.attributes;
        }
        crate::span_count::SpanCount::count_span();
        parent.with_span(span)
    }
}

/// Names Thespian, at its version, as the maker of every span it exports.
pub(super) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("thespian")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// A span that has not ended: what is known of it so far.
struct OpenSpan {
    span_context: SpanContext,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    kind: SpanKind,
    start: SystemTime,
    /// What it has been told since it opened. Most spans are told nothing
    /// until they end, so this is made when first needed, and a request
    /// waiting on a step holds only the spans' identities.
    told: Option<Box<Told>>,
    /// Where it goes when it ends; taken then, so it ends once.
    tracer: Option<Tracer>,
}

/// What a span is told between opening and ending.
#[derive(Default)]
struct Told {
    /// Its name, given when it ends.
    name: Cow<'static, str>,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    /// Events past [`MAX_EVENTS`].
    dropped_events: u32,
    status: Status,
}

impl OpenSpan {
    fn told(&mut self) -> &mut Told {
        self.told.get_or_insert_default()
    }
}

impl Span for OpenSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let told = self.told();
        if told.events.len() < MAX_EVENTS {
            // Most spans log one or two events, and a request asleep keeps
            // its first one for as long as it sleeps: room for exactly
            // those, rather than the four a first push makes room for.
            if told.events.len() < 2 {
                told.events.reserve_exact(1);
            }
            told.events.push(Event::new(name, timestamp, attributes, 0));
        } else {
            told.dropped_events += 1;
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    fn is_recording(&self) -> bool {
        self.tracer.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        // A step's span is told an attribute or two while it runs (the
        // duration it drew, the outcome it rolled) and holds them for as
        // long as the step waits: room for exactly those, rather than the
        // four a first push makes room for. Once it is named it is ending,
        // and the list grows as lists do (see `update_name`).
        let told = self.told();
        if told.name.is_empty() {
            told.attributes.reserve_exact(1);
        }
        told.attributes.push(attribute);
    }

    fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        // The first attributes a span is given are taken as they come, so a
        // list made to size stays that size while the span waits to be
        // exported.
        let told = self.told();
        if told.attributes.is_empty() {
            told.attributes = attributes.into_iter().collect();
        } else {
            let attributes = attributes.into_iter();
            told.attributes.reserve_exact(attributes.size_hint().0);
            told.attributes.extend(attributes);
        }
    }

    fn set_status(&mut self, status: Status) {
        // As the SDK does: Ok beats Error, which beats Unset.
        let told = self.told();
        if status > told.status {
            told.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        // A span is named as it ends, just before it is told the
        // attributes that describe it. They come one at a time, whatever
        // list they are set as (`SpanRef` passes each on alone), so room
        // is made for them at once rather than one by one.
        let told = self.told();
        told.name = new_name.into();
        told.attributes.reserve(ENDING_ATTRIBUTES);
    }

    fn add_link(&mut self, _span_context: SpanContext, _attributes: Vec<KeyValue>) {}

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        let Some(tracer) = self.tracer.take() else {
            return;
        };
        let Some(processor) = &tracer.inner.processor else {
            return;
        };
        let told = *self.told.take().unwrap_or_default();
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events = told.events;
        events.dropped_count = told.dropped_events;
        let span = SpanData {
            span_context: self.span_context.clone(),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: self.kind.clone(),
            name: told.name,
            start_time: self.start,
            end_time: timestamp,
            attributes: told.attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: told.status,
            instrumentation_scope: tracer.inner.scope.clone(),
        };
        // Whatever the pipeline logs meanwhile belongs to no request: it
        // must not be added to this span, whose lock the caller holds, nor
        // carry its ids.
        let _outside = Context::new().attach();
        processor.on_end(span);
    }
}

/// The trace and span ids, in hex, of the span that whatever runs now is
/// inside, if it is inside one: what every log line carries to join it to
/// its trace.
pub fn current_ids() -> Option<Ids> {
    Context::map_current(|cx| {
        let span = cx.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| Ids {
            trace_id: const_hex::Buffer::new().const_format(&span_context.trace_id().to_bytes()),
            span_id: const_hex::Buffer::new().const_format(&span_context.span_id().to_bytes()),
        })
    })
}

/// A span's trace and span ids in hex, held inline: every log line carries
/// them, and as two strings they cost each line two allocations.
#[derive(Debug, Clone)]
pub struct Ids {
    trace_id: const_hex::Buffer<16>,
    span_id: const_hex::Buffer<8>,
}

impl Ids {
    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        self.trace_id.as_str()
    }

    /// The span id: 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        self.span_id.as_str()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::{TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::error::OTelSdkResult;

    use super::*;

    /// Keeps the spans that end, and notes whether any span was current
    /// while one was handed on.
    #[derive(Debug, Default, Clone)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>, Arc<Mutex<bool>>);

    impl SpanProcessor for Kept {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

        fn on_end(&self, span: SpanData) {
            if Context::map_current(|cx| cx.span().span_context().is_valid()) {
                *self.1.lock().unwrap() = true;
            }
            self.0.lock().unwrap().push(span);
        }

        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }

        fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn caller() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    #[test]
    fn a_span_continues_its_callers_trace_and_is_whole_when_it_ends() {
        let kept = Kept::default();
        let tracer = Tracer::new(Some(Arc::new(kept.clone())));
        let server = tracer.open(&caller(), "A", SpanKind::Server);
        let step = tracer.open(&server, "step", SpanKind::Internal);
        let _inside = step.clone().attach();
        step.span().add_event("said", vec![]);
        step.span().update_name("load cart");
        step.span().set_attribute(KeyValue::new("duration_ms", 5));
        step.span().end();
        step.span().end();
        server.span().set_status(Status::error("boom"));
        server.span().end();

        assert!(
            !*kept.1.lock().unwrap(),
            "what the pipeline logs belongs to no request"
        );
        let kept = kept.0.lock().unwrap();
        assert_eq!(kept.len(), 2, "each span ends once: {kept:?}");
        let (step, server) = (&kept[0], &kept[1]);
        assert_eq!(
            server.span_context.trace_id(),
            caller().span().span_context().trace_id()
        );
        assert_eq!(
            server.parent_span_id,
            caller().span().span_context().span_id()
        );
        assert!(server.parent_span_is_remote);
        assert!(server.span_context.is_sampled());
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(server.status, Status::error("boom"));
        assert_eq!(step.parent_span_id, server.span_context.span_id());
        assert!(!step.parent_span_is_remote);
        assert_eq!(step.name, "load cart");
        assert_eq!(step.attributes, [KeyValue::new("duration_ms", 5)]);
        assert_eq!(step.events.events[0].name, "said");
        assert!(step.start_time <= step.end_time);
    }

    #[test]
    fn a_span_keeps_a_bounded_number_of_events_and_counts_the_rest() {
        let kept = Kept::default();
        let tracer = Tracer::new(Some(Arc::new(kept.clone())));
        let span = tracer.open(&Context::new(), "chatty", SpanKind::Internal);
        for _ in 0..MAX_EVENTS + 5 {
            span.span().add_event("again", vec![]);
        }
        span.span().end();
        let kept = kept.0.lock().unwrap();
        assert_eq!(kept[0].events.events.len(), MAX_EVENTS);
        assert_eq!(kept[0].events.dropped_count, 5);
    }

    #[test]
    fn without_a_pipeline_spans_still_have_ids_but_record_nothing() {
        let span = Tracer::default().open(&Context::new(), "quiet", SpanKind::Server);
        assert!(span.span().span_context().is_valid());
        assert!(!span.span().is_recording());
    }
}
