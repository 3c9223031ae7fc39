//! An in-process Grafana Loki push endpoint for integration tests.
//!
//! Thespian can ship its logs to Loki (through `tracing-loki`); a test proves
//! that by starting a [`LokiReceiver`], pointing the service at
//! [`LokiReceiver::address`], and waiting for the entries it expects with
//! [`LokiReceiver::wait_for_entries`]. The receiver speaks Loki's real push
//! API, `POST /loki/api/v1/push`, and decodes both bodies Loki accepts:
//! snappy *block*-compressed protobuf `logproto.PushRequest` (what
//! `tracing-loki` and promtail send) and the JSON push format. Stream label
//! strings such as `{service_name="x",level="info"}` are parsed into maps.
//!
//! It can also play a broken Loki ([`LokiBehaviour::Fail`],
//! [`LokiBehaviour::Delay`]) so tests can show that a slow or failing log
//! sink never breaks the service.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long the `wait_for_*` helpers are usually given: generous for small CI
/// machines, while a passing test returns as soon as data arrives.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// How many entries a timeout panic prints.
const DUMP_LIMIT: usize = 200;

/// The path Loki's push API lives at.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// The protobuf messages of Loki's push API (`logproto.PushRequest` and
/// friends), declared locally with prost so the receiver decodes the real
/// wire format without a build step.
pub mod logproto {
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
}

/// How the receiver answers pushes: lets a test play a healthy, slow or
/// failing Loki (and switch with [`LokiReceiver::set_behaviour`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LokiBehaviour {
    /// Record the entries and answer `204 No Content`, like Loki.
    #[default]
    Accept,
    /// Wait this long, then record and answer 204. A client that gives up
    /// first leaves nothing recorded.
    Delay(Duration),
    /// Answer with this HTTP status (e.g. 500 or 429) and record nothing.
    Fail(u16),
}

/// Which body format a push used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushFormat {
    /// Snappy block-compressed protobuf `PushRequest`.
    Protobuf,
    /// Loki's JSON push format.
    Json,
}

/// One push request as it arrived, whatever the receiver answered: lets a
/// test check that the service *tried* to push, with which headers, and why
/// a body was refused.
#[derive(Clone, Debug)]
pub struct LokiPush {
    /// The body format, if the content type was understood.
    pub format: Option<PushFormat>,
    /// The request headers that could be read as text, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// When the request arrived.
    pub received_at: Instant,
    /// How many entries the body held (0 if it could not be decoded).
    pub entries: usize,
    /// The HTTP status the receiver answered (0 while still in flight).
    pub status: u16,
    /// Why the body was refused, if it was.
    pub error: Option<String>,
}

/// One received log line with its stream's labels: the unit tests assert on.
#[derive(Clone, Debug, PartialEq)]
pub struct LokiEntry {
    /// The stream labels, parsed from the label string (or the JSON `stream`
    /// object).
    pub labels: BTreeMap<String, String>,
    /// The log line as pushed (for `tracing-loki`, a JSON object).
    pub line: String,
    /// The entry's timestamp in nanoseconds since the Unix epoch.
    pub timestamp_nanos: i64,
    /// The entry's structured metadata, if any.
    pub structured_metadata: BTreeMap<String, String>,
    /// The format of the push that carried it.
    pub format: PushFormat,
}

impl LokiEntry {
    /// The label `key`, if the stream had it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The line parsed as JSON, if it is JSON (as `tracing-loki` sends).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.line).ok()
    }

    /// The field `key` of a JSON line, rendered as text (strings without
    /// quotes), if the line is JSON and has it.
    pub fn json_field(&self, key: &str) -> Option<String> {
        let value = self.json()?.get(key)?.clone();
        Some(match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// The `message` field of a JSON line (the formatted message of a
    /// `tracing` event), or the raw line if it is not JSON.
    pub fn message(&self) -> String {
        self.json_field("message")
            .unwrap_or_else(|| self.line.clone())
    }
}

impl fmt::Display for LokiEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}} @{} {:?}", self.timestamp_nanos, self.line)?;
        if !self.structured_metadata.is_empty() {
            write!(f, " metadata={:?}", self.structured_metadata)?;
        }
        Ok(())
    }
}

