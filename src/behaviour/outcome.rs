//! A step's list of ways to go wrong, rolled once per performance: an error
//! before or after the wait, a hang, or a slow answer.
//!
//! The list is read by one `Deserialize` impl, so a JSON config's
//! `failures` and a Rhai script's `#{ failures: [...] }` are checked by the
//! same rules and name the same mistakes.

use serde::{Deserialize, de};

use super::{
    fault::{ErrorCode, ErrorMessage},
    latency::Latency,
};

/// The most outcomes one step may list: a handful is all a story needs.
pub const MAX_OUTCOMES: usize = 16;

/// A step's possible outcomes. Their chances are parts of ONE roll, so they
/// exclude each other and add up to at most 1; the rest of the time the
/// step goes as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Failures(Vec<Outcome>);

/// One way a step can go, and its share of the roll.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Probability in `[0, 1]`.
    pub chance: f64,
    /// What happens.
    pub effect: Effect,
}

/// What happens to a step when its outcome is rolled.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Fail with a status: before the wait, as a refused connection fails
    /// fast, or after it, as a timeout does.
    Error {
        /// The status code the request answers with.
        code: tonic::Code,
        /// What the caller reads, when the author chose it.
        message: Option<ErrorMessage>,
        /// Whether the step waits first.
        when: When,
    },
    /// Never answer: a stuck dependency. Only the caller's deadline, a call
    /// timeout or the caller giving up ends it.
    Hang,
    /// Answer, but late: a latency tail that fails nothing.
    Slow {
        /// Added to the step's own wait, drawn from the step's dice.
        extra: Latency,
    },
}

/// When an error strikes, relative to the step's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// At once, without waiting.
    Before,
    /// Once the wait is over, as the original's `failure_chance` did.
    #[default]
    After,
}

impl Failures {
    /// The outcomes, in the order written.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.0
    }

    /// Whether nothing can go wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Rolls once, with `rng`, and returns the outcome that came up, if
    /// any. Callers roll before awaiting, so no RNG is held across an await.
    pub fn roll(&self, rng: &mut impl rand::Rng) -> Option<&Effect> {
        use rand::RngExt as _;
        if self.0.is_empty() {
            return None;
        }
        let roll = rng.random::<f64>();
        let mut below = 0.0;
        self.0.iter().find_map(|outcome| {
            below += outcome.chance;
            (roll < below).then_some(&outcome.effect)
        })
    }
}

impl Effect {
    /// A short name for the effect, as span attributes show it.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::Error { .. } => "error",
            Effect::Hang => "hang",
            Effect::Slow { .. } => "slow",
        }
    }
}

impl<'de> Deserialize<'de> for Failures {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let outcomes = Vec::<Outcome>::deserialize(deserializer)?;
        if outcomes.len() > MAX_OUTCOMES {
            return Err(de::Error::custom(format!(
                "a step may list at most {MAX_OUTCOMES} failures, not {}",
                outcomes.len()
            )));
        }
        let total: f64 = outcomes.iter().map(|o| o.chance).sum();
        // A little slack for decimal fractions that add up to 1 on paper.
        if total > 1.0 + 1e-9 {
            return Err(de::Error::custom(format!(
                "the chances of one step's failures are parts of one roll and must add up \
                 to at most 1, not {total}"
            )));
        }
        Ok(Failures(outcomes))
    }
}

/// One outcome as written: `{"chance": 0.02, "code": "UNAVAILABLE",
/// "when": "before"}`, `{"chance": 0.01, "hang": true}` or
/// `{"chance": 0.1, "slow": "400ms"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a failure: an object with a chance")]
struct OutcomeSpec {
    chance: Chance,
    #[serde(default)]
    code: Option<ErrorCode>,
    #[serde(default)]
    message: Option<ErrorMessage>,
    #[serde(default)]
    when: Option<When>,
    #[serde(default)]
    hang: Option<bool>,
    /// Read by `Latency`'s own `Deserialize`: milliseconds, a duration
    /// such as `"400ms"`, or a distribution.
    #[serde(default)]
    slow: Option<Latency>,
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = OutcomeSpec::deserialize(deserializer)?;
        let error_keys = spec.code.is_some() || spec.message.is_some() || spec.when.is_some();
        let effect = match (spec.hang, spec.slow) {
            (Some(_), Some(_)) => {
                return Err(de::Error::custom("a failure is a hang or slow, not both"));
            }
            (Some(false), None) => {
                return Err(de::Error::custom(
                    "`hang` can only be true; leave it out for an error",
                ));
            }
            (Some(true), None) if !error_keys => Effect::Hang,
            (None, Some(extra)) if !error_keys => Effect::Slow { extra },
            (Some(_), None) | (None, Some(_)) => {
                return Err(de::Error::custom(
                    "`code`, `message` and `when` describe an error; a hang or slow answer \
                     fails with none",
                ));
            }
            (None, None) => Effect::Error {
                code: spec.code.map_or(tonic::Code::Internal, |c| c.0),
                message: spec.message,
                when: spec.when.unwrap_or_default(),
            },
        };
        Ok(Outcome {
            chance: spec.chance.0,
            effect,
        })
    }
}

