//! The behaviour model: what a method acts out, as a tree of steps.
//!
//! Everything that decides what a request does ends up here. A JSON config
//! is lowered into this model once at startup; a Rhai script builds a fresh
//! tree on every request. Either way the one [`Executor`](crate::executor::Executor)
//! acts it out, so every way of describing pretend work gets the same spans,
//! failures and timing.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

/// One of the three methods every Thespian serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodName {
    /// `thespian.Thespian/A`
    A,
    /// `thespian.Thespian/B`
    B,
    /// `thespian.Thespian/C`
    C,
}

impl MethodName {
    /// All methods, in the order the proto declares them.
    pub const ALL: [MethodName; 3] = [MethodName::A, MethodName::B, MethodName::C];

    /// The method's name as it appears in the proto and in `rpc.method`.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodName::A => "A",
            MethodName::B => "B",
            MethodName::C => "C",
        }
    }

    /// The gRPC path a client posts to.
    pub fn path(self) -> &'static str {
        match self {
            MethodName::A => "/thespian.Thespian/A",
            MethodName::B => "/thespian.Thespian/B",
            MethodName::C => "/thespian.Thespian/C",
        }
    }

    /// The name of a request's server span, by OpenTelemetry's RPC
    /// conventions: the path without its leading slash.
    pub fn span_name(self) -> &'static str {
        &self.path()[1..]
    }

    /// Position in [`MethodName::ALL`], for per-method tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MethodName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "A" => Ok(MethodName::A),
            "B" => Ok(MethodName::B),
            "C" => Ok(MethodName::C),
            other => Err(format!(
                "unknown method `{other}`, expected \"A\", \"B\" or \"C\""
            )),
        }
    }
}

/// One unit of pretend work. Most steps become one span when acted out; an
/// unnamed [`Concurrently`], a [`Sequence`](Step::Sequence) and a
/// [`Retry`] only shape the tree, and a [`Raise`] or a [`Log`] marks a
/// moment in the span around it.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait, standing for I/O or computation, then maybe fail.
    Sleep(Sleep),
    /// Call a method on another Thespian.
    Call(Call),
    /// A named group of steps run in order, like a function in real code.
    Function(Function),
    /// Branches run at the same time; waits for all of them.
    Concurrently(Concurrently),
    /// Fail with some probability, without waiting.
    Fail(Fail),
    /// Fail for certain with a given status: how a script's error or
    /// thrown value takes its place in the story.
    Raise(Raise),
    /// Steps run in order with no span of their own: a script's branch
    /// of several steps inside a group of concurrent branches.
    Sequence(Vec<Step>),
    /// A step tried again when it fails, as a client's retry policy or a
    /// transaction's retry loop would.
    Retry(Retry),
    /// Write a log line when the story gets here, in the span around it.
    Log(Log),
}

impl Step {
    /// The name the step goes by, as the user wrote it: its span's name,
    /// when spans take the user's names.
    pub fn name(&self) -> &str {
        match self {
            Step::Sleep(s) => &s.name,
            Step::Call(c) => &c.name,
            Step::Function(f) => &f.name,
            Step::Concurrently(c) => c.name.as_deref().unwrap_or("concurrently"),
            Step::Fail(f) => &f.name,
            Step::Raise(r) => &r.name,
            Step::Sequence(_) => "sequence",
            Step::Retry(r) => r.step.name(),
            Step::Log(_) => "log",
        }
    }
}

/// How long a step takes. An enum so that distributions can join the fixed
/// value without changing anything that only asks for a duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
}

impl Latency {
    /// The duration to wait for this one performance.
    pub fn sample(&self) -> Duration {
        match self {
            Latency::Fixed(d) => *d,
        }
    }
}

/// A chance of failing, and how the failure looks to the caller. Made only
/// through [`Fault::new`], so every fault's chance is a probability,
/// whichever front end built it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// Probability in `[0, 1]` that a roll fails.
    chance: f64,
    /// The gRPC status code a failure answers with.
    code: tonic::Code,
}

/// A failure chance outside `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("must be a probability between 0 and 1, not {0}")]
pub struct ChanceOutOfRange(pub f64);

