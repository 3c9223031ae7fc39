//! The load itself: starts requests on schedule, each to the target whose
//! turn it is, a bounded number in flight, until the limit is reached or the
//! run is interrupted.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Code, transport::Channel};

use super::{
    args::{Limit, PokeArgs},
    progress::Progress,
    report::Summary,
    schedule::Schedule,
    tally::Tally,
    targets::{TargetSpec, Turns},
    trace::ClientTracing,
    verify::Verifier,
};
use crate::{
    behaviour::Target,
    client,
    proto::{Empty, thespian_client::ThespianClient},
    span_count::BySpans,
};

/// One target of the run, connected.
#[derive(Debug, Clone)]
pub(super) struct Poked {
    /// As the command line gave it.
    pub(super) spec: TargetSpec,
    /// Its address, parsed.
    pub(super) target: Target,
    /// A client on each connection to its address, taking requests in
    /// turn.
    pub(super) clients: Arc<[ThespianClient<Channel>]>,
}

/// What every request task shares.
struct Shared {
    targets: Vec<Poked>,
    tally: Arc<Tally>,
    timeout: Duration,
    tracing: Option<Arc<ClientTracing>>,
    verifier: Option<Arc<Verifier>>,
    /// Poke's own `service.name`, under which its client span is expected.
    me: String,
}

/// Runs the load over `targets` until the limit of `args` is reached or
/// `interrupt` completes, and returns what happened.
pub(super) async fn drive(
    targets: &[Poked],
    args: &PokeArgs,
    tracing: Option<Arc<ClientTracing>>,
    verifier: Option<Arc<Verifier>>,
    interrupt: impl Future<Output = ()>,
) -> Summary {
    let shared = Arc::new(Shared {
        targets: targets.to_vec(),
        tally: Arc::new(Tally::new(targets.len())),
        timeout: args.timeout,
        tracing,
        verifier,
        me: args.traces.poke_service_name.clone(),
    });
    let slots = Arc::new(Semaphore::new(args.concurrency as usize));
    let schedule = Schedule::new(args.shape());
    let progress = Progress::start(Arc::clone(&shared.tally), args.shape(), args.quiet);
    let started = Instant::now();
    let limit = args.limit();
    let deadline = match limit {
        Limit::Duration(duration) => tokio::time::Instant::now().checked_add(duration),
        Limit::Requests(_) => None,
    };
    let until_deadline = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let load = send(schedule, limit, &shared, &slots);

    tokio::pin!(interrupt);
    let mut interrupted = tokio::select! {
        () = load => false,
        () = until_deadline => false,
        () = &mut interrupt => true,
    };
    if !interrupted {
        // Every slot free again means every request has answered; each one
        // is bounded by --timeout, so this ends.
        let drained = slots.acquire_many(args.concurrency);
        interrupted = tokio::select! {
            _ = drained => false,
            () = &mut interrupt => true,
        };
    }
    progress.finish();
    let specs: Vec<&TargetSpec> = targets.iter().map(|t| &t.spec).collect();
    shared
        .tally
        .summarise(&specs, started.elapsed(), interrupted)
}

/// Starts requests on schedule until `limit` says stop, each in its own
/// task holding one of the `slots`.
async fn send(mut schedule: Schedule, limit: Limit, shared: &Arc<Shared>, slots: &Arc<Semaphore>) {
    let mut turns = Turns::new(shared.targets.iter().map(|t| t.spec.weight));
    let mut sent = 0u64;
    loop {
        if let Limit::Requests(requests) = limit
            && sent >= requests
        {
            return;
        }
        schedule.wait().await;
        let Ok(slot) = Arc::clone(slots).acquire_owned().await else {
            return;
        };
        let index = turns.next();
        shared.tally.count_sent(index);
        tokio::spawn(request(index, sent, Arc::clone(shared), slot));
        sent += 1;
    }
}

/// Makes request number `n` and counts its answer, or DEADLINE_EXCEEDED when none
/// comes within the timeout; the `slot` is given back once it is counted.
/// A traced request's span ends with the answer, and with `--verify` its
/// trace is then checked against what the answer said it made.
async fn request(index: usize, n: u64, shared: Arc<Shared>, slot: OwnedSemaphorePermit) {
    let Poked {
        spec,
        target,
        clients,
    } = &shared.targets[index];
    let mut client = clients[(n % clients.len() as u64) as usize].clone();
    let mut request = tonic::Request::new(Empty {});
    let span = shared
        .tracing
        .as_ref()
        .map(|tracing| tracing.open(target, spec.method, request.metadata_mut()));
    let started = Instant::now();
    let answer = client::call_method(&mut client, spec.method, request);
    let answer = tokio::time::timeout(shared.timeout, answer).await;
    let elapsed = started.elapsed();
    let reported = |headers| {
        shared
            .verifier
            .as_ref()
            .and_then(|_| BySpans::read(headers))
    };
    let (code, reported) = match &answer {
        Ok(Ok(headers)) => (Code::Ok, reported(headers)),
        Ok(Err(status)) => (status.code(), reported(status.metadata())),
        Err(_) => (Code::DeadlineExceeded, None),
    };
    shared.tally.record(code, elapsed);
    if let Some(span) = span {
        let span_context = span.span_context.clone();
        span.end(code);
        if let Some(verifier) = &shared.verifier
            && span_context.is_sampled()
        {
            verifier.check(span_context.trace_id(), reported, &shared.me);
        }
    }
    // Given back last: once every slot is free, every span has ended and
    // every trace to verify is known.
    drop(slot);
}
