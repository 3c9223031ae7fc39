//! Decoding what a push carries: the two body formats Loki accepts, and
//! the label strings of protobuf streams.

use std::collections::BTreeMap;

use super::logproto;
use super::{LokiEntry, PushFormat};

/// Parses a Prometheus-style label string such as
/// `{service_name="x", level="info"}` into a map. Values may use Go `%q` /
/// Rust `{:?}` escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\u{..}`, `\uXXXX`,
/// `\xHH`), which is how clients quote them.
pub fn parse_labels(input: &str) -> Result<BTreeMap<String, String>, String> {
    let s = input.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("labels {input:?} are not enclosed in {{}}"))?;
    let mut chars = inner.chars().peekable();
    let mut labels = BTreeMap::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' || c == '.' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(format!("labels {input:?}: expected name=\"value\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(format!("labels {input:?}: value of {name} is not quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("labels {input:?}: unterminated value of {name}")),
                Some('"') => break,
                Some('\\') => {
                    let escaped = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('0') => '\0',
                        Some('"') => '"',
                        Some('\'') => '\'',
                        Some('\\') => '\\',
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("labels {input:?}: bad \\x escape"))?
                        }
                        Some('u') => {
                            let hex: String = if chars.peek() == Some(&'{') {
                                chars.next();
                                chars.by_ref().take_while(|c| *c != '}').collect()
                            } else {
                                chars.by_ref().take(4).collect()
                            };
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("labels {input:?}: bad \\u escape"))?
                        }
                        other => {
                            return Err(format!(
                                "labels {input:?}: unknown escape \\{}",
                                other.map(String::from).unwrap_or_default()
                            ));
                        }
                    };
                    value.push(escaped);
                }
                Some(c) => value.push(c),
            }
        }
        if labels.insert(name.clone(), value).is_some() {
            return Err(format!("labels {input:?}: duplicate label {name}"));
        }
    }
}

/// Decodes a protobuf push body (snappy block format, as Loki requires).
pub(super) fn decode_protobuf(body: &[u8]) -> Result<Vec<LokiEntry>, String> {
    use prost::Message as _;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("body is not snappy block-compressed: {e}"))?;
    let request = logproto::PushRequest::decode(raw.as_slice())
        .map_err(|e| format!("body is not a logproto.PushRequest: {e}"))?;
    let mut entries = Vec::new();
    for stream in request.streams {
        let labels = parse_labels(&stream.labels)?;
        for entry in stream.entries {
            let timestamp_nanos = entry
                .timestamp
                .map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
                .unwrap_or(0);
            entries.push(LokiEntry {
                labels: labels.clone(),
                line: entry.line,
                timestamp_nanos,
                structured_metadata: entry
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
                format: PushFormat::Protobuf,
            });
        }
    }
    Ok(entries)
}

/// Decodes a JSON push body:
/// `{"streams":[{"stream":{..},"values":[["<ns>","line",{..}?]]}]}`.
pub(super) fn decode_json(body: &[u8]) -> Result<Vec<LokiEntry>, String> {
    use serde_json::Value as J;
    let doc: J = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let streams = doc
        .get("streams")
        .and_then(J::as_array)
        .ok_or("JSON push has no \"streams\" array")?;
    let text_map = |v: Option<&J>, what: &str| -> Result<BTreeMap<String, String>, String> {
        match v {
            None | Some(J::Null) => Ok(BTreeMap::new()),
            Some(J::Object(o)) => o
                .iter()
                .map(|(k, v)| match v {
                    J::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(format!("{what} {k} is not a string: {other}")),
                })
                .collect(),
            Some(other) => Err(format!("{what} is not an object: {other}")),
        }
    };
    let mut entries = Vec::new();
    for stream in streams {
        let labels = text_map(stream.get("stream"), "stream label")?;
        let values = stream
            .get("values")
            .and_then(J::as_array)
            .ok_or("JSON stream has no \"values\" array")?;
        for value in values {
            let parts = value
                .as_array()
                .filter(|p| p.len() == 2 || p.len() == 3)
                .ok_or_else(|| format!("JSON value {value} is not [ts, line, metadata?]"))?;
            let timestamp_nanos = match &parts[0] {
                J::String(s) => s.parse::<i64>().ok(),
                J::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| format!("JSON timestamp {} is not nanoseconds", parts[0]))?;
            let line = parts[1]
                .as_str()
                .ok_or_else(|| format!("JSON line {} is not a string", parts[1]))?
                .to_owned();
            entries.push(LokiEntry {
                labels: labels.clone(),
                line,
                timestamp_nanos,
                structured_metadata: text_map(parts.get(2), "structured metadata")?,
                format: PushFormat::Json,
            });
        }
    }
    Ok(entries)
}
