//! `thespian poke`: calls one method of a Thespian at a steady rate, shows
//! how it is going, and sums up latency and status codes at the end.
//!
//! It is made to run for a long time in front of a pretend ecosystem, so
//! everything it keeps is bounded: counters, one latency histogram and a
//! limit on requests in flight, never a record per request. Each call is a
//! plain gRPC call with no trace context, so each one starts a new trace at
//! the instance it calls.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::{sync::Semaphore, time::MissedTickBehavior};
use tonic::{Code, transport::Channel};

use crate::{
    behaviour::{MethodName, Target},
    client,
    failure::code_name,
    proto::{Empty, thespian_client::ThespianClient},
};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// How many progress samples the current rate is averaged over: one second.
const RATE_WINDOW: usize = 5;

/// The longest latency the histogram tells apart, in microseconds (one hour);
/// anything slower is recorded as this.
const LATENCY_CEILING_US: u64 = 3_600_000_000;

/// The highest `--rate` accepted: beyond it the schedule is finer than the
/// timer and the limit would only mislead.
const MAX_RATE: f64 = 1_000_000.0;

/// Calls a Thespian's method at a steady rate and reports latency and
/// status codes.
///
/// Runs for 10 s unless `--duration` or `--requests` says otherwise; Ctrl-C
/// (or SIGTERM) ends it early and still prints the summary. Exits 0 whatever
/// the calls answered, and 1 only when it could not run at all, such as a
/// malformed address or nothing listening there.
#[derive(Debug, Clone, Args)]
pub struct PokeArgs {
    /// The Thespian to call, such as `http://localhost:6379` or `frontend:6379`.
    pub address: String,

    /// The method to call: A, B or C.
    #[arg(value_parser = parse_method)]
    pub method: MethodName,

    /// Requests started per second, on a fixed schedule whatever the answers
    /// (open loop). Without it, requests go as fast as --concurrency allows.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// The most requests in flight at once. When a slow target uses them
    /// all, the schedule waits rather than piling requests up.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,

    /// How long to keep poking, such as `30s`, `15m` or `24h` [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Stop after this many requests instead of after a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// How long one request may take before it counts as DEADLINE_EXCEEDED.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,

    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl PokeArgs {
    /// When poking stops, as the options say.
    fn limit(&self) -> Limit {
        match (self.requests, self.duration) {
            (Some(requests), _) => Limit::Requests(requests),
            (None, Some(duration)) => Limit::Duration(duration),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        }
    }
}

/// When poking stops.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// After this many requests have been started.
    Requests(u64),
    /// After this long.
    Duration(Duration),
}

/// Pokes `args.address` until the limit is reached or `interrupt` completes,
/// then prints the summary on stdout. Fails only when poking cannot start.
pub async fn run(args: PokeArgs, interrupt: impl Future<Output = ()>) -> Result<(), crate::Error> {
    let target = Target::parse(&args.address)?;
    let channel = connect(&target).await?;
    let summary = poke(channel, &target, &args, interrupt).await;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

/// Opens the one HTTP/2 connection every request is multiplexed over.
async fn connect(target: &Target) -> Result<Channel, crate::Error> {
    client::endpoint(target)?
        .connect()
        .await
        .map_err(|e| format!("cannot reach {target}: {}", crate::explain(&e)).into())
}

/// Runs the load and returns what happened.
async fn poke(
    channel: Channel,
    target: &Target,
    args: &PokeArgs,
    interrupt: impl Future<Output = ()>,
) -> Summary {
    let tally = Arc::new(Tally::new());
    let slots = Arc::new(Semaphore::new(args.concurrency as usize));
    let progress = Progress::start(Arc::clone(&tally));
    let started = Instant::now();
    let limit = args.limit();
    let deadline = match limit {
        Limit::Duration(duration) => tokio::time::Instant::now().checked_add(duration),
        Limit::Requests(_) => None,
    };
    let until_deadline = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let client = ThespianClient::new(channel);
    let load = send(client, args, limit, &tally, &slots);

    tokio::pin!(interrupt);
    let mut interrupted = tokio::select! {
        () = load => false,
        () = until_deadline => false,
        () = &mut interrupt => true,
    };
    if !interrupted {
        // Every slot free again means every request has answered; each one
        // is bounded by --timeout, so this ends.
        let drained = slots.acquire_many(args.concurrency);
        interrupted = tokio::select! {
            _ = drained => false,
            () = &mut interrupt => true,
        };
    }
    progress.finish();
    tally.summarise(target, args.method, started.elapsed(), interrupted)
}

/// Starts requests on schedule until `limit` says stop, each in its own
/// task holding one of the `slots`.
async fn send(
    client: ThespianClient<Channel>,
    args: &PokeArgs,
    limit: Limit,
    tally: &Arc<Tally>,
    slots: &Arc<Semaphore>,
) {
    let mut schedule = args.rate.map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        // A request that could not start on time (every slot busy) is not
        // made up for later with a burst.
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        interval
    });
    let mut sent = 0u64;
    loop {
        if let Limit::Requests(requests) = limit
            && sent >= requests
        {
            return;
        }
        if let Some(schedule) = schedule.as_mut() {
            schedule.tick().await;
        }
        let Ok(slot) = Arc::clone(slots).acquire_owned().await else {
            return;
        };
        sent += 1;
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let (mut client, tally, method, timeout) =
            (client.clone(), Arc::clone(tally), args.method, args.timeout);
        tokio::spawn(async move {
            let started = Instant::now();
            let code = match tokio::time::timeout(timeout, call(&mut client, method)).await {
                Ok(Ok(())) => Code::Ok,
                Ok(Err(status)) => status.code(),
                Err(_) => Code::DeadlineExceeded,
            };
            tally.record(code, started.elapsed());
            drop(slot);
        });
    }
}

