//! A stand-in for Grafana Loki that accepts every push and only counts it:
//! pushes, bytes and log entries, so `scripts/bench.sh` can put Thespian's
//! Loki shipping under load without running Loki.
//!
//! ```text
//! cargo run --release --example loki_sink -- [--port N] [--counts FILE]
//! ```
//!
//! It answers `POST /loki/api/v1/push` with 204, as Loki does, and prints the
//! address it serves on. With `--counts FILE` it rewrites FILE (atomically)
//! every 100 ms with one `name=count` line per counter.

mod counts;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use prost::Message as _;
use tokio::net::TcpListener;

/// Just enough of Loki's `logproto.PushRequest` to count entries; prost
/// skips the fields left out.
mod logproto {
    /// The body of a push.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        /// One per label set.
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }

    /// The entries of one label set.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        /// The log lines, whose content is not needed here.
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
    }

    /// One log line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {}
}

/// What arrived so far.
#[derive(Debug, Default)]
struct Counts {
    /// Push requests answered.
    pushes: AtomicU64,
    /// Compressed body bytes received.
    bytes: AtomicU64,
    /// Log entries decoded from the bodies.
    entries: AtomicU64,
    /// Bodies that were not snappy-compressed protobuf.
    undecodable: AtomicU64,
}

impl Counts {
    /// The counters as `name=count` lines.
    fn to_lines(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "pushes={}\nbytes={}\nentries={}\nundecodable={}\n",
            load(&self.pushes),
            load(&self.bytes),
            load(&self.entries),
            load(&self.undecodable),
        )
    }
}

async fn push(State(counts): State<Arc<Counts>>, body: Bytes) -> StatusCode {
    counts.pushes.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .ok()
        .and_then(|raw| logproto::PushRequest::decode(raw.as_slice()).ok());
    match decoded {
        Some(request) => {
            let entries: usize = request.streams.iter().map(|s| s.entries.len()).sum();
            counts.entries.fetch_add(entries as u64, Ordering::Relaxed);
        }
        None => {
            counts.undecodable.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> Result<(), thespian::Error> {
    let (mut port, mut counts_file) = (0u16, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--counts" => counts_file = Some(value.into()),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: loki_sink [--port N] [--counts FILE]"
                )
                .into());
            }
        }
    }
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    println!("listening on {}", listener.local_addr()?);

    let counts = Arc::new(Counts::default());
    if let Some(path) = counts_file {
        let written = Arc::clone(&counts);
        tokio::spawn(counts::write_counts(path, move || written.to_lines()));
    }
    let app = Router::new()
        .route("/loki/api/v1/push", post(push))
        .with_state(counts);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
