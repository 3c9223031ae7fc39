//! Scenarios: named trouble that comes and goes while an instance serves.
//! Each says where it strikes (its [`Scope`]), what it does there, in the
//! terms of the rest of the model (a [`Disruption`]: latency, failures, an
//! outage, a hang, CPU burnt), and when (its [`Schedule`]).
//!
//! A scenario is read by one `Deserialize` impl, so a config's
//! `scenarios` and a scenario sent inline to the control API are checked by
//! the same rules; its latencies and failures are read by the parsers every
//! sleep and every `failures` list uses.

use std::{fmt, sync::Arc, time::Duration};

use serde::{Deserialize, de};

use super::{latency::Latency, method::MethodName, outcome::Failures};

/// The most scenarios one config may declare: each active one is looked
/// at by every step of every request in its scope.
pub const MAX_SCENARIOS: usize = 32;

/// The longest a scenario's name may be, in bytes: it is a span attribute
/// and a metric label.
pub const MAX_NAME_BYTES: usize = 64;

/// The longest any time in a schedule may be: a year.
pub const MAX_SCHEDULE_TIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// The largest factor a `multiply` may slow waits down by.
pub const MAX_FACTOR: f64 = 1000.0;

/// A named piece of trouble, when and where it strikes.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// How it is started, stopped and shown: `thespian.scenario` on the
    /// spans it touches and the gauge's label.
    pub name: Arc<str>,
    /// Where it strikes.
    pub scope: Scope,
    /// What it does there.
    pub disruption: Disruption,
    /// When it starts and for how long; empty for one started only by hand.
    pub schedule: Schedule,
}

/// Where a scenario strikes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every request to the instance.
    Service,
    /// Every request to one method.
    Method(MethodName),
    /// The steps with this name (their `tracing_name`), in any request.
    Step(Arc<str>),
}

/// How a scenario changes the waits in its scope.
#[derive(Debug, Clone, PartialEq)]
pub enum Slowdown {
    /// Each wait takes this much longer.
    Add(Latency),
    /// Each wait is this many times as long.
    Multiply(f64),
    /// Each wait is drawn from this instead.
    Replace(Latency),
}

/// What a scenario does to the requests or steps in its scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disruption {
    /// How the waits change, if they do.
    pub slowdown: Option<Slowdown>,
    /// Ways to fail, rolled as a step's `failures` are.
    pub failures: Failures,
    /// Answer `UNAVAILABLE` at once: the service or dependency is down.
    pub outage: bool,
    /// Never answer, until the caller gives up.
    pub hang: bool,
    /// CPU time added to each `Burn` step in scope.
    pub burn: Option<Latency>,
}

/// When a scenario is active, counted from when the instance started.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// When it starts, if on its own.
    pub start: Option<Start>,
    /// How long it lasts each time; without it, until it is stopped.
    pub length: Option<Duration>,
}

/// When a scheduled scenario starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// This long after boot, and again every `every` when given.
    After {
        /// The first start, after boot.
        at: Duration,
        /// The time from one start to the next.
        every: Option<Duration>,
    },
    /// At each time a cron expression names, in UTC.
    Cron(Arc<croner::Cron>, Arc<str>),
}

impl Scope {
    /// Whether the scope is whole requests to `method` rather than steps.
    pub fn covers_request(&self, method: MethodName) -> bool {
        match self {
            Scope::Service => true,
            Scope::Method(m) => *m == method,
            Scope::Step(_) => false,
        }
    }

    /// Whether a scenario with this scope can touch a request to `method`.
    pub fn reaches(&self, method: MethodName) -> bool {
        !matches!(self, Scope::Method(m) if *m != method)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Service => f.write_str("service"),
            Scope::Method(method) => write!(f, "method {method}"),
            Scope::Step(step) => write!(f, "steps named `{step}`"),
        }
    }
}

