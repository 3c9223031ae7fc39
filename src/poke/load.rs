//! The load itself: starts requests on schedule, a bounded number in flight,
//! until the limit is reached or the run is interrupted.

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
};
use crate::{
    behaviour::{MethodName, Target},
    client,
    proto::{Empty, thespian_client::ThespianClient},
};

/// Runs the load over `channel` until the limit of `args` is reached or
/// `interrupt` completes, and returns what happened.
pub(super) async fn drive(
    channel: Channel,
    target: &Target,
    args: &PokeArgs,
    interrupt: impl Future<Output = ()>,
) -> Summary {
    let tally = Arc::new(Tally::new());
    let slots = Arc::new(Semaphore::new(args.concurrency as usize));
    let progress = Progress::start(Arc::clone(&tally), args.quiet);
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
    let client = ThespianClient::new(channel);
    let load = send(client, args, limit, &tally, &slots);

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
    tally.summarise(target, args.method, started.elapsed(), interrupted)
}

/// Starts requests on schedule until `limit` says stop, each in its own
/// task holding one of the `slots`.
async fn send(
    client: ThespianClient<Channel>,
    args: &PokeArgs,
    limit: Limit,
    tally: &Arc<Tally>,
    slots: &Arc<Semaphore>,
) {
    let mut schedule = Schedule::new(args.rate);
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
        sent += 1;
        tally.count_sent();
        tokio::spawn(request(
            client.clone(),
            args.method,
            args.timeout,
            Arc::clone(tally),
            slot,
        ));
    }
}

/// Makes one request and counts its answer, or DEADLINE_EXCEEDED when none
/// comes within `timeout`; the `slot` is given back once it is counted.
async fn request(
    mut client: ThespianClient<Channel>,
    method: MethodName,
    timeout: Duration,
    tally: Arc<Tally>,
    slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let answer = client::call_method(&mut client, method, tonic::Request::new(Empty {}));
    let code = match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => Code::DeadlineExceeded,
    };
    tally.record(code, started.elapsed());
    drop(slot);
}
