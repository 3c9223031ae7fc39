//! `thespian poke`: calls the methods of one or more Thespians at a rate of
//! a chosen shape, each call a client span of its own trace, shows how it is
//! going, sums up latency and status codes at the end and, with `--verify`,
//! checks that the tracing backend kept every span each call made.
//!
//! It is made to run for a long time in front of a pretend ecosystem, so
//! everything it keeps is bounded: counters, one latency histogram and a
//! limit on requests in flight, never a record per request (save for the
//! traces `--verify` checks, at most `--verify-sample` of them).
//!
//! Its parts, from the command line to the summary:
//!
//! - `args`: the options, and when the run stops.
//! - `targets`: who is called, with what weight, and whose turn it is.
//! - `shape`: the rate aimed for at each moment.
//! - `schedule`: when each request starts.
//! - `trace`: each request's client span and the context it carries.
//! - `connection`: the HTTP/2 connections requests are written onto.
//! - `load`: the loop that starts requests and bounds those in flight.
//! - `tally`: what is counted while the run goes on.
//! - `progress`: the live line on stderr.
//! - `verify`: reads traces back from the backend and checks them.
//! - `report`: the summary at the end.

mod args;
mod load;
mod progress;
mod report;
mod schedule;
mod shape;
mod tally;
mod targets;
mod trace;
mod verify;

use std::{future::Future, sync::Arc};

pub(crate) use self::args::{parse_method, parse_rate};
pub use self::{
    args::PokeArgs,
    report::{Percentiles, Summary, TargetSummary},
    shape::Shape,
    targets::TargetSpec,
    trace::{SamplerName, TraceArgs, TraceExport},
    verify::{Backend, BackendKind, VerifyArgs, VerifyReport},
};
use self::{load::Poked, trace::ClientTracing, verify::Verifier};
use crate::{behaviour::Target, connection::Connection};

/// The `user-agent` poke's requests carry, so a server's logs tell them apart.
const USER_AGENT: &str = concat!("thespian-poke/", env!("CARGO_PKG_VERSION"));

/// Pokes the targets of `args` until the limit is reached or `interrupt`
/// completes, with its spans going where `export` says, then prints the
/// summary on stdout. Fails only when poking cannot start.
pub async fn run(
    args: PokeArgs,
    export: TraceExport,
    interrupt: impl Future<Output = ()>,
) -> Result<(), crate::Error> {
    let targets = connect_all(&args).await?;
    let verifier = Verifier::new(&args.verify)?;
    let tracing = ClientTracing::install(&args.traces, export)?.map(Arc::new);
    let mut summary = load::drive(
        &targets,
        &args,
        tracing.clone(),
        verifier.clone(),
        interrupt,
    )
    .await;
    summary.shape = args.shape().map(|shape| shape.to_string());
    if let Some(tracing) = tracing {
        // Poke's own spans must reach the backend before it is checked.
        tracing.shutdown().await;
    }
    if let Some(verifier) = verifier {
        summary.verify = Some(verifier.finish().await);
    }
    summary.print(args.json)
}

/// Pokes the targets of `args` until the limit is reached or `interrupt`
/// completes, and returns the summary rather than printing it, for a caller
/// that pokes alongside other work, as `thespian up` does. Its requests are
/// not traced: the process's `tracing` is the caller's.
pub async fn drive(
    args: &PokeArgs,
    interrupt: impl Future<Output = ()>,
) -> Result<Summary, crate::Error> {
    let targets = connect_all(args).await?;
    let mut summary = load::drive(&targets, args, None, None, interrupt).await;
    summary.shape = args.shape().map(|shape| shape.to_string());
    Ok(summary)
}

/// Connects to every target: `--connections` connections per address,
/// shared by the targets at that address.
async fn connect_all(args: &PokeArgs) -> Result<Vec<Poked>, crate::Error> {
    let mut targets: Vec<Poked> = Vec::new();
    for spec in args.targets()? {
        let target = Target::parse(&spec.address)?;
        let connections = match targets.iter().find(|t| t.target == target) {
            Some(same) => same.connections.clone(),
            None => {
                let connections =
                    (0..args.connections()).map(|_| Connection::open(&target, USER_AGENT));
                futures::future::try_join_all(connections).await?.into()
            }
        };
        targets.push(Poked {
            spec,
            target,
            connections,
        });
    }
    Ok(targets)
}
