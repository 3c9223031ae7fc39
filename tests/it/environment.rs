//! Configuration by environment: Thespian's own variables, the standard
//! `OTEL_*` ones as fallbacks, and `--help` listing what can be set.

use std::{process::Command, time::Duration};

use clap::CommandFactory as _;
use thespian::cli::Cli;

use crate::support::DEFAULT_WAIT;
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{OtlpReceiver, ReceivedSpan, SpansExt as _};
use crate::support::settings;

/// Makes one call to method A and returns its server span, once `receiver`
/// has any span of the trace.
async fn server_span_of_a(instance: &Instance, receiver: &OtlpReceiver) -> ReceivedSpan {
    let trace_id = trace_id(instance.call_a().await.metadata());
    let spans = receiver
        .wait_for_spans(|s| !s.in_trace(&trace_id).is_empty(), DEFAULT_WAIT)
        .await;
    spans.only_named("thespian.Thespian/A").clone()
}

/// The `service` of the "serving" log line.
fn logged_service(instance: &Instance) -> String {
    instance
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "Thespian is serving")
        .and_then(|l| l["service"].as_str().map(str::to_owned))
        .expect("a serving line with a service")
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_service_name_names_the_instance_when_service_name_is_unset() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("unused")
        .unset("SERVICE_NAME")
        .env("OTEL_SERVICE_NAME", "billing")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let server = server_span_of_a(&instance, &receiver).await;
    assert_eq!(server.service_name.as_deref(), Some("billing"));
    assert_eq!(logged_service(&instance), "billing");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_name_wins_over_otel_service_name() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("payments")
        .env("OTEL_SERVICE_NAME", "billing")
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let server = server_span_of_a(&instance, &receiver).await;
    assert_eq!(server.service_name.as_deref(), Some("payments"));
    assert_eq!(server.resource.str("service.name"), Some("payments"));
    assert_eq!(logged_service(&instance), "payments");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_standard_otlp_endpoint_is_used_when_otel_backend_address_is_unset() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("standard")
        .unset("OTEL_BACKEND_ADDRESS")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .start()
        .await;
    let server = server_span_of_a(&instance, &receiver).await;
    assert_eq!(server.service_name.as_deref(), Some("standard"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_otlp_endpoint_given_as_host_and_port_is_plaintext_http() {
    let receiver = OtlpReceiver::start().await;
    let host_and_port = receiver.endpoint().replace("http://", "");
    let instance = Instance::builder("schemeless")
        .otlp(&host_and_port)
        .start()
        .await;
    let server = server_span_of_a(&instance, &receiver).await;
    assert_eq!(server.service_name.as_deref(), Some("schemeless"));
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_backend_address_wins_over_the_standard_otlp_endpoint() {
    let chosen = OtlpReceiver::start().await;
    let ignored = OtlpReceiver::start().await;
    let instance = Instance::builder("both")
        .otlp(&chosen.endpoint())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &ignored.endpoint())
        .start()
        .await;
    let trace_id = trace_id(instance.call_a().await.metadata());
    chosen
        .wait_for_spans(|s| !s.in_trace(&trace_id).is_empty(), DEFAULT_WAIT)
        .await;
    // The batch delay is 50 ms: anything bound for the other collector
    // would have gone out with the batch that just arrived.
    ignored
        .assert_spans_never(|s| !s.is_empty(), Duration::from_millis(300))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_resource_attributes_appear_on_the_exported_resource() {
    let receiver = OtlpReceiver::start().await;
    let instance = Instance::builder("labelled")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging,team=payments",
        )
        .otlp(&receiver.endpoint())
        .start()
        .await;
    let server = server_span_of_a(&instance, &receiver).await;
    let resource = &server.resource;
    assert_eq!(resource.str("deployment.environment.name"), Some("staging"));
    assert_eq!(resource.str("team"), Some("payments"));
    assert_eq!(resource.str("service.name"), Some("labelled"));
}

#[test]
fn help_lists_the_variables_users_configure_thespian_with() {
    let cli = Cli::command();
    for (flag, short) in [("--help", false), ("-h", true)] {
        let output = Command::new(env!("CARGO_BIN_EXE_thespian"))
            .arg(flag)
            .output()
            .expect("run thespian");
        assert!(output.status.success());
        // Help text wraps to the terminal, so compare with spaces collapsed.
        let help = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // Every variable of an option this help is meant to show.
        let shown: Vec<String> = settings::options(&cli)
            .filter(|(option, _)| {
                let hidden_here = if short {
                    option.is_hide_short_help_set()
                } else {
                    option.is_hide_long_help_set()
                };
                !option.is_hide_set() && !option.is_hide_env_set() && !hidden_here
            })
            .map(|(_, variable)| variable)
            .collect();
        assert!(!shown.is_empty(), "`thespian {flag}` should show settings");
        for variable in shown {
            assert!(
                help.contains(&format!("env: {variable}")),
                "`thespian {flag}` does not list {variable}:\n{help}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_answers_over_ipv6_and_ipv4_alike() {
    let instance = Instance::builder("both").start().await;
    for address in [
        format!("http://127.0.0.1:{}", instance.port),
        format!("http://[::1]:{}", instance.port),
    ] {
        let mut client = thespian::proto::thespian_client::ThespianClient::connect(address.clone())
            .await
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        client
            .a(thespian::proto::Empty {})
            .await
            .unwrap_or_else(|e| panic!("A at {address}: {e}"));
    }
}
