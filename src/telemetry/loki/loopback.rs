//! An in-process Loki push endpoint on a loopback port, for the tests
//! that drive tracing-loki: it decodes what tracing-loki sends, snappy
//! block-compressed protobuf, and keeps the lines.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use prost::Message;
use serde_json::Value as Json;
use tokio::{net::TcpListener, task::JoinHandle};

/// A Loki push endpoint on a loopback port that answers every push with
/// one status and keeps the lines it was sent.
pub(super) struct LoopbackLoki {
    /// The address to give as `LOKI_ADDRESS`.
    pub(super) address: String,
    lines: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

impl LoopbackLoki {
    /// Serves pushes to `prefix` + `/loki/api/v1/push`, answering each
    /// with `status`.
    pub(super) async fn start(prefix: &str, status: StatusCode) -> LoopbackLoki {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(&format!("{prefix}/loki/api/v1/push"), post(receive))
            .with_state((Arc::clone(&lines), status));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}{prefix}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LoopbackLoki {
            address,
            lines,
            server,
        }
    }

    /// The lines received so far, parsed.
    pub(super) fn json(&self) -> Vec<Json> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The `number` field of each line received so far.
    pub(super) fn numbers(&self) -> Vec<u64> {
        self.json()
            .iter()
            .map(|line| line["number"].as_u64().unwrap())
            .collect()
    }
}

impl Drop for LoopbackLoki {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Keeps the lines of one push: snappy block-compressed protobuf.
async fn receive(
    State((lines, status)): State<(Arc<Mutex<Vec<String>>>, StatusCode)>,
    body: Bytes,
) -> StatusCode {
    let body = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let push = PushRequest::decode(body.as_slice()).unwrap();
    let mut lines = lines.lock().unwrap();
    for stream in push.streams {
        lines.extend(stream.entries.into_iter().map(|entry| entry.line));
    }
    status
}

/// The parts of Loki's `logproto.PushRequest` the tests read.
#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<Stream>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Stream {
    #[prost(message, repeated, tag = "2")]
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    #[prost(string, tag = "2")]
    line: String,
}
