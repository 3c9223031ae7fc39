//! Log lines on their way to stdout, written by a thread of their own.
//!
//! A pipe that is read slowly (a stalled log shipper, a paused terminal)
//! must not block the threads that serve requests, so each line is handed
//! to a writer thread and the request goes on. What may wait is bounded in
//! bytes, not in lines: a line past the bound is dropped and counted, so a
//! stalled stdout costs at most [`BACKLOG_BYTES`] however long the lines
//! are. Nothing is set aside in advance: an idle instance holds no buffer,
//! where a channel of a fixed number of lines claims all of them at start.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
};

use tracing_subscriber::fmt::MakeWriter;

/// The most bytes of log lines that may wait for stdout before new lines
/// are dropped (and counted).
pub const BACKLOG_BYTES: usize = 4 << 20;

/// How long the writer thread lets lines gather after writing, before it
/// waits for the next. A line sent while it waits wakes it, a system call and
/// a thread switched in; one sent while it lingers does not. Woken for every
/// line, the thread cost 20,000 one-second sleepers (10,000 at once) about
/// 16 µs of CPU per request and 0.2 s of p99 (`scripts/bench.sh`). Lines are
/// at most this much later for it.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Hands log lines to the writer thread: the JSON layer sends each line it
/// writes, and the human-readable layer writes through it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lines {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Vec<u8>>,
}

#[derive(Debug)]
struct Shared {
    /// Room held by the lines handed to the thread and not yet written.
    waiting: AtomicUsize,
    /// The most bytes that may wait.
    limit: usize,
    /// Lines dropped, because too much waited, stdout refused them or a
    /// field could not be written.
    dropped: AtomicU64,
}

/// The writer thread, kept by whoever owns the pipeline: dropping it tells
/// the thread to stop and waits for it to write what is still queued.
#[derive(Debug)]
pub struct Writer {
    queue: mpsc::Sender<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The count of lines stdout did not take, readable while the lines flow.
#[derive(Debug, Clone)]
pub struct Dropped(Arc<Shared>);

impl Dropped {
    /// Lines dropped so far.
    pub fn dropped_lines(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// Starts the thread that writes log lines to `out`, with at most `limit`
/// bytes waiting; returns where lines go, the thread, and the count of
/// lines dropped.
pub fn start<W>(out: W, limit: usize) -> io::Result<(Lines, Writer, Dropped)>
where
    W: Write + Send + 'static,
{
    let shared = Arc::new(Shared {
        waiting: AtomicUsize::new(0),
        limit,
        dropped: AtomicU64::new(0),
    });
    let (queue, lines) = mpsc::channel::<Vec<u8>>();
    let thread = std::thread::Builder::new()
        .name("thespian-stdout".to_owned())
        .spawn({
            let shared = Arc::clone(&shared);
            move || write_all(lines, io::BufWriter::new(out), &shared)
        })?;
    let lines = Lines {
        shared: Arc::clone(&shared),
        queue,
    };
    let writer = Writer {
        queue: lines.queue.clone(),
        thread: Some(thread),
    };
    Ok((lines, writer, Dropped(shared)))
}

/// Writes the lines waiting, flushes once none is left, then lingers for
/// [`LINGER`] before it waits for more: a quiet instance's last line is out
/// at once, and a busy one's go out in large writes with one wake-up for
/// each. An empty line, which no layer writes, is [`Writer`]'s word to stop
/// once everything before it is written.
fn write_all(lines: mpsc::Receiver<Vec<u8>>, mut out: impl Write, shared: &Shared) {
    while let Ok(line) = lines.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if line.is_empty() {
                let _ = out.flush();
                return;
            }
            if out.write_all(&line).is_err() {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            shared.waiting.fetch_sub(line.capacity(), Ordering::Relaxed);
            next = lines.try_recv().ok();
        }
        let _ = out.flush();
        std::thread::sleep(LINGER);
    }
}

impl Lines {
    /// Queues `line`, or drops and counts it when it would take the bytes
    /// waiting past the limit, or once the thread has stopped. A line
    /// counts the room its buffer holds, which may be more than its text,
    /// so the limit bounds the memory that waits.
    pub fn send(&self, line: Vec<u8>) {
        if line.is_empty() {
            return;
        }
        let len = line.capacity();
        let admitted = self
            .shared
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |waiting| {
                (waiting + len <= self.shared.limit).then_some(waiting + len)
            })
            .is_ok();
        if !admitted || self.queue.send(line).is_err() {
            if admitted {
                self.shared.waiting.fetch_sub(len, Ordering::Relaxed);
            }
            self.count_dropped();
        }
    }

    /// Counts a line that never reached the queue.
    pub fn count_dropped(&self) {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Write for Lines {
    /// The human-readable layer writes each formatted line in one call.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Lines sent after this one are counted as dropped: the subscriber
        // that sends them outlives the thread.
        let _ = self.queue.send(Vec::new());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Condvar, Mutex},
        time::Duration,
    };

    use super::*;

    /// How long the output stays shut at most, should a test forget it.
    const WAIT: Duration = Duration::from_secs(10);

    /// An output the test can hold shut, and read.
    #[derive(Clone, Default)]
    struct Gate {
        written: Arc<Mutex<Vec<u8>>>,
        open: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Gate {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, opened) = &*self.open;
            let guard = opened
                .wait_timeout_while(open.lock().unwrap(), WAIT, |open| !*open)
                .unwrap();
            drop(guard);
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_all_of_them_by_shutdown() {
        let gate = Gate::default();
        gate.open();
        let (lines, writer, dropped) = start(gate.clone(), 1 << 20).unwrap();
        for n in 0..100 {
            lines
                .make_writer()
                .write_all(format!("line {n}\n").as_bytes())
                .unwrap();
        }
        drop(writer);
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        assert_eq!(gate.text(), expected);
        assert_eq!(dropped.dropped_lines(), 0);
        // The subscriber outlives the thread: what it writes then is counted.
        lines.make_writer().write_all(b"late\n").unwrap();
        assert_eq!(dropped.dropped_lines(), 1);
    }

    #[test]
    fn a_stalled_stdout_holds_at_most_the_limit_and_counts_the_rest() {
        let gate = Gate::default();
        // Ten-byte lines, forty bytes allowed to wait.
        let (lines, writer, dropped) = start(gate.clone(), 40).unwrap();
        let mut writer_of = lines.make_writer();
        // The line the thread is writing still counts as waiting.
        for n in 0..10 {
            writer_of
                .write_all(format!("line {n:04}\n").as_bytes())
                .unwrap();
        }
        let waiting = lines.shared.waiting.load(Ordering::Relaxed);
        assert!(waiting <= 40, "{waiting} bytes wait");
        let kept = 10 - dropped.dropped_lines();
        assert_eq!(kept, 4, "four ten-byte lines fit in forty bytes");
        gate.open();
        drop(writer);
        assert_eq!(gate.text().lines().count() as u64, kept);
        assert_eq!(gate.text().lines().next(), Some("line 0000"));
    }

    #[test]
    fn a_line_counts_the_room_its_buffer_holds() {
        let gate = Gate::default();
        let (lines, writer, dropped) = start(gate.clone(), 40).unwrap();
        for n in 0..3 {
            let mut line = Vec::with_capacity(20);
            line.extend_from_slice(format!("line {n:04}\n").as_bytes());
            lines.send(line);
        }
        // Ten bytes of text each, twenty of room: two fit in forty.
        assert_eq!(dropped.dropped_lines(), 1);
        gate.open();
        drop(writer);
        assert_eq!(gate.text(), "line 0000\nline 0001\n");
    }
}