impl fmt::Display for Disruption {
    /// A one-line summary, as the control API lists it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match &self.slowdown {
            Some(Slowdown::Add(latency)) => parts.push(format!("waits +{}", latency.kind())),
            Some(Slowdown::Multiply(factor)) => parts.push(format!("waits x{factor}")),
            Some(Slowdown::Replace(latency)) => parts.push(format!("waits {}", latency.kind())),
            None => {}
        }
        if !self.failures.is_empty() {
            let chance: f64 = self.failures.outcomes().iter().map(|o| o.chance).sum();
            parts.push(format!("fails {:.0}%", chance * 100.0));
        }
        if self.outage {
            parts.push("outage (UNAVAILABLE)".to_owned());
        }
        if self.hang {
            parts.push("hangs".to_owned());
        }
        if let Some(burn) = &self.burn {
            parts.push(format!("burns +{} CPU", burn.kind()));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A scenario as written.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scenario: an object with name, scope and effect"
)]
struct ScenarioSpec {
    name: String,
    scope: Scope,
    effect: Disruption,
    #[serde(default)]
    schedule: Option<Schedule>,
}

impl<'de> Deserialize<'de> for Scenario {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = ScenarioSpec::deserialize(deserializer)?;
        let name = spec.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(de::Error::custom(format!(
                "a scenario's name must be 1 to {MAX_NAME_BYTES} bytes, not {}",
                name.len()
            )));
        }
        Ok(Scenario {
            name: name.into(),
            scope: spec.scope,
            disruption: spec.effect,
            schedule: spec.schedule.unwrap_or_default(),
        })
    }
}

/// A scope as written: `"service"`, `{"method": "A"}` or `{"step": "db"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeSpec {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    step: Option<String>,
}

/// What a scope may be written as, for error messages.
const A_SCOPE: &str = "a scope: \"service\", {\"method\": \"A\"} or {\"step\": \"a tracing_name\"}";

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScopeVisitor)
    }
}

struct ScopeVisitor;

