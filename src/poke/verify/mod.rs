//! `--verify`: did the tracing backend keep every span poke's requests made?
//!
//! Each answer says how many spans its request made across the call tree
//! (`thespian-spans-by-service`), and poke adds its own client span. For
//! each sampled trace, up to `--verify-sample`, poke then reads the trace
//! back through the backend's trace-by-id API, from shortly after the
//! answer, looking again with a growing pause until every span is there or
//! `--verify-wait` has passed since the answer. Each trace ends up
//! complete, incomplete (some spans arrived) or missing (none did). The time
//! from the answer to the first read that found it complete is its
//! ingestion delay, as close as the pauses between reads allow.
//!
//! Memory is bounded: one small record and one task per trace checked, at
//! most `--verify-sample` of them.

mod backend;
mod report;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::Args;
use opentelemetry::trace::TraceId;
use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

pub use self::{
    backend::{Backend, BackendKind, Found},
    report::VerifyReport,
};
use crate::span_count::BySpans;

/// The first look at a trace, this long after its answer: most backends
/// take at least this long to make a trace readable.
const FIRST_LOOK: Duration = Duration::from_millis(100);

/// The longest pause between two looks at the same trace.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// How many reads are in flight at once, so a backend is not swamped.
const READS_AT_ONCE: usize = 32;

/// Whether the backend kept every span.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Read each trace back from a tracing backend and check every span arrived:
    /// `jaeger=URL` (its query API, port 16686) or `tempo=URL` (its HTTP API, port 3200).
    #[arg(long, value_name = "BACKEND=URL", conflicts_with = "no_traces")]
    pub verify: Option<Backend>,

    /// Check at most this many traces: the first this many sampled traces of the run.
    #[arg(
        long,
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub verify_sample: u64,

    /// How long after its answer a trace may take to be complete in the backend
    /// before it counts as incomplete or missing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub verify_wait: Duration,
}

/// How one trace ended up.
#[derive(Debug, Clone)]
enum Outcome {
    /// Every span expected was there, after this long.
    Complete {
        delay: Duration,
        expected: u64,
        extra: u64,
    },
    /// Some spans were there, not all: what was expected and what was found.
    Incomplete { expected: BySpans, found: BySpans },
    /// The backend never had the trace.
    Missing { expected: BySpans },
    /// The backend could not be read.
    Failed(String),
}

/// Checks traces as the run makes them. Cheap to share.
pub(super) struct Verifier {
    backend: Backend,
    http: reqwest::Client,
    wait: Duration,
    sample: u64,
    /// Traces taken for checking so far.
    taken: AtomicU64,
    /// Sampled traces not checked: past the sample, or with no span count.
    unchecked: AtomicU64,
    /// Reads in flight.
    reads: Arc<Semaphore>,
    /// One task per trace checked.
    checks: Mutex<JoinSet<Outcome>>,
}

impl Verifier {
    /// A verifier as `args` say, or `None` without `--verify`.
    pub(super) fn new(args: &VerifyArgs) -> Result<Option<Arc<Verifier>>, crate::Error> {
        let Some(backend) = &args.verify else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Verifier {
            backend: backend.clone(),
            http: Backend::client()?,
            wait: args.verify_wait,
            sample: args.verify_sample,
            taken: AtomicU64::new(0),
            unchecked: AtomicU64::new(0),
            reads: Arc::new(Semaphore::new(READS_AT_ONCE)),
            checks: Mutex::new(JoinSet::new()),
        })))
    }

    /// Starts checking trace `id`, answered just now, whose answer reported
    /// `reported` spans (`None` when it carried no count), plus poke's own
    /// client span under `me`.
    pub(super) fn check(&self, id: TraceId, reported: Option<BySpans>, me: &str) {
        let Some(reported) = reported else {
            self.unchecked.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.taken.fetch_add(1, Ordering::Relaxed) >= self.sample {
            self.unchecked.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut expected = BySpans::default();
        expected.add(me, 1);
        expected.merge(&reported);
        let follow = follow(
            self.backend.clone(),
            self.http.clone(),
            Arc::clone(&self.reads),
            id,
            expected,
            Instant::now() + self.wait,
        );
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(follow);
    }

    /// Waits for every check to end (each within `--verify-wait` of its
    /// answer) and sums them up.
    pub(super) async fn finish(&self) -> VerifyReport {
        let mut checks =
            std::mem::take(&mut *self.checks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut report = VerifyReport::new(&self.backend, self.wait);
        while let Some(outcome) = checks.join_next().await {
            match outcome {
                Ok(outcome) => report.add(outcome),
                Err(e) => report.add(Outcome::Failed(e.to_string())),
            }
        }
        report.unchecked = self.unchecked.load(Ordering::Relaxed);
        report.finish();
        report
    }
}

/// Looks at trace `id` until it holds every span `expected`, or `until`.
async fn follow(
    backend: Backend,
    http: reqwest::Client,
    reads: Arc<Semaphore>,
    id: TraceId,
    expected: BySpans,
    until: Instant,
) -> Outcome {
    let answered = Instant::now();
    let mut next = answered + FIRST_LOOK;
    let mut pause = FIRST_LOOK;
    loop {
        tokio::time::sleep_until(next.min(until)).await;
        let found = {
            let Ok(_read) = reads.acquire().await else {
                return Outcome::Failed("the verifier stopped".to_owned());
            };
            backend.read(&http, id).await
        };
        let now = Instant::now();
        let outcome = match found {
            Err(e) => Outcome::Failed(e),
            Ok(Found::Nothing) => Outcome::Missing {
                expected: expected.clone(),
            },
            Ok(Found::Spans(found)) if expected.missing_from(&found).total() == 0 => {
                return Outcome::Complete {
                    delay: now - answered,
                    expected: expected.total(),
                    extra: found.total().saturating_sub(expected.total()),
                };
            }
            Ok(Found::Spans(found)) => Outcome::Incomplete {
                expected: expected.clone(),
                found,
            },
        };
        if now >= until {
            return outcome;
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
        next = now + pause;
    }
}
