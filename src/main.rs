//! The `thespian` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;
use thespian::cli::Cli;

/// Spans are made on the request threads and freed on the exporter's, a
/// pattern that contends on the system allocator's arena locks. jemalloc's
/// per-thread caches lift a two-instance chain's throughput by about half
/// with the same peak memory (see `scripts/bench.sh`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read before `main` runs; `_RJEM_MALLOC_CONF` in
/// the environment overrides them.
/// - Freed pages go back to the system after about a second rather than
///   ten, so an instance that has served a burst shrinks back soon after.
///   Not within milliseconds: when a wave of requests ends while the next
///   arrives, pages returned at once are faulted in again straight away,
///   and each return interrupts every core to flush its page tables. At
///   5 ms that cost a sleeper wave about a quarter of its CPU a request
///   and nearly half of its p99 over the bare server
///   (docs/performance.md, "Freed pages kept for a second").
/// - One arena rather than four per core: the per-thread caches already
///   keep threads off its lock, and fewer arenas hold fewer half-empty
///   pages. It saved a little memory and lifted the chain back.
///
/// The figures are `scripts/bench.sh`'s.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_SETTINGS: &[u8; 30] = b"narenas:1,dirty_decay_ms:1000\0";

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse().run().await
}
