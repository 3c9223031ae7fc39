//! The protobuf messages of Loki's push API (`logproto.PushRequest` and
//! friends), declared locally with prost so the receiver decodes the real
//! wire format without a build step.

/// `logproto.PushRequest`: the body of a protobuf push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// The streams pushed, each with its own label set.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: the entries of one label set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in Prometheus syntax, e.g. `{app="x",level="info"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The log lines.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// A hash of the labels; clients usually leave it 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`: one log line.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When the line was logged.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The line itself.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Per-line metadata that is not indexed as labels.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one structured-metadata pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`, declared here to avoid a prost-types
/// dependency.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}
