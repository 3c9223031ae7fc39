//! The options of `thespian poke`: who to call, how fast, for how long.

use std::time::Duration;

use clap::Args;

use super::{
    shape::{MAX_RATE, Shape},
    targets::{MAX_TARGETS, TargetSpec},
    trace::{SamplerName, TraceArgs},
    verify::VerifyArgs,
};
use crate::behaviour::MethodName;

/// Calls Thespians' methods at a rate of a chosen shape, each call a traced
/// client span, and reports latency and status codes; with `--verify`, also
/// whether the tracing backend kept every span.
///
/// Runs for 10 s unless `--duration` or `--requests` says otherwise; Ctrl-C
/// (or SIGTERM) ends it early and still prints the summary. Exits 0 whatever
/// the calls answered, and 1 only when it could not run at all, such as a
/// malformed address or nothing listening there.
#[derive(Debug, Clone, Args)]
pub struct PokeArgs {
    /// The Thespian to call, such as `http://localhost:6379` or `frontend:6379`
    /// (or name targets with --target instead).
    #[arg(required_unless_present = "targets")]
    pub address: Option<String>,

    /// The method to call: A, B or C.
    #[arg(value_parser = parse_method, required_unless_present = "targets")]
    pub method: Option<MethodName>,

    /// Another method to call, and its share of the requests: `ADDRESS:METHOD=WEIGHT`,
    /// such as `frontend:6379:A=3` (weight 1 without `=`). Repeat it for more.
    #[arg(long = "target", value_name = "ADDRESS:METHOD=WEIGHT")]
    pub targets: Vec<TargetSpec>,

    /// Requests started per second, on a fixed schedule whatever the answers
    /// (open loop). Without it or --shape, requests go as fast as --concurrency allows.
    #[arg(long, value_parser = parse_rate, conflicts_with = "shape")]
    pub rate: Option<f64>,

    /// How the rate changes over the run: `constant:50`, `ramp:from=10,to=200,over=5m`,
    /// `steps:10@30s,50@1m`, `sine:min=5,max=100,period=10m` or
    /// `bursts:base=10,peak=300,every=1m,for=5s`.
    #[arg(long, value_name = "SHAPE")]
    pub shape: Option<Shape>,

    /// The most requests in flight at once. When a slow target uses them
    /// all, the schedule waits rather than piling requests up.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,

    /// HTTP/2 connections to each address, taking requests in turn, so that
    /// a run reaches every replica behind a balancer that balances
    /// connections rather than requests, as a Kubernetes Service does.
    #[arg(long, default_value_t = CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub connections: u32,

    /// How long to keep poking, such as `30s`, `15m` or `24h` [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Stop after this many requests instead of after a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// How long one request may take before it counts as DEADLINE_EXCEEDED.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,

    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Draw no progress line, for a poke that runs beside other output.
    #[arg(skip)]
    pub quiet: bool,

    /// How each request is traced.
    #[command(flatten)]
    pub traces: TraceArgs,

    /// Whether the backend kept every span.
    #[command(flatten)]
    pub verify: VerifyArgs,
}

/// Connections to each address by default. Over one connection the server
/// reads every request in turn, on one thread at a time, and poke's load
/// stays on one replica behind a balancer of connections; four spread it
/// over a server's threads and a small deployment's replicas.
const CONNECTIONS: u32 = 4;

impl PokeArgs {
    /// A poke of `method` at `address` with the command line's defaults,
    /// untraced, for a caller that sets the options itself, as `thespian up`
    /// does.
    pub fn untraced(address: String, method: MethodName) -> PokeArgs {
        PokeArgs {
            address: Some(address),
            method: Some(method),
            targets: Vec::new(),
            rate: None,
            shape: None,
            concurrency: 16,
            connections: CONNECTIONS,
            duration: None,
            requests: None,
            timeout: Duration::from_secs(30),
            json: false,
            quiet: false,
            traces: TraceArgs {
                no_traces: true,
                poke_service_name: "poke".to_owned(),
                otel_traces_sampler: SamplerName::ParentbasedAlwaysOn,
                otel_traces_sampler_arg: None,
            },
            verify: VerifyArgs {
                verify: None,
                verify_sample: 10_000,
                verify_wait: Duration::from_secs(30),
            },
        }
    }

    /// How many connections each address gets: never more than there can
    /// be requests in flight.
    pub(super) fn connections(&self) -> usize {
        self.connections.min(self.concurrency) as usize
    }

    /// The shape of the traffic, if it is paced.
    pub(super) fn shape(&self) -> Option<Shape> {
        self.shape
            .clone()
            .or_else(|| self.rate.map(Shape::Constant))
    }

    /// Every target: the one named by ADDRESS and METHOD, then each
    /// `--target`.
    pub(super) fn targets(&self) -> Result<Vec<TargetSpec>, crate::Error> {
        let mut targets = Vec::new();
        if let (Some(address), Some(method)) = (&self.address, self.method) {
            targets.push(TargetSpec {
                address: address.clone(),
                method,
                weight: 1,
            });
        }
        targets.extend(self.targets.iter().cloned());
        if targets.len() > MAX_TARGETS {
            return Err(format!("at most {MAX_TARGETS} targets").into());
        }
        Ok(targets)
    }

    /// When poking stops, as the options say.
    pub(super) fn limit(&self) -> Limit {
        match (self.requests, self.duration) {
            (Some(requests), _) => Limit::Requests(requests),
            (None, Some(duration)) => Limit::Duration(duration),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        }
    }
}

/// When poking stops.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    /// After this many requests have been started.
    Requests(u64),
    /// After this long.
    Duration(Duration),
}

/// Reads a method name as users type it: `A`, or `a`.
pub(crate) fn parse_method(text: &str) -> Result<MethodName, String> {
    text.to_ascii_uppercase().parse()
}

/// Reads `--rate`: a positive number of requests per second.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    match super::shape::rate(text) {
        Ok(rate) if rate > 0.0 => Ok(rate),
        Ok(_) | Err(_) if text.parse::<f64>().is_err() => Err(format!("`{text}` is not a number")),
        _ => Err(format!(
            "the rate must be above 0 and at most {MAX_RATE} requests per second"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_be_positive_and_finite() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn methods_are_read_whatever_their_case() {
        assert_eq!(parse_method("b"), Ok(MethodName::B));
        assert!(parse_method("D").is_err());
    }
}
