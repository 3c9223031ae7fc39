//! A step's span: opened as the step starts, current whenever the step
//! runs, marked failed as a failure passes through it, and ended, with the
//! step's name and attributes, as the step finishes or is dropped.

use std::{
    future::Future,
    pin::Pin,
    task::{self, Poll},
};

use opentelemetry::{
    Context, KeyValue,
    trace::{SpanKind, Status as OtelStatus, TraceContextExt},
};

use super::{
    attributes::attributes,
    dice::Dice,
    name::{SpanNames, span_name},
};
use crate::{behaviour::Step, deadline::Deadline, failure::Failure, telemetry::Tracer};

pin_project_lite::pin_project! {
    /// A step acting inside its span, which is the current span whenever
    /// the step runs. The span ends when the step finishes, or when it is
    /// dropped unfinished with its request. One context serves both, where
    /// `WithContext` and a drop guard would each keep one, in every step of
    /// every request in flight.
    ///
    /// A step dropped unfinished drops its work inside the span, before the
    /// span ends, so that what the work records as it is cut short (a
    /// sleep's drawn duration) is in the span it belongs to.
    pub(super) struct Traced<'a, F> {
        // The step's body: `None` only while the step is being dropped.
        #[pin]
        work: Option<F>,
        names: SpanNames,
        step: &'a Step,
        dice: Dice,
        cx: Context,
    }

    impl<F> PinnedDrop for Traced<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            {
                let _inside = this.cx.clone().attach();
                this.work.set(None);
            }
            mark_cut(this.cx);
            end_span(*this.names, this.step, *this.dice, this.cx);
        }
    }
}

impl<'a, F> Traced<'a, F> {
    /// Opens the span of `step` under the current span, now, as the step
    /// starts, around `work`, the step's body; `dice` are the step's own.
    pub(super) fn open(
        tracer: &Tracer,
        names: SpanNames,
        step: &'a Step,
        kind: SpanKind,
        dice: Dice,
        work: F,
    ) -> Traced<'a, F> {
        Traced {
            cx: tracer.open(&Context::current(), span_name(step, names), kind),
            names,
            step,
            dice,
            work: Some(work),
        }
    }
}

impl<F: Future> Future for Traced<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(work) = this.work.as_pin_mut() else {
            // The work is gone only while the step is dropped, when nothing
            // polls it.
            return Poll::Pending;
        };
        let polled = {
            let _inside = this.cx.clone().attach();
            work.poll(task)
        };
        if polled.is_ready() {
            end_span(*this.names, this.step, *this.dice, this.cx);
        }
        polled
    }
}

/// Ends the span of `step` that is active in `cx`, giving it the step's
/// name and attributes, unless it has ended already.
fn end_span(names: SpanNames, step: &Step, dice: Dice, cx: &Context) {
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    span.update_name(span_name(step, names).to_owned());
    span.set_attributes(attributes(step, dice));
    span.end();
}

/// Marks the span active in `cx`, of a step dropped unfinished, as cut by
/// its request's deadline when that is why it was dropped.
fn mark_cut(cx: &Context) {
    let span = cx.span();
    if span.is_recording() && Deadline::of(cx).is_some_and(Deadline::passed) {
        span.set_attribute(KeyValue::new("thespian.deadline.cut", true));
        span.set_status(OtelStatus::error(
            "cut off: the caller's deadline passed while this step ran",
        ));
    }
}

/// Marks the current span as failed without logging again.
pub(super) fn mark_failed(failure: &Failure) {
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.set_status(OtelStatus::error(failure.to_string()));
        }
    });
}
