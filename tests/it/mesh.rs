//! What a service mesh sees of Thespians, end to end between real
//! instances: a call cycle stopped by the hop limit, B3 headers read and
//! written, `x-request-id` and baggage passed on, and a script that acts
//! on the request's baggage and headers.

use std::sync::{Arc, Mutex};

use serde_json::json;
use thespian::proto::{
    Empty,
    thespian_server::{Thespian, ThespianServer},
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::Instance;
use crate::support::otlp::{
    Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _, Value,
};

/// A trace id the tests' requests continue.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The caller's span id in that trace.
const SPAN: &str = "00f067aa0ba902b7";

/// A method A that calls method A at `port` on this machine.
fn calling(port: u16) -> String {
    json!({ "grpc_method_a": { "tracing_name": "pass it on", "operations": [
        { "Action": { "CallService": {
            "tracing_name": "next", "service_address": "127.0.0.1",
            "service_port": port, "grpc_method": "A"
        } } }
    ] } })
    .to_string()
}

/// A port nobody listens on now, for an instance that must be named in
/// another's config before it starts.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// The spans of `trace` once `servers` server spans have arrived.
async fn trace(receiver: &OtlpReceiver, trace: &str, servers: usize) -> Vec<ReceivedSpan> {
    receiver
        .wait_for_trace(
            trace,
            |spans| spans.iter().filter(|s| s.kind == SpanKind::Server).count() >= servers,
            DEFAULT_WAIT,
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cycle_ends_at_the_hop_limit_with_the_count_and_path() {
    let receiver = OtlpReceiver::start().await;
    let beta_port = unused_port();
    let alpha = Instance::builder("alpha")
        .config(&calling(beta_port))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let _beta = Instance::builder("beta")
        .config(&calling(alpha.port))
        .env("PORT", &beta_port.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let status = alpha
        .client()
        .await
        .a(Empty {})
        .await
        .expect_err("the cycle is refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    assert!(
        message.contains("refused after 16 hops, the most MAX_HOPS (16) allows"),
        "{message}"
    );
    let path = "alpha → beta → ".repeat(8) + "alpha";
    assert!(message.ends_with(&path), "{message}");
    assert_eq!(status.metadata().get("thespian-hop-limit").unwrap(), "16");

    // Sixteen instances acted and the seventeenth refused; each answered
    // its caller with the refusal, not with a failure of its own.
    let trace_id = status
        .metadata()
        .get("x-trace-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let spans = trace(&receiver, &trace_id, 17).await;
    let servers: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 17);
    for server in &servers {
        assert_eq!(server.attr_i64("rpc.grpc.status_code"), Some(9), "{server}");
    }
    let refused: Vec<&&ReceivedSpan> = servers
        .iter()
        .filter(|s| spans.iter().all(|child| child.parent_span_id != s.span_id))
        .collect();
    assert_eq!(refused.len(), 1, "one server span acted nothing out");
    assert_eq!(refused[0].service_name.as_deref(), Some("alpha"));
    assert!(
        refused[0].status_message.contains("MAX_HOPS"),
        "{}",
        refused[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lower_max_hops_ends_a_cycle_sooner_and_a_retried_call_does_not_retry_the_refusal() {
    let receiver = OtlpReceiver::start().await;
    // Retried, the refusal would be met three times at every level: 3⁴
    // server spans rather than 5.
    let retried = |port: u16| {
        let source = format!(r#"call("next", "127.0.0.1:{port}", "A", #{{ retries: 2 }});"#);
        json!({ "grpc_method_a": { "tracing_name": "pass it on", "script_source": source } })
            .to_string()
    };
    let beta_port = unused_port();
    let mut alpha = Instance::builder("alpha")
        .config(&retried(beta_port))
        .env("MAX_HOPS", "4")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let mut beta = Instance::builder("beta")
        .config(&retried(alpha.port))
        .env("PORT", &beta_port.to_string())
        .env("MAX_HOPS", "4")
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let mut request = Request::new(Empty {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{SPAN}-01").parse().unwrap(),
    );
    let status = alpha.client().await.a(request).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .ends_with("4 hops, the most MAX_HOPS (4) allows (a call cycle?): alpha → beta → alpha → beta → alpha"),
        "{}",
        status.message()
    );
    // Both flush their spans as they stop, so every span made is counted.
    alpha.stop_cleanly(DEFAULT_WAIT).await;
    beta.stop_cleanly(DEFAULT_WAIT).await;
    let spans = trace(&receiver, TRACE, 5).await;
    let servers = spans.iter().filter(|s| s.kind == SpanKind::Server).count();
    assert_eq!(servers, 5, "four that acted and one that refused");
}

/// A stand-in for another service that answers every method at once and
/// keeps the metadata of each request it gets.
#[derive(Debug, Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<MetadataMap>>>,
}

impl Recorder {
    /// Serves on a port of its own until the test ends; returns the port.
    async fn serve(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let service = ThespianServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        port
    }

    /// The metadata of the one request it got.
    fn only(&self) -> MetadataMap {
        let seen = self.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one request reached the recorder");
        seen[0].clone()
    }

    fn record(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.seen.lock().unwrap().push(request.metadata().clone());
        Ok(Response::new(Empty {}))
    }
}

#[tonic::async_trait]
impl Thespian for Recorder {
    async fn a(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.record(request)
    }
    async fn b(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.record(request)
    }
    async fn c(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.record(request)
    }
}

/// Calls method A of `instance` with `headers`; panics unless it answers.
async fn call_with(instance: &Instance, headers: &[(&'static str, String)]) {
    let mut request = Request::new(Empty {});
    for (key, value) in headers {
        request.metadata_mut().insert(*key, value.parse().unwrap());
    }
    instance.client().await.a(request).await.expect("A answers");
}

/// The value of `key` in `metadata`, as text.
fn header<'m>(metadata: &'m MetadataMap, key: &str) -> Option<&'m str> {
    metadata.get(key).map(|value| value.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn b3_in_either_encoding_continues_the_trace_and_goes_out_as_configured() {
    let receiver = OtlpReceiver::start().await;
    for (propagators, trace_id) in [
        ("b3", "4bf92f3577b34da6a3ce929d0e0e47b1"),
        ("b3multi", "4bf92f3577b34da6a3ce929d0e0e47b2"),
    ] {
        let single = [("b3", format!("{trace_id}-{SPAN}-1"))];
        let multi = [
            ("x-b3-traceid", trace_id.to_owned()),
            ("x-b3-spanid", SPAN.to_owned()),
            ("x-b3-sampled", "1".to_owned()),
        ];
        let recorder = Recorder::default();
        let instance = Instance::builder("zipkin-era")
            .config(&calling(recorder.serve().await))
            .env("OTEL_PROPAGATORS", propagators)
            .otlp(&receiver.endpoint())
            .start()
            .await;
        // Either propagator reads either encoding, as the specification asks.
        for inbound in [&single[..], &multi[..]] {
            call_with(&instance, inbound).await;
        }

        let spans = trace(&receiver, trace_id, 2).await;
        let servers: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server)
            .collect();
        for server in &servers {
            assert_eq!(server.parent_span_id, SPAN, "{propagators}: {server}");
        }
        let calls: Vec<&str> = spans
            .iter()
            .filter(|s| s.name == "next")
            .map(|s| s.span_id.as_str())
            .collect();

        let seen = recorder.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for outbound in &seen {
            assert!(header(outbound, "traceparent").is_none(), "{outbound:?}");
            let span_id = if propagators == "b3" {
                assert!(header(outbound, "x-b3-traceid").is_none(), "{outbound:?}");
                let b3 = header(outbound, "b3").expect("a b3 header");
                let [trace, span, sampled] = b3.split('-').collect::<Vec<_>>()[..] else {
                    panic!("b3 is trace-span-sampled: {b3}");
                };
                assert_eq!((trace, sampled), (trace_id, "1"));
                span
            } else {
                assert!(header(outbound, "b3").is_none(), "{outbound:?}");
                assert_eq!(header(outbound, "x-b3-traceid"), Some(trace_id));
                assert_eq!(header(outbound, "x-b3-sampled"), Some("1"));
                header(outbound, "x-b3-spanid").expect("an x-b3-spanid header")
            };
            assert!(calls.contains(&span_id), "{span_id} is a call's span");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn x_request_id_and_baggage_are_passed_on_and_the_id_recorded() {
    let receiver = OtlpReceiver::start().await;
    let recorder = Recorder::default();
    let instance = Instance::builder("edge")
        .config(&calling(recorder.serve().await))
        .otlp(&receiver.endpoint())
        .start()
        .await;
    call_with(
        &instance,
        &[
            ("traceparent", format!("00-{TRACE}-{SPAN}-01")),
            ("x-request-id", "5f1c-req".to_owned()),
            ("baggage", "tenant=acme".to_owned()),
        ],
    )
    .await;

    let outbound = recorder.only();
    assert_eq!(header(&outbound, "x-request-id"), Some("5f1c-req"));
    assert_eq!(header(&outbound, "baggage"), Some("tenant=acme"));
    assert_eq!(header(&outbound, "thespian-hops"), Some("1"));
    assert_eq!(header(&outbound, "thespian-path"), Some("edge"));
    let traceparent = header(&outbound, "traceparent").unwrap();
    assert!(traceparent.contains(TRACE), "{traceparent}");

    let spans = trace(&receiver, TRACE, 1).await;
    let server = spans.only_named("thespian.Thespian/A");
    assert_eq!(
        server.attr("rpc.grpc.request.metadata.x-request-id"),
        Some(&Value::Array(vec![Value::Str("5f1c-req".to_owned())])),
        "{server}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_acts_on_the_requests_baggage_and_headers() {
    let receiver = OtlpReceiver::start().await;
    let source = r#"
        let tenant = baggage("tenant");
        if tenant == "acme" {
            set_attribute("tenant.tier", "gold");
            sleep("acme's own work", 1);
        } else {
            sleep("shared work", 1);
        }
        let client = header("x-client");
        if client != () { set_attribute("client.name", client); }
    "#;
    let config =
        json!({ "grpc_method_a": { "tracing_name": "serve tenant", "script_source": source } });
    let instance = Instance::builder("tenants")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let acme = "4bf92f3577b34da6a3ce929d0e0e4701";
    let other = "4bf92f3577b34da6a3ce929d0e0e4702";
    for (trace_id, baggage) in [(acme, "tenant=acme"), (other, "tenant=initech")] {
        call_with(
            &instance,
            &[
                ("traceparent", format!("00-{trace_id}-{SPAN}-01")),
                ("baggage", baggage.to_owned()),
                ("x-client", "mobile".to_owned()),
            ],
        )
        .await;
    }

    let spans = trace(&receiver, acme, 1).await;
    let method = spans.only_named("serve tenant");
    assert_eq!(method.attr_str("tenant.tier"), Some("gold"), "{method}");
    assert_eq!(method.attr_str("client.name"), Some("mobile"), "{method}");
    assert!(spans.iter().any(|s| s.name == "acme's own work"));
    let spans = trace(&receiver, other, 1).await;
    let method = spans.only_named("serve tenant");
    assert_eq!(method.attr_str("tenant.tier"), None, "{method}");
    assert!(spans.iter().any(|s| s.name == "shared work"));
}