/// Parses a Prometheus-style label string such as
/// `{service_name="x", level="info"}` into a map. Values may use Go `%q` /
/// Rust `{:?}` escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\u{..}`, `\uXXXX`,
/// `\xHH`), which is how clients quote them.
pub fn parse_labels(input: &str) -> Result<BTreeMap<String, String>, String> {
    let s = input.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("labels {input:?} are not enclosed in {{}}"))?;
    let mut chars = inner.chars().peekable();
    let mut labels = BTreeMap::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' || c == '.' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(format!("labels {input:?}: expected name=\"value\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(format!("labels {input:?}: value of {name} is not quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("labels {input:?}: unterminated value of {name}")),
                Some('"') => break,
                Some('\\') => {
                    let escaped = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('0') => '\0',
                        Some('"') => '"',
                        Some('\'') => '\'',
                        Some('\\') => '\\',
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("labels {input:?}: bad \\x escape"))?
                        }
                        Some('u') => {
                            let hex: String = if chars.peek() == Some(&'{') {
                                chars.next();
                                chars.by_ref().take_while(|c| *c != '}').collect()
                            } else {
                                chars.by_ref().take(4).collect()
                            };
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("labels {input:?}: bad \\u escape"))?
                        }
                        other => {
                            return Err(format!(
                                "labels {input:?}: unknown escape \\{}",
                                other.map(String::from).unwrap_or_default()
                            ));
                        }
                    };
                    value.push(escaped);
                }
                Some(c) => value.push(c),
            }
        }
        if labels.insert(name.clone(), value).is_some() {
            return Err(format!("labels {input:?}: duplicate label {name}"));
        }
    }
}

/// Decodes a protobuf push body (snappy block format, as Loki requires).
fn decode_protobuf(body: &[u8]) -> Result<Vec<LokiEntry>, String> {
    use prost::Message as _;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("body is not snappy block-compressed: {e}"))?;
    let request = logproto::PushRequest::decode(raw.as_slice())
        .map_err(|e| format!("body is not a logproto.PushRequest: {e}"))?;
    let mut entries = Vec::new();
    for stream in request.streams {
        let labels = parse_labels(&stream.labels)?;
        for entry in stream.entries {
            let timestamp_nanos = entry
                .timestamp
                .map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
                .unwrap_or(0);
            entries.push(LokiEntry {
                labels: labels.clone(),
                line: entry.line,
                timestamp_nanos,
                structured_metadata: entry
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
                format: PushFormat::Protobuf,
            });
        }
    }
    Ok(entries)
}

/// Decodes a JSON push body:
/// `{"streams":[{"stream":{..},"values":[["<ns>","line",{..}?]]}]}`.
fn decode_json(body: &[u8]) -> Result<Vec<LokiEntry>, String> {
    use serde_json::Value as J;
    let doc: J = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let streams = doc
        .get("streams")
        .and_then(J::as_array)
        .ok_or("JSON push has no \"streams\" array")?;
    let text_map = |v: Option<&J>, what: &str| -> Result<BTreeMap<String, String>, String> {
        match v {
            None | Some(J::Null) => Ok(BTreeMap::new()),
            Some(J::Object(o)) => o
                .iter()
                .map(|(k, v)| match v {
                    J::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(format!("{what} {k} is not a string: {other}")),
                })
                .collect(),
            Some(other) => Err(format!("{what} is not an object: {other}")),
        }
    };
    let mut entries = Vec::new();
    for stream in streams {
        let labels = text_map(stream.get("stream"), "stream label")?;
        let values = stream
            .get("values")
            .and_then(J::as_array)
            .ok_or("JSON stream has no \"values\" array")?;
        for value in values {
            let parts = value
                .as_array()
                .filter(|p| p.len() == 2 || p.len() == 3)
                .ok_or_else(|| format!("JSON value {value} is not [ts, line, metadata?]"))?;
            let timestamp_nanos = match &parts[0] {
                J::String(s) => s.parse::<i64>().ok(),
                J::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| format!("JSON timestamp {} is not nanoseconds", parts[0]))?;
            let line = parts[1]
                .as_str()
                .ok_or_else(|| format!("JSON line {} is not a string", parts[1]))?
                .to_owned();
            entries.push(LokiEntry {
                labels: labels.clone(),
                line,
                timestamp_nanos,
                structured_metadata: text_map(parts.get(2), "structured metadata")?,
                format: PushFormat::Json,
            });
        }
    }
    Ok(entries)
}