impl<'de> de::Visitor<'de> for ScopeVisitor {
    type Value = Scope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(A_SCOPE)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Scope, E> {
        match text {
            "service" => Ok(Scope::Service),
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Scope, A::Error> {
        let spec = ScopeSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
        match (spec.method, spec.step) {
            (Some(method), None) => method.parse().map(Scope::Method).map_err(de::Error::custom),
            (None, Some(step)) if !step.is_empty() => Ok(Scope::Step(step.into())),
            _ => Err(de::Error::custom(format!("expected {A_SCOPE}"))),
        }
    }
}

/// An effect as written: one or more of its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an effect: an object")]
struct DisruptionSpec {
    #[serde(default)]
    duration: Option<Latency>,
    #[serde(default)]
    multiply: Option<f64>,
    #[serde(default)]
    replace: Option<Latency>,
    #[serde(default)]
    failures: Option<Failures>,
    #[serde(default)]
    outage: Option<bool>,
    #[serde(default)]
    hang: Option<bool>,
    #[serde(default)]
    burn: Option<Latency>,
}

impl<'de> Deserialize<'de> for Disruption {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = DisruptionSpec::deserialize(deserializer)?;
        let slowdown = match (spec.duration, spec.multiply, spec.replace) {
            (None, None, None) => None,
            (Some(extra), None, None) => Some(Slowdown::Add(extra)),
            (None, None, Some(latency)) => Some(Slowdown::Replace(latency)),
            (None, Some(factor), None) if factor.is_finite() && factor > 0.0 => {
                if factor > MAX_FACTOR {
                    return Err(de::Error::custom(format!(
                        "`multiply` may be at most {MAX_FACTOR}, not {factor}"
                    )));
                }
                Some(Slowdown::Multiply(factor))
            }
            (None, Some(factor), None) => {
                return Err(de::Error::custom(format!(
                    "`multiply` must be a number above 0, not {factor}"
                )));
            }
            _ => {
                return Err(de::Error::custom(
                    "give at most one of `duration` (added), `multiply` or `replace`",
                ));
            }
        };
        let certain = |key: &str, value: Option<bool>| match value {
            Some(false) => Err(de::Error::custom(format!(
                "`{key}` can only be true; leave it out otherwise"
            ))),
            other => Ok(other == Some(true)),
        };
        let disruption = Disruption {
            slowdown,
            failures: spec.failures.unwrap_or_default(),
            outage: certain("outage", spec.outage)?,
            hang: certain("hang", spec.hang)?,
            burn: spec.burn,
        };
        let others = disruption.slowdown.is_some()
            || !disruption.failures.is_empty()
            || disruption.burn.is_some();
        if disruption.outage && (disruption.hang || others) {
            return Err(de::Error::custom(
                "an outage answers UNAVAILABLE at once: it takes no other effect",
            ));
        }
        if disruption.hang && others {
            return Err(de::Error::custom(
                "a hang never answers: it takes no other effect",
            ));
        }
        if !(disruption.outage || disruption.hang || others) {
            return Err(de::Error::custom(
                "an effect needs at least one of duration, multiply, replace, failures, \
                 outage, hang or burn",
            ));
        }
        Ok(disruption)
    }
}

/// A schedule as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a schedule: an object")]
struct ScheduleSpec {
    #[serde(default)]
    at: Option<Time>,
    #[serde(default, rename = "for")]
    length: Option<Time>,
    #[serde(default)]
    every: Option<Time>,
    #[serde(default)]
    cron: Option<String>,
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = ScheduleSpec::deserialize(deserializer)?;
        let length = spec.length.map(|t| t.0);
        if length == Some(Duration::ZERO) {
            return Err(de::Error::custom("`for` must be longer than 0"));
        }
        let start = match (spec.cron, spec.at, spec.every) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(de::Error::custom(
                    "a schedule is `cron`, or `at` and `every`, not both",
                ));
            }
            (Some(text), None, None) => {
                let cron: croner::Cron = text
                    .parse()
                    .map_err(|e| de::Error::custom(format!("`cron` \"{text}\": {e}")))?;
                Start::Cron(Arc::new(cron), text.into())
            }
            (None, at, every) => Start::After {
                at: at.map_or(Duration::ZERO, |t| t.0),
                every: every.map(|t| t.0),
            },
        };
        let repeats = matches!(start, Start::Cron(..) | Start::After { every: Some(_), .. });
        match (&start, length) {
            (_, None) if repeats => Err(de::Error::custom(
                "a repeating schedule (`every` or `cron`) needs `for`: how long each time lasts",
            )),
            (
                Start::After {
                    every: Some(every), ..
                },
                Some(length),
            ) if length >= *every => Err(de::Error::custom("`for` must be shorter than `every`")),
            _ => Ok(Schedule {
                start: Some(start),
                length,
            }),
        }
    }
}

/// A time in a schedule: a humantime string (`"5m"`, `"1h 30m"`) or a
/// number of milliseconds, at most [`MAX_SCHEDULE_TIME`].
struct Time(Duration);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Millis(u64),
            Text(String),
        }
        let time = match Written::deserialize(deserializer).map_err(|_| {
            de::Error::custom("expected a time such as \"5m\" or \"90s\", or milliseconds")
        })? {
            Written::Millis(ms) => bounded(Duration::from_millis(ms)),
            Written::Text(text) => parse_time(&text),
        };
        time.map(Time).map_err(de::Error::custom)
    }
}

/// A schedule's time written as humantime (`"5m"`, `"1h 30m"`), at most
/// a year and a day: how a config and the control API read one.
pub fn parse_time(text: &str) -> Result<Duration, String> {
    let time = humantime::parse_duration(text.trim())
        .map_err(|e| format!("\"{text}\" is not a time: {e}"))?;
    bounded(time)
}

/// `time`, when it is within [`MAX_SCHEDULE_TIME`].
fn bounded(time: Duration) -> Result<Duration, String> {
    if time > MAX_SCHEDULE_TIME {
        return Err(format!(
            "a schedule's times may be at most {}",
            humantime::format_duration(MAX_SCHEDULE_TIME)
        ));
    }
    Ok(time)
}

#[cfg(test)]
#[path = "scenario/tests.rs"]
mod tests;
