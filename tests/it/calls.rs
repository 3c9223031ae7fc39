//! How calls behave when the instances they reach are slow or failing, end
//! to end between real instances: a call's own timeout, gRPC's retry
//! policy with its attempt spans and header, and a caller's deadline
//! carried down a chain and cutting it where its time ran out.

use std::time::Duration;

use crate::support::DEFAULT_WAIT;
use crate::support::config::{call, method, sleep, start};
use crate::support::instance::{Instance, trace_id};
use crate::support::otlp::{
    Attributed as _, OtlpReceiver, ReceivedSpan, SpanKind, SpansExt as _, StatusCode,
};
use serde_json::{Value, json};
use thespian::proto::Empty;

/// Each call takes this long to fail, so a test waits for it no longer.
fn policy(max_attempts: u32, codes: Value) -> Value {
    json!({
        "max_attempts": max_attempts, "initial_backoff": "0.05s", "max_backoff": "0.15s",
        "backoff_multiplier": 2, "retryable_status_codes": codes
    })
}

/// The spans called `name` that `service` sent, in the order they started.
fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    let mut found: Vec<_> = spans
        .iter()
        .filter(|s| s.service_name.as_deref() == Some(service) && s.name == name)
        .collect();
    found.sort_by_key(|s| s.start_time_unix_nano);
    found
}

/// The server span of a request to method A.
const SERVED_A: &str = "thespian.Thespian/A";

