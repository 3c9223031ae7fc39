//! Why a performance failed, and the one place a failure becomes a gRPC status.

use crate::behaviour::{ErrorMessage, MethodName, Target};

/// A failure while acting out a method. Each variant is a cause that
/// telemetry counts apart, so a dashboard can tell pretend chaos from a
/// broken downstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// A `failure_chance`, a `failures` entry or `fail_with_chance` rolled
    /// low.
    #[error("{}", chance_text(action, message.as_ref()))]
    Chance {
        /// The `tracing_name` of the step that failed.
        action: String,
        /// The status the request answers with.
        code: tonic::Code,
        /// The author's own message, said instead of naming the step.
        message: Option<ErrorMessage>,
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
        /// What this instance answers, as the call's `on_failure` says.
        code: tonic::Code,
    },
    /// The caller's deadline, its `grpc-timeout`, passed before the
    /// request finished.
    #[error("the caller's deadline passed before the request finished")]
    Deadline,
    /// A script raised an error or threw a value.
    #[error("{message}")]
    Script {
        /// The status the script chose, or `INTERNAL`.
        code: tonic::Code,
        /// What went wrong, with the script position when there is one.
        message: String,
    },
    /// A `hold_memory` step would have passed `MAX_HELD_BYTES`, or the
    /// allocator refused it: the step fails rather than the instance.
    #[error("`{action}` failed: {message}")]
    HeldMemory {
        /// The `tracing_name` of the step that failed.
        action: String,
        /// Why, naming the cap.
        message: String,
    },
    /// Every slot under `MAX_IN_FLIGHT` was taken and `MAX_QUEUE` requests
    /// were already waiting: the request was shed before it acted anything.
    #[error(
        "this instance is at its limit: all {max_in_flight} slots are busy (MAX_IN_FLIGHT) \
         and {max_queue} requests are already waiting for one (MAX_QUEUE)"
    )]
    QueueFull {
        /// `MAX_IN_FLIGHT`.
        max_in_flight: u32,
        /// `MAX_QUEUE`.
        max_queue: u32,
    },
    /// An active scenario failed the request or one of its steps: an
    /// outage, or one of the scenario's `failures`.
    #[error("{message}")]
    Scenario {
        /// The scenario's name.
        scenario: std::sync::Arc<str>,
        /// The status the request answers with.
        code: tonic::Code,
        /// What failed, and which scenario made it.
        message: String,
    },
    /// The request had passed through `MAX_HOPS` Thespians already, here
    /// or further down the chain: most likely a call cycle. It answers
    /// `FAILED_PRECONDITION`, which no client or mesh retries by default:
    /// a retry meets the same cycle, and only a changed config ends it.
    #[error("{message}")]
    HopLimit {
        /// How many Thespians it had passed through when it was refused.
        hops: u32,
        /// The refusing Thespian's words, with the count and the path.
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
        write!(f, "{}: {}", code_name(self.code), self.message)
    }
}

impl Failure {
    /// A short, stable label for the cause, for metrics and span attributes.
    pub fn cause(&self) -> &'static str {
        match self {
            Failure::Chance { .. } => "failure_chance",
            Failure::Downstream { .. } => "downstream",
            Failure::Script { .. } => "script",
            Failure::HeldMemory { .. } => "held_memory",
            Failure::QueueFull { .. } => "queue_full",
            Failure::HopLimit { .. } => "hop_limit",
            Failure::Deadline => "deadline",
            Failure::Scenario { .. } => "scenario",
        }
    }

    /// The status code the caller sees.
    pub fn code(&self) -> tonic::Code {
        match self {
            // A downstream failure answers as its call's `on_failure` said:
            // by default this instance's internal error, whatever the
            // downstream said, since the caller did nothing wrong.
            Failure::Chance { code, .. }
            | Failure::Script { code, .. }
            | Failure::Downstream { code, .. }
            | Failure::Scenario { code, .. } => *code,
            Failure::HeldMemory { .. } => tonic::Code::ResourceExhausted,
            // As a gRPC server out of capacity answers, and as meshes and
            // clients read it: try later or elsewhere.
            Failure::QueueFull { .. } => tonic::Code::ResourceExhausted,
            Failure::HopLimit { .. } => tonic::Code::FailedPrecondition,
            Failure::Deadline => tonic::Code::DeadlineExceeded,
        }
    }
}

/// What a chance failure says: the author's message, or which step failed.
fn chance_text(action: &str, message: Option<&ErrorMessage>) -> String {
    match message {
        Some(message) => format!("`{action}` failed: {}", message.as_str()),
        None => format!("`{action}` failed by chance"),
    }
}

impl From<Failure> for tonic::Status {
    fn from(failure: Failure) -> tonic::Status {
        let mut status = tonic::Status::new(failure.code(), failure.to_string());
        if let Failure::HopLimit { hops, .. } = failure {
            status
                .metadata_mut()
                .insert(crate::relay::HOP_LIMIT, hops.into());
        }
        status
    }
}

/// The canonical name of a gRPC status code (`OK`, `UNAVAILABLE`, ...), as
/// grpcurl and the gRPC docs spell it: the inverse of [`code_from_name`].
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The error code a user names, as gRPC spells it (`NOT_FOUND`), in lower
/// case (`not_found`) or in tonic's style (`NotFound`). `OK` is refused:
/// a failure cannot answer with success.
pub fn code_from_name(name: &str) -> Option<tonic::Code> {
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let code = match folded.as_str() {
        "CANCELLED" | "CANCELED" => tonic::Code::Cancelled,
        "UNKNOWN" => tonic::Code::Unknown,
        "INVALIDARGUMENT" => tonic::Code::InvalidArgument,
        "DEADLINEEXCEEDED" => tonic::Code::DeadlineExceeded,
        "NOTFOUND" => tonic::Code::NotFound,
        "ALREADYEXISTS" => tonic::Code::AlreadyExists,
        "PERMISSIONDENIED" => tonic::Code::PermissionDenied,
        "RESOURCEEXHAUSTED" => tonic::Code::ResourceExhausted,
        "FAILEDPRECONDITION" => tonic::Code::FailedPrecondition,
        "ABORTED" => tonic::Code::Aborted,
        "OUTOFRANGE" => tonic::Code::OutOfRange,
        "UNIMPLEMENTED" => tonic::Code::Unimplemented,
        "INTERNAL" => tonic::Code::Internal,
        "UNAVAILABLE" => tonic::Code::Unavailable,
        "DATALOSS" => tonic::Code::DataLoss,
        "UNAUTHENTICATED" => tonic::Code::Unauthenticated,
        _ => return None,
    };
    Some(code)
}

/// The error code with this number (1 to 16); 0, `OK`, is refused.
pub fn code_from_number(number: i64) -> Option<tonic::Code> {
    i32::try_from(number)
        .ok()
        .filter(|n| (1..=16).contains(n))
        .map(tonic::Code::from_i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_named_as_grpc_spells_it_and_read_back() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        for number in 1..=16 {
            let code = code_from_number(number).expect("1 to 16 are error codes");
            assert_eq!(code_from_name(code_name(code)), Some(code));
        }
        assert_eq!(code_from_name("OK"), None);
        assert_eq!(code_from_number(0), None);
    }
}
