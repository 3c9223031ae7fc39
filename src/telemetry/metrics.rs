//! Request metrics: the call-duration histograms, in-flight requests and
//! failures by cause, named after the OpenTelemetry RPC conventions so
//! dashboards built for real gRPC services work on Thespians unchanged.
//!
//! The names and unit follow the current conventions
//! (`rpc.server.call.duration` and `rpc.client.call.duration`, in seconds);
//! the attributes keep the names Thespian's spans carry (`rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), so a metric series
//! and the spans behind it are filtered the same way.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    metrics::{
        AsyncInstrument, Counter, Gauge, Histogram, Meter, ObservableUpDownCounter, UpDownCounter,
    },
};
use tokio::time::Instant;

use crate::behaviour::{MethodName, Target};

/// How metric sums and histograms are reported: the standard
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricsTemporality {
    /// Totals since the instance started: what Prometheus and Mimir expect.
    #[default]
    Cumulative,
    /// Only what happened since the last export.
    Delta,
    /// Delta for counters and histograms, cumulative for up-down counters.
    #[value(name = "lowmemory")]
    LowMemory,
}

impl From<MetricsTemporality> for opentelemetry_sdk::metrics::Temporality {
    fn from(temporality: MetricsTemporality) -> Self {
        match temporality {
            MetricsTemporality::Cumulative => Self::Cumulative,
            MetricsTemporality::Delta => Self::Delta,
            MetricsTemporality::LowMemory => Self::LowMemory,
        }
    }
}

/// The bucket boundaries, in seconds, the RPC conventions advise for call
/// durations.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The bucket boundaries, in seconds, for the time a request waits for a
/// slot under `MAX_IN_FLIGHT`: from the request that barely waited (most,
/// below the limit) to the minutes a queue that keeps growing reaches.
const WAIT_BUCKETS: [f64; 16] = [
    0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The request instruments. Cheap to clone: clones share the instruments.
/// The default records nothing, for instances that export no metrics and
/// for tests that do not look at them.
#[derive(Clone, Default)]
pub struct Metrics {
    /// `None` when metrics are off, so a request then costs one branch.
    instruments: Option<Arc<Instruments>>,
}

struct Instruments {
    /// `rpc.server.call.duration`: how long each served request took.
    server_duration: Histogram<f64>,
    /// `rpc.client.call.duration`: how long each call to another Thespian took.
    client_duration: Histogram<f64>,
    /// `rpc.server.active_requests`: requests being served right now,
    /// counted here and read at each export.
    active: Arc<ActiveRequests>,
    /// Keeps the instrument that reads `active`.
    _active_reader: ObservableUpDownCounter<i64>,
    /// `thespian.failures`: failed requests, by where the failure started.
    failures: Counter<u64>,
    /// `thespian.queue.length`: requests waiting for a slot under `MAX_IN_FLIGHT`.
    queue_length: UpDownCounter<i64>,
    /// `thespian.queue.wait_time`: how long each request waited for a slot.
    queue_wait: Histogram<f64>,
    /// `thespian.in_flight`: requests holding a slot, being acted out.
    in_flight: UpDownCounter<i64>,
    /// `thespian.scenario.active`: 1 while a scenario is active, 0 after.
    scenario_active: Gauge<i64>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.instruments.is_some())
            .finish()
    }
}