#[tokio::test(flavor = "multi_thread")]
async fn a_call_gives_up_at_its_own_timeout_in_json_and_in_a_script() {
    let receiver = OtlpReceiver::start().await;
    let slow = start(
        "slow-ledger",
        json!({
            "grpc_method_a": method("ledger", json!([sleep("settle", 5_000)])),
            "grpc_method_b": method("ping", json!([])),
        }),
        &receiver,
    )
    .await;
    let script = format!(
        r#"call("ask ledger", "127.0.0.1:{}", "A", #{{timeout_ms: 200}});"#,
        slow.port
    );
    let caller = start(
        "impatient-shop",
        json!({
            "grpc_method_a": method("pay", json!([call("ask ledger", &slow, "A", json!({"timeout_ms": 200}))])),
            "grpc_method_b": { "tracing_name": "pay", "script_source": script },
            "grpc_method_c": method("ping", json!([call("ping ledger", &slow, "B", json!({}))])),
        }),
        &receiver,
    )
    .await;
    let mut client = caller.client().await;
    // Connected first, so the ledger's clock starts when the caller's does.
    client.c(Empty {}).await.expect("the ledger answers a ping");
    for (front_end, answer) in [
        ("json", client.a(Empty {}).await),
        ("rhai", client.b(Empty {}).await),
    ] {
        let status = answer.expect_err("the call gives up, so the request fails");
        assert_eq!(
            status.code(),
            tonic::Code::Internal,
            "{front_end}: {status:?}"
        );
        assert!(
            status.message().contains("DEADLINE_EXCEEDED"),
            "{front_end}: {status:?}"
        );
        let id = trace_id(status.metadata());
        let spans = receiver
            .wait_for_trace(
                &id,
                |t| {
                    t.iter().any(|s| {
                        s.name == SERVED_A
                            && s.kind == SpanKind::Server
                            && s.service_name.as_deref() == Some("slow-ledger")
                    })
                },
                DEFAULT_WAIT,
            )
            .await;
        // The timeout travelled as the call's grpc-timeout: the ledger knew
        // it had 200 ms, and stopped its five-second work when they ran out.
        let served = find(&spans, "slow-ledger", SERVED_A)[0];
        let budget = served.attr_f64("thespian.deadline.budget_ms").unwrap();
        assert!(budget > 0.0 && budget <= 200.0, "{front_end}: {served}");
        let work = find(&spans, "slow-ledger", "settle")[0];
        assert_eq!(
            work.attr_bool("thespian.deadline.cut"),
            Some(true),
            "{work}"
        );
        assert_eq!(work.status_code, StatusCode::Error, "{work}");
        assert!(work.duration() < Duration::from_secs(2), "{work}");
        // Cut short, the sleep still says how long it was to take.
        assert_eq!(
            work.attr_f64("thespian.duration_ms"),
            Some(5_000.0),
            "{work}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_call_shows_each_attempt_and_says_which_it_is() {
    let receiver = OtlpReceiver::start().await;
    let flaky = json!({ "Action": { "Sleep": {
        "tracing_name": "look up", "duration_ms": 1,
        "failure_chance": 0.5, "failure_code": "UNAVAILABLE"
    } } });
    let broken = json!({ "Action": { "Sleep": {
        "tracing_name": "look up", "duration_ms": 1, "failure_chance": 1.0
    } } });
    let stock = start(
        "flaky-stock",
        json!({
            "grpc_method_a": method("stock", json!([flaky])),
            "grpc_method_b": method("stock", json!([broken])),
        }),
        &receiver,
    )
    .await;
    let retried = |method| {
        call(
            "ask stock",
            &stock,
            method,
            json!({ "retry_policy": policy(5, json!(["UNAVAILABLE"])) }),
        )
    };
    let shop = start(
        "retrying-shop",
        json!({
            "grpc_method_a": method("order", json!([retried("A")])),
            "grpc_method_b": method("order", json!([retried("B")])),
        }),
        &receiver,
    )
    .await;
    let mut client = shop.client().await;

    // Half the stock checks fail, so within a few orders one fails and
    // then succeeds on a retry.
    let mut traces = Vec::new();
    for _ in 0..30 {
        let id = match client.a(Empty {}).await {
            Ok(answer) => trace_id(answer.metadata()),
            Err(status) => trace_id(status.metadata()),
        };
        traces.push(id);
    }
    let all = receiver
        .wait_for_spans(
            |s| {
                traces
                    .iter()
                    .all(|id| s.in_trace(id).iter().any(|s| s.name == "order"))
            },
            DEFAULT_WAIT,
        )
        .await;
    let recovered = traces.iter().find_map(|id| {
        let attempts: Vec<_> = find(&all, "retrying-shop", "ask stock")
            .into_iter()
            .filter(|s| &s.trace_id == id)
            .collect();
        (attempts.len() > 1 && attempts.last().unwrap().status_code != StatusCode::Error)
            .then_some((id, attempts))
    });
    let (id, attempts) = recovered.expect("one of 30 orders retried and recovered");
    let id = id.clone();
    for (i, attempt) in attempts.iter().enumerate() {
        let number = i as i64 + 1;
        assert_eq!(
            attempt.attr_i64("thespian.retry.attempt"),
            Some(number),
            "{attempt}"
        );
        let last = i + 1 == attempts.len();
        let code = if last {
            0
        } else {
            tonic::Code::Unavailable as i64
        };
        assert_eq!(
            attempt.attr_i64("rpc.grpc.status_code"),
            Some(code),
            "{attempt}"
        );
        if i == 0 {
            assert_eq!(attempt.attr("thespian.retry.backoff_ms"), None, "{attempt}");
            continue;
        }
        assert_eq!(
            attempt.attr_i64("thespian.retry.previous_attempts"),
            Some(number - 1)
        );
        // gRPC's backoff: 50 ms, then 100, then the 150 ms cap, ±20%.
        let base = [50.0, 100.0, 150.0, 150.0][i - 1];
        let waited = attempt.attr_f64("thespian.retry.backoff_ms").unwrap();
        assert!((base * 0.8..=base * 1.2).contains(&waited), "{attempt}");
        let gap = attempt.start_time_unix_nano - attempts[i - 1].end_time_unix_nano;
        assert!(
            gap as f64 >= (waited - 1.0) * 1e6,
            "waited {waited} ms: {attempt}"
        );
    }
    // The stock service told each retry apart by its header.
    let tries = attempts.len();
    let trace = receiver
        .wait_for_trace(
            &id,
            |t| {
                t.iter()
                    .filter(|s| s.name == SERVED_A && s.kind == SpanKind::Server)
                    .count()
                    > tries
            },
            DEFAULT_WAIT,
        )
        .await;
    let previous: Vec<_> = find(&trace, "flaky-stock", SERVED_A)
        .iter()
        .map(|s| s.attr_i64("thespian.retry.previous_attempts"))
        .collect();
    let expected: Vec<_> = (0..tries as i64).map(|n| (n > 0).then_some(n)).collect();
    assert_eq!(previous, expected);

    // A code the policy does not name is not retried.
    let status = client
        .b(Empty {})
        .await
        .expect_err("the stock check always fails");
    let spans = receiver
        .wait_for_trace(
            &trace_id(status.metadata()),
            |t| t.iter().any(|s| s.name == "order"),
            DEFAULT_WAIT,
        )
        .await;
    let only = spans.only_named("ask stock");
    assert_eq!(only.attr_i64("thespian.retry.attempt"), Some(1), "{only}");
    assert_eq!(
        only.attr_i64("rpc.grpc.status_code"),
        Some(tonic::Code::Internal as i64)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_travels_down_a_chain_and_cuts_the_step_that_ran_out() {
    let receiver = OtlpReceiver::start().await;
    let database = start(
        "deadline-db",
        json!({
            "grpc_method_a": method("query", json!([sleep("slow query", 5_000)])),
            "grpc_method_b": method("ping", json!([])),
        }),
        &receiver,
    )
    .await;
    let orders = start(
        "deadline-orders",
        json!({
            "grpc_method_a": method("orders", json!([
                sleep("prepare", 20),
                call("ask db", &database, "A", json!({})),
            ])),
            "grpc_method_b": method("ping", json!([call("ping db", &database, "B", json!({}))])),
        }),
        &receiver,
    )
    .await;
    let gateway = start(
        "deadline-gateway",
        json!({
            "grpc_method_a": method("gateway", json!([
                call("ask orders", &orders, "A", json!({ "timeout_ms": 10_000 })),
            ])),
            "grpc_method_b": method("ping", json!([call("ping orders", &orders, "B", json!({}))])),
        }),
        &receiver,
    )
    .await;

    // Connected first, so the budget goes on work rather than handshakes.
    let mut client = gateway.client().await;
    client.b(Empty {}).await.expect("the chain connects");
    // Each hop answers 50 ms before its caller's deadline, which is plenty
    // unless the machine stalls a process for longer; then the chain is cut
    // from above instead, so the whole story is asked of one of three tries.
    let mut stories = Vec::new();
    for trace in 1..=3 {
        match cut_chain(&mut client, &receiver, &format!("5e1ec7ed{trace:024x}")).await {
            Ok(()) => return,
            Err(story) => stories.push(story),
        }
    }
    panic!("no try played out as designed: {stories:#?}");
}

/// Sends the gateway a request with 500 ms to live, in trace `id`, and
/// checks what must hold however busy the machine (the budget shrinking
/// down the chain), then says whether each hop also answered as designed:
/// the deepest ran out first and said so, and each caller heard it.
async fn cut_chain(
    client: &mut thespian::proto::thespian_client::ThespianClient<tonic::transport::Channel>,
    receiver: &OtlpReceiver,
    id: &str,
) -> Result<(), String> {
    let mut request = tonic::Request::new(Empty {});
    request.set_timeout(Duration::from_millis(500));
    // The trace is named here, since the client may give up first.
    let parent = format!("00-{id}-00000000000000aa-01");
    request
        .metadata_mut()
        .insert("traceparent", parent.parse().unwrap());
    let status = client.a(request).await.expect_err("time runs out");
    let spans = receiver
        .wait_for_trace(
            id,
            |t| {
                ["deadline-gateway", "deadline-orders", "deadline-db"]
                    .iter()
                    .all(|service| {
                        t.iter().any(|s| {
                            s.service_name.as_deref() == Some(service) && s.kind == SpanKind::Server
                        })
                    })
                    && t.iter().any(|s| s.name == "slow query")
            },
            DEFAULT_WAIT,
        )
        .await;

    // Each hop had less time than the one before: the calls carried the
    // remaining budget, not their own timeouts.
    let mut budgets = Vec::new();
    for service in ["deadline-gateway", "deadline-orders", "deadline-db"] {
        let served = find(&spans, service, SERVED_A)[0];
        budgets.push(served.attr_f64("thespian.deadline.budget_ms").unwrap());
    }
    assert!(
        budgets[0] <= 500.0 && budgets[1] < budgets[0] && budgets[2] < budgets[1] - 20.0,
        "{budgets:?}"
    );
    for (service, name) in [
        ("deadline-gateway", "ask orders"),
        ("deadline-orders", "ask db"),
    ] {
        let call = find(&spans, service, name)[0];
        let budget = call.attr_f64("thespian.deadline.budget_ms").unwrap();
        assert!(budget < 500.0, "{call}");
    }
    let cut = find(&spans, "deadline-db", "slow query")[0];
    assert!(cut.duration() < Duration::from_millis(500), "{cut}");

    let story = |what: &str, span: &ReceivedSpan| Err(format!("{what}: {span}"));
    if status.code() != tonic::Code::DeadlineExceeded {
        return Err(format!("the client heard {status:?}"));
    }
    // Every hop ran out of time and answered so.
    for service in ["deadline-gateway", "deadline-orders", "deadline-db"] {
        let served = find(&spans, service, SERVED_A)[0];
        if served.attr_i64("rpc.grpc.status_code") != Some(4)
            || served.status_code != StatusCode::Error
        {
            return story("a hop did not answer DEADLINE_EXCEEDED", served);
        }
    }
    // The deepest request ran out first and said so itself; each caller
    // heard DEADLINE_EXCEEDED from below.
    let deepest = find(&spans, "deadline-db", SERVED_A)[0];
    let said = deepest
        .events
        .iter()
        .find(|e| e.attr_str("level") == Some("ERROR"));
    if said.and_then(|e| e.attr_str("failure.cause")) != Some("deadline") {
        return story("the deepest request did not run out first", deepest);
    }
    for (service, name) in [
        ("deadline-gateway", "ask orders"),
        ("deadline-orders", "ask db"),
    ] {
        let call = find(&spans, service, name)[0];
        if call.attr_i64("rpc.grpc.status_code") != Some(4) {
            return story("a caller did not hear DEADLINE_EXCEEDED", call);
        }
    }
    // The time went on the slow query, which was cut where it ran out,
    // and on nothing before it.
    assert_eq!(cut.attr_bool("thespian.deadline.cut"), Some(true), "{cut}");
    assert_eq!(cut.status_code, StatusCode::Error, "{cut}");
    let prepared = find(&spans, "deadline-orders", "prepare")[0];
    assert_eq!(prepared.attr("thespian.deadline.cut"), None, "{prepared}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_retry_rolls_anew_by_its_number_and_replays() {
    // Every try of a call shares its trace, so a seeded downstream would
    // roll each one the same; the attempt header makes each roll anew.
    let flaky = json!({ "Action": { "Sleep": {
        "tracing_name": "look up", "duration_ms": 1,
        "failure_chance": 0.5, "failure_code": "UNAVAILABLE"
    } } });
    let stock = Instance::builder("seeded-stock")
        .config(&json!({ "grpc_method_a": method("stock", json!([flaky])) }).to_string())
        .env("THESPIAN_SEED", "42")
        .start()
        .await;
    let policy = json!({ "retry_policy": policy(5, json!(["UNAVAILABLE"])) });
    let config =
        json!({ "grpc_method_a": method("order", json!([call("ask", &stock, "A", policy)])) });
    let shop = Instance::builder("seeded-shop")
        .config(&config.to_string())
        .start()
        .await;
    let mut client = shop.client().await;
    let mut outcomes = Vec::new();
    for round in 0..2 {
        for trace in 1..=6 {
            let mut request = tonic::Request::new(Empty {});
            let parent = format!("00-{trace:032x}-00000000000000aa-01");
            request
                .metadata_mut()
                .insert("traceparent", parent.parse().unwrap());
            let answered = client.a(request).await.map(|_| ()).map_err(|s| s.code());
            if round == 0 {
                outcomes.push(answered);
            } else {
                assert_eq!(answered, outcomes[trace - 1], "trace {trace} replays");
            }
        }
    }
    // A half chance of failing, rolled anew five times, fails all five
    // only once in 32; rolled once, it would fail half of these.
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
}
