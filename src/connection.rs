//! HTTP/2 connections to other Thespians, shared by an instance's calls to
//! its downstreams (`client`) and by `thespian poke`. Each request is
//! written straight onto a shared connection: its headers and the five
//! bytes of an empty gRPC message go out from the request's own task, and
//! its answer is read back there.
//!
//! tonic's channel hands every call to a worker task through a queue, and
//! hyper's client hands it on again to the connection's task and to a task
//! of its own for the body: several wake-ups per request. That made poke
//! spend four times h2load's CPU per request, and was about a quarter of a
//! calling instance's CPU. Here a request is one task, and the
//! connection's task only moves frames. tonic still reads the answer's
//! status, so codes and messages mean what they mean everywhere else in
//! Thespian.
//!
//! A connection is opened by its first request, and opened again by the
//! next one after it breaks, so callers outlive a restart of their target.
//! Requests made while the target cannot be reached answer `UNAVAILABLE`,
//! as gRPC clients report it, saying why, and a failed connect is not
//! retried for `RECONNECT_PAUSE`, so that requests at full speed to a
//! stopped target do not turn into a storm of connects. One connect is
//! made at a time; the requests that arrive meanwhile wait for it.
//! Dropping a request's future resets its stream, so a target stops acting
//! for a caller that has gone.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderValue, Method, Request, Uri, header};
use tokio::net::TcpStream;
use tonic::{Code, Status, metadata::MetadataMap};

use crate::behaviour::{MethodName, Target};

/// An empty message, framed as gRPC frames every message: uncompressed, of
/// length zero.
const EMPTY_MESSAGE: Bytes = Bytes::from_static(&[0, 0, 0, 0, 0]);

/// How long after a failed connect requests answer `UNAVAILABLE` at once,
/// before the next attempt.
pub(crate) const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// The flow-control windows offered, as hyper's client does by default:
/// h2 limits how many small frames may wait unread to a share of the
/// connection's window, and at full speed hundreds of answers of a few
/// bytes each arrive between two turns of the requests' tasks.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// One HTTP/2 connection to a target, opened again when it breaks.
#[derive(Debug)]
pub(crate) struct Connection {
    target: Target,
    /// The full URI of each method, in the order of [`MethodName::ALL`].
    uris: [Uri; 3],
    /// The `user-agent` every request carries, so a server's logs tell
    /// callers apart.
    user_agent: HeaderValue,
    state: Mutex<State>,
    /// Held while a request connects, so that one connect is made at a
    /// time and the requests that come meanwhile wait for it.
    connecting: tokio::sync::Mutex<()>,
}

/// Where the connection stands.
#[derive(Debug)]
enum State {
    /// Open: each request clones its sender.
    Open(Arc<SendRequest<Bytes>>),
    /// Broken, or never opened: the next request opens it.
    Closed,
    /// The last connect failed, for the reason `why`: requests answer so
    /// at once until `until`, when the next one connects again.
    Paused { until: Instant, why: Arc<str> },
}

/// What a request got back.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Its gRPC status: `OK` for a message and a status of 0.
    pub(crate) status: Status,
    /// Its headers, with its trailers when it had any: the span counts and
    /// trace id the server wrote.
    pub(crate) metadata: MetadataMap,
}

impl Answer {
    /// An answer that never came from the server.
    fn failed(status: Status) -> Answer {
        Answer {
            status,
            metadata: MetadataMap::new(),
        }
    }

    /// Its gRPC status code.
    pub(crate) fn code(&self) -> Code {
        self.status.code()
    }
}

impl Connection {
    /// Opens a connection to `target` now, failing if it cannot be reached:
    /// a run that cannot start should say so rather than count errors.
    pub(crate) async fn open(
        target: &Target,
        user_agent: &'static str,
    ) -> Result<Connection, crate::Error> {
        let sender = handshake(target)
            .await
            .map_err(|e| cannot_reach(target, &*e))?;
        Connection::new(target, user_agent, State::Open(Arc::new(sender)))
    }

    /// A connection to `target` that its first request opens.
    pub(crate) fn lazy(
        target: &Target,
        user_agent: &'static str,
    ) -> Result<Connection, crate::Error> {
        Connection::new(target, user_agent, State::Closed)
    }

