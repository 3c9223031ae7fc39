//! Runs the real `thespian` binary as a child process, configured only by
//! environment variables as users run it, on a port the OS picks.
//!
//! Each instance is its own process, so each has its own `service.name` and
//! its own telemetry pipeline, exactly as in a real ecosystem. The port is
//! read from the instance's "serving" log line.

use std::{
    collections::BTreeMap,
    process::{ExitStatus, Output as ProcessOutput, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use thespian::proto::{Empty, thespian_client::ThespianClient};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::{Notify, watch},
};
use tonic::{Response, metadata::MetadataMap, transport::Channel};

use super::settings;

/// How long an instance may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds an instance's environment.
#[derive(Debug, Clone)]
pub struct InstanceBuilder {
    env: BTreeMap<String, String>,
}

/// A running `thespian` process.
#[derive(Debug)]
pub struct Instance {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The port it serves on.
    pub port: u16,
    /// Its service name.
    pub service_name: String,
    output: Arc<Output>,
}

/// Every line a process wrote, as it arrives.
#[derive(Debug, Default)]
pub struct Output {
    lines: Mutex<Vec<String>>,
    changed: Notify,
    /// While true, nothing more is read, so the process's pipes fill up.
    paused: watch::Sender<bool>,
}

impl Instance {
    /// An instance named `service_name` with no config and no telemetry export.
    pub fn builder(service_name: &str) -> InstanceBuilder {
        let mut env = BTreeMap::new();
        env.insert("SERVICE_NAME".into(), service_name.into());
        env.insert("PORT".into(), "0".into());
        env.insert("OTEL_BACKEND_ADDRESS".into(), String::new());
        env.insert("LOG_FORMAT".into(), "json".into());
        env.insert("RUST_LOG".into(), "info".into());
        env.insert("OTEL_BSP_SCHEDULE_DELAY".into(), "50".into());
        InstanceBuilder { env }
    }

    /// A gRPC client connected to this instance.
    pub async fn client(&self) -> ThespianClient<Channel> {
        ThespianClient::connect(self.address.clone())
            .await
            .expect("connect to the instance")
    }

    /// Calls method A over a new connection; panics unless A answers.
    pub async fn call_a(&self) -> Response<Empty> {
        self.client().await.a(Empty {}).await.expect("A answers")
    }

    /// The process id, to read the instance's CPU time and memory from
    /// `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the instance is still running")
    }

    /// Every stdout and stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lines.lock().unwrap().clone()
    }

    /// stdout lines parsed as JSON (lines that are not JSON are skipped).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until some output line satisfies `predicate`, and returns it.
    pub async fn wait_for_line(
        &self,
        mut predicate: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> String {
        wait_for_line(&self.output, &mut predicate, timeout)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no matching line from {} within {timeout:?}; output:\n{}",
                    self.service_name,
                    self.lines().join("\n")
                )
            })
    }

    /// The first output line that satisfies `predicate` within `timeout`,
    /// if one does.
    pub async fn line_within(
        &self,
        mut predicate: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        wait_for_line(&self.output, &mut predicate, timeout).await
    }

    /// Stops reading the process's output, as a stalled log shipper
    /// would: once the pipe is full, every write to it would block.
    pub fn pause_output(&self) {
        self.output.paused.send_replace(true);
    }

    /// Reads the process's output again.
    pub fn resume_output(&self) {
        self.output.paused.send_replace(false);
    }

    /// Sends SIGTERM, as a container runtime does on stop.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        self.signal("-INT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the instance is still running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Sends SIGTERM and asserts that the instance exits cleanly within
    /// `timeout`.
    pub async fn stop_cleanly(&mut self, timeout: Duration) {
        self.terminate();
        let status = self.wait_for_exit(timeout).await;
        assert!(
            status.success(),
            "{status}; output:\n{}",
            self.lines().join("\n")
        );
    }

    /// Waits for the process to exit.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within {timeout:?}; output:\n{}",
                    self.service_name,
                    self.lines().join("\n")
                )
            })
            .expect("wait for the instance")
    }
}

impl InstanceBuilder {
    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Leaves an environment variable unset, even one the builder sets by
    /// default (`SERVICE_NAME`, `OTEL_BACKEND_ADDRESS`, ...), to test what
    /// Thespian falls back on.
    pub fn unset(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Sets `CONFIG_JSON`.
    pub fn config(self, json: &str) -> Self {
        self.env("CONFIG_JSON", json)
    }

    /// Exports telemetry to `endpoint` (an OTLP/gRPC receiver).
    pub fn otlp(self, endpoint: &str) -> Self {
        self.env("OTEL_BACKEND_ADDRESS", endpoint)
    }

    /// Starts the process and waits until it serves.
    pub async fn start(self) -> Instance {
        let service_name = self
            .env
            .get("SERVICE_NAME")
            .cloned()
            .unwrap_or_else(|| "(SERVICE_NAME unset)".to_owned());
        let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
        settings::clear(&mut command);
        command
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start the thespian binary");
        let output = Arc::new(Output::default());
        collect(child.stdout.take().unwrap(), &output);
        collect(child.stderr.take().unwrap(), &output);

        let serving = wait_for_line(
            &output,
            &mut |line| line.contains("Thespian is serving"),
            START_TIMEOUT,
        )
        .await;
        let Some(serving) = serving else {
            let status = child.try_wait().ok().flatten();
            panic!(
                "{service_name} did not start (exit: {status:?}); output:\n{}",
                output.lines.lock().unwrap().join("\n")
            );
        };
        let line: serde_json::Value =
            serde_json::from_str(&serving).expect("the serving line is JSON");
        let port = line["address"]
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .expect("the serving line has an address with a port");
        Instance {
            child,
            address: format!("http://127.0.0.1:{port}"),
            port,
            service_name,
            output,
        }
    }
}

/// The trace id an instance attached to an answer or an error, from its
/// metadata: `trace_id(response.metadata())` or `trace_id(status.metadata())`.
pub fn trace_id(metadata: &MetadataMap) -> String {
    metadata
        .get("x-trace-id")
        .expect("the instance attached x-trace-id")
        .to_str()
        .expect("x-trace-id is text")
        .to_owned()
}

impl Output {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Reads `stream` line by line into `output`, on a task of its own.
pub fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static, output: &Arc<Output>) {
    let output = Arc::clone(output);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut paused = output.paused.subscribe();
        while paused.wait_for(|paused| !paused).await.is_ok()
            && let Ok(Some(line)) = lines.next_line().await
        {
            output.lines.lock().unwrap().push(line);
            output.changed.notify_waiters();
        }
        // Wake waiters once more so they notice the stream ended.
        output.changed.notify_waiters();
    });
}

/// Waits until some line of `output` satisfies `predicate`, for at most
/// `timeout`, and returns it.
pub async fn wait_for_line(
    output: &Output,
    predicate: &mut dyn FnMut(&str) -> bool,
    timeout: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let changed = output.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(line) = output.lines.lock().unwrap().iter().find(|l| predicate(l)) {
            return Some(line.clone());
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return None;
        }
    }
}

/// Runs `command` (the binary, given something it should refuse) to its
/// exit, waiting at most `timeout`. Input that is wrongly accepted starts
/// serving instead; the bound turns that into a failed test naming `what`
/// rather than a hung one, and the process is killed.
pub async fn run_to_exit(mut command: Command, timeout: Duration, what: &str) -> ProcessOutput {
    let exited = tokio::time::timeout(timeout, command.kill_on_drop(true).output()).await;
    exited
        .unwrap_or_else(|_| panic!("{what} was accepted and kept running"))
        .expect("run the thespian binary")
}