/// A probability, checked where it is read.
struct Chance(f64);

impl<'de> Deserialize<'de> for Chance {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let chance = f64::deserialize(deserializer)?;
        if (0.0..=1.0).contains(&chance) {
            Ok(Chance(chance))
        } else {
            Err(de::Error::custom(super::fault::ChanceOutOfRange(chance)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn read(json: &str) -> Result<Failures, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_of_outcome_is_read() {
        let failures = read(
            r#"[{"chance": 0.02, "code": "UNAVAILABLE", "message": "refused", "when": "before"},
                {"chance": 0.01, "hang": true},
                {"chance": 0.1, "slow": 400},
                {"chance": 0.05},
                {"chance": 0.1, "slow": "1.5s"}]"#,
        )
        .unwrap();
        let effects: Vec<_> = failures.outcomes().iter().map(|o| &o.effect).collect();
        assert_eq!(
            effects,
            [
                &Effect::Error {
                    code: tonic::Code::Unavailable,
                    message: Some(ErrorMessage::new("refused").unwrap()),
                    when: When::Before,
                },
                &Effect::Hang,
                &Effect::Slow {
                    extra: Latency::Fixed(Duration::from_millis(400))
                },
                &Effect::Error {
                    code: tonic::Code::Internal,
                    message: None,
                    when: When::After,
                },
                &Effect::Slow {
                    extra: Latency::Fixed(Duration::from_millis(1500))
                },
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (json, says) in [
            (
                r#"[{"chance": 0.6}, {"chance": 0.5}]"#,
                "add up to at most 1",
            ),
            (r#"[{"chance": 1.5}]"#, "between 0 and 1"),
            (r#"[{"code": "INTERNAL"}]"#, "missing field `chance`"),
            (r#"[{"chance": 0.1, "hang": false}]"#, "can only be true"),
            (r#"[{"chance": 0.1, "hang": true, "slow": 5}]"#, "not both"),
            (
                r#"[{"chance": 0.1, "hang": true, "code": 14}]"#,
                "fails with none",
            ),
            (r#"[{"chance": 0.1, "when": "during"}]"#, "unknown variant"),
            (r#"[{"chance": 0.1, "code": "OK"}]"#, "gRPC error code"),
            (r#"[{"chance": 0.1, "colour": 1}]"#, "unknown field"),
            (r#"[{"chance": 0.1, "slow": "soon"}]"#, "soon"),
        ] {
            let error = read(json).expect_err(json);
            assert!(error.contains(says), "{json}: {error}");
        }
        let many = format!("[{}]", vec![r#"{"chance": 0}"#; MAX_OUTCOMES + 1].join(","));
        assert!(read(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn one_roll_picks_at_most_one_outcome_in_proportion() {
        use rand::SeedableRng as _;
        let failures = read(r#"[{"chance": 0.2}, {"chance": 0.3, "hang": true}]"#).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let (mut errors, mut hangs) = (0, 0);
        for _ in 0..10_000 {
            match failures.roll(&mut rng) {
                Some(Effect::Error { .. }) => errors += 1,
                Some(Effect::Hang) => hangs += 1,
                _ => {}
            }
        }
        assert!((1800..2200).contains(&errors), "{errors}");
        assert!((2800..3200).contains(&hangs), "{hangs}");
        let certain = read(r#"[{"chance": 1, "hang": true}]"#).unwrap();
        assert!((0..100).all(|_| certain.roll(&mut rng) == Some(&Effect::Hang)));
        assert_eq!(Failures::default().roll(&mut rng), None);
    }
}
