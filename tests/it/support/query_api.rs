//! A stand-in for a tracing backend's query API: Jaeger's and Tempo's
//! trace-by-id endpoints, in the JSON each documents, answering with the
//! spans an [`OtlpReceiver`] actually received. A test chooses spans for it
//! to "lose", so a trace it serves can be really incomplete or missing.
//!
//! - `GET /jaeger/api/traces/{id}`: Jaeger's `data[].spans[]` and
//!   `processes`, or 404 with Jaeger's error body;
//! - `GET /tempo/api/traces/{id}`: OTLP JSON under `batches`, one batch per
//!   service, or 404.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use super::{
    otlp::{OtlpReceiver, ReceivedSpan},
    receiver::Server,
};

/// Which received spans the backend pretends it never got.
pub type Lost = Arc<dyn Fn(&ReceivedSpan) -> bool + Send + Sync>;

#[derive(Clone)]
struct Backend {
    receiver: Arc<OtlpReceiver>,
    lost: Lost,
}

/// The query API, listening on a free port until dropped.
pub struct QueryApi {
    server: Server,
}

impl QueryApi {
    /// Serves the spans `receiver` got, less those `lost` picks.
    pub async fn start(receiver: Arc<OtlpReceiver>, lost: Lost) -> QueryApi {
        let backend = Backend { receiver, lost };
        let server = Server::start("query API", |listener, shutdown| {
            let app = Router::new()
                .route("/jaeger/api/traces/{id}", get(jaeger))
                .route("/tempo/api/traces/{id}", get(tempo))
                .with_state(backend);
            axum::serve(listener, app).with_graceful_shutdown(shutdown)
        })
        .await;
        QueryApi { server }
    }

    /// `jaeger=URL` for `--verify`.
    pub fn jaeger(&self) -> String {
        format!("jaeger=http://{}/jaeger", self.addr())
    }

    /// `tempo=URL` for `--verify`.
    pub fn tempo(&self) -> String {
        format!("tempo=http://{}/tempo", self.addr())
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

impl Backend {
    /// The spans of trace `id` it has, by service.
    fn trace(&self, id: &str) -> BTreeMap<String, Vec<ReceivedSpan>> {
        let mut by_service: BTreeMap<String, Vec<ReceivedSpan>> = BTreeMap::new();
        for span in self.receiver.spans() {
            if span.trace_id == id && !(self.lost)(&span) {
                let service = span.service_name.clone().unwrap_or_default();
                by_service.entry(service).or_default().push(span);
            }
        }
        by_service
    }
}

async fn jaeger(State(backend): State<Backend>, Path(id): Path<String>) -> Response {
    let trace = backend.trace(&id);
    if trace.is_empty() {
        let body = json!({ "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": 404, "msg": "trace not found" }] });
        return json_answer(StatusCode::NOT_FOUND, body);
    }
    let mut spans = Vec::new();
    let mut processes = serde_json::Map::new();
    for (i, (service, received)) in trace.iter().enumerate() {
        let process = format!("p{}", i + 1);
        processes.insert(
            process.clone(),
            json!({ "serviceName": service, "tags": [] }),
        );
        for span in received {
            spans.push(json!({
                "traceID": span.trace_id, "spanID": span.span_id,
                "operationName": span.name, "references": [],
                "startTime": span.start_time_unix_nano / 1000,
                "duration": (span.end_time_unix_nano - span.start_time_unix_nano) / 1000,
                "tags": [], "logs": [], "processID": process, "warnings": null
            }));
        }
    }
    let body = json!({
        "data": [{ "traceID": id, "spans": spans, "processes": processes, "warnings": null }],
        "total": 0, "limit": 0, "offset": 0, "errors": null
    });
    json_answer(StatusCode::OK, body)
}

async fn tempo(State(backend): State<Backend>, Path(id): Path<String>) -> Response {
    let trace = backend.trace(&id);
    if trace.is_empty() {
        return json_answer(StatusCode::NOT_FOUND, json!({}));
    }
    let batches: Vec<Value> = trace
        .iter()
        .map(|(service, received)| {
            let spans: Vec<Value> = received
                .iter()
                .map(|span| {
                    json!({
                        "traceId": span.trace_id, "spanId": span.span_id,
                        "parentSpanId": span.parent_span_id, "name": span.name,
                        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                        "status": {}
                    })
                })
                .collect();
            json!({
                "resource": { "attributes": [
                    { "key": "service.name", "value": { "stringValue": service } }
                ] },
                "scopeSpans": [{ "scope": { "name": "thespian" }, "spans": spans }]
            })
        })
        .collect();
    json_answer(StatusCode::OK, json!({ "batches": batches }))
}

/// `body` as a JSON answer with `status`.
fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
