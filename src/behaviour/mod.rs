//! The behaviour model: what a method acts out, as a tree of steps.
//!
//! Everything that decides what a request does ends up here. A JSON config
//! is lowered into this model once at startup; a Rhai script builds a fresh
//! tree on every request. Either way the one [`Executor`](crate::executor::Executor)
//! acts it out, so every way of describing pretend work gets the same spans,
//! failures and timing.
//!
//! Its parts, one file each:
//!
//! - `step`: the step vocabulary, [`Step`], and what each kind is told to do.
//! - `latency`, `fault` and `outcome`: how long a step takes, whether it
//!   fails, and how.
//! - `method` and `target`: the methods served, and where calls go.
//! - `load`: CPU time burnt and memory held, which cost something real.
//! - `retry` and `timeout`: how a failed call is tried again, and how
//!   long one call waits.
//! - `dependency`: the database or queue a sleep stands for a call to.
//! - `attribute`: attributes a step's span carries to search on.
//! - `scenario`: named trouble that comes and goes on a schedule or by hand.
//! - here: the [`Director`] that hands each request its tree, each
//!   method's [`Behaviour`], and the [`Repertoire`] that holds the one
//!   served now.

mod attribute;
mod dependency;
mod fault;
mod latency;
mod load;
mod method;
mod outcome;
mod retry;
mod scenario;
mod step;
mod target;
mod timeout;

use std::{fmt, sync::Arc};

use crate::executor::Dice;

pub use attribute::{
    Attribute, AttributeValue, Attributes, MAX_ATTRIBUTES, MAX_CHOICES, MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
};
pub use dependency::{Dependency, DependencyKind, MessagingOperation};
pub use fault::{ChanceOutOfRange, ErrorCode, ErrorMessage, Fault, OnFailure};
pub use latency::{Latency, MAX_LATENCY};
pub use load::{Burn, Bytes, HoldMemory};
pub use method::MethodName;
pub use outcome::{Effect, Failures, Outcome, When};
pub use retry::{Backoff, CodeSet, MAX_POLICY_ATTEMPTS, MAX_RETRIES, RetryPolicy};
pub use scenario::{
    Disruption, MAX_NAME_BYTES as MAX_SCENARIO_NAME_BYTES, MAX_SCENARIOS, Scenario, Schedule,
    Scope, Slowdown, Start, parse_time,
};
pub use step::{
    Call, Concurrently, Fail, Fallback, Function, Log, LogLevel, Raise, Retry, Sleep, Step,
};
pub use target::Target;
pub use timeout::{CallTimeout, MAX_CALL_TIMEOUT};

/// Builds the step tree one request acts out. A JSON config hands out the
/// same tree every time; a script builds a new one per request.
pub trait Director: Send + Sync + fmt::Debug {
    /// The tree for one request.
    fn direct(&self) -> Arc<Step>;

    /// The tree for one request whose rolls come from `dice`, so a script's
    /// `random()` draws the same numbers when the request is replayed with
    /// the same seed and trace id. A director that rolls nothing while it
    /// directs has no use for them.
    fn direct_with(&self, dice: Dice) -> Arc<Step> {
        let _ = dice;
        self.direct()
    }

    /// Whether it may read the request's headers while it directs (see
    /// [`Headers`](crate::relay::Headers)): only then are they kept that
    /// long.
    fn reads_headers(&self) -> bool {
        false
    }

    /// Where the tree comes from, when it is built anew per request: a
    /// script's file or place in the config, for the control API to say.
    fn script(&self) -> Option<&str> {
        None
    }
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
    /// What each method's server span carries to search on, indexed alike.
    attributes: [Attributes; 3],
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

    /// Gives `method`'s server span attributes to search on.
    pub fn set_attributes(&mut self, method: MethodName, attributes: Attributes) {
        self.attributes[method.index()] = attributes;
    }

    /// The attributes of `method`'s server span.
    pub fn attributes(&self, method: MethodName) -> &Attributes {
        &self.attributes[method.index()]
    }
}

/// The behaviour an instance serves now, which a changed config file
/// replaces while it serves. Each request takes the version current when
/// it starts and keeps it to its end. Cheap to clone; clones share it.
#[derive(Debug, Clone)]
pub struct Repertoire(Arc<arc_swap::ArcSwap<Behaviour>>);

impl Repertoire {
    /// The version to serve a request that starts now.
    pub fn current(&self) -> Arc<Behaviour> {
        self.0.load_full()
    }

    /// Serves `behaviour` from the next request on.
    pub fn replace(&self, behaviour: Behaviour) {
        self.0.store(Arc::new(behaviour));
    }
}

impl From<Behaviour> for Repertoire {
    fn from(behaviour: Behaviour) -> Repertoire {
        Repertoire(Arc::new(arc_swap::ArcSwap::from_pointee(behaviour)))
    }
}

impl Default for Repertoire {
    fn default() -> Repertoire {
        Behaviour::default().into()
    }
}
