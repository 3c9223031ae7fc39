//! A collector's OTLP services, as a client that sends requests already
//! encoded (`span_wire`, `log_wire`), so a batch is never turned into the
//! generated message types only to be encoded again.
//!
//! It does what the SDK's OTLP exporters do for a request: the headers of
//! the signal's own variable (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`,
//! `OTEL_EXPORTER_OTLP_LOGS_HEADERS`) or else of
//! `OTEL_EXPORTER_OTLP_HEADERS` on every request, a deadline per export,
//! and retries with backoff on the codes the OTLP specification calls
//! retryable, within that deadline. An encoded request is shared, not
//! copied, by its retries, and goes out as it is: written through tonic's
//! codec, a batch of 2,048 spans was copied once more into a buffer of
//! its own, about 450 KB held for as long as each export took.

use std::{future::Future, marker::PhantomData, str::FromStr, time::Duration};

use bytes::{Buf, Bytes};
use futures::future::poll_fn;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, trace::v1::ExportTraceServiceResponse,
};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use prost::Message;
use tonic::{
    Code, Status,
    codegen::Service as _,
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    transport::{Channel, Endpoint},
};

/// The headers for every OTLP export.
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// How many times a failed export is tried again, at most.
const RETRIES: u32 = 3;
/// The first pause before a retry; each pause after doubles, up to
/// [`MAX_BACKOFF`], plus up to [`JITTER`] so instances do not retry in step.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1_600);
const JITTER: Duration = Duration::from_millis(100);

/// Where encoded export requests go: a collector's service, or a test's
/// stand-in for it.
pub(super) trait Destination: Send + Sync + 'static {
    /// Sends `request`, an encoded `Export...ServiceRequest`.
    fn send(&self, request: Bytes) -> impl Future<Output = OTelSdkResult> + Send;
}

/// What differs from one OTLP service to the next.
pub(super) trait Service: Send + Sync + 'static {
    /// The path of the service's `Export` method.
    const EXPORT: &'static str;
    /// The variable of headers for this service alone, read before the
    /// shared one.
    const HEADERS: &'static str;
    /// What the service calls the items it takes, for a warning.
    const ITEMS: &'static str;
    /// The service's answer.
    type Answer: Message + Default + Send + 'static;
    /// How many items the answer says were rejected, and why.
    fn rejected(answer: &Self::Answer) -> Option<(i64, &str)>;
}

/// The trace service.
#[derive(Debug)]
pub(super) struct Traces;

impl Service for Traces {
    const EXPORT: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const HEADERS: &'static str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    const ITEMS: &'static str = "spans";
    type Answer = ExportTraceServiceResponse;

    fn rejected(answer: &ExportTraceServiceResponse) -> Option<(i64, &str)> {
        let partial = answer.partial_success.as_ref()?;
        Some((partial.rejected_spans, &partial.error_message))
    }
}

/// The logs service.
#[derive(Debug)]
pub(super) struct Logs;

impl Service for Logs {
    const EXPORT: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HEADERS: &'static str = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
    const ITEMS: &'static str = "log records";
    type Answer = ExportLogsServiceResponse;

    fn rejected(answer: &ExportLogsServiceResponse) -> Option<(i64, &str)> {
        let partial = answer.partial_success.as_ref()?;
        Some((partial.rejected_log_records, &partial.error_message))
    }
}

/// A client of one service of a collector.
#[derive(Debug)]
pub(super) struct Collector<S> {
    channel: Channel,
    /// The headers every request carries.
    metadata: MetadataMap,
    /// How long one export may take, retries and all.
    timeout: Duration,
    service: PhantomData<fn() -> S>,
}

