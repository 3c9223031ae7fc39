//! `thespian poke`: calls one method of a Thespian at a steady rate, shows
//! how it is going, and sums up latency and status codes at the end.
//!
//! It is made to run for a long time in front of a pretend ecosystem, so
//! everything it keeps is bounded: counters, one latency histogram and a
//! limit on requests in flight, never a record per request. Each call is a
//! plain gRPC call with no trace context, so each one starts a new trace at
//! the instance it calls.
//!
//! Its parts, from the command line to the summary:
//!
//! - `args`: the options, and when the run stops.
//! - `schedule`: when each request starts.
//! - `load`: the loop that starts requests and bounds those in flight.
//! - `tally`: what is counted while the run goes on.
//! - `progress`: the live line on stderr.
//! - `report`: the summary at the end.

mod args;
mod load;
mod progress;
mod report;
mod schedule;
mod tally;

use std::future::Future;

use tonic::transport::Channel;

pub(crate) use self::args::{parse_method, parse_rate};
pub use self::{
    args::PokeArgs,
    report::{Percentiles, Summary},
};
use crate::{behaviour::Target, client};

/// Pokes `args.address` until the limit is reached or `interrupt` completes,
/// then prints the summary on stdout. Fails only when poking cannot start.
pub async fn run(args: PokeArgs, interrupt: impl Future<Output = ()>) -> Result<(), crate::Error> {
    let summary = drive(&args, interrupt).await?;
    summary.print(args.json)
}

/// Pokes `args.address` until the limit is reached or `interrupt`
/// completes, and returns the summary rather than printing it, for a caller
/// that pokes alongside other work, as `thespian up` does.
pub async fn drive(
    args: &PokeArgs,
    interrupt: impl Future<Output = ()>,
) -> Result<Summary, crate::Error> {
    let target = Target::parse(&args.address)?;
    let channel = connect(&target).await?;
    Ok(load::drive(channel, &target, args, interrupt).await)
}

/// Opens the one HTTP/2 connection every request is multiplexed over.
async fn connect(target: &Target) -> Result<Channel, crate::Error> {
    client::endpoint(target)?
        .connect()
        .await
        .map_err(|e| format!("cannot reach {target}: {}", crate::explain(&e)).into())
}