impl Fault {
    /// A fault that fails with `code`, `chance` of the time.
    pub fn new(chance: f64, code: tonic::Code) -> Result<Fault, ChanceOutOfRange> {
        if (0.0..=1.0).contains(&chance) {
            Ok(Fault { chance, code })
        } else {
            Err(ChanceOutOfRange(chance))
        }
    }

    /// A fault that fails with `INTERNAL`, as every failure did in the original.
    pub fn internal(chance: f64) -> Result<Fault, ChanceOutOfRange> {
        Fault::new(chance, tonic::Code::Internal)
    }

    /// The probability that a roll fails.
    pub fn chance(&self) -> f64 {
        self.chance
    }

    /// The status code a failure answers with.
    pub fn code(&self) -> tonic::Code {
        self.code
    }

    /// Rolls the dice once. Never holds the thread-local RNG across an await.
    pub fn strikes(&self) -> bool {
        self.chance >= 1.0 || (self.chance > 0.0 && rand::random::<f64>() < self.chance)
    }
}

/// Wait, then maybe fail.
#[derive(Debug, Clone)]
pub struct Sleep {
    /// The span name: the story the user is telling.
    pub name: String,
    /// How long to wait.
    pub latency: Latency,
    /// Rolled after the wait, so a failed step still takes its time.
    pub fault: Option<Fault>,
}

/// Where a call goes: a Thespian's address, normalised to `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(Arc<str>);

impl Target {
    /// Builds a target from `http://host:port` or `host:port`, rejecting
    /// anything that is not a usable endpoint. Calls are plaintext HTTP/2,
    /// as a service mesh's sidecar expects; `https://` is refused rather
    /// than silently sent in the clear.
    pub fn parse(address: &str) -> Result<Target, String> {
        let with_scheme = crate::with_http_scheme(address.trim().trim_end_matches('/'));
        let uri: http::Uri = with_scheme
            .parse()
            .map_err(|e| format!("`{address}` is not a valid address: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "`{address}`: Thespian calls over plaintext HTTP/2 (TLS is left to a \
                     service mesh); use http://"
                ));
            }
            _ => return Err(format!("`{address}` must use http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{address}` has no host"))?;
        if authority.port_u16().is_none() {
            return Err(format!("`{address}` has no port"));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!("`{address}` must not have a path"));
        }
        Ok(Target(with_scheme.into()))
    }

    /// Builds a target from the original config's separate address and port.
    pub fn from_parts(address: &str, port: u16) -> Result<Target, String> {
        let address = address.trim().trim_end_matches('/');
        let has_port = crate::with_http_scheme(address)
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.authority().and_then(|a| a.port_u16()))
            .is_some();
        if has_port {
            return Err(format!(
                "`{address}` names a port; give the address without it, and the port as `service_port`"
            ));
        }
        Target::parse(&format!("{address}:{port}"))
    }

    /// The endpoint URI, `scheme://host:port`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part, for `server.address`.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(&*self.0, |(_, r)| r);
        rest.rsplit_once(':').map_or(rest, |(h, _)| h)
    }

    /// The port, for `server.port`.
    pub fn port(&self) -> u16 {
        self.0
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A call to another Thespian's method.
#[derive(Debug, Clone)]
pub struct Call {
    /// The span name.
    pub name: String,
    /// The instance to call.
    pub target: Target,
    /// The method to call there.
    pub method: MethodName,
}

/// A named block of steps run in order; the first failure stops it.
#[derive(Debug, Clone)]
pub struct Function {
    /// The span name.
    pub name: String,
    /// What the function does, in order.
    pub steps: Vec<Step>,
}

/// Branches acted out at the same time.
#[derive(Debug, Clone)]
pub struct Concurrently {
    /// A span around the branches, when the author asked for one. JSON's
    /// `ConcurrentActions` has none, so its branches hang from the enclosing
    /// function as they did in the original.
    pub name: Option<String>,
    /// Each branch; all run to completion even when one fails.
    pub branches: Vec<Step>,
}

/// Fail with some probability, without waiting.
#[derive(Debug, Clone)]
pub struct Fail {
    /// The span name.
    pub name: String,
    /// The chance and the status.
    pub fault: Fault,
}

/// A certain failure with a chosen status and message.
#[derive(Debug, Clone)]
pub struct Raise {
    /// The span name.
    pub name: String,
    /// The status code the request answers with.
    pub code: tonic::Code,
    /// What went wrong, as the caller will read it.
    pub message: String,
}

/// A log line that is part of the story: written when the executor reaches
/// it, so it lands between the steps around it, in the span of the block
/// that holds it, and once per try of a retried block.
#[derive(Debug, Clone)]
pub struct Log {
    /// How loud the line is.
    pub level: LogLevel,
    /// What the line says.
    pub message: String,
    /// Who wrote it (a script's file or place in the config), for the
    /// line's `script` field.
    pub source: Arc<str>,
    /// The source line that wrote it, when known.
    pub line: Option<usize>,
}

/// The levels a story's own log lines are written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// A script's `print`.
    Info,
    /// A script's `debug`.
    Debug,
}