impl<S: Service> Collector<S> {
    /// A client of the service at `endpoint` (a plaintext `http://` URL),
    /// connecting when it first exports, whose exports each take at most
    /// `timeout`. Must run inside a tokio runtime.
    pub(super) fn connect(endpoint: &str, timeout: Duration) -> Result<Collector<S>, crate::Error> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("the OTLP endpoint `{endpoint}` is not a URL: {e}"))?
            .user_agent(crate::USER_AGENT)?
            .tcp_nodelay(true)
            .connect_lazy();
        let headers = std::env::var(S::HEADERS)
            .or_else(|_| std::env::var(HEADERS))
            .unwrap_or_default();
        Ok(Collector {
            channel,
            metadata: metadata(&headers),
            timeout,
            service: PhantomData,
        })
    }

    /// Sends `request`, an encoded export request, trying again after a
    /// retryable failure while the deadline allows.
    pub(super) async fn export(&self, request: Bytes) -> OTelSdkResult {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let failed =
                match tokio::time::timeout_at(deadline, self.send_once(request.clone())).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(status)) => status,
                    Err(_) => return Err(OTelSdkError::Timeout(self.timeout)),
                };
            let pause = backoff + JITTER.mul_f64(rand::random::<f64>());
            if retries == RETRIES
                || !retryable(failed.code())
                || tokio::time::Instant::now() + pause >= deadline
            {
                return Err(OTelSdkError::InternalFailure(format!(
                    "the collector answered {:?}: {}",
                    failed.code(),
                    failed.message()
                )));
            }
            tokio::time::sleep(pause).await;
            retries += 1;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One try at sending `request`, framed as gRPC frames a message: a
    /// flag for no compression and its length, then the message itself.
    async fn send_once(&self, request: Bytes) -> Result<(), Status> {
        let mut channel = self.channel.clone();
        poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| Status::unavailable(crate::explain(&e)))?;
        let length = u32::try_from(request.len())
            .map_err(|_| Status::resource_exhausted("an export request past 4 GiB"))?;
        let mut prefix = [0; 5];
        prefix[1..].copy_from_slice(&length.to_be_bytes());
        let frames = [Bytes::copy_from_slice(&prefix), request]
            .map(|data| Ok::<_, Status>(Frame::data(data)));
        let mut http = http::Request::new(tonic::body::Body::new(StreamBody::new(
            futures::stream::iter(frames),
        )));
        *http.method_mut() = Method::POST;
        *http.uri_mut() = Uri::from_static(S::EXPORT);
        let headers = http.headers_mut();
        headers.extend(self.metadata.clone().into_headers());
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        let (head, body) = channel
            .call(http)
            .await
            .map_err(|e| Status::unavailable(crate::explain(&e)))?
            .into_parts();
        // A status in the headers is an answer without a message.
        if let Some(status) = Status::from_header_map(&head.headers) {
            return match status.code() {
                Code::Ok => Ok(()),
                _ => Err(status),
            };
        }
        let body = body.collect().await?;
        let trailers = body.trailers().cloned().unwrap_or_default();
        let status = answered(head.status, &trailers);
        if status.code() != Code::Ok {
            return Err(status);
        }
        let answer: S::Answer = message(body.to_bytes())?;
        if let Some((rejected, why)) = S::rejected(&answer)
            && (rejected > 0 || !why.is_empty())
        {
            tracing::warn!(
                target: "thespian::telemetry",
                rejected,
                "the collector took the {} only in part: {why}",
                S::ITEMS
            );
        }
        Ok(())
    }
}

/// The status an answer ended with: its trailers', or, when a proxy
/// answered without them, the one gRPC's HTTP mapping gives its HTTP
/// status.
fn answered(http: StatusCode, trailers: &HeaderMap) -> Status {
    if let Some(status) = Status::from_header_map(trailers) {
        return status;
    }
    Status::new(
        crate::connection::code_of_http_status(http),
        format!("the collector answered HTTP {http} without a gRPC status"),
    )
}

/// The message of an answer's body: one gRPC frame, uncompressed, since
/// no compression was offered. An answer with no message reads as the
/// default one.
fn message<A: Message + Default>(mut body: Bytes) -> Result<A, Status> {
    if body.is_empty() {
        return Ok(A::default());
    }
    if body.len() < 5 || body[0] != 0 {
        return Err(Status::internal(
            "the collector's answer is not one uncompressed gRPC message",
        ));
    }
    body.advance(1);
    let length = body.get_u32() as usize;
    if body.len() < length {
        return Err(Status::internal("the collector's answer is cut short"));
    }
    A::decode(body.split_to(length))
        .map_err(|e| Status::internal(format!("the collector's answer does not decode: {e}")))
}

impl<S: Service> Destination for Collector<S> {
    fn send(&self, request: Bytes) -> impl Future<Output = OTelSdkResult> + Send {
        self.export(request)
    }
}

