//! Events as span events: every event logged inside a recorded span is
//! added to that span, so a trace view shows what each step said without a
//! trip to the logs.

use std::borrow::Cow;

use opentelemetry::{Context, KeyValue, trace::TraceContextExt};
use tracing::{
    Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer};

/// Adds each event logged inside a recorded span to that span, as a span
/// event named by its message, with its level, target and fields as
/// attributes, so a trace view shows what each step said.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanEvents;

impl<S: Subscriber> Layer<S> for SpanEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: layer::Context<'_, S>) {
        Context::map_current(|cx| {
            let span = cx.span();
            if !span.is_recording() {
                return;
            }
            let metadata = event.metadata();
            let mut fields = EventFields {
                message: None,
                attributes: vec![
                    KeyValue::new("level", metadata.level().as_str()),
                    KeyValue::new("target", metadata.target()),
                ],
            };
            event.record(&mut fields);
            let name = match fields.message {
                Some(message) => Cow::Owned(message),
                None => Cow::Borrowed(metadata.name()),
            };
            span.add_event(name, fields.attributes);
        });
    }
}

/// An event's message, and its other fields as attributes.
struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Visit for EventFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        // Backends compare and sum integers, not strings of digits.
        match i64::try_from(value) {
            Ok(value) => self.record_i64(field, value),
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.attributes
                .push(KeyValue::new(field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.attributes
                .push(KeyValue::new(field.name(), format!("{value:?}")));
        }
    }
}
