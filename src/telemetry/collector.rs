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
//! copied, by its retries.

use std::{future::Future, marker::PhantomData, str::FromStr, time::Duration};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, trace::v1::ExportTraceServiceResponse,
};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use prost::Message;
use tonic::{
    Code, Status,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
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
    grpc: Grpc<Channel>,
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
            grpc: Grpc::new(channel),
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

    /// One try at sending `request`.
    async fn send_once(&self, request: Bytes) -> Result<(), Status> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(crate::explain(&e)))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.metadata.clone();
        let answer = grpc
            .unary(
                request,
                PathAndQuery::from_static(S::EXPORT),
                Encoded::<S::Answer>::default(),
            )
            .await?
            .into_inner();
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

/// The codec of a request already encoded: its bytes go out as they are,
/// and the answer, an `A`, is decoded as usual.
#[derive(Debug)]
struct Encoded<A>(PhantomData<fn() -> A>);

impl<A> Default for Encoded<A> {
    fn default() -> Self {
        Encoded(PhantomData)
    }
}

impl<A: Message + Default + Send + 'static> Codec for Encoded<A> {
    type Encode = Bytes;
    type Decode = A;
    type Encoder = Encoded<A>;
    type Decoder = Encoded<A>;

    fn encoder(&mut self) -> Encoded<A> {
        Encoded::default()
    }

    fn decoder(&mut self) -> Encoded<A> {
        Encoded::default()
    }
}

impl<A> Encoder for Encoded<A> {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl<A: Message + Default> Decoder for Encoded<A> {
    type Item = A;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<A>, Status> {
        let answer = A::decode(buf.copy_to_bytes(buf.remaining())).map_err(|e| {
            Status::internal(format!("the collector's answer does not decode: {e}"))
        })?;
        Ok(Some(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_as_the_otlp_exporters_read_them() {
        let metadata = metadata("api-key=s3cr%20t, X-Scope-OrgID = tenant-1,broken,empty=");
        assert_eq!(metadata.get("api-key").unwrap(), "s3cr t");
        assert_eq!(metadata.get("x-scope-orgid").unwrap(), "tenant-1");
        assert_eq!(metadata.len(), 2, "{metadata:?}");
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
