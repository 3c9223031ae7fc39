//! Why a performance failed, and the one place a failure becomes a gRPC status.

use crate::behaviour::{MethodName, Target};

/// A failure while acting out a method. Each variant is a cause that
/// telemetry counts apart, so a dashboard can tell pretend chaos from a
/// broken downstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// A `failure_chance` or `fail_with_chance` rolled low.
    #[error("`{action}` failed by chance")]
    Chance {
        /// The `tracing_name` of the step that failed.
        action: String,
        /// The status the request answers with.
        code: tonic::Code,
    },
    /// A called Thespian answered with an error or could not be reached.
    #[error("call to {method} at {target} failed: {status}")]
    Downstream {
        /// Who was called.
        target: Target,
        /// Which method.
        method: MethodName,
        /// What came back, reduced to code and message.
        status: DownstreamStatus,
    },
    /// A script raised an error or threw a value.
    #[error("{message}")]
    Script {
        /// The status the script chose, or `INTERNAL`.
        code: tonic::Code,
        /// What went wrong, with the script position when there is one.
        message: String,
    },
}

/// The part of a downstream status worth carrying upstream.
#[derive(Debug, Clone)]
pub struct DownstreamStatus {
    /// The code the downstream answered with.
    pub code: tonic::Code,
    /// Its message.
    pub message: String,
}

impl std::fmt::Display for DownstreamStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl Failure {
    /// A short, stable label for the cause, for metrics and span attributes.
    pub fn cause(&self) -> &'static str {
        match self {
            Failure::Chance { .. } => "failure_chance",
            Failure::Downstream { .. } => "downstream",
            Failure::Script { .. } => "script",
        }
    }

    /// The status code the caller sees.
    pub fn code(&self) -> tonic::Code {
        match self {
            Failure::Chance { code, .. } | Failure::Script { code, .. } => *code,
            // A downstream failure is this instance's internal error, whatever
            // the downstream said: the caller did nothing wrong.
            Failure::Downstream { .. } => tonic::Code::Internal,
        }
    }
}

impl From<Failure> for tonic::Status {
    fn from(failure: Failure) -> tonic::Status {
        tonic::Status::new(failure.code(), failure.to_string())
    }
}
