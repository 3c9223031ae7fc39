//! What the receiver records: each log line with its stream's labels, and
//! each push request as it arrived.

use std::collections::BTreeMap;
use std::fmt;

/// Which body format a push used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushFormat {
    /// Snappy block-compressed protobuf `PushRequest`.
    Protobuf,
    /// Loki's JSON push format.
    Json,
}

/// One push request as it arrived, whatever the receiver answered: lets a
/// test check that the service *tried* to push, with which headers, and why
/// a body was refused.
#[derive(Clone, Debug)]
pub struct LokiPush {
    /// The request headers that could be read as text, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// How many entries the body held (0 if it could not be decoded).
    pub entries: usize,
    /// The HTTP status the receiver answered (0 while still in flight).
    pub status: u16,
    /// Why the body was refused, if it was.
    pub error: Option<String>,
}

/// One received log line with its stream's labels: the unit tests assert on.
#[derive(Clone, Debug, PartialEq)]
pub struct LokiEntry {
    /// The stream labels, parsed from the label string (or the JSON `stream`
    /// object).
    pub labels: BTreeMap<String, String>,
    /// The log line as pushed (for `tracing-loki`, a JSON object).
    pub line: String,
    /// The entry's timestamp in nanoseconds since the Unix epoch.
    pub timestamp_nanos: i64,
    /// The entry's structured metadata, if any.
    pub structured_metadata: BTreeMap<String, String>,
    /// The format of the push that carried it.
    pub format: PushFormat,
}

impl LokiEntry {
    /// The label `key`, if the stream had it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The line parsed as JSON, if it is JSON (as `tracing-loki` sends).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.line).ok()
    }

    /// The field `key` of a JSON line, rendered as text (strings without
    /// quotes), if the line is JSON and has it.
    pub fn json_field(&self, key: &str) -> Option<String> {
        let value = self.json()?.get(key)?.clone();
        Some(match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// The `message` field of a JSON line (the formatted message of a
    /// `tracing` event), or the raw line if it is not JSON.
    pub fn message(&self) -> String {
        self.json_field("message")
            .unwrap_or_else(|| self.line.clone())
    }
}

impl fmt::Display for LokiEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}} @{} {:?}", self.timestamp_nanos, self.line)?;
        if !self.structured_metadata.is_empty() {
            write!(f, " metadata={:?}", self.structured_metadata)?;
        }
        Ok(())
    }
}
