//! How a failed step is tried again: a plain count of immediate retries, as
//! a script's `retry(n, ..)` has always meant, or gRPC's own retry policy
//! (gRFC A6), with its names, its limits and its jittered exponential
//! backoff, so a config can copy the policy a real client runs with.
//!
//! Both forms are read by the one `Deserialize` impl here, from a JSON
//! config's `retry_policy` and from a script's `retries` option alike.

use std::{fmt, time::Duration};

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer},
};

use super::{ErrorCode, latency::MAX_LATENCY};

/// The most retries a plain count may ask for: enough for any retry loop
/// worth pretending, few enough that one request stays small.
pub const MAX_RETRIES: u32 = 10;

/// The most attempts a gRPC policy makes, the first included: gRPC treats
/// a larger `max_attempts` as this, without an error, and so does Thespian.
pub const MAX_POLICY_ATTEMPTS: u32 = 5;

/// The longest a backoff may be: a wait no request would sit through.
pub const MAX_BACKOFF: Duration = MAX_LATENCY;

/// How a step is tried again after it fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: at least 1.
    max_attempts: u32,
    /// How long to wait before each retry; `None` retries at once.
    backoff: Option<Backoff>,
    /// The codes worth another attempt.
    retryable: CodeSet,
}

/// gRPC's exponential backoff: the n-th retry waits
/// `min(initial × multiplier^(n-1), max)`, give or take 20%.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait before the first retry.
    initial: Duration,
    /// The longest wait, before jitter.
    max: Duration,
    /// How much longer each wait is than the one before.
    multiplier: f64,
}

/// A set of gRPC status codes, one bit per code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSet(u32);

impl CodeSet {
    /// Every error code, 1 to 16.
    pub const ALL: CodeSet = CodeSet(0x1_fffe);

    /// Whether `code` is in the set.
    pub fn contains(self, code: tonic::Code) -> bool {
        self.0 & (1 << (code as u32)) != 0
    }

    fn with(self, code: tonic::Code) -> CodeSet {
        CodeSet(self.0 | 1 << (code as u32))
    }
}

impl RetryPolicy {
    /// `retries` retries at once after a failure, whatever the code: what a
    /// script's `retry(n, ..)` and a plain `retries: n` always meant.
    pub fn immediate(retries: u32) -> Result<RetryPolicy, String> {
        if retries > MAX_RETRIES {
            return Err(format!(
                "retries must be from 0 to {MAX_RETRIES}, not {retries}"
            ));
        }
        Ok(RetryPolicy {
            max_attempts: retries + 1,
            backoff: None,
            retryable: CodeSet::ALL,
        })
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts, if the policy waits.
    pub fn backoff(&self) -> Option<&Backoff> {
        self.backoff.as_ref()
    }

    /// Whether a failure with `code` is worth another attempt.
    pub fn retries(&self, code: tonic::Code) -> bool {
        self.retryable.contains(code)
    }

    /// Whether attempt `attempt` (counting from 1), failing with `code`,
    /// is followed by another.
    pub fn retries_after(&self, attempt: u32, code: tonic::Code) -> bool {
        attempt < self.max_attempts && self.retries(code)
    }
}

impl Backoff {
    /// The wait before retry `retry` (the first retry is 1), jittered by
    /// ±20% with `rng`, as gRPC's clients wait.
    pub fn before(&self, retry: u32, rng: &mut impl rand::Rng) -> Duration {
        use rand::RngExt as _;
        let grown = self.initial.as_secs_f64()
            * self
                .multiplier
                .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
        let capped = grown.min(self.max.as_secs_f64());
        let jittered = capped * rng.random_range(0.8..1.2);
        Duration::try_from_secs_f64(jittered).unwrap_or(self.max)
    }
}

impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PolicyVisitor)
    }
}

/// Reads a count of immediate retries, or gRPC's retry policy as a map.
struct PolicyVisitor;