/// A step tried again after a failure, up to a number of times. Each try
/// has its own spans, so a trace shows the failed tries before the one that
/// worked; the step fails only if the last try does.
#[derive(Debug, Clone)]
pub struct Retry {
    /// How many times the step is tried again after failing.
    pub retries: u32,
    /// What is tried.
    pub step: Box<Step>,
}

/// Builds the step tree one request acts out. A JSON config hands out the
/// same tree every time; a script builds a new one per request.
pub trait Director: Send + Sync + fmt::Debug {
    /// The tree for one request.
    fn direct(&self) -> Arc<Step>;
}

/// A director that hands every request the same tree, built once: what a
/// JSON config's `operations` become.
#[derive(Debug)]
pub struct Constant(pub Arc<Step>);

impl Director for Constant {
    fn direct(&self) -> Arc<Step> {
        Arc::clone(&self.0)
    }
}

/// What each of this instance's methods does. A method left out does nothing
/// and answers at once, as the original's `null` did.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Indexed by [`MethodName::index`].
    methods: [Option<Arc<dyn Director>>; 3],
}

impl Behaviour {
    /// Gives `method` its behaviour.
    pub fn set(&mut self, method: MethodName, director: Arc<dyn Director>) {
        self.methods[method.index()] = Some(director);
    }

    /// The behaviour of `method`, if it has one.
    pub fn get(&self, method: MethodName) -> Option<&Arc<dyn Director>> {
        self.methods[method.index()].as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_the_forms_users_write() {
        assert_eq!(
            Target::parse("localhost:6379").unwrap().as_str(),
            "http://localhost:6379"
        );
        assert_eq!(
            Target::parse("http://db:7000/").unwrap().as_str(),
            "http://db:7000"
        );
        assert_eq!(
            Target::from_parts("http://localhost", 6379).unwrap().port(),
            6379
        );
        assert_eq!(Target::parse("http://db:7000").unwrap().host(), "db");
    }

    #[test]
    fn a_split_address_that_names_a_port_of_its_own_is_refused() {
        for address in ["http://localhost:7000", "db:7000"] {
            let refused = Target::from_parts(address, 6379).expect_err(address);
            assert!(refused.contains("service_port"), "{refused}");
        }
        assert_eq!(
            Target::from_parts("[::1]", 6379).unwrap().as_str(),
            "http://[::1]:6379"
        );
    }

    #[test]
    fn targets_without_a_port_or_with_odd_schemes_are_refused() {
        assert!(Target::parse("http://localhost").is_err());
        assert!(Target::parse("ftp://localhost:21").is_err());
        assert!(Target::parse("http://localhost:1/path").is_err());
    }

    #[test]
    fn a_fault_chance_must_be_a_probability() {
        for chance in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let refused = Fault::internal(chance).expect_err("out of range");
            assert!(refused.to_string().contains("between 0 and 1"), "{refused}");
        }
        let fault = Fault::new(0.25, tonic::Code::Unavailable).unwrap();
        assert_eq!(
            (fault.chance(), fault.code()),
            (0.25, tonic::Code::Unavailable)
        );
    }

    #[test]
    fn fault_extremes_are_certain() {
        assert!(Fault::internal(1.0).unwrap().strikes());
        assert!((0..1000).all(|_| !Fault::internal(0.0).unwrap().strikes()));
    }
}
