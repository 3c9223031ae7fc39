//! One running instance as `up` sees it: the child process, where its
//! output goes, the last lines it wrote (kept to report a crash with), and
//! a task that waits for it to exit and passes it signals.

use std::{
    collections::VecDeque,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
    task::JoinHandle,
};

use super::{lifeline, plan};

/// How many of an instance's last output lines are kept for a crash report.
const LAST_LINES: usize = 20;

/// The longest output line kept for a crash report; the rest is cut.
const MAX_LINE: usize = 2048;

/// How long after an instance exits its last output may take to be read.
const DRAIN: Duration = Duration::from_secs(1);

/// Where an instance's output goes.
#[derive(Debug, Clone)]
pub enum Sink {
    /// `up`'s stdout, each line after this prefix.
    Prefixed(String),
    /// A file of its own, created afresh.
    File(PathBuf),
}

/// A signal `up` sends an instance.
#[derive(Debug, Clone, Copy)]
enum Signal {
    /// Shut down gracefully.
    Terminate,
    /// Stop at once.
    Kill,
}

/// An instance that has exited.
#[derive(Debug)]
pub struct Exit {
    /// Its place in the plan.
    pub index: usize,
    /// How it ended.
    pub status: std::io::Result<ExitStatus>,
    /// The last lines it wrote, oldest first.
    pub last_lines: Vec<String>,
}

/// A running instance.
#[derive(Debug)]
pub struct Running {
    /// Its process id.
    pub pid: u32,
    /// Signals for the task that owns the child.
    signals: mpsc::UnboundedSender<Signal>,
    /// The instance's stdin, held open while `up` lives; see [`lifeline`].
    _lifeline: Option<ChildStdin>,
}

/// An instance's last lines, shared by its stdout and stderr readers.
type Ring = Arc<Mutex<VecDeque<String>>>;

impl Running {
    /// Starts `instance` as `exe serve`, its output to `sink`; when it
    /// exits, its [`Exit`] goes to `exits` as number `index`.
    pub fn start(
        exe: &Path,
        index: usize,
        instance: &plan::Instance,
        sink: Sink,
        exits: mpsc::UnboundedSender<Exit>,
    ) -> std::io::Result<Running> {
        let mut command = Command::new(exe);
        command.arg("serve");
        for variable in plan::UNSET {
            command.env_remove(variable);
        }
        command
            .envs(&instance.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        lifeline::tie(&mut command);
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or_default();
        let writer = Writer::open(&sink)?;
        let ring = Ring::default();
        let readers = [
            child
                .stdout
                .take()
                .map(|out| read(out, writer.clone(), &ring)),
            child.stderr.take().map(|err| read(err, writer, &ring)),
        ];
        let lifeline = child.stdin.take();
        let (signals, received) = mpsc::unbounded_channel();
        tokio::spawn(supervise(child, received, readers, ring, index, exits));
        Ok(Running {
            pid,
            signals,
            _lifeline: lifeline,
        })
    }

    /// Asks the instance to shut down gracefully (SIGTERM).
    pub fn terminate(&self) {
        let _ = self.signals.send(Signal::Terminate);
    }

    /// Stops the instance at once (SIGKILL).
    pub fn kill(&self) {
        let _ = self.signals.send(Signal::Kill);
    }
}

/// Waits for `child` to exit, passing it the signals that come meanwhile,
/// then for its output to be read, and reports the exit. Only this task
/// reaps the child, so a signal never reaches a process id already reused.
async fn supervise(
    mut child: Child,
    mut signals: mpsc::UnboundedReceiver<Signal>,
    readers: [Option<JoinHandle<()>>; 2],
    ring: Ring,
    index: usize,
    exits: mpsc::UnboundedSender<Exit>,
) {
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(signal) = signals.recv() => send(&mut child, signal),
        }
    };
    for reader in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(DRAIN, reader).await;
    }
    let last_lines = lock(&ring).iter().cloned().collect();
    let _ = exits.send(Exit {
        index,
        status,
        last_lines,
    });
}

/// Sends `signal` to `child`, if it has not been reaped.
fn send(child: &mut Child, signal: Signal) {
    match signal {
        #[cfg(unix)]
        Signal::Terminate => {
            if let Some(pid) = child.id() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        #[cfg(not(unix))]
        Signal::Terminate => {
            let _ = child.start_kill();
        }
        Signal::Kill => {
            let _ = child.start_kill();
        }
    }
}

/// Where the lines of one instance are written.
#[derive(Debug, Clone)]
enum Writer {
    Prefixed(Arc<str>),
    File(Arc<Mutex<File>>),
}

impl Writer {
    fn open(sink: &Sink) -> std::io::Result<Writer> {
        Ok(match sink {
            Sink::Prefixed(prefix) => Writer::Prefixed(prefix.as_str().into()),
            Sink::File(path) => Writer::File(Arc::new(Mutex::new(File::create(path)?))),
        })
    }

    /// Writes one line. A line is written whole, so lines of instances
    /// that share stdout never mix.
    fn write(&self, line: &str) {
        let _ = match self {
            Writer::Prefixed(prefix) => {
                writeln!(std::io::stdout().lock(), "{prefix}{line}")
            }
            Writer::File(file) => writeln!(lock(file), "{line}"),
        };
    }
}

/// Reads `stream` line by line into `writer`, keeping the last lines.
fn read(
    stream: impl AsyncRead + Unpin + Send + 'static,
    writer: Writer,
    ring: &Ring,
) -> JoinHandle<()> {
    let ring = Arc::clone(ring);
    tokio::spawn(async move {
        // Split on bytes, not read as UTF-8 lines: one stray byte must not
        // stop the reading and leave the instance blocked on a full pipe.
        let mut lines = BufReader::new(stream).split(b'\n');
        while let Ok(Some(line)) = lines.next_segment().await {
            let line = String::from_utf8_lossy(&line).into_owned();
            writer.write(&line);
            let mut kept = lock(&ring);
            if kept.len() == LAST_LINES {
                kept.pop_front();
            }
            kept.push_back(cut(line));
        }
    })
}

/// `line` cut to at most [`MAX_LINE`] bytes, at a character boundary.
fn cut(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// The lock's contents, even if a holder panicked: they are lines of text.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
