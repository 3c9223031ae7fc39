//! `thespian up`: a whole ecosystem file run as real local processes. Its
//! instances serve and call one another, stop gracefully with their spans
//! flushed, die with `up` even when `up` is killed outright, and a death or
//! a bad file is reported plainly.

use std::{
    net::{Ipv4Addr, TcpListener},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use thespian::proto::{Empty, thespian_client::ThespianClient};
use tokio::process::{Child, Command};

use crate::support::{
    DEFAULT_WAIT,
    instance::{self, Instance, Output},
    otlp::OtlpReceiver,
    settings,
};

/// `front` calls `back`, which has two replicas.
const FRONT_AND_BACK: &str = "
services:
  - name: front
    grpc_method_a:
      tracing_name: take order
      operations:
        - Action: { CallService: { tracing_name: ask back, service: back, grpc_method: A } }
    grpc_method_b:
      tracing_name: answer alone
      operations:
        - Action: { Sleep: { tracing_name: think, duration_ms: 1 } }
  - name: back
    replicas: 2
    grpc_method_a:
      tracing_name: store order
      operations:
        - Action: { Sleep: { tracing_name: write, duration_ms: 1 } }
";

/// One row of `up`'s table.
#[derive(Debug)]
struct Row {
    service: String,
    replica: u16,
    address: String,
    pid: u32,
}

/// A running `thespian up`, its ecosystem file in a folder of its own.
struct Up {
    child: Child,
    output: Arc<Output>,
    folder: tempfile::TempDir,
}

impl Up {
    /// Runs `up` on `ecosystem`, with `env` on top of a cleared environment
    /// that exports nothing.
    fn spawn(ecosystem: &str, env: &[(&str, &str)]) -> Up {
        Up::spawn_with(ecosystem, env, &[])
    }

    /// Runs `up` on `ecosystem` with `args` after the file.
    fn spawn_with(ecosystem: &str, env: &[(&str, &str)], args: &[&str]) -> Up {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("eco.yaml");
        std::fs::write(&file, ecosystem).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
        settings::clear(&mut command);
        command
            .arg("up")
            .arg(&file)
            .args(args)
            .current_dir(folder.path())
            .env("OTEL_BACKEND_ADDRESS", "")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start thespian up");
        let output = Arc::new(Output::default());
        instance::collect(child.stdout.take().unwrap(), &output);
        instance::collect(child.stderr.take().unwrap(), &output);
        Up {
            child,
            output,
            folder,
        }
    }

    /// Runs `up` on `ecosystem` and waits until it says every instance is
    /// ready.
    async fn start(ecosystem: &str, env: &[(&str, &str)]) -> Up {
        let up = Up::spawn(ecosystem, env);
        up.wait_for_line(|line| line.starts_with("ready: ")).await;
        up
    }

    /// Waits for a line of `up`'s output that satisfies `predicate`.
    async fn wait_for_line(&self, mut predicate: impl FnMut(&str) -> bool) -> String {
        instance::wait_for_line(&self.output, &mut predicate, DEFAULT_WAIT)
            .await
            .unwrap_or_else(|| panic!("no such line; output:\n{}", self.text()))
    }

    /// Everything `up` and its instances wrote so far.
    fn text(&self) -> String {
        self.output.lines().join("\n")
    }

    /// The rows of the table of instances.
    fn table(&self) -> Vec<Row> {
        self.output
            .lines()
            .iter()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                match cells[..] {
                    [service, replica, address, pid, ..] if address.starts_with("http://") => {
                        Some(Row {
                            service: service.to_owned(),
                            replica: replica.parse().ok()?,
                            address: address.to_owned(),
                            pid: pid.parse().ok()?,
                        })
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The address of `service`'s first replica.
    fn address(&self, service: &str) -> String {
        self.table()
            .into_iter()
            .find(|row| row.service == service && row.replica == 1)
            .unwrap_or_else(|| panic!("no {service} in the table:\n{}", self.text()))
            .address
    }

    /// Sends `signal` to `up`.
    fn signal(&self, signal: &str) {
        signal_process(self.child.id().expect("up is running"), signal);
    }

    /// Waits for `up` to exit.
    async fn wait_for_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(DEFAULT_WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("up did not exit; output:\n{}", self.text()))
            .unwrap()
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to process `pid`.
fn signal_process(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// Whether process `pid` is gone: no such process, or a zombie that
/// nothing has reaped yet.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits until every process of `pids` is gone.
async fn wait_until_gone(pids: &[u32]) {
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    while !pids.iter().all(|pid| gone(*pid)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances still running: {:?}",
            pids.iter().filter(|pid| !gone(**pid)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_reach_every_service_and_a_stop_flushes_their_spans() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let mut up = Up::start(
        FRONT_AND_BACK,
        &[
            ("OTEL_BACKEND_ADDRESS", &endpoint),
            // Only the flush at shutdown can deliver the spans.
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    )
    .await;
    let table = up.table();
    assert_eq!(table.len(), 3, "{table:?}");
    let mut front = ThespianClient::connect(up.address("front")).await.unwrap();
    front.a(Empty {}).await.expect("front answers A");

    up.signal("-TERM");
    let status = up.wait_for_exit().await;
    assert!(status.success(), "{status}; output:\n{}", up.text());
    wait_until_gone(&table.iter().map(|row| row.pid).collect::<Vec<_>>()).await;
    let spans = receiver
        .wait_for_spans(
            |spans| {
                spans.iter().any(|s| s.name == "take order")
                    && spans.iter().any(|s| s.name == "store order")
            },
            DEFAULT_WAIT,
        )
        .await;
    let instance_of = |name: &str| {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        (
            span.service_name.clone().unwrap(),
            span.resource.str("service.instance.id").unwrap().to_owned(),
        )
    };
    assert_eq!(
        instance_of("take order"),
        ("front".to_owned(), "front-1".to_owned())
    );
    assert_eq!(
        instance_of("store order"),
        ("back".to_owned(), "back-1".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_can_go_to_a_file_per_instance() {
    let mut up = Up::spawn_with(FRONT_AND_BACK, &[], &["--logs", "files"]);
    up.wait_for_line(|line| line.starts_with("ready: ")).await;
    let folder = up.folder.path().join("logs");
    for label in ["front-1", "back-1", "back-2"] {
        let log = std::fs::read_to_string(folder.join(format!("{label}.log"))).unwrap();
        assert!(log.contains("Thespian is serving"), "{label}: {log}");
    }
    assert!(
        !up.text().contains("Thespian is serving"),
        "nothing on up's own output:\n{}",
        up.text()
    );
    up.signal("-TERM");
    assert!(up.wait_for_exit().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_up_outright_leaves_no_instance_behind() {
    let mut up = Up::start(FRONT_AND_BACK, &[]).await;
    let pids: Vec<u32> = up.table().iter().map(|row| row.pid).collect();
    assert_eq!(pids.len(), 3);
    up.signal("-KILL");
    up.wait_for_exit().await;
    wait_until_gone(&pids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_told_to_stop_on_stdin_eof_shuts_down_gracefully_when_it_closes() {
    // The portable half of what ties an instance to `up`: the test's
    // instances have no stdin at all, so it closes at once.
    let mut instance = Instance::builder("tied")
        .env("STOP_ON_STDIN_EOF", "true")
        .start()
        .await;
    let status = instance.wait_for_exit(DEFAULT_WAIT).await;
    assert!(status.success(), "{status}");
    instance
        .wait_for_line(|line| line.contains("shutting down"), DEFAULT_WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_dies_is_reported_with_its_last_lines_and_the_rest_run_on() {
    let mut up = Up::start(FRONT_AND_BACK, &[]).await;
    let back = up
        .table()
        .into_iter()
        .find(|row| row.service == "back" && row.replica == 2)
        .unwrap();
    signal_process(back.pid, "-KILL");
    up.wait_for_line(|line| line.starts_with(&format!("back-2 (pid {}) exited", back.pid)))
        .await;
    up.wait_for_line(|line| line.starts_with("  ") && line.contains("Thespian is serving"))
        .await;
    let mut front = ThespianClient::connect(up.address("front")).await.unwrap();
    front.b(Empty {}).await.expect("front still answers");

    up.signal("-TERM");
    let status = up.wait_for_exit().await;
    assert!(
        !status.success(),
        "a death is a failure; output:\n{}",
        up.text()
    );
    up.wait_for_line(|line| line.contains("instances that exited while the ecosystem ran: 1"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_cannot_start_stops_up_with_its_last_lines() {
    let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let ecosystem = FRONT_AND_BACK.replace("replicas: 2", &format!("port: {port}"));
    let mut up = Up::spawn(&ecosystem, &[]);
    let status = up.wait_for_exit().await;
    assert!(!status.success(), "{}", up.text());
    up.wait_for_line(|line| line.contains("back-1 exited before the ecosystem was ready"))
        .await;
    up.wait_for_line(|line| line.starts_with("  ") && line.contains(&format!("port {port}")))
        .await;
    let pids: Vec<u32> = up.table().iter().map(|row| row.pid).collect();
    wait_until_gone(&pids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_ecosystem_file_is_refused_naming_the_file_and_the_path() {
    let ecosystem = FRONT_AND_BACK.replace("service: back", "service: nowhere");
    let mut up = Up::spawn(&ecosystem, &[]);
    let status = up.wait_for_exit().await;
    assert!(!status.success());
    let error = up.wait_for_line(|line| line.starts_with("error:")).await;
    assert!(error.contains("eco.yaml"), "{error}");
    assert!(
        error.contains("services[0].grpc_method_a.operations[0].Action.CallService.service"),
        "{error}"
    );
    assert!(error.contains("no service named `nowhere`"), "{error}");
    assert!(up.table().is_empty(), "nothing started:\n{}", up.text());
}