impl Metrics {
    /// Makes the instruments once, at startup, from `meter`.
    pub fn new(meter: &Meter) -> Metrics {
        let active = Arc::new(ActiveRequests::default());
        let instruments = Instruments {
            active: Arc::clone(&active),
            server_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_description("How long each request to this Thespian took to answer.")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            client_duration: meter
                .f64_histogram("rpc.client.call.duration")
                .with_description("How long each call this Thespian made took to be answered.")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            _active_reader: meter
                .i64_observable_up_down_counter("rpc.server.active_requests")
                .with_description("Requests this Thespian is serving right now.")
                .with_unit("{request}")
                .with_callback(move |observer| active.observe(observer))
                .build(),
            failures: meter
                .u64_counter("thespian.failures")
                .with_description(
                    "Requests that failed, by where the failure started: `failure_chance`, \
                     `downstream` or `script`.",
                )
                .with_unit("{request}")
                .build(),
            queue_length: meter
                .i64_up_down_counter("thespian.queue.length")
                .with_description(
                    "Requests waiting for a slot, when MAX_IN_FLIGHT limits the requests acted \
                     out at once.",
                )
                .with_unit("{request}")
                .build(),
            queue_wait: meter
                .f64_histogram("thespian.queue.wait_time")
                .with_description(
                    "How long each request waited for a slot under MAX_IN_FLIGHT: 0 for one \
                     that found a slot free.",
                )
                .with_unit("s")
                .with_boundaries(WAIT_BUCKETS.to_vec())
                .build(),
            in_flight: meter
                .i64_up_down_counter("thespian.in_flight")
                .with_description(
                    "Requests holding one of the MAX_IN_FLIGHT slots, being acted out.",
                )
                .with_unit("{request}")
                .build(),
            scenario_active: meter
                .i64_gauge("thespian.scenario.active")
                .with_description(
                    "1 while the scenario named by the `scenario` label is active, 0 after: \
                     the incident window, to show beside its effects.",
                )
                .build(),
        };
        Metrics {
            instruments: Some(Arc::new(instruments)),
        }
    }

    /// Counts a request to `method` as in flight until the returned guard
    /// is finished or dropped.
    pub fn request_started(&self, method: MethodName) -> ServedRequest {
        if let Some(instruments) = &self.instruments {
            instruments.active.change(method, 1);
        }
        ServedRequest {
            instruments: self.instruments.clone(),
            method,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Counts a request to `method` into (`+1`) or out of (`-1`) the queue
    /// for a slot.
    pub fn queue_changed(&self, method: MethodName, by: i64) {
        if let Some(instruments) = &self.instruments {
            instruments.queue_length.add(by, &rpc_attributes(method));
        }
    }

    /// Records how long a request to `method` waited for a slot, whether
    /// it got one or gave up.
    pub fn queue_waited(&self, method: MethodName, waited: Duration) {
        if let Some(instruments) = &self.instruments {
            instruments
                .queue_wait
                .record(waited.as_secs_f64(), &rpc_attributes(method));
        }
    }

    /// Counts a request to `method` into (`+1`) or out of (`-1`) a slot.
    pub fn in_flight_changed(&self, method: MethodName, by: i64) {
        if let Some(instruments) = &self.instruments {
            instruments.in_flight.add(by, &rpc_attributes(method));
        }
    }

    /// Records that the scenario `name` became active, or stopped being.
    pub fn scenario_changed(&self, name: &str, active: bool) {
        if let Some(instruments) = &self.instruments {
            instruments.scenario_active.record(
                i64::from(active),
                &[KeyValue::new("scenario", name.to_owned())],
            );
        }
    }

    /// Records one call to `method` at `target` that answered `code` after
    /// `elapsed`.
    pub fn call_finished(
        &self,
        target: &Target,
        method: MethodName,
        code: tonic::Code,
        elapsed: Duration,
    ) {
        let Some(instruments) = &self.instruments else {
            return;
        };
        let [system, service, method] = rpc_attributes(method);
        instruments.client_duration.record(
            elapsed.as_secs_f64(),
            &[
                system,
                service,
                method,
                KeyValue::new("rpc.grpc.status_code", code as i64),
                KeyValue::new("server.address", target.host().to_owned()),
                KeyValue::new("server.port", i64::from(target.port())),
            ],
        );
    }
}

/// The requests being served, by method. A request counts itself in and
/// out with an atomic add each time; an up-down counter's two measurements
/// per request each looked up the series by its attributes, some 3,000
/// instructions a request under load. A method's series starts at its
/// first request, as the up-down counter's did.
#[derive(Debug, Default)]
struct ActiveRequests {
    /// Requests in flight, by [`MethodName::ALL`]'s order.
    counts: [AtomicI64; 3],
    /// Whether each method has been requested yet.
    seen: [AtomicBool; 3],
}

impl ActiveRequests {
    fn change(&self, method: MethodName, by: i64) {
        let index = method as usize;
        if !self.seen[index].load(Ordering::Relaxed) {
            self.seen[index].store(true, Ordering::Relaxed);
        }
        self.counts[index].fetch_add(by, Ordering::Relaxed);
    }

    /// Reports each method requested so far, at export.
    fn observe(&self, observer: &dyn AsyncInstrument<i64>) {
        for method in MethodName::ALL {
            let index = method as usize;
            if self.seen[index].load(Ordering::Relaxed) {
                let count = self.counts[index].load(Ordering::Relaxed);
                observer.observe(count, &rpc_attributes(method));
            }
        }
    }
}

/// A request being served: counted as in flight until it is finished or
/// dropped, so a request its caller gave up on still leaves the count.
#[derive(Debug)]
#[must_use = "a request left unfinished is recorded as cancelled"]
pub struct ServedRequest {
    instruments: Option<Arc<Instruments>>,
    method: MethodName,
    started: Instant,
    finished: bool,
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Instruments")
    }
}

impl ServedRequest {
    /// Records the request's duration and status, and its failure cause if
    /// it failed (see [`Failure::cause`](crate::failure::Failure::cause)).
    pub fn finish(mut self, code: tonic::Code, cause: Option<&'static str>) {
        self.record(code, cause);
    }

