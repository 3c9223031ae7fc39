//! One JSON object per log line, carrying the trace and span ids of the
//! span the event happened in, so a log line leads straight to its trace.
//!
//! A line is written as it is read off the event, straight into the buffer
//! that goes to the stdout thread. Every request logs, so a JSON tree, or
//! the timestamp, message and ids each held as a string first, would cost
//! every request allocations and copies for nothing.

use std::{fmt, io::Write as _, time::SystemTime};

use serde::{Serialize, Serializer};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{Layer, layer};

use super::stdout::Lines;

/// The bytes a line's buffer starts with: enough for a step's line, ids
/// included, so most lines are written without growing it.
const LINE_BYTES: usize = 256;

/// The line's own keys, in the order they are written; an event field
/// named like one is written as `field.<name>`.
const LINE_KEYS: [&str; 7] = [
    "timestamp",
    "level",
    "message",
    "service",
    "trace_id",
    "span_id",
    "target",
];

/// Writes each event as a JSON line to stdout's writer thread: `timestamp`,
/// `level`, `message`, `service`, `trace_id`, `span_id`, `target`, then the
/// event's own fields. The ids and the message are left out when there are
/// none.
#[derive(Debug)]
pub struct JsonLines {
    /// Written on every line, so lines from many instances can be mixed.
    service: String,
    /// Where the lines go.
    lines: Lines,
}

impl JsonLines {
    /// Lines stamped with `service`, handed to `lines`.
    pub fn new(service: &str, lines: Lines) -> JsonLines {
        JsonLines {
            service: service.to_owned(),
            lines,
        }
    }
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _: layer::Context<'_, S>) {
        let mut line = Vec::with_capacity(LINE_BYTES);
        match write_line(&mut line, &self.service, event) {
            Ok(()) => {
                line.push(b'\n');
                self.lines.send(line);
            }
            // Only a field whose `Debug` fails gets here: the line is
            // counted as dropped rather than written half.
            Err(_) => self.lines.count_dropped(),
        }
    }
}

/// Writes `event` as one JSON object: the line's own keys first, then the
/// event's fields. The keys and the values that cannot hold a character
/// JSON escapes (the time, the level, the ids) are copied in as they are;
/// every other string goes through [`put_str`].
fn write_line(out: &mut Vec<u8>, service: &str, event: &Event<'_>) -> serde_json::Result<()> {
    let metadata = event.metadata();
    out.extend_from_slice(b"{\"timestamp\":\"");
    // RFC 3339 is digits and punctuation; writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{}",
        humantime::format_rfc3339_micros(SystemTime::now())
    );
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(metadata.level().as_str().as_bytes());
    out.push(b'"');
    Entries::write(out, Pass::Message, event)?;
    out.extend_from_slice(b",\"service\":");
    put_str(out, service)?;
    if let Some(ids) = super::current_ids() {
        out.extend_from_slice(b",\"trace_id\":\"");
        out.extend_from_slice(ids.trace_id().as_bytes());
        out.extend_from_slice(b"\",\"span_id\":\"");
        out.extend_from_slice(ids.span_id().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"target\":");
    put_str(out, metadata.target())?;
    Entries::write(out, Pass::Fields, event)?;
    out.push(b'}');
    Ok(())
}

/// Writes `value` as a JSON string: as it is when it holds nothing JSON
/// escapes, as most keys and values do, and through serde_json otherwise.
/// (serde_json's own map writer cost a line some 2,000 instructions more.)
fn put_str(out: &mut Vec<u8>, value: &str) -> serde_json::Result<()> {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, value)
    }
}

/// A field's `Debug` form, written straight into the line as a string.
struct Debugged<'a>(&'a dyn fmt::Debug);

impl Serialize for Debugged<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:?}", self.0))
    }
}

/// Which of an event's fields a pass over them writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Only `message`, which comes among the line's own keys.
    Message,
    /// All but `message`, after the line's own keys.
    Fields,
}

/// Writes an event's fields into the line, keeping the first error: a
/// visitor cannot return one. A field named like one of the line's own keys
/// is written as `field.<name>`, so it neither repeats a key nor hides the
/// line's own value.
struct Entries<'a> {
    /// The line being written.
    out: &'a mut Vec<u8>,
    pass: Pass,
    /// Why a field could not be written, if one could not.
    failed: Option<serde_json::Error>,
}

impl<'a> Entries<'a> {
    /// Writes the fields of `event` that `pass` takes.
    fn write(out: &'a mut Vec<u8>, pass: Pass, event: &Event<'_>) -> serde_json::Result<()> {
        let mut entries = Entries {
            out,
            pass,
            failed: None,
        };
        event.record(&mut entries);
        entries.failed.map_or(Ok(()), Err)
    }

    fn entry(&mut self, field: &Field, value: impl Serialize) {
        let name = field.name();
        if (name == "message") != (self.pass == Pass::Message) || self.failed.is_some() {
            return;
        }
        self.out.push(b',');
        let key = if self.pass == Pass::Fields && LINE_KEYS.contains(&name) {
            put_str(self.out, &format!("field.{name}"))
        } else {
            put_str(self.out, name)
        };
        self.out.push(b':');
        let written = key.and_then(|()| serde_json::to_writer(&mut *self.out, &value));
        if let Err(error) = written {
            self.failed = Some(error);
        }
    }
}

impl tracing::field::Visit for Entries<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, Debugged(value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::{super::stdout, JsonLines};

    /// Log lines written by `JsonLines` while `log` runs, one per event,
    /// through the stdout thread.
    fn lines_of(log: impl FnOnce()) -> Vec<Value> {
        lines_of_service("checkout", log)
    }

    /// The same, with the lines stamped `service`.
    fn lines_of_service(service: &str, log: impl FnOnce()) -> Vec<Value> {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (lines, thread, _) = stdout::start(Writer(written.clone()), 1 << 20).unwrap();
        let layer = JsonLines::new(service, lines);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        // The thread writes everything queued before it stops.
        drop(thread);
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

    #[test]
    fn what_json_escapes_is_escaped_wherever_it_appears() {
        #[derive(Debug)]
        struct Odd;
        let lines = lines_of_service("check\"out\\eu", || {
            tracing::info!(
                target: "odd\ttarget",
                quoted = "say \"hi\"\ttab",
                debugged = ?Odd,
                unicode = "café ✓",
                "bell \u{7}"
            );
        });
        let line = &lines[0];
        assert_eq!(line["service"], "check\"out\\eu");
        assert_eq!(line["target"], "odd\ttarget");
        assert_eq!(line["message"], "bell \u{7}");
        assert_eq!(line["quoted"], "say \"hi\"\ttab");
        assert_eq!(line["debugged"], "Odd");
        assert_eq!(line["unicode"], "café ✓");
    }
}
