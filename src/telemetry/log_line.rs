//! One JSON object per log line, carrying the trace and span ids of the
//! span the event happened in, so a log line leads straight to its trace.
//!
//! A line is written as it is read off the event, straight into one buffer:
//! every request logs, so building a JSON tree first would cost each request
//! a few dozen small allocations for nothing.

use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
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
/// `trace_id`, `span_id`, `target`, then the event's own fields.
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
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut message = Message(None);
        event.record(&mut message);
        let ids = super::current_ids();

        let level = event.metadata().level().as_str();
        let head = [
            ("timestamp", Some(timestamp.as_str())),
            ("level", Some(level)),
            ("message", message.0.as_deref()),
            ("service", Some(self.service.as_str())),
            (
                "trace_id",
                ids.as_ref().map(|(trace_id, _)| trace_id.as_str()),
            ),
            ("span_id", ids.as_ref().map(|(_, span_id)| span_id.as_str())),
            ("target", Some(event.metadata().target())),
        ];
        let mut line = Vec::with_capacity(256);
        write_line(&mut line, &head, event).map_err(|_| fmt::Error)?;
        // serde_json writes only UTF-8.
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)?;
        writer.write_char('\n')
    }
}

/// Writes `head`, less its missing values, then the event's own fields,
/// as one JSON object.
fn write_line(
    out: &mut Vec<u8>,
    head: &[(&'static str, Option<&str>)],
    event: &Event<'_>,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::new(out);
    let mut map = serializer.serialize_map(None)?;
    for (key, value) in head {
        if let Some(value) = value {
            map.serialize_entry(key, value)?;
        }
    }
    let mut fields = Fields {
        map,
        head,
        failed: None,
    };
    event.record(&mut fields);
    match fields.failed {
        Some(error) => Err(error),
        None => fields.map.end(),
    }
}

/// Picks out an event's `message`.
struct Message(Option<String>);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Writes an event's fields, all but `message`, into the line, keeping the
/// first error: a visitor cannot return one. A field named like one of the
/// line's own keys is written as `field.<name>`, so it neither repeats a
/// key nor hides the line's own value.
struct Fields<'a, M> {
    /// The line being written.
    map: M,
    /// The line's own keys.
    head: &'a [(&'static str, Option<&'a str>)],
    /// Why a field could not be written, if one could not.
    failed: Option<serde_json::Error>,
}

impl<M: SerializeMap<Error = serde_json::Error>> Fields<'_, M> {
    fn write(&mut self, field: &Field, value: impl serde::Serialize) {
        let name = field.name();
        if name == "message" || self.failed.is_some() {
            return;
        }
        let written = if self.head.iter().any(|(key, _)| *key == name) {
            self.map.serialize_entry(&format!("field.{name}"), &value)
        } else {
            self.map.serialize_entry(name, &value)
        };
        if let Err(error) = written {
            self.failed = Some(error);
        }
    }
}

impl<M: SerializeMap<Error = serde_json::Error>> tracing::field::Visit for Fields<'_, M> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::JsonLines;

    /// Log lines written by `JsonLines` while `log` runs, one per event.
    fn lines_of(log: impl FnOnce()) -> Vec<Value> {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(JsonLines::new("checkout"))
            .with_writer(move || Writer(sink.clone()));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        let written = written.lock().unwrap();
        std::str::from_utf8(&written)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_the_event_fields_after_the_line_keys() {
        let lines = lines_of(|| {
            tracing::warn!(attempt = 2, slow = true, "card \"declined\"\nretrying");
        });
        assert_eq!(lines.len(), 1);
        let line = lines[0].as_object().unwrap();
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "message",
                "service",
                "target",
                "attempt",
                "slow"
            ]
        );
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "card \"declined\"\nretrying");
        assert_eq!(line["service"], "checkout");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["slow"], true);
    }

    #[test]
    fn a_line_logged_inside_a_span_names_its_trace_and_span() {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let lines = lines_of(|| {
            let _inside = opentelemetry::Context::new()
                .with_remote_span_context(span)
                .attach();
            tracing::info!("charging");
        });
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["span_id"], "00f067aa0ba902b7");
        let outside = lines_of(|| tracing::info!("idle"));
        assert!(outside[0].get("trace_id").is_none(), "{}", outside[0]);
    }

    #[test]
    fn an_event_field_named_like_a_line_key_keeps_its_value_under_a_prefix() {
        let lines = lines_of(|| tracing::info!(level = "deep", service = 7, "nested"));
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["field.level"], "deep");
        assert_eq!(line["service"], "checkout");
        assert_eq!(line["field.service"], 7);
        assert_eq!(line["message"], "nested");
    }
}
