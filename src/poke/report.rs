//! What poke says when a run ends: the summary, as text for a person or as
//! JSON for a script.

use std::fmt::Write as _;

use serde::Serialize;

use super::verify::VerifyReport;

/// What a poke run did: printed as text, or with `--json` as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Who was poked, as `http://host:port`.
    pub target: String,
    /// Which method.
    pub method: &'static str,
    /// Requests that got an answer, any answer (the sum of `status_codes`).
    pub requests: u64,
    /// Requests still in flight when Ctrl-C ended the run, whose answers
    /// were not waited for.
    pub unanswered: u64,
    /// Answers other than OK.
    pub errors: u64,
    /// From the first request to the last answer.
    pub elapsed_seconds: f64,
    /// Answers per second over the whole run.
    pub requests_per_second: f64,
    /// Latency percentiles, in milliseconds.
    pub latency_ms: Percentiles,
    /// Answers per gRPC status code, by the code's canonical name (`OK`,
    /// `INTERNAL`, ...), in code order.
    pub status_codes: serde_json::Map<String, serde_json::Value>,
    /// Whether Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// Every target, with the requests each was sent (the first is also
    /// `target` and `method`).
    pub targets: Vec<TargetSummary>,
    /// The traffic's shape, when it was paced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// What `--verify` found, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
}

/// One target of a run, and its share.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    /// Who was poked, as `http://host:port`.
    pub target: String,
    /// Which method.
    pub method: &'static str,
    /// Its weight.
    pub weight: u32,
    /// Requests sent to it.
    pub sent: u64,
}

/// Latency percentiles in milliseconds, accurate to three significant digits.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest answer.
    pub max: f64,
}

impl Summary {
    /// Prints the summary on stdout: as one JSON object when `json`, else
    /// as text.
    pub(super) fn print(&self, json: bool) -> Result<(), crate::Error> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            print!("{}", self.to_text());
        }
        Ok(())
    }

    /// The summary as a few lines for a person.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let who = if self.targets.len() > 1 {
            let each: Vec<String> = self
                .targets
                .iter()
                .map(|t| format!("{} {} ({} sent)", t.target, t.method, t.sent))
                .collect();
            each.join(", ")
        } else {
            format!("{} {}", self.target, self.method)
        };
        let _ = writeln!(
            text,
            "{}: {} requests in {:.2} s, {:.1} requests/s{}",
            who,
            self.requests,
            self.elapsed_seconds,
            self.requests_per_second,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            text,
            "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50, l.p90, l.p99, l.max
        );
        let codes: Vec<String> = self
            .status_codes
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        let codes = if codes.is_empty() {
            "none".to_owned()
        } else {
            codes.join(", ")
        };
        let _ = writeln!(text, "status: {codes}");
        if self.unanswered > 0 {
            let _ = writeln!(
                text,
                "{} requests still in flight were not waited for",
                self.unanswered
            );
        }
        if let Some(verify) = &self.verify {
            text.push_str(&verify.to_text());
        }
        text
    }
}
