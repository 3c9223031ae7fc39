//! The tracing backends `--verify` reads traces back from, through their
//! trace-by-id HTTP APIs, and what each answer says: the spans it holds, by
//! the `service.name` that sent them.
//!
//! - Jaeger: `GET /api/traces/{id}`, Jaeger's own JSON: `data[].spans[]`,
//!   each with a `processID` naming an entry of `data[].processes`, whose
//!   `serviceName` is the service.
//! - Tempo: `GET /api/traces/{id}` with `Accept: application/json`, OTLP
//!   JSON: `batches[]` (or `resourceSpans[]`, or the v2 API's
//!   `trace.resourceSpans[]`), each a resource with its `service.name` and
//!   `scopeSpans[].spans[]` (`instrumentationLibrarySpans` in older
//!   Tempos).
//!
//! Both answer 404 for a trace they do not have.

use std::{fmt, str::FromStr, time::Duration};

use opentelemetry::trace::TraceId;
use serde_json::Value;

use crate::span_count::BySpans;

/// How long one read of a trace may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read for one trace: far more than any trace poke
/// makes, small enough that a wrong URL cannot exhaust memory.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A tracing backend to read traces back from: `jaeger=URL` or
/// `tempo=URL`, the URL of its query API (Jaeger's UI port, 16686;
/// Tempo's HTTP port, 3200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Which API it speaks.
    pub kind: BackendKind,
    /// Where, without a trailing slash.
    pub url: String,
}

/// The trace-by-id APIs `--verify` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Jaeger's query API.
    Jaeger,
    /// Tempo's query API.
    Tempo,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Backend, String> {
        let (kind, url) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` should be jaeger=URL or tempo=URL"))?;
        let kind = match kind.trim() {
            "jaeger" => BackendKind::Jaeger,
            "tempo" => BackendKind::Tempo,
            other => return Err(format!("`{other}` is not a backend: use jaeger or tempo")),
        };
        let url = crate::with_http_scheme(url.trim())
            .trim_end_matches('/')
            .to_owned();
        reqwest::Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        Ok(Backend { kind, url })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BackendKind::Jaeger => "jaeger",
            BackendKind::Tempo => "tempo",
        };
        write!(f, "{kind}={}", self.url)
    }
}

/// What one read of a trace found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The backend has the trace, with these spans.
    Spans(BySpans),
    /// The backend has no such trace (yet).
    Nothing,
}

impl Backend {
    /// An HTTP client for reading traces.
    pub fn client() -> Result<reqwest::Client, crate::Error> {
        Ok(reqwest::Client::builder().timeout(READ_TIMEOUT).build()?)
    }

    /// Reads trace `id` back.
    pub async fn read(&self, http: &reqwest::Client, id: TraceId) -> Result<Found, String> {
        let url = format!("{}/api/traces/{id}", self.url);
        let answer = http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::explain(&e)))?;
        let status = answer.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Found::Nothing);
        }
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        if answer
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err(format!("{url}: the answer is too large"));
        }
        let body = answer
            .bytes()
            .await
            .map_err(|e| format!("{url}: {}", crate::explain(&e)))?;
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: the answer is not JSON: {e}"))?;
        Ok(self.spans_in(&json))
    }

    /// The spans in a trace-by-id answer, by service.
    pub fn spans_in(&self, answer: &Value) -> Found {
        let spans = match self.kind {
            BackendKind::Jaeger => jaeger_spans(answer),
            BackendKind::Tempo => otlp_spans(answer),
        };
        if spans.total() == 0 {
            Found::Nothing
        } else {
            Found::Spans(spans)
        }
    }
}

/// Spans by service in Jaeger's JSON.
fn jaeger_spans(answer: &Value) -> BySpans {
    let mut spans = BySpans::default();
    for trace in array(&answer["data"]) {
        let processes = &trace["processes"];
        for span in array(&trace["spans"]) {
            let process = span["processID"].as_str().unwrap_or_default();
            let service = processes[process]["serviceName"]
                .as_str()
                .unwrap_or("(unknown)");
            spans.add(service, 1);
        }
    }
    spans
}

/// Spans by service in OTLP JSON, as Tempo's APIs give it.
fn otlp_spans(answer: &Value) -> BySpans {
    let mut spans = BySpans::default();
    let resources = [
        &answer["batches"],
        &answer["resourceSpans"],
        &answer["trace"]["resourceSpans"],
    ];
    for resource_spans in resources.into_iter().flat_map(array) {
        let service = array(&resource_spans["resource"]["attributes"])
            .find(|attribute| attribute["key"] == "service.name")
            .and_then(|attribute| attribute["value"]["stringValue"].as_str())
            .unwrap_or("(unknown)");
        let scopes = [
            &resource_spans["scopeSpans"],
            &resource_spans["instrumentationLibrarySpans"],
        ];
        let count = scopes
            .into_iter()
            .flat_map(array)
            .map(|scope| array(&scope["spans"]).count() as u64)
            .sum();
        spans.add(service, count);
    }
    spans
}

/// The elements of `value` if it is an array, else none.
fn array(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(found: Found) -> String {
        match found {
            Found::Spans(spans) => spans.to_string(),
            Found::Nothing => "nothing".to_owned(),
        }
    }

    #[test]
    fn backends_are_named_with_their_url() {
        let jaeger: Backend = "jaeger=localhost:16686/".parse().unwrap();
        assert_eq!(jaeger.kind, BackendKind::Jaeger);
        assert_eq!(jaeger.url, "http://localhost:16686");
        assert!("zipkin=http://x".parse::<Backend>().is_err());
        assert!("http://x".parse::<Backend>().is_err());
    }

    #[test]
    fn recorded_answers_of_each_backend_are_counted_by_service() {
        let jaeger: Backend = "jaeger=http://j".parse().unwrap();
        let tempo: Backend = "tempo=http://t".parse().unwrap();
        let fixture = |name: &str| -> Value {
            let path = format!(
                "{}/tests/fixtures/verify/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        assert_eq!(
            spans(jaeger.spans_in(&fixture("jaeger-trace.json"))),
            "poke=1,frontend=2,orders=2"
        );
        assert_eq!(
            spans(jaeger.spans_in(&fixture("jaeger-not-found.json"))),
            "nothing"
        );
        assert_eq!(
            spans(tempo.spans_in(&fixture("tempo-trace.json"))),
            "poke=1,frontend=2,orders=2"
        );
        assert_eq!(
            spans(tempo.spans_in(&fixture("tempo-v2-trace.json"))),
            "poke=1,frontend=2"
        );
    }
}
