//! Logs and metrics, and how they join the traces: log lines pushed to Loki
//! and log records sent over OTLP name the span they happened in, request
//! metrics follow the RPC conventions, and a dead or slow backend never
//! costs a request. Everything is checked by receiving it over the real
//! wire formats.

use std::time::Duration;

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, InstanceBuilder, run_to_exit, trace_id};
use crate::support::loki::{LokiBehaviour, LokiReceiver};
use crate::support::otlp::{
    self, Attributed as _, Behaviour, ExportCounts, MetricKind, OtlpReceiver, ReceivedSpan,
    SpansExt as _,
};
use serde_json::{Value, json};
use thespian::proto::Empty;

/// A method that sleeps `ms` milliseconds in a step called `name`.
fn sleeping(name: &str, ms: u64) -> Value {
    json!({
        "tracing_name": "handle",
        "operations": [ { "Action": { "Sleep": { "tracing_name": name, "duration_ms": ms } } } ]
    })
}

/// A config whose method A sleeps 1 ms in a step called `load cart`.
fn load_cart() -> String {
    json!({ "grpc_method_a": sleeping("load cart", 1) }).to_string()
}

/// Calls `instance`'s method A and waits until `receiver` has the
/// `load cart` span of its trace; returns the trace id and that span.
async fn load_cart_span(instance: &Instance, receiver: &OtlpReceiver) -> (String, ReceivedSpan) {
    let trace_id = trace_id(instance.call_a().await.metadata());
    let spans = receiver
        .wait_for_spans(
            |s| {
                s.iter()
                    .any(|s| s.trace_id == trace_id && s.name == "load cart")
            },
            DEFAULT_WAIT,
        )
        .await;
    let sleep = spans.only_named("load cart").clone();
    (trace_id, sleep)
}

/// The instance's stdout lines at WARN or ERROR.
fn warnings(instance: &Instance) -> Vec<Value> {
    instance
        .json_lines()
        .into_iter()
        .filter(|line| matches!(line["level"].as_str(), Some("WARN" | "ERROR")))
        .collect()
}

