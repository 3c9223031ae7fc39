//! The `thespian` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;
use thespian::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse().run().await
}