/// One call, answered or not.
async fn call(
    client: &mut ThespianClient<Channel>,
    method: MethodName,
) -> Result<(), tonic::Status> {
    match method {
        MethodName::A => client.a(Empty {}).await?,
        MethodName::B => client.b(Empty {}).await?,
        MethodName::C => client.c(Empty {}).await?,
    };
    Ok(())
}

/// Everything counted so far, shared by the request tasks and the progress
/// line. Its size never depends on how many requests were made.
#[derive(Debug)]
struct Tally {
    /// Requests started.
    sent: AtomicU64,
    /// Requests answered, by gRPC status code (the index is the code).
    codes: [AtomicU64; 17],
    /// Latency of every answered request, in microseconds.
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sent: AtomicU64::new(0),
            codes: Default::default(),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, LATENCY_CEILING_US, 3)
                    .expect("the latency bounds are valid"),
            ),
        }
    }

    fn record(&self, code: Code, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency().saturating_record(micros.max(1));
        // The counter is bumped after the histogram, so a progress line never
        // counts an answer whose latency it cannot see yet.
        if let Some(count) = self.codes.get(code as usize) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn answered(&self) -> u64 {
        self.codes.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn ok(&self) -> u64 {
        self.codes[Code::Ok as usize].load(Ordering::Relaxed)
    }

    fn latency(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A poisoned lock means a request task panicked mid-record; the
        // histogram is still usable.
        self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn summarise(
        &self,
        target: &Target,
        method: MethodName,
        elapsed: Duration,
        interrupted: bool,
    ) -> Summary {
        let answered = self.answered();
        let seconds = elapsed.as_secs_f64();
        let latency = self.latency();
        let millis = |micros: u64| micros as f64 / 1000.0;
        Summary {
            target: target.to_string(),
            method: method.as_str(),
            requests: answered,
            unanswered: self.sent.load(Ordering::Relaxed).saturating_sub(answered),
            errors: answered - self.ok(),
            elapsed_seconds: seconds,
            requests_per_second: if seconds > 0.0 {
                answered as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Percentiles {
                p50: millis(latency.value_at_quantile(0.50)),
                p90: millis(latency.value_at_quantile(0.90)),
                p99: millis(latency.value_at_quantile(0.99)),
                max: millis(latency.max()),
            },
            status_codes: (0..self.codes.len())
                .filter_map(|i| {
                    let count = self.codes[i].load(Ordering::Relaxed);
                    (count > 0).then(|| (code_name(Code::from(i as i32)).to_owned(), count.into()))
                })
                .collect(),
            interrupted,
        }
    }
}

/// What a poke run did: printed as text, or with `--json` as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Who was poked, as `http://host:port`.
    pub target: String,
    /// Which method.
    pub method: &'static str,
    /// Requests that got an answer, any answer (the sum of `status_codes`).
    pub requests: u64,
    /// Requests still in flight when Ctrl-C ended the run, whose answers
    /// were not waited for.
    pub unanswered: u64,
    /// Answers other than OK.
    pub errors: u64,
    /// From the first request to the last answer.
    pub elapsed_seconds: f64,
    /// Answers per second over the whole run.
    pub requests_per_second: f64,
    /// Latency percentiles, in milliseconds.
    pub latency_ms: Percentiles,
    /// Answers per gRPC status code, by the code's canonical name (`OK`,
    /// `INTERNAL`, ...), in code order.
    pub status_codes: serde_json::Map<String, serde_json::Value>,
    /// Whether Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
}

/// Latency percentiles in milliseconds, accurate to three significant digits.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest answer.
    pub max: f64,
}

impl Summary {
    /// The summary as a few lines for a person.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{} {}: {} requests in {:.2} s, {:.1} requests/s{}",
            self.target,
            self.method,
            self.requests,
            self.elapsed_seconds,
            self.requests_per_second,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            text,
            "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50, l.p90, l.p99, l.max
        );
        let codes: Vec<String> = self
            .status_codes
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        let codes = if codes.is_empty() {
            "none".to_owned()
        } else {
            codes.join(", ")
        };
        let _ = writeln!(text, "status: {codes}");
        if self.unanswered > 0 {
            let _ = writeln!(
                text,
                "{} requests still in flight were not waited for",
                self.unanswered
            );
        }
        text
    }
}

