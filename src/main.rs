//! The `thespian` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;
use thespian::cli::Cli;

/// Spans are made on the request threads and freed on the exporter's, a
/// pattern that contends on the system allocator's arena locks. jemalloc's
/// per-thread caches lift a two-instance chain's throughput by about half
/// with the same peak memory (see `scripts/bench.sh`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse().run().await
}
