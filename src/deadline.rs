//! The caller's deadline, as gRPC carries it: the `grpc-timeout` header.
//!
//! tonic's server enforces the header by dropping a request that outlives
//! it. Reading it here as well lets Thespian tell a request whose deadline
//! ran out from one whose caller simply went away, and bound everything the
//! request does by it: the executor answers `DEADLINE_EXCEEDED` itself when
//! it passes, and every call the request makes carries what is left of it.
//!
//! The deadline travels to the steps in the OpenTelemetry [`Context`] they
//! run in, set only for requests that came with one, so a request without
//! a `grpc-timeout` pays nothing for it.

use std::time::Duration;

use opentelemetry::Context;
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};

/// The header a gRPC client's deadline travels in.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// How long the caller said it would wait, as it said it, if it did. A
/// header that is not a valid timeout is ignored, as tonic ignores it.
pub fn budget(metadata: &MetadataMap) -> Option<Duration> {
    parse(metadata.get(GRPC_TIMEOUT)?.to_str().ok()?)
}

/// Writes `timeout` into `metadata` as a gRPC client sends its deadline,
/// so the callee can bound its work by it as this instance bounds its own.
pub fn write(metadata: &mut MetadataMap, timeout: Duration) {
    metadata.insert(GRPC_TIMEOUT, value(timeout));
}

/// `timeout` as a `grpc-timeout` value: the most precise unit whose count
/// fits the eight digits the protocol allows.
fn value(timeout: Duration) -> MetadataValue<Ascii> {
    const MAX: u128 = 99_999_999;
    let value = [
        (timeout.as_nanos(), 'n'),
        (timeout.as_micros(), 'u'),
        (timeout.as_millis(), 'm'),
        (u128::from(timeout.as_secs()), 'S'),
        (u128::from(timeout.as_secs() / 60), 'M'),
    ]
    .into_iter()
    .find(|(count, _)| *count <= MAX)
    .map_or_else(
        || format!("{}H", (timeout.as_secs() / 3600).min(MAX as u64)),
        |(count, unit)| format!("{count}{unit}"),
    );
    MetadataValue::try_from(value).expect("digits and a unit are ASCII")
}

/// How long before its caller's deadline a request answers when it runs
/// out of time, at most: long enough for its `DEADLINE_EXCEEDED`, and the
/// spans saying which step was cut, to reach the caller before the
/// caller's own timer fires (or tonic's, which started a moment earlier),
/// on a busy machine too. Each hop keeps this much back from the budget it
/// passes on, so in a chain the deepest request runs out first and the
/// status travels back up through every caller.
pub const ANSWER_ALLOWANCE: Duration = Duration::from_millis(50);

/// The share of a short budget kept back instead: a caller that allows
/// 10 ms gets 9 ms of work, not an instant refusal.
const ALLOWANCE_SHARE: u32 = 10;

/// When a request must have answered: its caller's deadline, less the
/// [`ANSWER_ALLOWANCE`] or a tenth of the budget, whichever is less. Kept
/// in the context of the request's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The instant the request runs out of time.
    answer_by: Instant,
}

impl Deadline {
    /// The deadline of a request whose caller stops waiting at `caller`.
    pub fn before(caller: Instant) -> Deadline {
        let budget = caller.saturating_duration_since(Instant::now());
        let allowance = ANSWER_ALLOWANCE.min(budget / ALLOWANCE_SHARE);
        Deadline {
            answer_by: caller - allowance,
        }
    }

    /// The deadline of the request the current context belongs to, if
    /// its caller set one.
    pub fn current() -> Option<Deadline> {
        Context::map_current(Deadline::of)
    }

    /// The deadline kept in `cx`, if any.
    pub fn of(cx: &Context) -> Option<Deadline> {
        cx.get::<Deadline>().copied()
    }

    /// `cx` with this deadline kept in it, for the request's steps.
    pub fn within(self, cx: &Context) -> Context {
        cx.with_value(self)
    }

    /// The instant the request runs out of time.
    pub fn answer_by(self) -> Instant {
        self.answer_by
    }

    /// What is left of the budget: zero once it has run out.
    pub fn remaining(self) -> Duration {
        self.answer_by.saturating_duration_since(Instant::now())
    }

    /// Whether the request has run out of time.
    pub fn passed(self) -> bool {
        Instant::now() >= self.answer_by
    }
}

/// Parses a `grpc-timeout` value: up to eight ASCII digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`), as the gRPC HTTP/2 protocol defines it.
fn parse(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_the_protocol_defines_is_read() {
        for (value, expected) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("10S", Duration::from_secs(10)),
            ("250m", Duration::from_millis(250)),
            ("99999999u", Duration::from_micros(99_999_999)),
            ("5n", Duration::from_nanos(5)),
        ] {
            assert_eq!(parse(value), Some(expected), "{value}");
        }
    }

    #[test]
    fn a_timeout_travels_in_the_most_precise_unit_that_fits_eight_digits() {
        let header = |timeout: Duration| value(timeout).to_str().unwrap().to_owned();
        assert_eq!(header(Duration::from_millis(30)), "30000000n");
        assert_eq!(header(Duration::from_millis(250)), "250000u");
        assert_eq!(header(Duration::from_secs(30)), "30000000u");
        assert_eq!(header(Duration::from_secs(1_000)), "1000000m");
        assert_eq!(header(Duration::from_secs(200_000)), "200000S");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_keeps_back_the_allowance_and_counts_down() {
        let short = Deadline::before(Instant::now() + Duration::from_millis(10));
        assert_eq!(short.remaining(), Duration::from_millis(9));
        let caller = Instant::now() + Duration::from_millis(1000);
        let deadline = Deadline::before(caller);
        assert_eq!(deadline.remaining(), Duration::from_millis(950));
        assert!(!deadline.passed());
        tokio::time::advance(Duration::from_millis(950)).await;
        assert!(deadline.passed());
        assert_eq!(deadline.remaining(), Duration::ZERO);
        let cx = deadline.within(&Context::new());
        assert_eq!(Deadline::of(&cx), Some(deadline));
        assert_eq!(Deadline::of(&Context::new()), None);
    }

    #[test]
    fn malformed_timeouts_are_ignored() {
        for value in ["", "m", "10", "10s", "123456789m", "-5m", "1.5S", "5é"] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }
}
