//! The environment variables Thespian takes its settings from, read off its
//! command line (`thespian::cli::Cli`) rather than kept by hand, so that a
//! new setting is cleared before every test run and checked in `--help`
//! without anyone listing it here.

use clap::{Arg, Command, CommandFactory as _};
use thespian::cli::Cli;

/// What the standard OpenTelemetry variables start with. Thespian declares
/// the ones it documents as options, but the OpenTelemetry SDK and
/// exporters read many more by themselves (`OTEL_TRACES_SAMPLER`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, ...), so any such variable in
/// the test's own environment is cleared as well.
const OPENTELEMETRY: &str = "OTEL_";

/// The options of `command` itself (not of its subcommands) that can be
/// set by an environment variable, each with that variable.
pub fn options(command: &Command) -> impl Iterator<Item = (&Arg, String)> {
    command.get_arguments().filter_map(|arg| {
        let variable = arg.get_env()?.to_str()?.to_owned();
        Some((arg, variable))
    })
}

/// Every variable Thespian takes a setting from, whichever the subcommand.
fn variables() -> Vec<String> {
    fn collect(command: &Command, into: &mut Vec<String>) {
        into.extend(options(command).map(|(_, variable)| variable));
        for subcommand in command.get_subcommands() {
            collect(subcommand, into);
        }
    }
    let mut variables = Vec::new();
    collect(&Cli::command(), &mut variables);
    variables
}

/// Removes from `command`'s environment every variable that would change
/// what Thespian does, so that a test runs it with only what the test sets
/// itself, whatever the environment the tests were started in.
pub fn clear(command: &mut tokio::process::Command) {
    for variable in variables() {
        command.env_remove(variable);
    }
    for (variable, _) in std::env::vars_os() {
        if variable
            .to_str()
            .is_some_and(|v| v.starts_with(OPENTELEMETRY))
        {
            command.env_remove(variable);
        }
    }
}
