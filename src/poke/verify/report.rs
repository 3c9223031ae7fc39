//! What `--verify` found, summed up: traces complete, incomplete and
//! missing, the spans missing per service, and how long traces took to be
//! complete in the backend.

use std::{fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Backend, Outcome};
use crate::span_count::BySpans;

/// The longest ingestion delay told apart, in milliseconds (one hour).
const DELAY_CEILING_MS: u64 = 3_600_000;

/// How many distinct read errors the report keeps.
const MAX_ERRORS: usize = 5;

/// What `--verify` found, part of poke's summary.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backend, as `jaeger=URL` or `tempo=URL`.
    pub backend: String,
    /// How long each trace was given to be complete, in seconds.
    pub wait_seconds: f64,
    /// Traces checked.
    pub checked: u64,
    /// Traces with every span expected.
    pub complete: u64,
    /// Traces with some spans, not all.
    pub incomplete: u64,
    /// Traces the backend never had.
    pub missing: u64,
    /// Traces the backend could not be asked about.
    pub failed: u64,
    /// Sampled traces not checked: past `--verify-sample`, or whose answer
    /// carried no span count (no answer in time, or not a Thespian).
    pub unchecked: u64,
    /// Spans the answers said were made, in the traces checked.
    pub spans_expected: u64,
    /// Spans not found, in incomplete and missing traces.
    pub spans_missing: u64,
    /// Spans found beyond those expected, in complete traces.
    pub spans_extra: u64,
    /// Spans not found, by the service that made them.
    pub missing_by_service: serde_json::Map<String, serde_json::Value>,
    /// From each complete trace's answer to the first read that found it
    /// complete, in milliseconds.
    pub ingestion_delay_ms: Delay,
    /// A few of the errors reading the backend, when there were any.
    pub errors: Vec<String>,
    #[serde(skip)]
    delays: Option<Histogram<u64>>,
    #[serde(skip)]
    missing_spans: BySpans,
}

/// Ingestion delay percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delay {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The longest.
    pub max: f64,
}

impl VerifyReport {
    /// Nothing found yet.
    pub(super) fn new(backend: &Backend, wait: Duration) -> VerifyReport {
        VerifyReport {
            backend: backend.to_string(),
            wait_seconds: wait.as_secs_f64(),
            checked: 0,
            complete: 0,
            incomplete: 0,
            missing: 0,
            failed: 0,
            unchecked: 0,
            spans_expected: 0,
            spans_missing: 0,
            spans_extra: 0,
            missing_by_service: serde_json::Map::new(),
            ingestion_delay_ms: Delay::default(),
            errors: Vec::new(),
            delays: Histogram::new_with_bounds(1, DELAY_CEILING_MS, 3).ok(),
            missing_spans: BySpans::default(),
        }
    }

    /// Counts how one trace ended up.
    pub(super) fn add(&mut self, outcome: Outcome) {
        self.checked += 1;
        match outcome {
            Outcome::Complete {
                delay,
                expected,
                extra,
            } => {
                self.complete += 1;
                self.spans_expected += expected;
                self.spans_extra += extra;
                if let Some(delays) = &mut self.delays {
                    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    delays.saturating_record(millis.max(1));
                }
            }
            Outcome::Incomplete { expected, found } => {
                self.incomplete += 1;
                self.lack(&expected, &found);
            }
            Outcome::Missing { expected } => {
                self.missing += 1;
                self.lack(&expected, &BySpans::default());
            }
            Outcome::Failed(error) => {
                self.failed += 1;
                if self.errors.len() < MAX_ERRORS && !self.errors.contains(&error) {
                    self.errors.push(error);
                }
            }
        }
    }

    fn lack(&mut self, expected: &BySpans, found: &BySpans) {
        self.spans_expected += expected.total();
        let missing = expected.missing_from(found);
        self.spans_missing += missing.total();
        self.missing_spans.merge(&missing);
    }

    /// Turns what was counted into the figures reported.
    pub(super) fn finish(&mut self) {
        if let Some(delays) = &self.delays
            && !delays.is_empty()
        {
            self.ingestion_delay_ms = Delay {
                p50: delays.value_at_quantile(0.50) as f64,
                p99: delays.value_at_quantile(0.99) as f64,
                max: delays.max() as f64,
            };
        }
        self.missing_by_service = self
            .missing_spans
            .iter()
            .map(|(service, count)| (service.to_owned(), count.into()))
            .collect();
    }

    /// The report as a few lines for a person.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "verify {}: {} traces checked: {} complete, {} incomplete, {} missing{}",
            self.backend,
            self.checked,
            self.complete,
            self.incomplete,
            self.missing,
            if self.failed > 0 {
                format!(", {} could not be read", self.failed)
            } else {
                String::new()
            }
        );
        if self.spans_missing > 0 {
            let by_service: Vec<String> = self
                .missing_spans
                .iter()
                .map(|(service, count)| format!("{service} {count}"))
                .collect();
            let _ = writeln!(
                text,
                "spans missing: {} of {} ({})",
                self.spans_missing,
                self.spans_expected,
                by_service.join(", ")
            );
        } else {
            let _ = writeln!(text, "spans missing: none of {}", self.spans_expected);
        }
        if self.complete > 0 {
            let d = &self.ingestion_delay_ms;
            let _ = writeln!(
                text,
                "ingestion delay: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                d.p50, d.p99, d.max
            );
        }
        if self.unchecked > 0 {
            let _ = writeln!(
                text,
                "{} traces not checked (past --verify-sample, or no span count in the answer)",
                self.unchecked
            );
        }
        for error in &self.errors {
            let _ = writeln!(text, "error: {error}");
        }
        text
    }
}
