//! What poke counts while it runs: requests sent, answers by status code
//! and one latency histogram, in memory that never grows with the run.

use std::{
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tonic::Code;

use super::{
    report::{Percentiles, Summary, TargetSummary},
    targets::TargetSpec,
};
use crate::failure::code_name;

/// The longest latency the histogram tells apart, in microseconds (one hour);
/// anything slower is recorded as this.
const LATENCY_CEILING_US: u64 = 3_600_000_000;

/// Everything counted so far, shared by the request tasks and the progress
/// line. Its size never depends on how many requests were made, so a poke
/// can run for days.
#[derive(Debug)]
pub(super) struct Tally {
    /// Requests started, by target, in the order of the run's targets.
    sent_to: Vec<AtomicU64>,
    /// Requests answered, by gRPC status code (the index is the code).
    codes: [AtomicU64; 17],
    /// Latency of every answered request, in microseconds.
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    /// Nothing counted yet, for a run with this many targets.
    pub(super) fn new(targets: usize) -> Tally {
        Tally {
            sent_to: (0..targets).map(|_| AtomicU64::new(0)).collect(),
            codes: Default::default(),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, LATENCY_CEILING_US, 3)
                    .expect("the latency bounds are valid"),
            ),
        }
    }

    /// Counts one more request started, to the target at `index`.
    pub(super) fn count_sent(&self, index: usize) {
        if let Some(sent) = self.sent_to.get(index) {
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one answer with its status code and latency.
    pub(super) fn record(&self, code: Code, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency().saturating_record(micros.max(1));
        // The counter is bumped after the histogram, so a progress line never
        // counts an answer whose latency it cannot see yet.
        if let Some(count) = self.codes.get(code as usize) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests started so far.
    pub(super) fn sent(&self) -> u64 {
        self.sent_to.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Requests answered so far, whatever the answer.
    pub(super) fn answered(&self) -> u64 {
        self.codes.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Requests answered OK so far.
    pub(super) fn ok(&self) -> u64 {
        self.codes[Code::Ok as usize].load(Ordering::Relaxed)
    }

    /// The latency histogram, in microseconds.
    pub(super) fn latency(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A poisoned lock means a request task panicked mid-record; the
        // histogram is still usable.
        self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The summary of a run that poked `targets` for `elapsed`.
    pub(super) fn summarise(
        &self,
        targets: &[&TargetSpec],
        elapsed: Duration,
        interrupted: bool,
    ) -> Summary {
        let answered = self.answered();
        let seconds = elapsed.as_secs_f64();
        let latency = self.latency();
        let millis = |micros: u64| micros as f64 / 1000.0;
        let first = targets.first();
        Summary {
            target: first.map_or_else(String::new, |t| crate::with_http_scheme(&t.address)),
            method: first.map_or("", |t| t.method.as_str()),
            targets: targets
                .iter()
                .zip(&self.sent_to)
                .map(|(spec, sent)| TargetSummary {
                    target: crate::with_http_scheme(&spec.address),
                    method: spec.method.as_str(),
                    weight: spec.weight,
                    sent: sent.load(Ordering::Relaxed),
                })
                .collect(),
            shape: None,
            verify: None,
            requests: answered,
            unanswered: self.sent().saturating_sub(answered),
            errors: answered - self.ok(),
            elapsed_seconds: seconds,
            requests_per_second: if seconds > 0.0 {
                answered as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Percentiles {
                p50: millis(latency.value_at_quantile(0.50)),
                p90: millis(latency.value_at_quantile(0.90)),
                p99: millis(latency.value_at_quantile(0.99)),
                max: millis(latency.max()),
            },
            status_codes: (0..self.codes.len())
                .filter_map(|i| {
                    let count = self.codes[i].load(Ordering::Relaxed);
                    (count > 0).then(|| (code_name(Code::from(i as i32)).to_owned(), count.into()))
                })
                .collect(),
            interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_answers_by_code_and_keeps_their_latency() {
        let tally = Tally::new(1);
        for _ in 0..3 {
            tally.count_sent(0);
        }
        tally.record(Code::Ok, Duration::from_millis(2));
        tally.record(Code::Internal, Duration::from_millis(4));
        let target: TargetSpec = "localhost:1:A=2".parse().unwrap();
        let summary = tally.summarise(&[&target], Duration::from_secs(1), true);
        assert_eq!(summary.target, "http://localhost:1");
        assert_eq!(summary.targets[0].sent, 3);
        assert_eq!(summary.requests, 2);
        assert_eq!(summary.unanswered, 1);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.status_codes["OK"], 1);
        assert_eq!(summary.status_codes["INTERNAL"], 1);
        assert!((summary.latency_ms.max - 4.0).abs() < 0.01);
    }
}
