//! How many spans a request made across its whole call tree: the ground
//! truth a tracing backend's copy of the trace can be checked against.
//!
//! Every span Thespian records is opened by one function,
//! [`Tracer::open_at`](crate::telemetry::Tracer::open_at), while its
//! request's future is being polled, and that future carries the request's
//! [`SpanCount`] as a task-local value: counting a request's own spans
//! costs one increment per span. (Carried as a value of the request's
//! OpenTelemetry context, the count cost each request in flight a map of
//! context values of its own, some 200 bytes.) Each call a request
//! makes reads what its answer reports (retries and fallbacks each make
//! their own calls, so each is counted) and adds it; the request then
//! reports its own spans and everything below them on its answer, OK or
//! not, in two response headers:
//!
//! - `thespian-spans: 7`, the total;
//! - `thespian-spans-by-service: frontend=3,orders=4`, the same spans by
//!   the `service.name` that recorded them.
//!
//! Only spans that are recorded count: a trace the sampler dropped, or an
//! instance with no span export, adds nothing. A call that got no answer
//! at all (its deadline passed) reports nothing, so what its target did is
//! not counted.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tonic::metadata::{MetadataMap, MetadataValue};

/// The response header with the number of spans a request made, its own
/// and those of every call below it.
pub const SPANS_HEADER: &str = "thespian-spans";

/// The response header with the same spans by the service that recorded
/// them: `name=count` pairs separated by commas.
pub const SPANS_BY_SERVICE_HEADER: &str = "thespian-spans-by-service";

/// The most services one answer names; the rest are added up under
/// [`OTHER_SERVICES`], so a deep tree cannot grow a header without bound.
const MAX_SERVICES: usize = 32;

/// Where the spans of services past the 32 an answer names are counted.
pub const OTHER_SERVICES: &str = "(other)";

/// The longest service name read from an answer, in bytes.
const MAX_NAME_BYTES: usize = 64;

tokio::task_local! {
    /// The count of the request whose future is being polled.
    static REQUEST: SpanCount;
}

/// The spans one request has made so far. Cheap to clone; clones count
/// together.
#[derive(Debug, Clone, Default)]
pub struct SpanCount(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// The spans this instance recorded for the request.
    own: AtomicU64,
    /// What its calls' answers reported, by service.
    downstream: Mutex<BySpans>,
}

impl SpanCount {
    /// Runs `request`, the future of one request, with this count: every
    /// span recorded while it is polled counts here.
    pub fn scope<F: Future>(self, request: F) -> impl Future<Output = F::Output> {
        REQUEST.scope(self, request)
    }

    /// Runs `f` with this count, for what a request records before its
    /// future runs: its server span.
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        REQUEST.sync_scope(self.clone(), f)
    }

    /// Counts one span recorded now, if it is recorded for a request.
    pub fn count_span() {
        let _ = REQUEST.try_with(|count| count.0.own.fetch_add(1, Ordering::Relaxed));
    }

    /// The count of the request whose future is being polled, if any.
    pub fn current() -> Option<SpanCount> {
        REQUEST.try_with(SpanCount::clone).ok()
    }

    /// Adds what a call's answer (its headers or its status's) reported.
    pub fn add_answer(&self, answer: &MetadataMap) {
        if let Some(reported) = BySpans::read(answer) {
            self.downstream().merge(&reported);
        }
    }

    /// Writes the count on the request's answer, its own spans under `me`.
    pub fn write(&self, me: &str, answer: &mut MetadataMap) {
        let mut all = BySpans::default();
        all.add(me, self.0.own.load(Ordering::Relaxed));
        all.merge(&self.downstream());
        answer.insert(SPANS_HEADER, MetadataValue::from(all.total()));
        if all.total() > 0
            && let Ok(by_service) = MetadataValue::try_from(all.to_string())
        {
            answer.insert(SPANS_BY_SERVICE_HEADER, by_service);
        }
    }

    fn downstream(&self) -> std::sync::MutexGuard<'_, BySpans> {
        // A poisoned lock only means a call panicked mid-merge; the counts
        // are still whole numbers.
        self.0.downstream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Spans by the service that recorded them, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BySpans(Vec<(String, u64)>);