    /// A connection to `target` that stands as `state` says.
    fn new(
        target: &Target,
        user_agent: &'static str,
        state: State,
    ) -> Result<Connection, crate::Error> {
        let uri = |method: MethodName| -> Result<Uri, crate::Error> {
            Ok(format!("{}{}", target.as_str(), method.path()).parse()?)
        };
        Ok(Connection {
            target: target.clone(),
            uris: [
                uri(MethodName::A)?,
                uri(MethodName::B)?,
                uri(MethodName::C)?,
            ],
            user_agent: HeaderValue::from_static(user_agent),
            state: Mutex::new(state),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// Calls `method` with an empty message and `metadata` as its headers,
    /// and reads the answer to its end. Never fails: what goes wrong on the
    /// way is the status of the answer.
    pub(crate) async fn call(&self, method: MethodName, metadata: MetadataMap) -> Answer {
        let (sender, current) = match self.sender().await {
            Ok(ready) => ready,
            Err(unreachable) => return Answer::failed(unreachable),
        };
        let mut headers = metadata.into_headers();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::USER_AGENT, self.user_agent.clone());
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uris[method.index()].clone();
        *request.headers_mut() = headers;
        match exchange(sender, request).await {
            Ok(answer) => answer,
            // The target reset this one stream: the connection goes on.
            Err(error) if error.is_reset() && !error.is_go_away() => {
                Answer::failed(Status::from(error))
            }
            // The connection itself failed, or was closed.
            Err(error) => Answer::failed(self.forget(&current, &error)),
        }
    }

    /// A sender ready for one more request, and the connection it belongs
    /// to, or why the target cannot be reached now.
    async fn sender(&self) -> Result<(SendRequest<Bytes>, Arc<SendRequest<Bytes>>), Status> {
        let current = match self.current() {
            Ok(Some(current)) => current,
            Ok(None) => self.reopen().await?,
            Err(paused) => return Err(paused),
        };
        match SendRequest::clone(&current).ready().await {
            Ok(sender) => Ok((sender, current)),
            Err(error) => Err(self.forget(&current, &error)),
        }
    }

    /// The open connection, `None` if it is time to open one, or why not.
    fn current(&self) -> Result<Option<Arc<SendRequest<Bytes>>>, Status> {
        match &*self.state.lock().unwrap() {
            State::Open(sender) => Ok(Some(Arc::clone(sender))),
            State::Paused { until, why } if Instant::now() < *until => {
                Err(Status::unavailable(why.to_string()))
            }
            State::Closed | State::Paused { .. } => Ok(None),
        }
    }

    /// Opens the connection again, unless another request did so first or
    /// failed to a moment ago.
    async fn reopen(&self) -> Result<Arc<SendRequest<Bytes>>, Status> {
        let _connecting = self.connecting.lock().await;
        if let Some(current) = self.current()? {
            return Ok(current);
        }
        let opened = handshake(&self.target).await;
        let mut state = self.state.lock().unwrap();
        match opened {
            Ok(sender) => {
                let sender = Arc::new(sender);
                *state = State::Open(Arc::clone(&sender));
                Ok(sender)
            }
            Err(error) => {
                let why = cannot_reach(&self.target, &*error);
                *state = State::Paused {
                    until: Instant::now() + RECONNECT_PAUSE,
                    why: Arc::from(why.as_str()),
                };
                Err(Status::unavailable(why))
            }
        }
    }

    /// Marks `broken`, which failed with `error`, as closed, if it is still
    /// the connection in use, so that the next request opens a new one; and
    /// says so, for the request that found it broken.
    fn forget(&self, broken: &Arc<SendRequest<Bytes>>, error: &h2::Error) -> Status {
        let mut state = self.state.lock().unwrap();
        if matches!(&*state, State::Open(sender) if Arc::ptr_eq(sender, broken)) {
            *state = State::Closed;
        }
        Status::unavailable(format!("the connection to {} broke: {error}", self.target))
    }
}

/// Why `target` could not be reached, `error` and its causes.
fn cannot_reach(target: &Target, error: &(dyn std::error::Error + 'static)) -> String {
    format!("cannot reach {target}: {}", crate::explain(error))
}

/// Connects to `target` over TCP, without Nagle's delay, and starts HTTP/2
/// on it, its frames moved by a task of its own until it closes.
async fn handshake(target: &Target) -> Result<SendRequest<Bytes>, crate::Error> {
    // An IPv6 address is bracketed in a URI, and bare in a socket address.
    let host = target.host().trim_start_matches('[').trim_end_matches(']');
    let connect = TcpStream::connect((host, target.port()));
    let stream = tokio::time::timeout(crate::client::CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| "no connection within the connect timeout")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake(stream)
        .await?;
    tokio::spawn(async move {
        // It ends when the target closes it or every sender is gone; the
        // requests on it see why.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends `request` with an empty message and reads the answer: its headers,
/// then any message and its trailers, or a status in the headers alone.
async fn exchange(
    mut sender: SendRequest<Bytes>,
    request: Request<()>,
) -> Result<Answer, h2::Error> {
    let (response, mut body) = sender.send_request(request, false)?;
    body.send_data(EMPTY_MESSAGE, true)?;
    let (parts, mut body) = response.await?.into_parts();
    if parts.status != http::StatusCode::OK {
        return Ok(Answer {
            status: Status::new(
                code_of_http_status(parts.status),
                format!("the target answered HTTP {}", parts.status),
            ),
            metadata: MetadataMap::from_headers(parts.headers),
        });
    }
    let mut headers = parts.headers;
    if let Some(status) = Status::from_header_map(&headers) {
        // A status with no message: the headers were the trailers.
        return Ok(Answer {
            status,
            metadata: MetadataMap::from_headers(headers),
        });
    }
    while let Some(data) = body.data().await {
        let data = data?;
        let _ = body.flow_control().release_capacity(data.len());
    }
    let trailers = body.trailers().await?.unwrap_or_default();
    let status = Status::from_header_map(&trailers).unwrap_or_else(|| {
        // The stream ended with no status: the gRPC spec calls that an
        // internal error.
        Status::internal("the answer ended without a gRPC status")
    });
    headers.extend(trailers);
    Ok(Answer {
        status,
        metadata: MetadataMap::from_headers(headers),
    })
}

/// The gRPC code for an HTTP status that came with no gRPC status, as the
/// gRPC spec maps them.
pub(crate) fn code_of_http_status(status: http::StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

    use super::*;
    use crate::{
        behaviour::Repertoire,
        executor::{Executor, SpanNames},
        server::{self, ServerOptions},
    };

    /// An unconfigured Thespian on `address`, until the sender is dropped
    /// or fired.
    async fn serve(address: SocketAddr) -> (oneshot::Sender<()>, JoinHandle<()>) {
        let listener = TcpListener::bind(address).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServerOptions {
            shutdown_grace: Duration::ZERO,
            ..ServerOptions::default()
        };
        let served = server::run(
            listener,
            Repertoire::default(),
            Executor::new(SpanNames::default()),
            options,
            async {
                let _ = stopped.await;
            },
        );
        let server = tokio::spawn(async { served.await.unwrap() });
        (stop, server)
    }

    /// A free loopback address.
    async fn free_address() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_the_target_closed_is_opened_again_by_the_next_request() {
        let address = free_address().await;
        let target = Target::parse(&address.to_string()).unwrap();
        let (stop, server) = serve(address).await;
        let connection = Connection::open(&target, "test").await.unwrap();
        let first = connection.call(MethodName::A, MetadataMap::new()).await;
        assert_eq!(first.code(), Code::Ok);

        stop.send(()).unwrap();
        server.await.unwrap();
        let while_down = connection.call(MethodName::B, MetadataMap::new()).await;
        assert_eq!(while_down.code(), Code::Unavailable);

        let (_stop, _server) = serve(address).await;
        let after = connection.call(MethodName::C, MetadataMap::new()).await;
        assert_eq!(after.code(), Code::Ok, "{after:?}");
    }

    #[tokio::test]
    async fn a_target_named_by_its_ipv6_address_is_reached() {
        let address = TcpListener::bind("[::1]:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (_stop, _server) = serve(address).await;
        let target = Target::parse(&format!("http://{address}")).unwrap();
        assert_eq!(target.host(), "[::1]");
        let connection = Connection::open(&target, "test").await.unwrap();
        let answer = connection.call(MethodName::A, MetadataMap::new()).await;
        assert_eq!(answer.code(), Code::Ok);
    }

    #[tokio::test]
    async fn a_target_that_refuses_connections_is_not_tried_again_at_once() {
        let address = free_address().await;
        let target = Target::parse(&address.to_string()).unwrap();
        assert!(Connection::open(&target, "test").await.is_err());
        let before = Instant::now();
        let connection = Connection::lazy(&target, "test").unwrap();
        let answer = connection.call(MethodName::A, MetadataMap::new()).await;
        assert_eq!(answer.code(), Code::Unavailable);
        assert!(
            answer.status.message().contains(&target.to_string()),
            "the answer says which target could not be reached: {answer:?}"
        );
        let State::Paused { until, .. } = *connection.state.lock().unwrap() else {
            panic!("a refused connect did not pause the connection");
        };
        assert!(until >= before + RECONNECT_PAUSE);
        let again = connection.call(MethodName::A, MetadataMap::new()).await;
        assert_eq!(
            again.status.message(),
            answer.status.message(),
            "within the pause, requests are told why at once"
        );
    }

    #[test]
    fn an_http_status_without_a_grpc_status_has_the_code_the_spec_gives_it() {
        let code = |status: u16| code_of_http_status(http::StatusCode::from_u16(status).unwrap());
        assert_eq!(code(404), Code::Unimplemented);
        assert_eq!(code(503), Code::Unavailable);
        assert_eq!(code(401), Code::Unauthenticated);
        assert_eq!(code(500), Code::Unknown);
    }
}
