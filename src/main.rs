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
/// - Pages freed when a burst of requests ends go back to the system
///   within milliseconds rather than ten seconds: the spans those requests
///   end are queued for export at that same moment, in allocations of
///   other sizes that cannot reuse them. 10,000 sleepers ending together
///   peaked 10 MB higher without it, at a cost of about a tenth of a
///   two-instance chain's throughput.
/// - One arena rather than four per core: the per-thread caches already
///   keep threads off its lock, and fewer arenas hold fewer half-empty
///   pages. It saved a little memory and lifted the chain back.
///
/// The figures are `scripts/bench.sh`'s.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_SETTINGS: &[u8; 27] = b"narenas:1,dirty_decay_ms:5\0";

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse().run().await
}
