//! How long a step takes.

use std::time::Duration;

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
