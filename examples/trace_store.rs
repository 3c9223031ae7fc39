//! A small local tracing backend for `scripts/bench.sh`: an OTLP/gRPC
//! collector that keeps, for each trace, how many spans each service sent,
//! and answers Jaeger's trace-by-id query (`GET /api/traces/{id}`) from
//! them, so `thespian poke --verify jaeger=URL` has something to check
//! against without a real Jaeger.
//!
//! ```text
//! cargo run --release --example trace_store -- --otlp-port N --http-port N
//! ```
//!
//! It keeps at most [`MAX_TRACES`] traces, forgetting the oldest.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use serde_json::json;
use thespian::span_count::BySpans;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Status, transport::Server};

/// The most traces kept.
const MAX_TRACES: usize = 1_000_000;

/// Large enough for any batch an SDK sends.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Spans by service, for each trace kept, oldest first.
#[derive(Default)]
struct Traces {
    by_id: HashMap<String, BySpans>,
    order: VecDeque<String>,
}

type Store = Arc<Mutex<Traces>>;

struct Collector(Store);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        let mut traces = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match &a.value.as_ref()?.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                let id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                if !traces.by_id.contains_key(&id) {
                    if traces.order.len() >= MAX_TRACES
                        && let Some(oldest) = traces.order.pop_front()
                    {
                        traces.by_id.remove(&oldest);
                    }
                    traces.order.push_back(id.clone());
                }
                traces.by_id.entry(id).or_default().add(&service, 1);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Jaeger's answer for trace `id`: one span entry per span kept.
async fn trace(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let spans = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .by_id
        .get(&id)
        .cloned();
    let Some(spans) = spans else {
        let body = json!({ "data": null, "errors": [{ "code": 404, "msg": "trace not found" }] });
        return answer(StatusCode::NOT_FOUND, body);
    };
    let mut entries = Vec::new();
    let mut processes = serde_json::Map::new();
    for (i, (service, count)) in spans.iter().enumerate() {
        let process = format!("p{}", i + 1);
        processes.insert(
            process.clone(),
            json!({ "serviceName": service, "tags": [] }),
        );
        for n in 0..count {
            entries.push(json!({ "traceID": id, "spanID": format!("{i:08x}{n:08x}"),
                "processID": process }));
        }
    }
    let body = json!({ "data": [{ "traceID": id, "spans": entries, "processes": processes }],
        "errors": null });
    answer(StatusCode::OK, body)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The value after `flag` on the command line, as a port.
fn port(flag: &str) -> Result<u16, thespian::Error> {
    let args: Vec<String> = std::env::args().collect();
    let at = args
        .iter()
        .position(|a| a == flag)
        .ok_or_else(|| format!("{flag} N is required"))?;
    Ok(args
        .get(at + 1)
        .ok_or_else(|| format!("{flag} needs a port"))?
        .parse()?)
}

#[tokio::main]
async fn main() -> Result<(), thespian::Error> {
    let store = Store::default();
    let otlp = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port("--otlp-port")?))).await?;
    let http = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port("--http-port")?))).await?;
    println!(
        "OTLP on {}, Jaeger's trace-by-id API on http://{}",
        otlp.local_addr()?,
        http.local_addr()?
    );
    let app = Router::new()
        .route("/api/traces/{id}", get(trace))
        .with_state(Arc::clone(&store));
    let query = tokio::spawn(async move { axum::serve(http, app).await });
    Server::builder()
        .add_service(
            TraceServiceServer::new(Collector(store)).max_decoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming(TcpListenerStream::new(otlp))
        .await?;
    query.abort();
    Ok(())
}