#[derive(Default)]
struct Collected {
    entries: Vec<LokiEntry>,
    pushes: Vec<LokiPush>,
    /// Requests to anything but the push path: usually a wrong URL.
    unmatched: Vec<String>,
}

impl Collected {
    fn summary(&self) -> String {
        let ok = self.pushes.iter().filter(|p| p.status / 100 == 2).count();
        let mut s = format!(
            "{} push requests ({} accepted), {} entries",
            self.pushes.len(),
            ok,
            self.entries.len(),
        );
        for p in self.pushes.iter().filter(|p| p.error.is_some()) {
            s.push_str(&format!(
                "\n    refused push ({}): {}",
                p.status,
                p.error.as_deref().unwrap_or_default()
            ));
        }
        if !self.unmatched.is_empty() {
            s.push_str(&format!(
                "\n    requests to other paths: {:?}",
                self.unmatched
            ));
        }
        s
    }
}

struct Shared {
    collected: Mutex<Collected>,
    behaviour: Mutex<LokiBehaviour>,
    /// Bumped on every push arrival and every recorded push.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn finish(&self, index: usize, status: StatusCode, error: Option<String>) {
        {
            let mut c = self.lock();
            c.pushes[index].status = status.as_u16();
            c.pushes[index].error = error;
        }
        self.bump();
    }
}

async fn push(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let content_encoding = header_text(header::CONTENT_ENCODING);
    let format = if content_type.starts_with("application/x-protobuf") {
        Some(PushFormat::Protobuf)
    } else if content_type.starts_with("application/json") {
        Some(PushFormat::Json)
    } else {
        None
    };
    let decoded = match format {
        None => Err(format!("unsupported Content-Type {content_type:?}")),
        // Loki always reads protobuf bodies as snappy, whatever the header says.
        Some(PushFormat::Protobuf) => decode_protobuf(&body),
        Some(PushFormat::Json) if !content_encoding.is_empty() => Err(format!(
            "unsupported Content-Encoding {content_encoding:?} for JSON"
        )),
        Some(PushFormat::Json) => decode_json(&body),
    };
    let index = {
        let mut c = shared.lock();
        c.pushes.push(LokiPush {
            format,
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            received_at: Instant::now(),
            entries: decoded.as_ref().map(Vec::len).unwrap_or(0),
            status: 0,
            error: None,
        });
        c.pushes.len() - 1
    };
    shared.bump();
    let entries = match decoded {
        Ok(entries) => entries,
        Err(e) => {
            let status = if format.is_none() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::BAD_REQUEST
            };
            shared.finish(index, status, Some(e.clone()));
            return (status, e);
        }
    };
    let behaviour = *shared.behaviour.lock().unwrap_or_else(|e| e.into_inner());
    match behaviour {
        LokiBehaviour::Accept => {}
        LokiBehaviour::Delay(d) => tokio::time::sleep(d).await,
        LokiBehaviour::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = format!("test receiver is failing pushes with {code}");
            shared.finish(index, status, Some(message.clone()));
            return (status, message);
        }
    }
    shared.lock().entries.extend(entries);
    shared.finish(index, StatusCode::NO_CONTENT, None);
    (StatusCode::NO_CONTENT, String::new())
}