impl<'de> Visitor<'de> for PolicyVisitor {
    type Value = RetryPolicy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a number of immediate retries from 0 to {MAX_RETRIES}, or a retry policy: \
             {{max_attempts, initial_backoff, max_backoff, backoff_multiplier, \
             retryable_status_codes}}"
        )
    }

    fn visit_i64<E: de::Error>(self, retries: i64) -> Result<RetryPolicy, E> {
        u32::try_from(retries)
            .map_err(|_| format!("retries must be from 0 to {MAX_RETRIES}, not {retries}"))
            .and_then(RetryPolicy::immediate)
            .map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, retries: u64) -> Result<RetryPolicy, E> {
        self.visit_i64(i64::try_from(retries).unwrap_or(i64::MAX))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RetryPolicy, A::Error> {
        let spec = PolicySpec::deserialize(MapAccessDeserializer::new(map))?;
        Ok(RetryPolicy {
            max_attempts: spec.max_attempts.0,
            backoff: Some(Backoff {
                initial: spec.initial_backoff.0,
                max: spec.max_backoff.0,
                multiplier: spec.backoff_multiplier.0,
            }),
            retryable: spec.retryable_status_codes,
        })
    }
}

/// gRPC's retry policy as written: every field is required, as in gRPC's
/// service config, whose camelCase names are accepted too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    #[serde(alias = "maxAttempts")]
    max_attempts: Attempts,
    #[serde(alias = "initialBackoff")]
    initial_backoff: BackoffWait,
    #[serde(alias = "maxBackoff")]
    max_backoff: BackoffWait,
    #[serde(alias = "backoffMultiplier")]
    backoff_multiplier: Multiplier,
    #[serde(alias = "retryableStatusCodes")]
    retryable_status_codes: CodeSet,
}

/// `max_attempts`: more than 1, and above 5 taken as 5, as gRPC takes it.
struct Attempts(u32);

impl<'de> Deserialize<'de> for Attempts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let attempts = i64::deserialize(deserializer)?;
        if attempts < 2 {
            return Err(de::Error::custom(format!(
                "max_attempts counts the first attempt too, so it must be 2 or more, not \
                 {attempts}"
            )));
        }
        Ok(Attempts(attempts.min(MAX_POLICY_ATTEMPTS.into()) as u32))
    }
}

/// A backoff: a duration as gRPC writes one (`"0.1s"`) or as humantime
/// does (`"100ms"`), more than zero and at most [`MAX_BACKOFF`].
struct BackoffWait(Duration);

impl<'de> Deserialize<'de> for BackoffWait {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let wait = humantime::parse_duration(text.trim()).map_err(|e| {
            de::Error::custom(format!(
                "`{text}` is not a duration such as \"0.1s\" or \"100ms\": {e}"
            ))
        })?;
        if wait.is_zero() || wait > MAX_BACKOFF {
            return Err(de::Error::custom(format!(
                "a backoff must be more than 0 and at most {}, not `{text}`",
                humantime::format_duration(MAX_BACKOFF)
            )));
        }
        Ok(BackoffWait(wait))
    }
}

/// `backoff_multiplier`: a finite number more than 0.
struct Multiplier(f64);

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let multiplier = f64::deserialize(deserializer)?;
        if !(multiplier.is_finite() && multiplier > 0.0) {
            return Err(de::Error::custom(format!(
                "backoff_multiplier must be a number more than 0, not {multiplier}"
            )));
        }
        Ok(Multiplier(multiplier))
    }
}

impl<'de> Deserialize<'de> for CodeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CodeSetVisitor)
    }
}

/// Reads a non-empty list of codes, by name in any case or by number.
struct CodeSetVisitor;

