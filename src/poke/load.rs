//! The load itself: starts requests on schedule, each to the target whose
//! turn it is, a bounded number in flight, until the limit is reached or the
//! run is interrupted.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt as _, stream::FuturesUnordered};
use tonic::{Code, metadata::MetadataMap};

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
    connection::{Answer, Connection},
    span_count::BySpans,
};

/// One target of the run, connected.
#[derive(Debug, Clone)]
pub(super) struct Poked {
    /// As the command line gave it.
    pub(super) spec: TargetSpec,
    /// Its address, parsed.
    pub(super) target: Target,
    /// The connections to its address, taking requests in turn.
    pub(super) connections: Arc<[Connection]>,
}

/// What every request shares.
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
    let shared = Shared {
        targets: targets.to_vec(),
        tally: Arc::new(Tally::new(targets.len())),
        timeout: args.timeout,
        tracing,
        verifier,
        me: args.traces.poke_service_name.clone(),
    };
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
    let load = send(
        schedule,
        limit,
        &shared,
        args.concurrency as usize,
        until_deadline,
    );
    let interrupted = tokio::select! {
        () = load => false,
        () = interrupt => true,
    };
    progress.finish();
    let specs: Vec<&TargetSpec> = targets.iter().map(|t| &t.spec).collect();
    shared
        .tally
        .summarise(&specs, started.elapsed(), interrupted)
}

/// Starts requests on schedule, at most `concurrency` in flight, until
/// `limit` says stop or `deadline` completes, then waits for those still in
/// flight; each one is bounded by `--timeout`, so this ends.
///
/// Every request is a future of this one task, not a task of its own: at
/// full speed a task per request cost poke more CPU than the server it
/// measured spends, in moving each request into its task and in waking
/// threads that contend for the connection.
async fn send(
    mut schedule: Schedule,
    limit: Limit,
    shared: &Shared,
    concurrency: usize,
    deadline: impl Future<Output = ()>,
) {
    let mut turns = Turns::new(shared.targets.iter().map(|t| t.spec.weight));
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0u64;
    // When the next request is due, once the schedule has given it its turn.
    let mut due = None;
    let mut stopped = false;
    tokio::pin!(deadline);
    loop {
        let more = !stopped && !matches!(limit, Limit::Requests(requests) if sent >= requests);
        if !more && in_flight.is_empty() {
            return;
        }
        let room = more && in_flight.len() < concurrency;
        if room {
            let at = *due.get_or_insert_with(|| schedule.next());
            if at <= tokio::time::Instant::now() {
                due = None;
                let index = turns.next();
                shared.tally.count_sent(index);
                in_flight.push(request(index, sent, shared));
                sent += 1;
                continue;
            }
        }
        // Made only when polled, so a run at full speed sets no timer.
        let next_due = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = next_due, if room => {}
            () = &mut deadline, if !stopped => stopped = true,
        }
    }
}

/// Makes request number `n` and counts its answer, or DEADLINE_EXCEEDED when none
/// comes within the timeout.
/// A traced request's span ends with the answer, and with `--verify` its
/// trace is then checked against what the answer said it made.
async fn request(index: usize, n: u64, shared: &Shared) {
    let Poked {
        spec,
        target,
        connections,
    } = &shared.targets[index];
    let connection = &connections[(n % connections.len() as u64) as usize];
    let mut metadata = MetadataMap::new();
    let span = shared
        .tracing
        .as_ref()
        .map(|tracing| tracing.open(target, spec.method, &mut metadata));
    let started = Instant::now();
    let answer = connection.call(spec.method, metadata);
    let answer = tokio::time::timeout(shared.timeout, answer).await;
    let elapsed = started.elapsed();
    let (code, reported) = match answer {
        Ok(Answer { status, metadata }) => {
            let reported = shared
                .verifier
                .as_ref()
                .and_then(|_| BySpans::read(&metadata));
            (status.code(), reported)
        }
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
}
