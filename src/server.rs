//! The gRPC server: Thespian's three methods, reflection and health, on a
//! listener the caller provides, until a shutdown future the caller provides
//! completes.

use std::{
    future::Future,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use futures::future::BoxFuture;
use opentelemetry::{
    Context, KeyValue,
    context::FutureExt as _,
    trace::{SpanKind, Status as OtelStatus, TraceContextExt, TraceId},
};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::{
    Request, Response, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Server, server::TcpIncoming},
};
use tracing::Instrument;

use crate::{
    admission::{self, Admission, Entry},
    attempts,
    behaviour::{MethodName, Repertoire},
    control::{Control, ControlToken},
    deadline::{self, Deadline},
    executor::{Executor, Roll},
    failure::{Failure, code_name},
    proto::{
        self, Empty as EmptyMessage,
        thespian_server::{Thespian, ThespianServer},
    },
    relay::{self, Headers},
    span_count::SpanCount,
    telemetry::{Metrics, ServedRequest, rpc_attributes},
};

/// The response header that names the request's trace, so `grpcurl -v`
/// shows which trace to open.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// `trace_id` as the value of [`TRACE_ID_HEADER`], marked never to be
/// indexed by HTTP/2's header compression: each answer's is new, so an
/// indexed one only crowds the connection's table, and every later answer
/// then compared its own against each one there.
fn trace_id_value(trace_id: TraceId) -> Option<MetadataValue<Ascii>> {
    let hex = const_hex::Buffer::<16>::new().const_format(&trace_id.to_bytes());
    let mut value = MetadataValue::try_from(hex.as_str()).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The services reflection lists when the control API is off.
const ADVERTISED_WITHOUT_CONTROL: [&str; 4] = [
    "thespian.Thespian",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// How the server runs, apart from what it acts out.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long in-flight requests may run on after shutdown begins.
    pub shutdown_grace: Duration,
    /// Records each request's duration, status and failure cause.
    pub metrics: Metrics,
    /// How many requests are acted out at once, and how many may wait.
    pub admission: Admission,
    /// `CONTROL_TOKEN`: when set, the control API is served, to calls
    /// that carry it.
    pub control: Option<ControlToken>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            shutdown_grace: Duration::from_secs(10),
            metrics: Metrics::default(),
            admission: Admission::default(),
            control: None,
        }
    }
}

/// A listener on `port` on every interface. Where the host has IPv6 it is
/// one dual-stack socket that takes IPv6 and IPv4 alike, as probes and
/// callers in IPv6 and dual-stack Kubernetes clusters need; elsewhere it is
/// IPv4 alone. Must run inside a tokio runtime.
pub fn listen(port: u16) -> std::io::Result<TcpListener> {
    match listen_dual_stack(port) {
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
            let listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)
        }
        listening => listening,
    }
}

fn listen_dual_stack(port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    // Said outright: some hosts make IPv6 sockets IPv6-only by default.
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// The connections `listener` accepts, each with Nagle's algorithm off, as
/// gRPC servers in other languages have them. With it on, an answer written
/// while the server's first frames on a new connection are not yet
/// acknowledged waits for the client's delayed acknowledgement: the first
/// request on every new connection, each `grpcurl` call among them, took
/// about 40 ms more. The bench's bare server and OTLP sink accept through
/// it too, so the baseline is the same kind of server.
pub fn accept_without_delay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves on `listener` until `shutdown` completes, then stops accepting,
/// lets in-flight requests finish for up to the grace period, and returns.
pub async fn run(
    listener: TcpListener,
    behaviour: impl Into<Repertoire>,
    executor: Executor,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), crate::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ThespianServer<Service>>().await;

    let behaviour: Repertoire = behaviour.into();
    let control = options
        .control
        .clone()
        .map(|token| Control::serve(executor.incidents().clone(), behaviour.clone(), token));
    let reflection = || {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        if control.is_some() {
            return builder;
        }
        // The control API's proto is compiled in, but not advertised
        // when it is not served.
        ADVERTISED_WITHOUT_CONTROL
            .iter()
            .fold(builder, |builder, name| builder.with_service_name(*name))
    };
    let reflection_v1 = reflection().build_v1()?;
    // grpcurl before 1.9 and many other tools still speak only v1alpha.
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let service = Service {
        behaviour,
        metrics: options.metrics.clone(),
        admission: options.admission.clone(),
        executor,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ThespianServer::new(service))
        .add_optional_service(control)
        .serve_with_incoming_shutdown(accept_without_delay(listener), async {
            let _ = stopped.await;
        });
    tokio::pin!(serve);

    tokio::select! {
        served = &mut serve => return Ok(served?),
        () = shutdown => {}
    }
    tracing::info!("shutting down: no new requests, waiting for those in flight");
    health.set_not_serving::<ThespianServer<Service>>().await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let _ = stop.send(());
    match tokio::time::timeout(options.shutdown_grace, serve).await {
        Ok(served) => Ok(served?),
        Err(_) => {
            tracing::warn!(
                grace_ms = options.shutdown_grace.as_millis() as u64,
                "requests still in flight after the shutdown grace period were cut off"
            );
            Ok(())
        }
    }
}

