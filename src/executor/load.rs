//! The steps that cost something real: CPU time burnt on a bounded pool of
//! threads, never on the async workers, and memory held under a cap
//! counted across every request in flight.
//!
//! A burn measures the CPU time of the thread it runs on, not the time on
//! the clock, so a container throttled by its CPU limit burns all it was
//! told, only more slowly. A saturated pool makes burns wait for a thread,
//! as real CPU contention does, and the burn's span says how long.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry::{Context, KeyValue, trace::TraceContextExt};
use tokio::sync::Semaphore;

use super::{
    dice::{Dice, Roll},
    leaf::originate,
};
use crate::{
    behaviour::{Burn, Bytes, HoldMemory},
    failure::Failure,
};

/// The target of the executor's own events, as in `leaf`.
const TARGET: &str = "thespian::executor";

/// `MAX_HELD_BYTES` when it is not set: enough for a convincing memory
/// demo, little enough that a config cannot take a small container down
/// by accident.
pub const DEFAULT_MAX_HELD_BYTES: Bytes = Bytes(256 << 20);

/// How much real load an instance lets its requests make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// `MAX_BURN_THREADS`: how many burns run at once; more wait.
    pub burn_threads: usize,
    /// `MAX_HELD_BYTES`: how much memory all requests in flight may hold
    /// together; a hold beyond it fails with `RESOURCE_EXHAUSTED`.
    pub max_held_bytes: Bytes,
}

impl Default for LoadLimits {
    /// One burn thread per core, and [`DEFAULT_MAX_HELD_BYTES`].
    fn default() -> Self {
        LoadLimits {
            burn_threads: std::thread::available_parallelism().map_or(1, usize::from),
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }
}

/// The instance's shared account of its real load: the burn threads free,
/// and the memory held. Clones share it.
#[derive(Debug, Clone)]
pub(super) struct Load {
    /// One permit per burn thread.
    threads: Arc<Semaphore>,
    /// Bytes held by every request in flight, together.
    held: Arc<AtomicU64>,
    /// The most they may hold.
    cap: Bytes,
}

impl Load {
    /// The account of an instance with these limits.
    pub(super) fn new(limits: LoadLimits) -> Load {
        Load {
            threads: Arc::new(Semaphore::new(limits.burn_threads.max(1))),
            held: Arc::new(AtomicU64::new(0)),
            cap: limits.max_held_bytes,
        }
    }

    /// Claims `bytes` against the cap, or says how much is held already.
    fn claim(&self, bytes: u64) -> Result<Claim, u64> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.cap.0)
            })
            .map(|_| Claim {
                held: Arc::clone(&self.held),
                bytes,
            })
    }
}

impl Default for Load {
    fn default() -> Self {
        Load::new(LoadLimits::default())
    }
}

