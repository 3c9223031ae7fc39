//! One JSON object per log line, carrying the trace and span ids of the
//! span the event happened in, so a log line leads straight to its trace.

use std::fmt;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The JSON line format: `timestamp`, `level`, `message`, `service`,
/// `trace_id`, `span_id`, `target`, `span`, then the event's own fields.
#[derive(Debug, Clone)]
pub struct JsonLines {
    /// Written on every line, so lines from many instances can be mixed.
    service: String,
}

impl JsonLines {
    /// A format that stamps every line with `service`.
    pub fn new(service: &str) -> JsonLines {
        JsonLines {
            service: service.to_owned(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;

        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("message".into(), Value::Null);
        line.insert("service".into(), self.service.clone().into());

        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some((trace_id, span_id)) =
            span.as_ref().and_then(|span| super::trace_ids(&span.id()))
        {
            line.insert("trace_id".into(), trace_id.into());
            line.insert("span_id".into(), span_id.into());
        }
        line.insert("target".into(), event.metadata().target().into());
        if let Some(span) = &span {
            line.insert("span".into(), span.name().into());
        }

        let mut fields = FieldsToJson(&mut line);
        event.record(&mut fields);
        if line.get("message") == Some(&Value::Null) {
            line.remove("message");
        }

        writeln!(
            writer,
            "{}",
            serde_json::to_string(&line).map_err(|_| fmt::Error)?
        )
    }
}

/// Copies an event's fields into the line, `message` included.
struct FieldsToJson<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for FieldsToJson<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
