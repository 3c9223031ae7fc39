//! The caller's deadline, as gRPC carries it: the `grpc-timeout` header.
//!
//! tonic's server enforces the header by dropping a request that outlives
//! it. Reading it here as well lets Thespian tell a request whose deadline
//! ran out from one whose caller simply went away.

use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

/// The header a gRPC client's deadline travels in.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// When the caller stops waiting, counted from now, if it said. A header
/// that is not a valid timeout is ignored, as tonic ignores it.
pub fn read(metadata: &MetadataMap) -> Option<Instant> {
    let value = metadata.get(GRPC_TIMEOUT)?.to_str().ok()?;
    Some(Instant::now() + parse(value)?)
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
    fn malformed_timeouts_are_ignored() {
        for value in ["", "m", "10", "10s", "123456789m", "-5m", "1.5S", "5é"] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }
}