/// A local port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Loki
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn loki_gets_json_lines_labelled_by_service_that_name_the_span_they_happened_in() {
    let receiver = OtlpReceiver::start().await;
    let loki = LokiReceiver::start().await;
    let instance = Instance::builder("cart")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .env("LOKI_ADDRESS", &loki.address())
        .start()
        .await;

    let (trace_id, sleep) = load_cart_span(&instance, &receiver).await;
    let entries = loki
        .wait_for_entries(
            |e| e.iter().any(|e| e.message() == "`load cart` finished"),
            DEFAULT_WAIT,
        )
        .await;

    for entry in &entries {
        assert_eq!(entry.label("service_name"), Some("cart"), "{entry}");
        let keys: Vec<&str> = entry.labels.keys().map(String::as_str).collect();
        assert!(
            keys.iter().all(|k| ["service_name", "level"].contains(k)),
            "only low-cardinality labels: {entry}"
        );
        assert!(entry.json().is_some(), "the line is JSON: {entry}");
    }
    // A sleep's start is a debug line, so at `info` only its end is pushed.
    assert!(
        entries.iter().all(|e| !e.message().starts_with("sleeping")),
        "{}",
        loki.dump()
    );
    {
        let entry = entries
            .iter()
            .find(|e| e.message() == "`load cart` finished")
            .unwrap();
        assert_eq!(entry.label("level"), Some("info"), "{entry}");
        assert_eq!(
            entry.json_field("trace_id").as_deref(),
            Some(trace_id.as_str())
        );
        assert_eq!(entry.json_field("trace_id"), Some(sleep.trace_id.clone()));
        assert_eq!(
            entry.json_field("span_id"),
            Some(sleep.span_id.clone()),
            "{entry}"
        );
        assert_eq!(entry.json_field("service").as_deref(), Some("cart"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loki_gets_the_last_lines_before_the_instance_exits() {
    let loki = LokiReceiver::start().await;
    let mut instance = Instance::builder("closing")
        .env("LOKI_ADDRESS", &loki.address())
        .start()
        .await;
    instance.terminate();
    instance.wait_for_exit(DEFAULT_WAIT).await;
    let entries = loki.entries();
    assert!(
        entries
            .iter()
            .any(|e| e.message().starts_with("shutting down")),
        "{}",
        loki.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_loki_leaves_requests_succeeding_and_warns_once() {
    let port = closed_port().await;
    let instance = Instance::builder("lonely")
        .config(&load_cart())
        .env("LOKI_ADDRESS", &format!("http://127.0.0.1:{port}"))
        .env("RUST_LOG", "info,thespian::telemetry=debug")
        .start()
        .await;
    let mut client = instance.client().await;

    // Loki is tried again after 1 s, then 2 s: the third failure shows the
    // instance kept trying, and kept quiet about it.
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    let third_failure = |line: &Value| line["failures"].as_i64().is_some_and(|n| n >= 3);
    while !instance.json_lines().iter().any(third_failure) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Loki was not tried three times; output:\n{}",
            instance.lines().join("\n")
        );
        client
            .a(Empty {})
            .await
            .expect("A answers while Loki is down");
    }

    thespian::health::check(&instance.address)
        .await
        .expect("the instance stays healthy");
    let warned = warnings(&instance);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let warning = warned[0]["message"].as_str().unwrap();
    assert!(
        warning.contains("cannot push log lines to Loki"),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_loki_is_reported_once_and_its_recovery_too() {
    let loki = LokiReceiver::start_with(LokiBehaviour::Fail(500)).await;
    let instance = Instance::builder("patient")
        .config(&load_cart())
        .env("LOKI_ADDRESS", &loki.address())
        .start()
        .await;
    let mut client = instance.client().await;

    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    while loki.pushes().iter().filter(|p| p.status == 500).count() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{}", loki.dump());
        client
            .a(Empty {})
            .await
            .expect("A answers while Loki fails");
    }
    let warned = warnings(&instance);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0]["message"]
            .as_str()
            .unwrap()
            .contains("500 Internal Server Error"),
        "{warned:#?}"
    );

    loki.set_behaviour(LokiBehaviour::Accept);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !instance
        .lines()
        .iter()
        .any(|l| l.contains("Loki accepts log lines again"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery; output:\n{}",
            instance.lines().join("\n")
        );
        client.a(Empty {}).await.expect("A answers");
        tokio::task::yield_now().await;
    }
    assert!(
        loki.entries()
            .iter()
            .any(|e| e.message() == "`load cart` finished")
    );
    assert_eq!(warnings(&instance).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loki_that_never_answers_holds_a_bounded_number_of_pushes_and_never_slows_requests() {
    let loki = LokiReceiver::start_with(LokiBehaviour::Delay(Duration::from_secs(3600))).await;
    let instance = Instance::builder("hurried")
        .config(&load_cart())
        .env("LOKI_ADDRESS", &loki.address())
        .start()
        .await;
    let mut client = instance.client().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !instance
        .lines()
        .iter()
        .any(|l| l.contains("did not answer within"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no timeout reported; {}; output:\n{}",
            loki.dump(),
            instance.lines().join("\n")
        );
        // Each request logs two lines, so sessions fill and pile up.
        let started = tokio::time::Instant::now();
        client
            .a(Empty {})
            .await
            .expect("A answers while Loki hangs");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request took {:?}",
            started.elapsed()
        );
    }
    let hanging = loki.pushes().iter().filter(|p| p.status == 0).count();
    assert!(
        (1..=8).contains(&hanging),
        "{hanging} pushes hang at once; at most 8 sessions may push"
    );
    assert_eq!(warnings(&instance).len(), 1, "{:#?}", warnings(&instance));
}

// ---------------------------------------------------------------------------
// OTLP logs and span events
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn otlp_log_records_carry_the_trace_and_span_ids_of_the_span_they_happened_in() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("ledger")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .start()
        .await;

    let (trace_id, sleep) = load_cart_span(&instance, &receiver).await;
    let records = receiver
        .wait_for_log_records(
            |r| {
                r.iter()
                    .any(|r| r.trace_id == trace_id && r.body.contains("load cart"))
            },
            DEFAULT_WAIT,
        )
        .await;
    {
        let body = "`load cart` finished";
        let record = records
            .iter()
            .find(|r| r.body == body)
            .unwrap_or_else(|| panic!("no record {body:?}: {}", receiver.dump()));
        assert_eq!(record.trace_id, sleep.trace_id, "{record}");
        assert_eq!(record.span_id, sleep.span_id, "{record}");
        assert_eq!(record.service_name.as_deref(), Some("ledger"));
        assert_eq!(record.severity_text, "INFO");
    }
    // A record's scope is its `tracing` target: Thespian's own exporters
    // and transports never log into what they export.
    let plumbing = ["h2", "hyper", "tonic", "tower", "opentelemetry", "reqwest"];
    assert!(
        records
            .iter()
            .all(|r| !plumbing.iter().any(|p| r.scope_name.starts_with(p))),
        "{}",
        receiver.dump()
    );
    let finished = records
        .iter()
        .find(|r| r.body == "`load cart` finished")
        .unwrap();
    assert_eq!(finished.scope_name, "thespian::executor");
    // A sleep's start is a debug line: at `info` it makes no record.
    assert!(
        records.iter().all(|r| !r.body.starts_with("sleeping")),
        "{}",
        receiver.dump()
    );
}

/// The span events of a gateway whose A sleeps (`load cart`, 20 ms) and
/// then calls inventory's B (`reserve item`), both at `rust_log`: the
/// sleep's span, the call's, and inventory's address.
async fn cart_events(rust_log: &str) -> (ReceivedSpan, ReceivedSpan, String) {
    let receiver = OtlpReceiver::start().await;
    let inventory = Instance::builder("inventory")
        .config(&json!({ "grpc_method_b": sleeping("lock row", 1) }).to_string())
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let config = json!({
        "grpc_method_a": {
            "tracing_name": "add to cart",
            "operations": [
                { "Action": { "Sleep": { "tracing_name": "load cart", "duration_ms": 20 } } },
                { "Action": { "CallService": {
                    "tracing_name": "reserve item",
                    "service_address": "http://127.0.0.1",
                    "service_port": inventory.port.to_string(),
                    "grpc_method": "B"
                } } }
            ]
        }
    });
    let gateway = Instance::builder("gateway")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .env("RUST_LOG", rust_log)
        .start()
        .await;

    let trace_id = trace_id(gateway.call_a().await.metadata());
    let spans = receiver
        .wait_for_spans(
            |s| {
                let trace = s.in_trace(&trace_id);
                trace.iter().any(|s| s.name == "load cart")
                    && trace.iter().any(|s| s.name == "reserve item")
            },
            DEFAULT_WAIT,
        )
        .await;
    (
        spans.only_named("load cart").clone(),
        spans.only_named("reserve item").clone(),
        inventory.address.clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sleeps_and_calls_record_their_end_as_span_events() {
    let (sleep, call, target) = cart_events("info").await;
    let names: Vec<&str> = sleep.events.iter().map(|e| e.name.as_str()).collect();
    // A sleep's start is a debug line; the span's start time says it.
    assert_eq!(names, ["`load cart` finished"], "{sleep}");
    assert!(
        sleep.events[0].time_unix_nano - sleep.start_time_unix_nano >= 20_000_000,
        "the span's start and its last event bracket the sleep: {sleep}"
    );

    // So is a call's: its span starts with it and names the target.
    assert_eq!(call.events.len(), 1, "{call}");
    let answered = &call.events[0].name;
    assert!(
        answered.starts_with(&format!("B at {target} answered OK in "))
            && answered.ends_with(" ms for `reserve item`"),
        "{answered}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_verbosity_shows_a_calls_start_as_a_span_event() {
    let (_, call, target) = cart_events("info,thespian::executor=debug").await;
    assert_eq!(call.events.len(), 2, "{call}");
    assert_eq!(
        call.events[0].name,
        format!("calling B at {target} for `reserve item`")
    );
    assert_eq!(call.events[0].attr_str("level"), Some("DEBUG"), "{call}");
    assert!(
        call.events[1]
            .name
            .starts_with(&format!("B at {target} answered OK in ")),
        "{call}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_verbosity_shows_a_sleeps_start_as_a_line_and_a_span_event() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("chatty")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .env("RUST_LOG", "info,thespian::executor=debug")
        .start()
        .await;

    let (_, sleep) = load_cart_span(&instance, &receiver).await;
    let names: Vec<&str> = sleep.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["sleeping 1 ms for `load cart`", "`load cart` finished"],
        "{sleep}"
    );
    assert_eq!(sleep.events[0].attr_str("level"), Some("DEBUG"), "{sleep}");
    let lines = instance.json_lines();
    let start = lines
        .iter()
        .find(|line| line["message"] == "sleeping 1 ms for `load cart`")
        .unwrap_or_else(|| panic!("no start line: {lines:#?}"));
    assert_eq!(start["level"], "DEBUG", "{start}");
    assert_eq!(start["span_id"].as_str(), Some(sleep.span_id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn warn_verbosity_hides_span_events_and_log_records_but_spans_still_arrive() {
    let receiver = OtlpReceiver::start().await;
    let loki = LokiReceiver::start().await;
    let mut instance = Instance::builder("quiet")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .env("LOKI_ADDRESS", &loki.address())
        .env("OTEL_LOGS_EXPORTER", "otlp")
        // The "serving" line is how the test harness finds the port.
        .env("RUST_LOG", "warn,thespian::cli=info")
        .start()
        .await;

    let (_, sleep) = load_cart_span(&instance, &receiver).await;
    assert!(sleep.events.is_empty(), "{sleep}");

    // Shutdown flushes every queue, so whatever was made has arrived.
    instance.terminate();
    instance.wait_for_exit(DEFAULT_WAIT).await;
    assert!(
        receiver
            .log_records()
            .iter()
            .all(|r| !r.body.contains("load cart")),
        "{}",
        receiver.dump()
    );
    assert!(
        loki.entries().iter().all(|e| !e.line.contains("load cart")),
        "{}",
        loki.dump()
    );
}

/// What must still arrive when one signal is turned off: what it is, for
/// the failure message, and whether `receiver` has it.
type Arrived = (&'static str, fn(&OtlpReceiver) -> bool);

/// The spans of `load cart`.
const SPANS: Arrived = ("spans", |receiver| {
    !receiver.spans().named("load cart").is_empty()
});

/// Log records.
const LOG_RECORDS: Arrived = ("log records", |receiver| {
    receiver.export_requests().logs > 0
});

#[tokio::test(flavor = "multi_thread")]
async fn an_exporter_set_to_none_sends_nothing_of_its_signal_and_the_rest_as_usual() {
    /// One signal turned off with `VARIABLE=none`.
    struct Case {
        /// The variable set to `none`.
        variable: &'static str,
        /// The instance's name.
        service: &'static str,
        /// Anything else the instance is given.
        env: &'static [(&'static str, &'static str)],
        /// How many export requests of the silenced signal arrived.
        requests: fn(ExportCounts) -> usize,
        /// What must arrive all the same.
        arrived: &'static [Arrived],
    }
    let cases = [
        Case {
            variable: "OTEL_TRACES_EXPORTER",
            service: "untraced",
            env: &[],
            requests: |sent| sent.traces,
            arrived: &[LOG_RECORDS],
        },
        Case {
            variable: "OTEL_LOGS_EXPORTER",
            service: "mute",
            env: &[],
            requests: |sent| sent.logs,
            arrived: &[SPANS],
        },
        Case {
            variable: "OTEL_METRICS_EXPORTER",
            service: "uncounted",
            env: &[("OTEL_METRIC_EXPORT_INTERVAL", "200")],
            requests: |sent| sent.metrics,
            arrived: &[SPANS, LOG_RECORDS],
        },
    ];
    let check = |case: Case| async move {
        let receiver = OtlpReceiver::start().await;
        let mut builder = Instance::builder(case.service)
            .config(&load_cart())
            .otlp(&receiver.endpoint());
        for (variable, value) in case.env {
            builder = builder.env(variable, value);
        }
        let mut instance = builder.env(case.variable, "none").start().await;
        instance.call_a().await;
        instance.terminate();
        instance.wait_for_exit(DEFAULT_WAIT).await;

        for (what, arrived) in case.arrived {
            assert!(
                arrived(&receiver),
                "{}=none: no {what}; {}",
                case.variable,
                receiver.dump()
            );
        }
        assert_eq!(
            (case.requests)(receiver.export_requests()),
            0,
            "{}=none: {}",
            case.variable,
            receiver.dump()
        );
    };
    futures::future::join_all(cases.map(check)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_loki_configured_log_records_go_over_otlp_only_when_asked() {
    let receiver = OtlpReceiver::start().await;
    let loki = LokiReceiver::start().await;
    let mut by_default = Instance::builder("loki-only")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .env("LOKI_ADDRESS", &loki.address())
        .start()
        .await;
    let mut asked = Instance::builder("both")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .env("LOKI_ADDRESS", &loki.address())
        .env("OTEL_LOGS_EXPORTER", "otlp")
        .start()
        .await;
    for instance in [&by_default, &asked] {
        instance.call_a().await;
    }
    for instance in [&mut by_default, &mut asked] {
        instance.terminate();
        instance.wait_for_exit(DEFAULT_WAIT).await;
    }

    let finished = |service: &str| {
        loki.entries()
            .iter()
            .filter(|e| e.label("service_name") == Some(service))
            .filter(|e| e.message() == "`load cart` finished")
            .count()
    };
    assert_eq!(finished("loki-only"), 1, "{}", loki.dump());
    assert_eq!(finished("both"), 1, "{}", loki.dump());
    let records = receiver.log_records();
    let over_otlp = |service: &str| {
        records
            .iter()
            .filter(|r| r.service_name.as_deref() == Some(service))
            .filter(|r| r.body == "`load cart` finished")
            .count()
    };
    assert_eq!(over_otlp("loki-only"), 0, "{}", receiver.dump());
    assert_eq!(over_otlp("both"), 1, "{}", receiver.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_collector_leaves_requests_succeeding_and_warns_once() {
    let receiver = OtlpReceiver::start_with(Behaviour::Unavailable).await;
    let instance = Instance::builder("stranded")
        .config(&load_cart())
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .start()
        .await;
    let mut client = instance.client().await;

    // The exporter tries each export four times before giving up on it:
    // twelve tries of each signal are at least two failed exports each.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tried = receiver.export_requests();
        if tried.traces >= 12
            && tried.logs >= 12
            && tried.metrics >= 12
            && !warnings(&instance).is_empty()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tried:?}; output:\n{}",
            instance.lines().join("\n")
        );
        client
            .a(Empty {})
            .await
            .expect("A answers while the collector is down");
    }
    thespian::health::check(&instance.address)
        .await
        .expect("the instance stays healthy");
    let warned = warnings(&instance);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0]["message"]
            .as_str()
            .unwrap()
            .contains("OTLP export failing"),
        "{warned:#?}"
    );
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// The point of `metric` whose attributes include `pairs`, with its count.
fn count_of(metric: &otlp::ReceivedMetric, pairs: &[(&str, &str)]) -> u64 {
    metric
        .point_with(pairs)
        .and_then(|p| p.count)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_metrics_follow_the_rpc_conventions_and_count_every_request() {
    let receiver = OtlpReceiver::start().await;
    let inventory = Instance::builder("inventory")
        .config(&json!({ "grpc_method_b": sleeping("lock row", 1) }).to_string())
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .start()
        .await;
    let dead = closed_port().await;
    let call = |name: &str, port: u16| {
        json!({ "Action": { "CallService": {
            "tracing_name": name,
            "service_address": "http://127.0.0.1",
            "service_port": port.to_string(),
            "grpc_method": "B"
        } } })
    };
    let config = json!({
        "grpc_method_a": { "tracing_name": "reserve", "operations": [ call("reserve item", inventory.port) ] },
        "grpc_method_b": { "tracing_name": "doomed", "operations": [
            { "Action": { "Sleep": { "tracing_name": "roll", "duration_ms": 1, "failure_chance": 1.0 } } }
        ] },
        "grpc_method_c": { "tracing_name": "lost", "operations": [ call("ask nobody", dead) ] }
    });
    let gateway = Instance::builder("gateway")
        .config(&config.to_string())
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .start()
        .await;
    let mut client = gateway.client().await;
    for _ in 0..3 {
        client.a(Empty {}).await.expect("A answers");
    }
    for _ in 0..2 {
        client.b(Empty {}).await.expect_err("B fails by chance");
    }
    client
        .c(Empty {})
        .await
        .expect_err("C's downstream is dead");

    let served = |m: &[otlp::ReceivedMetric], service: &str| {
        m.iter()
            .rev()
            .find(|m| {
                m.name == "rpc.server.call.duration" && m.service_name.as_deref() == Some(service)
            })
            .cloned()
    };
    let metrics = receiver
        .wait_for_metrics(
            |m| {
                served(m, "gateway").is_some_and(|d| {
                    count_of(&d, &[("rpc.method", "A")]) >= 3
                        && count_of(&d, &[("rpc.method", "B")]) >= 2
                        && count_of(&d, &[("rpc.method", "C")]) >= 1
                }) && served(m, "inventory")
                    .is_some_and(|d| count_of(&d, &[("rpc.method", "B")]) >= 3)
            },
            DEFAULT_WAIT,
        )
        .await;

    let server = served(&metrics, "gateway").unwrap();
    assert_eq!(server.kind, MetricKind::Histogram);
    assert_eq!(server.unit, "s");
    let a = server.point_with(&[("rpc.method", "A")]).unwrap();
    assert_eq!(a.attributes.str("rpc.system"), Some("grpc"));
    assert_eq!(a.attributes.str("rpc.service"), Some("thespian.Thespian"));
    assert_eq!(a.attributes.i64("rpc.grpc.status_code"), Some(0));
    assert_eq!(a.count, Some(3));
    let b = server.point_with(&[("rpc.method", "B")]).unwrap();
    assert_eq!(
        b.attributes.i64("rpc.grpc.status_code"),
        Some(13),
        "INTERNAL"
    );
    assert!(b.sum.unwrap() >= 0.002, "two 1 ms sleeps, in seconds: {b}");
    // The resource is the one the spans carry.
    let span = receiver.wait_for_span("reserve item", DEFAULT_WAIT).await;
    assert_eq!(server.service_name, span.service_name);
    assert_eq!(server.resource.str("service.name"), Some("gateway"));

    let latest = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.name == name && m.service_name.as_deref() == Some("gateway"))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} from the gateway: {}", receiver.dump()))
    };
    let client_calls = latest("rpc.client.call.duration");
    assert_eq!(client_calls.unit, "s");
    let port = inventory.port.to_string();
    let reserved = client_calls
        .data_points
        .iter()
        .find(|p| p.attributes.i64("server.port") == Some(i64::from(inventory.port)))
        .unwrap_or_else(|| panic!("no call to port {port}: {client_calls}"));
    assert_eq!(reserved.count, Some(3));
    assert_eq!(reserved.attributes.str("server.address"), Some("127.0.0.1"));
    assert_eq!(reserved.attributes.str("rpc.method"), Some("B"));
    assert_eq!(reserved.attributes.i64("rpc.grpc.status_code"), Some(0));
    let unanswered = client_calls
        .data_points
        .iter()
        .find(|p| p.attributes.i64("server.port") == Some(i64::from(dead)))
        .unwrap();
    assert_eq!(
        unanswered.attributes.i64("rpc.grpc.status_code"),
        Some(14),
        "UNAVAILABLE"
    );

    let failures = latest("thespian.failures");
    assert_eq!(failures.kind, MetricKind::Sum);
    let by_cause = |cause: &str| {
        failures
            .point_with(&[("failure.cause", cause)])
            .and_then(|p| p.value_f64())
    };
    assert_eq!(by_cause("failure_chance"), Some(2.0), "{failures}");
    assert_eq!(by_cause("downstream"), Some(1.0), "{failures}");

    let active = latest("rpc.server.active_requests");
    assert_eq!(active.kind, MetricKind::Sum);
    assert_eq!(active.is_monotonic, Some(false));
    for method in ["A", "B", "C"] {
        let point = active.point_with(&[("rpc.method", method)]).unwrap();
        assert_eq!(point.value_f64(), Some(0.0), "nothing in flight: {point}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_temporality_is_taken_from_the_standard_variable() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("delta")
        .otlp(&receiver.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
        .start()
        .await;
    instance.call_a().await;
    let duration = receiver
        .wait_for_metric("rpc.server.call.duration", DEFAULT_WAIT)
        .await;
    assert_eq!(
        duration.temporality,
        Some(otlp::AggregationTemporality::Delta)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signal_settings_stop_the_instance_with_a_message_naming_the_variable() {
    for (variable, value) in [
        ("OTEL_LOGS_EXPORTER", "console"),
        ("OTEL_METRICS_EXPORTER", "prometheus"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "sometimes",
        ),
        ("LOKI_ADDRESS", "ftp://localhost:3100"),
    ] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"));
        command
            .env("PORT", "0")
            .env("OTEL_BACKEND_ADDRESS", "")
            .env(variable, value);
        let output = run_to_exit(command, DEFAULT_WAIT, &format!("{variable}={value}")).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value} was accepted");
        assert!(
            stderr.contains(variable)
                || stderr.contains(&variable.to_lowercase().replace('_', "-")),
            "{variable}={value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Starts an instance whose `A` logs two lines (a sleep's start, a debug
/// line turned on here, and its end), stops reading its output,
/// and makes 12,000 requests. Their 24,000 lines overflow both the pipe
/// (64 KiB) and the 16,384 lines that may wait for stdout. Were stdout
/// written on the request threads, the first full pipe would stall every
/// request.
async fn flood_an_unread_stdout(
    setup: impl FnOnce(InstanceBuilder) -> InstanceBuilder,
) -> Instance {
    let config = json!({ "grpc_method_a": { "tracing_name": "chatty", "operations": [
        { "Action": { "Sleep": { "tracing_name": "nap", "duration_ms": 0 } } }
    ] } });
    let instance = setup(
        Instance::builder("chatty")
            .config(&config.to_string())
            .env("RUST_LOG", "info,thespian::executor=debug"),
    )
    .start()
    .await;
    instance.pause_output();
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let mut client = instance.client().await;
            callers.spawn(async move {
                for _ in 0..1_500 {
                    client.a(Empty {}).await.expect("A answers");
                }
            });
        }
        callers.join_all().await
    })
    .await;
    assert!(answered.is_ok(), "requests stalled behind an unread stdout");
    instance
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_nobody_reads_never_blocks_requests_and_its_dropped_lines_are_counted() {
    let mut instance = flood_an_unread_stdout(|instance| instance).await;

    instance.resume_output();
    // Lines are written in order, so once a request's last line shows, the
    // backlog has drained. A request answered before the backlog has room
    // again has its lines dropped and counted like the rest, so requests
    // are made until one's line shows.
    let mut drained = false;
    for _ in 0..10 {
        let last = trace_id(instance.call_a().await.metadata());
        let shown = instance
            .line_within(
                |line| line.contains(&last) && line.contains("finished"),
                Duration::from_secs(6),
            )
            .await;
        if shown.is_some() {
            drained = true;
            break;
        }
    }
    assert!(
        drained,
        "no request's line showed once stdout was read again"
    );
    instance.stop_cleanly(Duration::from_secs(30)).await;

    let report = instance
        .json_lines()
        .into_iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("log lines were dropped"))
        })
        .unwrap_or_else(|| panic!("no report of dropped lines"));
    let dropped = report["dropped"].as_i64().unwrap();
    assert!(dropped > 0 && dropped <= 24_000, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_stdout_lines_are_reported_over_otlp_while_stdout_is_stalled() {
    let receiver = OtlpReceiver::start().await;
    let mut instance = flood_an_unread_stdout(|instance| instance.otlp(&receiver.endpoint())).await;
    // Stdout is still unread: the report can only arrive another way.
    let report = receiver
        .wait_for_log_containing("log lines were dropped in the last", DEFAULT_WAIT)
        .await;
    let dropped = report
        .attr_i64("dropped")
        .expect("a count of dropped lines");
    let total = report.attr_i64("total").expect("a running total");
    assert!(
        dropped > 0 && dropped <= total && total <= 24_000,
        "{report}"
    );
    assert_eq!(report.severity_text, "WARN", "{report}");
    instance.resume_output();
    instance.stop_cleanly(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_nobody_reads_does_not_hold_up_shutdown() {
    let mut instance = flood_an_unread_stdout(|instance| instance).await;
    // The grace period has nothing to wait for; stdout gets two seconds.
    instance.stop_cleanly(Duration::from_secs(20)).await;
}