/// The live progress line on stderr; hidden when stderr is not a terminal.
struct Progress {
    /// The line itself.
    bar: ProgressBar,
    /// Redraws it until the run ends.
    updater: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(tally: Arc<Tally>) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {msg}")
                .expect("the progress template is valid"),
        );
        let updater = if bar.is_hidden() {
            tokio::spawn(async {})
        } else {
            tokio::spawn(update(bar.clone(), tally))
        };
        Progress { bar, updater }
    }

    fn finish(self) {
        self.updater.abort();
        self.bar.finish_and_clear();
    }
}

/// Redraws the progress line: sent, answered OK, errors, the answer rate
/// over the last second and the p99 latency so far.
async fn update(bar: ProgressBar, tally: Arc<Tally>) {
    let mut window = VecDeque::with_capacity(RATE_WINDOW + 1);
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    loop {
        ticks.tick().await;
        let answered = tally.answered();
        window.push_back((Instant::now(), answered));
        if window.len() > RATE_WINDOW + 1 {
            window.pop_front();
        }
        let rate = match (window.front(), window.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let p99 = tally.latency().value_at_quantile(0.99) as f64 / 1000.0;
        let ok = tally.ok();
        bar.set_message(format!(
            "sent {}  ok {}  errors {}  {:.0} req/s  p99 {:.2} ms",
            tally.sent.load(Ordering::Relaxed),
            ok,
            answered - ok,
            rate,
            p99,
        ));
    }
}

/// Reads a method name as users type it: `A`, or `a`.
fn parse_method(text: &str) -> Result<MethodName, String> {
    text.to_ascii_uppercase().parse()
}

/// Reads `--rate`: a positive number of requests per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "the rate must be above 0 and at most {MAX_RATE} requests per second"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_be_positive_and_finite() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn methods_are_read_whatever_their_case() {
        assert_eq!(parse_method("b"), Ok(MethodName::B));
        assert!(parse_method("D").is_err());
    }

    #[test]
    fn a_tally_counts_answers_by_code_and_keeps_their_latency() {
        let tally = Tally::new();
        tally.sent.store(3, Ordering::Relaxed);
        tally.record(Code::Ok, Duration::from_millis(2));
        tally.record(Code::Internal, Duration::from_millis(4));
        let target = Target::parse("localhost:1").unwrap();
        let summary = tally.summarise(&target, MethodName::A, Duration::from_secs(1), true);
        assert_eq!(summary.requests, 2);
        assert_eq!(summary.unanswered, 1);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.status_codes["OK"], 1);
        assert_eq!(summary.status_codes["INTERNAL"], 1);
        assert!((summary.latency_ms.max - 4.0).abs() < 0.01);
    }
}