impl BySpans {
    /// What an answer reported: by service when it said, else its total
    /// under [`OTHER_SERVICES`]; `None` when it reported nothing.
    pub fn read(answer: &MetadataMap) -> Option<BySpans> {
        let by_service = answer
            .get(SPANS_BY_SERVICE_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(BySpans::parse);
        if let Some(by_service) = by_service {
            return Some(by_service);
        }
        let total = answer
            .get(SPANS_HEADER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let mut spans = BySpans::default();
        spans.add(OTHER_SERVICES, total);
        Some(spans)
    }

    /// Reads `name=count,name=count`, skipping pairs that are not.
    pub fn parse(text: &str) -> BySpans {
        let mut spans = BySpans::default();
        for pair in text.split(',') {
            if let Some((name, count)) = pair.rsplit_once('=')
                && !name.trim().is_empty()
                && let Ok(count) = count.trim().parse()
            {
                spans.add(name.trim(), count);
            }
        }
        spans
    }

    /// Counts `count` more spans of `service`.
    pub fn add(&mut self, service: &str, count: u64) {
        if count == 0 {
            return;
        }
        let mut service = truncate(service, MAX_NAME_BYTES);
        if !self.0.iter().any(|(name, _)| name == service) && self.0.len() >= MAX_SERVICES - 1 {
            service = OTHER_SERVICES;
        }
        match self.0.iter_mut().find(|(name, _)| name == service) {
            Some((_, spans)) => *spans = spans.saturating_add(count),
            None => self.0.push((service.to_owned(), count)),
        }
    }

    /// Adds every service's spans in `other`.
    pub fn merge(&mut self, other: &BySpans) {
        for (service, count) in &other.0 {
            self.add(service, *count);
        }
    }

    /// The spans of `service`.
    pub fn of(&self, service: &str) -> u64 {
        self.0
            .iter()
            .find(|(name, _)| name == service)
            .map_or(0, |(_, count)| *count)
    }

    /// What `found` lacks of these spans, by service. Spans counted under
    /// [`OTHER_SERVICES`] (from answers that gave only a total) may be any
    /// of the spans found beyond those of the services named.
    pub fn missing_from(&self, found: &BySpans) -> BySpans {
        let mut missing = BySpans::default();
        let mut beyond = 0u64;
        for (service, count) in found.iter().filter(|(s, _)| *s != OTHER_SERVICES) {
            beyond += count.saturating_sub(self.of(service));
        }
        for (service, count) in self.iter() {
            if service == OTHER_SERVICES {
                missing.add(
                    service,
                    count.saturating_sub(found.of(OTHER_SERVICES) + beyond),
                );
            } else {
                missing.add(service, count.saturating_sub(found.of(service)));
            }
        }
        missing
    }

    /// Spans in all.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, count)| count).sum()
    }

    /// Each service and its spans.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, count)| (name.as_str(), *count))
    }
}

impl std::fmt::Display for BySpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (service, count)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{service}={count}")?;
        }
        Ok(())
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reports_its_own_spans_and_its_calls() {
        let count = SpanCount::default();
        count.sync_scope(|| {
            SpanCount::count_span();
            SpanCount::count_span();
        });
        let mut answer = MetadataMap::new();
        answer.insert(SPANS_BY_SERVICE_HEADER, "orders=3,stock=1".parse().unwrap());
        count.add_answer(&answer);
        // A retry of the same call reports again, and adds again.
        count.add_answer(&answer);
        let mut total_only = MetadataMap::new();
        total_only.insert(SPANS_HEADER, "5".parse().unwrap());
        count.add_answer(&total_only);

        let mut mine = MetadataMap::new();
        count.write("frontend", &mut mine);
        assert_eq!(mine.get(SPANS_HEADER).unwrap(), "15");
        assert_eq!(
            mine.get(SPANS_BY_SERVICE_HEADER).unwrap(),
            "frontend=2,orders=6,stock=2,(other)=5"
        );
    }

    #[test]
    fn what_a_backend_lacks_is_told_by_service() {
        let expected = BySpans::parse("poke=1,frontend=3,orders=2");
        let found = BySpans::parse("poke=1,frontend=3,orders=1");
        assert_eq!(expected.missing_from(&found).to_string(), "orders=1");
        // One service's surplus does not make up for another's loss.
        let found = BySpans::parse("poke=1,frontend=4,orders=1");
        assert_eq!(expected.missing_from(&found).to_string(), "orders=1");
        assert_eq!(expected.missing_from(&expected).total(), 0);
        // A total with no names is made up by spans beyond those named.
        let expected = BySpans::parse("poke=1,(other)=2");
        let found = BySpans::parse("poke=1,stock=1");
        assert_eq!(expected.missing_from(&found).to_string(), "(other)=1");
    }

    #[tokio::test]
    async fn a_request_counts_what_its_future_records_and_nothing_else() {
        let count = SpanCount::default();
        SpanCount::count_span();
        assert!(SpanCount::current().is_none(), "outside a request");
        count
            .clone()
            .scope(async {
                SpanCount::count_span();
                tokio::task::yield_now().await;
                SpanCount::count_span();
            })
            .await;
        SpanCount::count_span();
        let mut mine = MetadataMap::new();
        count.write("frontend", &mut mine);
        assert_eq!(mine.get(SPANS_HEADER).unwrap(), "2");
    }

    #[test]
    fn the_services_named_are_bounded_and_garbage_is_skipped() {
        let text: Vec<String> = (0..100).map(|i| format!("s{i}=1")).collect();
        let spans = BySpans::parse(&format!("{},junk,x=y,=2", text.join(",")));
        assert_eq!(spans.iter().count(), MAX_SERVICES);
        assert_eq!(spans.total(), 100);
    }
}