/// Bytes counted against the cap until dropped.
#[derive(Debug)]
struct Claim {
    held: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Raised when a burn ends, finished or dropped with its request, so its
/// thread stops soon after the caller has gone.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits for a burn thread, then keeps it busy for the CPU time the step
/// draws. The span records the CPU time asked for, the wait for a thread
/// and the CPU time the thread really used.
pub(super) async fn burn(load: &Load, burn: &Burn, dice: Dice) -> Result<(), Failure> {
    let cpu = burn.cpu.sample(&mut dice.rng(Roll::Latency));
    record(KeyValue::new("thespian.burn.cpu_ms", milliseconds(cpu)));
    let queued = Instant::now();
    let Ok(thread) = Arc::clone(&load.threads).acquire_owned().await else {
        unreachable!("the burn threads' semaphore is never closed");
    };
    let waited = queued.elapsed();
    record(KeyValue::new("thespian.burn.wait_ms", milliseconds(waited)));
    tracing::info!(
        target: TARGET,
        "burning {} ms of CPU for `{}` after waiting {} ms for a thread",
        cpu.as_millis(),
        burn.name,
        waited.as_millis()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let used = tokio::task::spawn_blocking(move || {
        let _thread = thread;
        spin(cpu, &stop)
    })
    .await
    .unwrap_or_default();
    record(KeyValue::new(
        "thespian.burn.cpu_used_ms",
        milliseconds(used),
    ));
    tracing::info!(target: TARGET, "`{}` finished", burn.name);
    Ok(())
}

/// Allocates and touches the step's bytes, holds them for the duration it
/// draws, then frees them. Past the cap, or when the allocator refuses, it
/// fails with `RESOURCE_EXHAUSTED` and holds nothing.
pub(super) async fn hold(load: &Load, hold: &HoldMemory, dice: Dice) -> Result<(), Failure> {
    let duration = hold.duration.sample(&mut dice.rng(Roll::Latency));
    let bytes = hold.bytes;
    let refuse = |message: String| {
        originate(Failure::HeldMemory {
            action: hold.name.clone(),
            message,
        })
    };
    let claim = load.claim(bytes.0).map_err(|held| {
        refuse(format!(
            "holding {bytes} more would pass MAX_HELD_BYTES ({}): {} is held already",
            load.cap,
            Bytes(held)
        ))
    })?;
    let held_now = load.held.load(Ordering::Acquire);
    // Touching every page takes a while for a large block: not on an
    // async worker. The claim travels with the block, so a request dropped
    // meanwhile still counts it until it is freed.
    let (block, claim) = tokio::task::spawn_blocking(move || (touched(bytes), claim))
        .await
        .map_err(|e| refuse(format!("could not allocate {bytes}: {e}")))?;
    let block = block.map_err(|e| refuse(format!("could not allocate {bytes}: {e}")))?;
    record(KeyValue::new(
        "thespian.memory.held_bytes",
        i64::try_from(held_now).unwrap_or(i64::MAX),
    ));
    record(KeyValue::new(
        "thespian.duration_ms",
        milliseconds(duration),
    ));
    tracing::info!(
        target: TARGET,
        "holding {bytes} for {} ms for `{}`",
        duration.as_millis(),
        hold.name
    );
    tokio::time::sleep(duration).await;
    drop((block, claim));
    tracing::info!(target: TARGET, "`{}` let go of {bytes}", hold.name);
    Ok(())
}

/// A block of `bytes`, every byte written so every page is really in
/// memory: an allocation alone only reserves addresses. An allocator that
/// refuses is an error, not an abort.
fn touched(bytes: Bytes) -> Result<Vec<u8>, std::collections::TryReserveError> {
    let length = usize::try_from(bytes.0).unwrap_or(usize::MAX);
    let mut block = Vec::new();
    block.try_reserve_exact(length)?;
    block.resize(length, 0xA5);
    std::hint::black_box(&mut block);
    Ok(block)
}

/// Keeps this thread busy until it has used `budget` of CPU time, or
/// until `stop` is raised; returns the CPU time it used.
fn spin(budget: Duration, stop: &AtomicBool) -> Duration {
    let clock = CpuClock::start();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    loop {
        let used = clock.elapsed();
        if used >= budget || stop.load(Ordering::Relaxed) {
            return used;
        }
        // A few tens of microseconds of arithmetic between looks at the
        // clock, which costs a system call.
        for _ in 0..20_000 {
            state = state.rotate_left(7) ^ state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        }
        std::hint::black_box(state);
    }
}

/// This thread's CPU time since it was started, or the time on the clock
/// where the platform cannot say.
struct CpuClock {
    cpu: Option<Duration>,
    wall: Instant,
}

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock {
            cpu: thread_cpu_time(),
            wall: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.wall.elapsed(),
        }
    }
}

/// The CPU time the calling thread has used, from the kernel.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to write, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every supported Unix defines.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    if failed {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

/// Elsewhere, no thread CPU clock: a burn goes by the time on the clock.
#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

/// A duration in milliseconds, fractions kept, for a span attribute.
fn milliseconds(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1_000_000.0
}

/// Sets `attribute` on the current span, the step's.
fn record(attribute: KeyValue) {
    Context::map_current(|cx| cx.span().set_attribute(attribute));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident set of this process, in bytes, from `/proc/self`.
    fn resident() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in kB");
        kib * 1024
    }

    #[test]
    fn a_spin_uses_the_cpu_time_it_is_given() {
        let stop = AtomicBool::new(false);
        let before = thread_cpu_time().expect("a thread CPU clock");
        let used = spin(Duration::from_millis(60), &stop);
        let measured = thread_cpu_time().unwrap() - before;
        assert!(used >= Duration::from_millis(60), "{used:?}");
        assert!(measured >= used, "{measured:?} < {used:?}");
    }

    #[test]
    fn a_stopped_spin_ends_at_once() {
        let stop = AtomicBool::new(true);
        assert!(spin(Duration::from_secs(3600), &stop) < Duration::from_secs(1));
    }

    #[test]
    fn a_touched_block_is_resident() {
        const SIZE: u64 = 48 << 20;
        let before = resident();
        let block = touched(Bytes(SIZE)).expect("48 MiB");
        let during = resident();
        assert_eq!(block.len() as u64, SIZE);
        // Other tests in this process allocate too, but nowhere near this.
        assert!(
            during >= before + SIZE * 9 / 10,
            "resident grew from {before} to {during} only"
        );
    }

    #[test]
    fn an_impossible_block_is_an_error_not_an_abort() {
        assert!(touched(Bytes(u64::MAX)).is_err());
    }

    #[test]
    fn claims_stay_under_the_cap_and_are_given_back() {
        let load = Load::new(LoadLimits {
            burn_threads: 1,
            max_held_bytes: Bytes(100),
        });
        let first = load.claim(60).expect("60 of 100");
        assert_eq!(load.claim(50).err(), Some(60));
        let second = load.claim(40).expect("up to the cap");
        assert_eq!(load.claim(1).err(), Some(100));
        drop((first, second));
        assert_eq!(load.held.load(Ordering::Acquire), 0);
        assert!(load.claim(100).is_ok());
    }
}
