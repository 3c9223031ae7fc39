//! The options of `thespian up`: which file, where the logs go, extra
//! load, and how long to wait for a start and a stop.

use std::{path::PathBuf, time::Duration};

use crate::{behaviour::MethodName, poke};

/// Runs every service of an ecosystem file as local processes until Ctrl-C
/// or SIGTERM, then stops them gracefully.
///
/// Instances take their settings from the environment `up` runs in
/// (`OTEL_BACKEND_ADDRESS=... thespian up ecosystem.yaml`), then from the
/// file. A call to a replicated service reaches its first replica.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The ecosystem file to run.
    pub file: PathBuf,

    /// Where each instance's output goes: `prefixed` on stdout, each line
    /// after the instance's name, or `files`, one per instance in --log-dir.
    #[arg(long, value_enum, default_value_t = Logs::Prefixed)]
    pub logs: Logs,

    /// The folder of `--logs files`, created if need be.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,

    /// Calls to drive at once at the first replica of a service, as
    /// `SERVICE:METHOD` (repeat for more), besides the file's `load`.
    #[arg(long = "poke", value_name = "SERVICE:METHOD", value_parser = parse_poke)]
    pub pokes: Vec<(String, MethodName)>,

    /// Calls a second for each --poke.
    #[arg(long, default_value_t = 5.0, value_parser = poke::parse_rate)]
    pub rate: f64,

    /// How long every instance has to say SERVING before `up` gives up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub ready_timeout: Duration,

    /// How long instances have to stop gracefully, once told to, before
    /// they are killed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub stop_timeout: Duration,
}

/// Where instances' output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Logs {
    /// On stdout, each line prefixed with the instance's name.
    Prefixed,
    /// In a file per instance.
    Files,
}

/// Reads `--poke`'s `SERVICE:METHOD`.
fn parse_poke(text: &str) -> Result<(String, MethodName), String> {
    let (service, method) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` is not SERVICE:METHOD, such as frontend:A"))?;
    Ok((service.to_owned(), poke::parse_method(method)?))
}