    fn record(&mut self, code: tonic::Code, cause: Option<&'static str>) {
        self.finished = true;
        let Some(instruments) = &self.instruments else {
            return;
        };
        let [system, service, method] = rpc_attributes(self.method);
        instruments.server_duration.record(
            self.started.elapsed().as_secs_f64(),
            &[
                system,
                service,
                method.clone(),
                KeyValue::new("rpc.grpc.status_code", code as i64),
            ],
        );
        if let Some(cause) = cause {
            instruments
                .failures
                .add(1, &[method, KeyValue::new("failure.cause", cause)]);
        }
    }
}

impl Drop for ServedRequest {
    fn drop(&mut self) {
        if !self.finished {
            self.record(tonic::Code::Cancelled, None);
        }
        if let Some(instruments) = &self.instruments {
            instruments.active.change(self.method, -1);
        }
    }
}

/// What names a call of `method` by OpenTelemetry's RPC conventions, on
/// spans and metrics alike: `rpc.system`, `rpc.service` and `rpc.method`.
/// Built from static strings, so it costs no allocation.
pub(crate) fn rpc_attributes(method: MethodName) -> [KeyValue; 3] {
    [
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", "thespian.Thespian"),
        KeyValue::new("rpc.method", method.as_str()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_metrics_record_nothing_and_do_not_panic() {
        let metrics = Metrics::default();
        metrics
            .request_started(MethodName::A)
            .finish(tonic::Code::Ok, None);
        drop(metrics.request_started(MethodName::B));
        metrics.call_finished(
            &Target::parse("localhost:1").unwrap(),
            MethodName::C,
            tonic::Code::Unavailable,
            Duration::from_millis(3),
        );
    }

    /// Keeps what an observable instrument is told: each value and the
    /// `rpc.method` it was told with.
    #[derive(Default)]
    struct Observed(std::sync::Mutex<Vec<(i64, String)>>);

    impl AsyncInstrument<i64> for Observed {
        fn observe(&self, measurement: i64, attributes: &[KeyValue]) {
            let method = attributes
                .iter()
                .find(|kv| kv.key.as_str() == "rpc.method")
                .map(|kv| kv.value.to_string())
                .unwrap_or_default();
            self.0.lock().unwrap().push((measurement, method));
        }
    }

    #[test]
    fn active_requests_are_read_by_method_from_each_methods_first_request() {
        let active = ActiveRequests::default();
        let observed = Observed::default();
        active.observe(&observed);
        assert!(observed.0.lock().unwrap().is_empty(), "no request yet");

        active.change(MethodName::A, 1);
        active.change(MethodName::A, 1);
        active.change(MethodName::C, 1);
        active.change(MethodName::A, -1);
        active.change(MethodName::C, -1);
        active.observe(&observed);
        assert_eq!(
            *observed.0.lock().unwrap(),
            [(1, "A".to_owned()), (0, "C".to_owned())],
            "B was never requested"
        );
    }
}
