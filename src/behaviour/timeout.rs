//! How long one call may wait for its answer, when it says so itself
//! rather than taking the instance's `CALL_TIMEOUT_MS`: read by the one
//! `Deserialize` impl here from a config's `timeout_ms` and from a
//! script's `timeout_ms` option alike.

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, de};

use super::latency::MAX_LATENCY;

/// The longest timeout a call may have: longer than any caller waits.
pub const MAX_CALL_TIMEOUT: Duration = MAX_LATENCY;

/// A call's own timeout: a whole number of milliseconds, more than 0 and
/// at most [`MAX_CALL_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeout(pub Duration);

impl<'de> Deserialize<'de> for CallTimeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_i64(TimeoutVisitor)
    }
}

/// Reads whole milliseconds, refusing what no caller could mean.
struct TimeoutVisitor;

impl de::Visitor<'_> for TimeoutVisitor {
    type Value = CallTimeout;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a whole number of milliseconds from 1 to {}",
            MAX_CALL_TIMEOUT.as_millis()
        )
    }

    fn visit_i64<E: de::Error>(self, ms: i64) -> Result<CallTimeout, E> {
        u64::try_from(ms)
            .ok()
            .filter(|ms| (1..=MAX_CALL_TIMEOUT.as_millis() as u64).contains(ms))
            .map(|ms| CallTimeout(Duration::from_millis(ms)))
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(ms), &self))
    }

    fn visit_u64<E: de::Error>(self, ms: u64) -> Result<CallTimeout, E> {
        self.visit_i64(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_timeout_is_whole_milliseconds_within_bounds() {
        let read =
            |value: serde_json::Value| CallTimeout::deserialize(value).map_err(|e| e.to_string());
        assert_eq!(
            read(json!(250)),
            Ok(CallTimeout(Duration::from_millis(250)))
        );
        for bad in [
            json!(0),
            json!(-5),
            json!(3_600_001),
            json!(1.5),
            json!("1s"),
        ] {
            let error = read(bad.clone()).unwrap_err();
            assert!(error.contains("from 1 to 3600000"), "{bad}: {error}");
        }
    }
}
