//! Spans and log records a collector cannot take in time are dropped,
//! never piled up in memory: Thespian says so while it happens, and counts
//! them at shutdown.

use std::{process::Stdio, time::Duration};

use crate::support::{
    instance::Instance,
    otlp::{Behaviour, OtlpReceiver},
};

#[tokio::test]
async fn spans_a_stalled_collector_cannot_take_are_reported_as_lost() {
    // The collector holds every export far past the exporter's timeout, and
    // the queue holds 64 spans plus a batch of 16 in flight.
    let receiver = OtlpReceiver::start_with(Behaviour::Delay(Duration::from_secs(60))).await;
    let mut instance = Instance::builder("overflowing")
        .otlp(&receiver.endpoint())
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "64")
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .start()
        .await;

    // 2,048 no-op requests make exactly 2,048 spans.
    poke(&instance, 2048).await;
    let report = loss_report(
        &mut instance,
        "span export queue is full",
        "spans never reached the collector",
    )
    .await;
    assert_eq!(report["made"], 2048, "{report}");
    assert_eq!(report["exported"], 0, "{report}");
    // Every span is accounted for: the few in batches that timed out as
    // failed, everything else, turned away or still queued, as lost.
    let lost = report["lost"].as_i64().expect("a count of lost spans");
    let failed = report["failed"].as_i64().expect("a count of failed spans");
    assert_eq!(lost + failed, 2048, "{report}");
    assert!(lost > 1024, "{report}");
    assert!(
        instance
            .wait_for_exit(Duration::from_secs(30))
            .await
            .success()
    );
}

#[tokio::test]
async fn log_records_a_stalled_collector_cannot_take_are_reported_as_lost() {
    // The collector holds every export far past the exporter's timeout, and
    // the log record queue holds 64 records plus a batch of 16 in flight.
    let receiver = OtlpReceiver::start_with(Behaviour::Delay(Duration::from_secs(60))).await;
    let config = serde_json::json!({ "grpc_method_a": { "tracing_name": "work", "operations": [
        { "Action": { "Sleep": { "tracing_name": "nap", "duration_ms": 0 } } }
    ] } });
    let mut instance = Instance::builder("overflowing-logs")
        .otlp(&receiver.endpoint())
        .config(&config.to_string())
        .env("OTEL_BLRP_MAX_QUEUE_SIZE", "64")
        .env("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "16")
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .start()
        .await;

    // 2,048 sleeps of no time log exactly 2,048 records: one as each sleep
    // ends (its start is a debug line).
    poke(&instance, 2048).await;
    let report = loss_report(
        &mut instance,
        "log record export queue is full",
        "log records never reached the collector",
    )
    .await;
    // The requests' records, and the instance's own lines about starting
    // and about the full queue: every one of them is accounted for, the
    // few in batches that timed out as failed, the rest as lost.
    let made = report["made"].as_i64().expect("a count of records made");
    assert!((2048..2060).contains(&made), "{report}");
    assert_eq!(report["exported"], 0, "{report}");
    let lost = report["lost"].as_i64().expect("a count of lost records");
    let failed = report["failed"]
        .as_i64()
        .expect("a count of failed records");
    assert_eq!(lost + failed, made, "{report}");
    assert!(lost > 1024, "{report}");
}

/// Calls method A of `instance` `requests` times, 32 at a time, with
/// `thespian poke`, and waits until every call has answered.
async fn poke(instance: &Instance, requests: u32) {
    let poked = tokio::process::Command::new(env!("CARGO_BIN_EXE_thespian"))
        .args(["poke", &instance.address, "A", "--requests"])
        .arg(requests.to_string())
        .args(["--concurrency", "32", "--json"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run thespian poke");
    assert!(poked.status.success(), "{poked:?}");
}

/// Waits for the line saying the queue is full (`full`), stops the
/// instance, and returns the warning it logs at shutdown (`lost`): the
/// count of what never reached the collector.
async fn loss_report(instance: &mut Instance, full: &str, lost: &str) -> serde_json::Value {
    instance
        .wait_for_line(|line| line.contains(full), Duration::from_secs(20))
        .await;
    instance.terminate();
    let report = instance
        .wait_for_line(|line| line.contains(lost), Duration::from_secs(60))
        .await;
    let report: serde_json::Value = serde_json::from_str(&report).expect("a JSON log line");
    assert_eq!(report["level"], "WARN");
    report
}
