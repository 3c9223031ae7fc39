//! The options of `thespian poke`: who to call, how fast, for how long.

use std::time::Duration;

use clap::Args;

use crate::behaviour::MethodName;

/// The highest `--rate` accepted: beyond it the schedule is finer than the
/// timer and the limit would only mislead.
const MAX_RATE: f64 = 1_000_000.0;

/// Calls a Thespian's method at a steady rate and reports latency and
/// status codes.
///
/// Runs for 10 s unless `--duration` or `--requests` says otherwise; Ctrl-C
/// (or SIGTERM) ends it early and still prints the summary. Exits 0 whatever
/// the calls answered, and 1 only when it could not run at all, such as a
/// malformed address or nothing listening there.
#[derive(Debug, Clone, Args)]
pub struct PokeArgs {
    /// The Thespian to call, such as `http://localhost:6379` or `frontend:6379`.
    pub address: String,

    /// The method to call: A, B or C.
    #[arg(value_parser = parse_method)]
    pub method: MethodName,

    /// Requests started per second, on a fixed schedule whatever the answers
    /// (open loop). Without it, requests go as fast as --concurrency allows.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// The most requests in flight at once. When a slow target uses them
    /// all, the schedule waits rather than piling requests up.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,

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
}

impl PokeArgs {
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
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "the rate must be above 0 and at most {MAX_RATE} requests per second"
        ))
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
