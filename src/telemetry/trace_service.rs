//! The collector's OTLP trace service, as a client that sends requests
//! already encoded (`span_wire`), so a batch is never turned into the
//! generated message types only to be encoded again.
//!
//! It does what the SDK's OTLP exporter does for a request: the headers of
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or else `OTEL_EXPORTER_OTLP_HEADERS`
//! on every request, a deadline per export, and
//! retries with backoff on the codes the OTLP specification calls
//! retryable, within that deadline. An encoded request is shared, not
//! copied, by its retries.

use std::{str::FromStr, time::Duration};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use prost::Message;
use tonic::{
    Code, Status,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    transport::{Channel, Endpoint},
};

/// The trace service's one method.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The headers for trace exports alone, which win over the shared ones.
const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// The headers for every OTLP export.
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// How many times a failed export is tried again, at most.
const RETRIES: u32 = 3;
/// The first pause before a retry; each pause after doubles, up to
/// [`MAX_BACKOFF`], plus up to [`JITTER`] so instances do not retry in step.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1_600);
const JITTER: Duration = Duration::from_millis(100);

/// A connection to a collector's trace service. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct TraceService {
    grpc: Grpc<Channel>,
    /// The headers every request carries.
    metadata: MetadataMap,
    /// How long one export may take, retries and all.
    timeout: Duration,
}

impl TraceService {
    /// A client of the trace service at `endpoint` (a plaintext `http://`
    /// URL), connecting when it first exports, whose exports each take at
    /// most `timeout`. Must run inside a tokio runtime.
    pub(super) fn connect(endpoint: &str, timeout: Duration) -> Result<TraceService, crate::Error> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("the OTLP endpoint `{endpoint}` is not a URL: {e}"))?
            .user_agent(concat!("thespian/", env!("CARGO_PKG_VERSION")))?
            .tcp_nodelay(true)
            .connect_lazy();
        let headers = std::env::var(TRACES_HEADERS)
            .or_else(|_| std::env::var(HEADERS))
            .unwrap_or_default();
        Ok(TraceService {
            grpc: Grpc::new(channel),
            metadata: metadata(&headers),
            timeout,
        })
    }

    /// Sends `request`, an encoded `ExportTraceServiceRequest`, trying
    /// again after a retryable failure while the deadline allows.
    pub(super) async fn export(&self, request: Bytes) -> OTelSdkResult {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let failed = match tokio::time::timeout_at(deadline, self.send(request.clone())).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(status)) => status,
                Err(_) => {
                    return Err(OTelSdkError::Timeout(self.timeout));
                }
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
    async fn send(&self, request: Bytes) -> Result<(), Status> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(crate::explain(&e)))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.metadata.clone();
        let answer = grpc
            .unary(request, PathAndQuery::from_static(EXPORT), Encoded)
            .await?;
        if let Some(partial) = answer.into_inner().partial_success
            && (partial.rejected_spans > 0 || !partial.error_message.is_empty())
        {
            tracing::warn!(
                target: "thespian::telemetry",
                rejected = partial.rejected_spans,
                "the collector took the spans only in part: {}",
                partial.error_message
            );
        }
        Ok(())
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

/// The headers of an `OTEL_EXPORTER_OTLP_HEADERS` value: comma-separated
/// `key=value` pairs, each value percent-decoded. A pair that is not a
/// valid header is left out, as the SDK's exporters leave it out.
fn metadata(headers: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for pair in headers.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
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
/// and the answer is decoded as usual.
#[derive(Debug, Clone, Copy, Default)]
struct Encoded;

impl Codec for Encoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Encoded {
        Encoded
    }

    fn decoder(&mut self) -> Encoded {
        Encoded
    }
}

impl Encoder for Encoded {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for Encoded {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(
        &mut self,
        buf: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, Status> {
        let answer = ExportTraceServiceResponse::decode(buf.copy_to_bytes(buf.remaining()))
            .map_err(|e| {
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
