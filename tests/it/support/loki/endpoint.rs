//! The HTTP side of the receiver: Loki's push route, which notes every
//! push, answers as the test's [`LokiBehaviour`] says, and records the
//! entries it accepted.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::routing::{get, post};

use super::decode::{decode_json, decode_protobuf};
use super::{LokiEntry, LokiPush, PUSH_PATH, PushFormat};
use crate::support::receiver::{self, Dump, list};

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

/// Everything a receiver was sent, in arrival order.
#[derive(Default)]
pub(super) struct Collected {
    /// The entries of accepted pushes.
    pub entries: Vec<LokiEntry>,
    /// Every push request, accepted or not.
    pub pushes: Vec<LokiPush>,
    /// Requests to anything but the push path: usually a wrong URL.
    pub unmatched: Vec<String>,
}

impl Dump for Collected {
    fn dump(&self) -> String {
        let ok = self.pushes.iter().filter(|p| p.status / 100 == 2).count();
        let mut s = format!(
            "{} push requests ({} accepted), {} entries",
            self.pushes.len(),
            ok,
            self.entries.len(),
        );
        for p in self.pushes.iter().filter(|p| p.error.is_some()) {
            let _ = write!(
                s,
                "\n    refused push ({}): {}",
                p.status,
                p.error.as_deref().unwrap_or_default()
            );
        }
        if !self.unmatched.is_empty() {
            let _ = write!(s, "\n    requests to other paths: {:?}", self.unmatched);
        }
        let _ = write!(s, "\n  entries:\n{}", list(&self.entries));
        s
    }
}

/// What the receiver collected and how it answers, shared by the route
/// handlers and the test.
pub(super) type Record = receiver::Record<Collected, LokiBehaviour>;

/// Loki's routes, recording into `record`: the push API, a readiness
/// probe, and a note of any other request.
pub(super) fn router(record: Arc<Record>) -> Router {
    Router::new()
        .route(PUSH_PATH, post(push))
        .route("/ready", get(|| async { "ready" }))
        .fallback(unmatched)
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(record)
}

/// Notes how push `index` was answered, and wakes whoever waits.
fn finish(record: &Record, index: usize, status: StatusCode, error: Option<String>) {
    {
        let mut c = record.lock();
        c.pushes[index].status = status.as_u16();
        c.pushes[index].error = error;
    }
    record.bump();
}

async fn push(
    State(record): State<Arc<Record>>,
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
        let mut c = record.lock();
        c.pushes.push(LokiPush {
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            entries: decoded.as_ref().map(Vec::len).unwrap_or(0),
            status: 0,
            error: None,
        });
        c.pushes.len() - 1
    };
    record.bump();
    let entries = match decoded {
        Ok(entries) => entries,
        Err(e) => {
            let status = if format.is_none() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::BAD_REQUEST
            };
            finish(&record, index, status, Some(e.clone()));
            return (status, e);
        }
    };
    match record.behaviour() {
        LokiBehaviour::Accept => {}
        LokiBehaviour::Delay(d) => tokio::time::sleep(d).await,
        LokiBehaviour::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = format!("test receiver is failing pushes with {code}");
            finish(&record, index, status, Some(message.clone()));
            return (status, message);
        }
    }
    record.lock().entries.extend(entries);
    finish(&record, index, StatusCode::NO_CONTENT, None);
    (StatusCode::NO_CONTENT, String::new())
}

async fn unmatched(State(record): State<Arc<Record>>, method: Method, uri: Uri) -> StatusCode {
    record.lock().unmatched.push(format!("{method} {uri}"));
    record.bump();
    StatusCode::NOT_FOUND
}