/// The `thespian.Thespian` service.
#[derive(Debug, Clone)]
struct Service {
    /// What each method acts out, replaced when the config file changes.
    behaviour: Repertoire,
    /// Acts it out.
    executor: Executor,
    /// Times and counts the requests.
    metrics: Metrics,
    /// Holds back requests past `MAX_IN_FLIGHT`.
    admission: Admission,
}

/// What each method answers with, boxed as the trait has it.
type Answer<'a> = BoxFuture<'a, Result<Response<EmptyMessage>, Status>>;

// The methods box `answer`'s future themselves: written as `async fn`s,
// each would box a future that also keeps the request, for as long as the
// method acts.
#[tonic::async_trait]
impl Thespian for Service {
    fn a<'s, 'f>(&'s self, request: Request<EmptyMessage>) -> Answer<'f>
    where
        's: 'f,
    {
        Box::pin(self.answer(MethodName::A, request))
    }

    fn b<'s, 'f>(&'s self, request: Request<EmptyMessage>) -> Answer<'f>
    where
        's: 'f,
    {
        Box::pin(self.answer(MethodName::B, request))
    }

    fn c<'s, 'f>(&'s self, request: Request<EmptyMessage>) -> Answer<'f>
    where
        's: 'f,
    {
        Box::pin(self.answer(MethodName::C, request))
    }
}

impl Service {
    /// Acts out `method` inside a server span that continues the caller's
    /// trace, and answers with the trace id attached. What it needs of the
    /// request is read at once, and the request is not kept: its headers
    /// would stay allocated for as long as the method acts, about 600
    /// bytes per request in flight.
    fn answer(
        &self,
        method: MethodName,
        request: Request<EmptyMessage>,
    ) -> impl Future<Output = Result<Response<EmptyMessage>, Status>> + Send + '_ {
        let budget = deadline::budget(request.metadata());
        let spans = SpanCount::default();
        let ending = Ending {
            cx: spans.sync_scope(|| {
                self.executor.tracer().open(
                    &self.executor.relay().read(request.metadata()),
                    method.span_name(),
                    SpanKind::Server,
                )
            }),
            // Loki's lines take their fields from `tracing` spans: this one
            // holds the ids of the step that logs each line. It is made only
            // when Loki is on.
            lines: tracing::trace_span!(target: "thespian::request", "rpc"),
            method,
            served: Some(self.metrics.request_started(method)),
            deadline: budget.map(|budget| Instant::now() + budget),
        };
        // The request's dice: what its script rolls while it directs, where
        // its steps' rolls start from, and what its own attributes draw. A
        // retry of a call shares its trace with the tries before it, so it
        // rolls anew, by its number, or a seeded retry could never succeed.
        let previous_attempts = attempts::read(request.metadata());
        let dice = self
            .executor
            .dice(ending.cx.span().span_context().trace_id());
        let dice = previous_attempts.map_or(dice, |previous| dice.child(previous as usize));
        // The version of the config current now serves the whole request.
        let behaviour = self.behaviour.current();
        let attributes = behaviour.attributes(method);
        if !attributes.is_empty() {
            let mut drawn = Vec::new();
            attributes.draw_into(&mut dice.rng(Roll::MethodAttributes), &mut drawn);
            ending.cx.span().set_attributes(drawn);
        }
        if let Some(previous) = previous_attempts {
            let attribute = KeyValue::new(attempts::PREVIOUS_ATTEMPTS_ATTRIBUTE, previous as i64);
            ending.cx.span().set_attribute(attribute);
        }
        if let Some(budget) = budget {
            let budget_ms = budget.as_nanos() as f64 / 1_000_000.0;
            let attribute = KeyValue::new("thespian.deadline.budget_ms", budget_ms);
            ending.cx.span().set_attribute(attribute);
        }
        relay::record_request_id(&ending.cx);
        let director = behaviour.get(method).cloned();
        // A script may read the request's headers while it directs, so a
        // script's request keeps them until then; any other lets them go.
        let headers = director
            .as_ref()
            .filter(|director| director.reads_headers())
            .map(|_| Headers::new(request.into_parts().0));
        spans.scope(async move {
            // A request past the hop limit is refused at once, before it
            // takes a slot or a place in the queue.
            if let Err(refused) = ending.lines.in_scope(|| self.executor.admit(&ending.cx)) {
                return ending.respond(Err(refused), self.executor.relay().name());
            }
            // Nothing is directed or acted out before the request has a
            // slot: a request waiting in the queue holds only its place
            // (and, for a script, the headers the script may read).
            let _slot = match self.admission.enter(method) {
                Entry::Admitted(slot) => slot,
                Entry::Queued(queued) => queued.wait(self.executor.tracer(), &ending.cx).await,
                Entry::Full(refused) => {
                    {
                        let _inside = ending.cx.clone().attach();
                        ending.lines.in_scope(|| admission::report(&refused));
                    }
                    return ending.respond(Err(refused), self.executor.relay().name());
                }
            };
            let outcome = match director {
                None => Ok(()),
                Some(director) => {
                    let step = {
                        let _inside = match headers {
                            Some(headers) => ending.cx.with_value(headers).attach(),
                            None => ending.cx.clone().attach(),
                        };
                        ending.lines.in_scope(|| director.direct_with(dice))
                    };
                    // A caller's deadline bounds everything the steps do.
                    let acting = match ending.deadline {
                        Some(caller) => Deadline::before(caller).within(&ending.cx),
                        None => ending.cx.clone(),
                    };
                    // The scenarios active as it starts, for its steps to
                    // read: with none active, one atomic load.
                    let acting = match self.executor.incidents().in_play(method) {
                        Some(in_play) => acting.with_value(in_play),
                        None => acting,
                    };
                    self.executor
                        .run_request(step, dice)
                        .with_context(acting)
                        .instrument(ending.lines.clone())
                        .await
                }
            };
            ending.respond(outcome, self.executor.relay().name())
        })
    }
}

/// How long before its deadline a request that is dropped still counts as
/// having run out of time. tonic starts the deadline's clock a moment
/// before Thespian reads the header, and a client cancels its own call when
/// its deadline passes, racing the server's timer.
const DEADLINE_SLACK: Duration = Duration::from_millis(20);

/// How a request ends, said once: by [`Ending::answer`] when it answers,
/// or by the drop when the request is dropped first, because its caller
/// reset the stream, its `grpc-timeout` ran out, or shutdown cut it off.
/// The steps in flight are dropped with it, so this is the one place left
/// to put that ending on the server span and in the metrics.
struct Ending {
    /// The context in which the request's server span is active.
    cx: Context,
    /// The `tracing` span the request's lines are logged in.
    lines: tracing::Span,
    /// The method the request called.
    method: MethodName,
    /// The request's metrics, until they are finished.
    served: Option<ServedRequest>,
    /// When the caller said it would stop waiting, if it did.
    deadline: Option<Instant>,
}

impl Ending {
    /// Ends the request with `outcome`, and answers with it, the trace id
    /// and the spans it made, counted under this instance's name `me`,
    /// attached.
    fn respond(
        self,
        outcome: Result<(), Failure>,
        me: &str,
    ) -> Result<Response<EmptyMessage>, Status> {
        let code = match &outcome {
            Ok(()) => tonic::Code::Ok,
            Err(failure) => failure.code(),
        };
        let trace_id = self.cx.span().span_context().trace_id();
        // Called while the request's future runs, which carries its count.
        let spans = SpanCount::current();
        self.answer(code, outcome.as_ref().err().map(Failure::cause));
        let trace_id = (trace_id != TraceId::INVALID)
            .then(|| trace_id_value(trace_id))
            .flatten();
        match outcome {
            Ok(()) => {
                let mut response = Response::new(EmptyMessage {});
                if let Some(trace_id) = trace_id {
                    response.metadata_mut().insert(TRACE_ID_HEADER, trace_id);
                }
                if let Some(spans) = &spans {
                    spans.write(me, response.metadata_mut());
                }
                Ok(response)
            }
            Err(failure) => {
                let mut status = Status::from(failure);
                if let Some(trace_id) = trace_id {
                    status.metadata_mut().insert(TRACE_ID_HEADER, trace_id);
                }
                if let Some(spans) = &spans {
                    spans.write(me, status.metadata_mut());
                }
                Err(status)
            }
        }
    }

    /// Records the status the request answered with.
    fn answer(mut self, code: tonic::Code, cause: Option<&'static str>) {
        self.end(code, cause);
    }

    /// Puts `code` on the server span and ends it, and records it in the
    /// metrics, the first time.
    fn end(&mut self, code: tonic::Code, cause: Option<&'static str>) {
        if let Some(served) = self.served.take() {
            let span = self.cx.span();
            span.update_name(self.method.span_name());
            let [system, service, method] = rpc_attributes(self.method);
            span.set_attributes([
                system,
                service,
                method,
                KeyValue::new("rpc.grpc.status_code", code as i64),
            ]);
            span.end();
            served.finish(code, cause);
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.served.is_none() {
            return;
        }
        let timed_out = self
            .deadline
            .is_some_and(|deadline| Instant::now() + DEADLINE_SLACK >= deadline);
        let (code, why) = if timed_out {
            (tonic::Code::DeadlineExceeded, "its deadline passed")
        } else {
            (
                tonic::Code::Cancelled,
                "its caller cancelled it or the instance shut down",
            )
        };
        let _inside = self.cx.clone().attach();
        self.lines.in_scope(|| {
            tracing::warn!(
                rpc.grpc.status_code = code as i32,
                "cut off before it answered: {why} ({})",
                code_name(code)
            );
        });
        // As OpenTelemetry's conventions for gRPC server spans have it, a
        // deadline that passed is an error; a cancelled request is not.
        if timed_out {
            self.cx
                .span()
                .set_status(OtelStatus::error(format!("cut off: {why}")));
        }
        self.end(code, None);
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_small_writes_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = accept_without_delay(listener);
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