async fn unmatched(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> StatusCode {
    shared.lock().unmatched.push(format!("{method} {uri}"));
    shared.bump();
    StatusCode::NOT_FOUND
}

/// A Loki push endpoint listening on `127.0.0.1` on a free port, recording
/// every entry pushed to it. Dropping it stops the server.
pub struct LokiReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl LokiReceiver {
    /// Starts a healthy receiver (must be called inside a tokio runtime).
    pub async fn start() -> LokiReceiver {
        LokiReceiver::start_with(LokiBehaviour::Accept).await
    }

    /// Starts a receiver that answers as `behaviour` says, e.g.
    /// `LokiReceiver::start_with(LokiBehaviour::Fail(500))`.
    pub async fn start_with(behaviour: LokiBehaviour) -> LokiReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Loki test receiver to 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of Loki receiver");
        let shared = Arc::new(Shared {
            collected: Mutex::new(Collected::default()),
            behaviour: Mutex::new(behaviour),
            changed: watch::channel(0).0,
        });
        let app = Router::new()
            .route(PUSH_PATH, post(push))
            .route("/ready", get(|| async { "ready" }))
            .fallback(unmatched)
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = shutdown_rx.await;
        });
        let server = tokio::spawn(server.into_future());
        LokiReceiver {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            server: Some(server),
        }
    }

    /// The base URL to give a Loki client: `http://127.0.0.1:PORT` (clients
    /// append `/loki/api/v1/push`).
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full push URL: `http://127.0.0.1:PORT/loki/api/v1/push`.
    pub fn push_url(&self) -> String {
        format!("http://{}{PUSH_PATH}", self.addr)
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes how later pushes are answered, e.g. to let a failing Loki
    /// recover.
    pub fn set_behaviour(&self, behaviour: LokiBehaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Stops the server and waits (at most 5 s) until it is gone, so a test
    /// can check that the service copes with Loki going away. Recorded data
    /// stays readable.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// All entries received so far, in arrival order.
    pub fn entries(&self) -> Vec<LokiEntry> {
        self.shared.lock().entries.clone()
    }

    /// Every push request that arrived, accepted or not, in order.
    pub fn pushes(&self) -> Vec<LokiPush> {
        self.shared.lock().pushes.clone()
    }

    /// How many push requests arrived, accepted or not.
    pub fn push_requests(&self) -> usize {
        self.shared.lock().pushes.len()
    }

    /// Waits until `predicate` holds for all entries received so far and
    /// returns them; panics with a dump of what arrived if `timeout` passes
    /// first. Wakes on every push, never sleeps blindly.
    pub async fn wait_for_entries(
        &self,
        predicate: impl FnMut(&[LokiEntry]) -> bool,
        timeout: Duration,
    ) -> Vec<LokiEntry> {
        self.wait_until("entries", |c| c.entries.clone(), predicate, timeout)
            .await
    }

    /// Waits for an entry whose line contains `text` and returns it.
    pub async fn wait_for_line_containing(&self, text: &str, timeout: Duration) -> LokiEntry {
        self.wait_until(
            &format!("an entry whose line contains {text:?}"),
            |c| c.entries.clone(),
            |e| e.iter().any(|e| e.line.contains(text)),
            timeout,
        )
        .await
        .into_iter()
        .find(|e| e.line.contains(text))
        .expect("predicate held")
    }

    /// Waits until `predicate` holds for the push requests so far (accepted
    /// or not; a push still in flight has `status == 0`) and returns them,
    /// e.g. to see that the service tried a failing Loki.
    pub async fn wait_for_pushes(
        &self,
        predicate: impl FnMut(&[LokiPush]) -> bool,
        timeout: Duration,
    ) -> Vec<LokiPush> {
        self.wait_until("push requests", |c| c.pushes.clone(), predicate, timeout)
            .await
    }

    /// Waits until at least `n` push requests have arrived (answered or
    /// not) and returns how many did.
    pub async fn wait_for_push_requests(&self, n: usize, timeout: Duration) -> usize {
        self.wait_until(
            &format!("{n} push requests"),
            |c| c.pushes.clone(),
            |p| p.len() >= n,
            timeout,
        )
        .await
        .len()
    }

    async fn wait_until<T>(
        &self,
        what: &str,
        snapshot: impl Fn(&Collected) -> Vec<T>,
        mut predicate: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Vec<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            // Mark the version seen before looking, so a push landing in
            // between still wakes the next `changed()`.
            changed.borrow_and_update();
            let items = snapshot(&self.shared.lock());
            if predicate(&items) {
                return items;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                let items = snapshot(&self.shared.lock());
                if predicate(&items) {
                    return items;
                }
                panic!(
                    "Loki receiver at {}: timed out after {timeout:?} waiting for {what}\n{}",
                    self.address(),
                    self.dump(),
                );
            }
        }
    }

    /// A multi-line dump of everything received, for failure messages.
    pub fn dump(&self) -> String {
        let c = self.shared.lock();
        let skip = c.entries.len().saturating_sub(DUMP_LIMIT);
        let mut out = c.summary();
        out.push_str("\n  entries:\n");
        if c.entries.is_empty() {
            out.push_str("    (nothing)\n");
        }
        if skip > 0 {
            out.push_str(&format!("    ... {skip} earlier entries left out ...\n"));
        }
        for (i, e) in c.entries.iter().enumerate().skip(skip) {
            out.push_str(&format!("    #{i}: {e}\n"));
        }
        out
    }
}

impl Drop for LokiReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