/// Whether an export that failed with `code` may succeed if tried again,
/// by the OTLP specification's list.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The headers of an `OTEL_EXPORTER_OTLP_HEADERS` value, read as every
/// OpenTelemetry list variable is read (`resource::entries`). A pair that
/// is not a valid header is left out, as the SDK's exporters leave it out.
fn metadata(headers: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (key, value) in super::resource::entries(headers) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_str(&key.to_ascii_lowercase()),
            MetadataValue::from_str(&value),
        ) && !value.is_empty()
        {
            metadata.append(key, value);
        }
    }
    metadata
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceRequest,
            trace_service_server::{TraceService, TraceServiceServer},
        },
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    use super::*;

    #[test]
    fn headers_are_read_as_the_otlp_exporters_read_them() {
        let metadata = metadata("api-key=s3cr%20t, X-Scope-OrgID = tenant-1,broken,empty=");
        assert_eq!(metadata.get("api-key").unwrap(), "s3cr t");
        assert_eq!(metadata.get("x-scope-orgid").unwrap(), "tenant-1");
        assert_eq!(metadata.len(), 2, "{metadata:?}");
    }

    /// A trace collector on loopback that answers each export with the
    /// next of `answers` (then with success), and hands over each request
    /// it took and the `x-tenant` header it carried.
    async fn collector(
        answers: Vec<Status>,
    ) -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<(ExportTraceServiceRequest, Option<String>)>,
    ) {
        struct Answering {
            answers: std::sync::Mutex<std::collections::VecDeque<Status>>,
            took: tokio::sync::mpsc::UnboundedSender<(ExportTraceServiceRequest, Option<String>)>,
        }
        #[tonic::async_trait]
        impl TraceService for Answering {
            async fn export(
                &self,
                request: tonic::Request<ExportTraceServiceRequest>,
            ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
                let tenant = request
                    .metadata()
                    .get("x-tenant")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let _ = self.took.send((request.into_inner(), tenant));
                match self.answers.lock().unwrap().pop_front() {
                    Some(status) => Err(status),
                    None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
                }
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (took, taken) = tokio::sync::mpsc::unbounded_channel();
        let service = Answering {
            answers: std::sync::Mutex::new(answers.into()),
            took,
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (address, taken)
    }

    /// An export request of one span named `name`.
    fn request(name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: name.to_owned(),
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[tokio::test]
    async fn a_request_reaches_a_real_collector_as_sent_with_its_headers_and_is_tried_again_when_unavailable()
     {
        let (address, mut taken) = collector(vec![Status::unavailable("warming up")]).await;
        let mut collector =
            Collector::<Traces>::connect(&address, Duration::from_secs(10)).unwrap();
        collector.metadata = metadata("x-tenant=blue");
        let sent = request("checkout");
        collector
            .export(Bytes::from(sent.encode_to_vec()))
            .await
            .expect("the second try is taken");
        for attempt in ["first", "second"] {
            let (received, tenant) = taken.try_recv().expect(attempt);
            assert_eq!(received, sent, "the {attempt} try arrives whole");
            assert_eq!(
                tenant.as_deref(),
                Some("blue"),
                "the {attempt} try's headers"
            );
        }
        assert!(taken.try_recv().is_err(), "two tries, no more");
    }

    #[tokio::test]
    async fn a_code_the_specification_does_not_retry_fails_the_export_at_once() {
        let (address, mut taken) = collector(vec![Status::permission_denied("wrong tenant")]).await;
        let collector = Collector::<Traces>::connect(&address, Duration::from_secs(10)).unwrap();
        let failed = collector
            .export(Bytes::from(request("checkout").encode_to_vec()))
            .await
            .expect_err("refused");
        assert!(
            failed.to_string().contains("PermissionDenied")
                && failed.to_string().contains("wrong tenant"),
            "{failed}"
        );
        assert!(taken.try_recv().is_ok());
        assert!(taken.try_recv().is_err(), "not tried again");
    }

    #[test]
    fn an_answer_is_read_from_its_one_grpc_frame() {
        let answer = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".to_owned(),
            }),
        };
        let mut framed = vec![0, 0, 0, 0, answer.encoded_len() as u8];
        framed.extend(answer.encode_to_vec());
        assert_eq!(
            message::<ExportTraceServiceResponse>(Bytes::from(framed)).unwrap(),
            answer
        );
        assert_eq!(
            message::<ExportTraceServiceResponse>(Bytes::new()).unwrap(),
            ExportTraceServiceResponse::default()
        );
        let compressed = Bytes::from_static(&[1, 0, 0, 0, 0]);
        assert!(message::<ExportTraceServiceResponse>(compressed).is_err());
        let cut = Bytes::from_static(&[0, 0, 0, 0, 9, 1]);
        assert!(message::<ExportTraceServiceResponse>(cut).is_err());
    }

    #[test]
    fn an_answer_without_a_grpc_status_is_read_by_its_http_status() {
        let empty = HeaderMap::new();
        assert_eq!(
            answered(StatusCode::SERVICE_UNAVAILABLE, &empty).code(),
            Code::Unavailable
        );
        assert_eq!(
            answered(StatusCode::NOT_FOUND, &empty).code(),
            Code::Unimplemented
        );
        assert_eq!(answered(StatusCode::OK, &empty).code(), Code::Unknown);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(answered(StatusCode::OK, &trailers).code(), Code::Ok);
    }

    #[test]
    fn only_the_codes_the_specification_names_are_retried() {
        assert!(retryable(Code::Unavailable));
        assert!(retryable(Code::DeadlineExceeded));
        assert!(!retryable(Code::Unimplemented));
        assert!(!retryable(Code::InvalidArgument));
        assert!(!retryable(Code::PermissionDenied));
    }
}