impl<'de> Visitor<'de> for CodeSetVisitor {
    type Value = CodeSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty list of gRPC status codes, such as [\"UNAVAILABLE\"]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut codes: A) -> Result<CodeSet, A::Error> {
        let mut set = CodeSet(0);
        // Sixteen codes exist; a longer list only repeats them.
        for _ in 0..64 {
            match codes.next_element::<ErrorCode>()? {
                Some(ErrorCode(code)) => set = set.with(code),
                None if set.0 == 0 => {
                    return Err(de::Error::custom(
                        "retryable_status_codes must name at least one code",
                    ));
                }
                None => return Ok(set),
            }
        }
        Err(de::Error::custom(
            "retryable_status_codes may list at most 64 codes",
        ))
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::SmallRng};
    use serde_json::json;

    use super::*;

    fn read(value: serde_json::Value) -> Result<RetryPolicy, String> {
        RetryPolicy::deserialize(value).map_err(|e| e.to_string())
    }

    fn policy() -> serde_json::Value {
        json!({
            "max_attempts": 4, "initial_backoff": "0.1s", "max_backoff": "1s",
            "backoff_multiplier": 2, "retryable_status_codes": ["unavailable", 4]
        })
    }

    #[test]
    fn a_count_retries_at_once_whatever_the_code() {
        let policy = read(json!(2)).unwrap();
        assert_eq!(policy.max_attempts(), 3);
        assert!(policy.backoff().is_none());
        assert!(policy.retries(tonic::Code::Internal) && policy.retries(tonic::Code::DataLoss));
        assert!(read(json!(11)).unwrap_err().contains("from 0 to 10"));
        assert!(read(json!(-1)).unwrap_err().contains("from 0 to 10"));
    }

    #[test]
    fn a_policy_retries_only_its_codes() {
        let policy = read(policy()).unwrap();
        assert_eq!(policy.max_attempts(), 4);
        assert!(policy.retries(tonic::Code::Unavailable));
        assert!(policy.retries(tonic::Code::DeadlineExceeded));
        assert!(!policy.retries(tonic::Code::Internal));
        assert!(policy.retries_after(3, tonic::Code::Unavailable));
        assert!(!policy.retries_after(4, tonic::Code::Unavailable));
    }

    #[test]
    fn grpc_service_config_names_and_limits_are_taken() {
        let camel = json!({
            "maxAttempts": 9, "initialBackoff": "100ms", "maxBackoff": "2s",
            "backoffMultiplier": 1.5, "retryableStatusCodes": ["UNAVAILABLE"]
        });
        assert_eq!(read(camel).unwrap().max_attempts(), MAX_POLICY_ATTEMPTS);
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for (key, value, reason) in [
            ("max_attempts", json!(1), "2 or more"),
            ("initial_backoff", json!("0s"), "more than 0"),
            ("max_backoff", json!("2h"), "at most 1h"),
            ("initial_backoff", json!("soon"), "not a duration"),
            ("backoff_multiplier", json!(0), "more than 0"),
            ("retryable_status_codes", json!([]), "at least one code"),
            ("retryable_status_codes", json!(["OK"]), "gRPC error code"),
            ("max_attempt", json!(3), "unknown field"),
        ] {
            let mut spec = policy();
            if key == "max_attempt" {
                spec.as_object_mut().unwrap().insert(key.into(), value);
            } else {
                spec[key] = value;
            }
            let error = read(spec).unwrap_err();
            assert!(error.contains(reason), "{key}: {error}");
        }
        let mut missing = policy();
        missing.as_object_mut().unwrap().remove("max_backoff");
        assert!(read(missing).unwrap_err().contains("max_backoff"));
    }

    #[test]
    fn backoff_grows_to_its_cap_within_twenty_percent() {
        let policy = read(policy()).unwrap();
        let backoff = policy.backoff().unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        for (retry, base) in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)] {
            for _ in 0..100 {
                let wait = backoff.before(retry, &mut rng).as_secs_f64();
                assert!(
                    (base * 0.8..=base * 1.2).contains(&wait),
                    "retry {retry}: {wait}"
                );
            }
        }
    }
}
