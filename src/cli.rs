//! The command line: every setting, each also readable from the environment
//! (containers configure Thespian with nothing else), and the subcommands
//! that serve, check a config, probe health and generate load.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::{
    config::Config,
    executor::{Executor, SpanNames},
    health,
    server::{self, ServerOptions},
    telemetry::{LogFormat, Telemetry, TelemetrySettings},
};

/// The default OTLP/gRPC endpoint, where a local collector or Tempo listens.
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://localhost:4317";

/// Acts out configured pretend work over gRPC, and reports it as
/// OpenTelemetry traces and logs.
///
/// Every option can be given as an environment variable, named in brackets.
#[derive(Debug, Parser)]
#[command(name = "thespian", version, about, long_about)]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by the subcommands.
    #[command(flatten)]
    pub settings: Settings,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve `thespian.Thespian` (the default).
    Serve,
    /// Check a config and exit: 0 when it is valid, 1 with the problem otherwise.
    Check {
        /// The config file to check; without it, the configured CONFIG_FILE or CONFIG_JSON.
        config: Option<PathBuf>,
    },
    /// Ask a Thespian whether it is serving, through the standard gRPC health
    /// service: 0 when it is, 1 otherwise. Made for container health checks.
    Health {
        /// The instance to ask; defaults to this machine's PORT.
        address: Option<String>,
    },
}

/// Settings shared by the subcommands.
#[derive(Debug, Args)]
pub struct Settings {
    /// The port to serve on.
    #[arg(long, env = "PORT", default_value_t = 6379, global = true)]
    pub port: u16,

    /// The name of this instance: `service.name` on every span, log line and metric.
    #[arg(long, env = "SERVICE_NAME", global = true)]
    pub service_name: Option<String>,

    /// The standard name for the same thing; SERVICE_NAME wins when both are set.
    #[arg(long, env = "OTEL_SERVICE_NAME", global = true, hide_short_help = true)]
    pub otel_service_name: Option<String>,

    /// A config file: what each method acts out (JSON, comments allowed).
    #[arg(long = "config", env = "CONFIG_FILE", global = true)]
    pub config_file: Option<PathBuf>,

    /// The config itself, inline, for containers configured only by environment.
    #[arg(long, env = "CONFIG_JSON", global = true, hide_env_values = true)]
    pub config_json: Option<String>,

    /// Where spans go, over OTLP/gRPC [default: http://localhost:4317]. An empty value
    /// exports nothing.
    #[arg(long, env = "OTEL_BACKEND_ADDRESS", global = true)]
    pub otel_backend_address: Option<String>,

    /// The standard name for the same thing; OTEL_BACKEND_ADDRESS wins when both are set.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        global = true,
        hide_short_help = true
    )]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// Set to `none` to export no spans.
    #[arg(
        long,
        env = "OTEL_TRACES_EXPORTER",
        global = true,
        hide_short_help = true
    )]
    pub otel_traces_exporter: Option<String>,

    /// Extra resource attributes, `key=value,key=value`, on everything exported.
    #[arg(
        long,
        env = "OTEL_RESOURCE_ATTRIBUTES",
        global = true,
        hide_short_help = true
    )]
    pub otel_resource_attributes: Option<String>,

    /// A Loki to push logs to directly, such as http://localhost:3100.
    #[arg(long, env = "LOKI_ADDRESS", global = true)]
    pub loki_address: Option<String>,

    /// How log lines on stdout look.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,

    /// Which events are logged, as `tracing` directives (`info`, `thespian=debug`, ...).
    /// Spans are exported whatever this says.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub verbosity: String,

    /// How spans are named: by their `tracing_name`, or by step kind as the original did.
    #[arg(long, env = "SPAN_NAMES", value_enum, default_value_t = SpanNames::Descriptive, global = true)]
    pub span_names: SpanNames,

    /// How long in-flight requests may finish after SIGTERM or SIGINT, in milliseconds.
    #[arg(
        long,
        env = "SHUTDOWN_GRACE_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub shutdown_grace_ms: u64,
}

impl Settings {
    /// The instance's name: SERVICE_NAME, then OTEL_SERVICE_NAME, then `thespian`.
    pub fn service_name(&self) -> String {
        self.service_name
            .iter()
            .chain(&self.otel_service_name)
            .find(|name| !name.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| "thespian".to_owned())
    }

    /// Where spans go, or `None` when export is turned off.
    pub fn otlp_endpoint(&self) -> Option<String> {
        if self.otel_traces_exporter.as_deref() == Some("none") {
            return None;
        }
        let endpoint = self
            .otel_backend_address
            .clone()
            .or_else(|| self.otel_exporter_otlp_endpoint.clone())
            .unwrap_or_else(|| DEFAULT_OTLP_ENDPOINT.to_owned());
        Some(endpoint).filter(|e| !e.trim().is_empty())
    }

    /// Reads the config: `file` if given, else CONFIG_FILE, else CONFIG_JSON,
    /// else an empty config whose methods do nothing.
    pub fn config(&self, file: Option<&std::path::Path>) -> Result<Config, crate::Error> {
        if let Some(file) = file {
            return Ok(Config::from_file(file)?);
        }
        let config_file = self
            .config_file
            .as_ref()
            .filter(|f| !f.as_os_str().is_empty());
        let config_json = self.config_json.as_ref().filter(|j| !j.trim().is_empty());
        match (config_file, config_json) {
            (Some(_), Some(_)) => {
                Err("both CONFIG_FILE (--config) and CONFIG_JSON are set; set only one".into())
            }
            (Some(file), None) => Ok(Config::from_file(file)?),
            (None, Some(json)) => Ok(Config::from_str(json, "CONFIG_JSON")?),
            (None, None) => Ok(Config::default()),
        }
    }

    /// What telemetry is set up with.
    pub fn telemetry(&self) -> TelemetrySettings {
        TelemetrySettings {
            service_name: self.service_name(),
            otlp_endpoint: self.otlp_endpoint(),
            log_format: self.log_format,
            verbosity: self.verbosity.clone(),
        }
    }
}

impl Cli {
    /// Runs the chosen command. Problems are printed to stderr as one line
    /// and turn into a failing exit code.
    pub async fn run(self) -> ExitCode {
        let outcome = match self.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(&self.settings).await,
            Command::Check { config } => check(&self.settings, config.as_deref()),
            Command::Health { address } => {
                let address =
                    address.unwrap_or_else(|| format!("http://127.0.0.1:{}", self.settings.port));
                health::check(&address).await
            }
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

fn check(settings: &Settings, file: Option<&std::path::Path>) -> Result<(), crate::Error> {
    let config = settings.config(file)?;
    let origin = match (
        file.or(settings.config_file.as_deref()),
        &settings.config_json,
    ) {
        (Some(file), _) => file.display().to_string(),
        (None, Some(_)) => "CONFIG_JSON".to_owned(),
        (None, None) => "no config given (every method answers at once)".to_owned(),
    };
    println!("{origin}: ok");
    if config.legacy_service_name.is_some() {
        println!(
            "{origin}: note: the top-level `service_name` is ignored; SERVICE_NAME names the instance"
        );
    }
    Ok(())
}

async fn serve(settings: &Settings) -> Result<(), crate::Error> {
    // The config is read before telemetry starts, so a bad one fails fast
    // with a plain message on stderr.
    let config = settings.config(None)?;
    let listener = TcpListener::bind(("0.0.0.0", settings.port))
        .await
        .map_err(|e| format!("cannot listen on port {}: {e}", settings.port))?;

    let telemetry = Telemetry::install(&settings.telemetry())?;
    if let Some(legacy) = &config.legacy_service_name {
        tracing::warn!(
            "the config's top-level `service_name` (\"{legacy}\") is ignored; SERVICE_NAME names this instance"
        );
    }
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        service = %settings.service_name(),
        otlp_endpoint = settings.otlp_endpoint().as_deref().unwrap_or("none"),
        "Thespian is serving"
    );
    let served = server::run(
        listener,
        config.behaviour,
        Executor::new(settings.span_names),
        ServerOptions {
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
        },
        shutdown_signal(),
    )
    .await;
    telemetry.shutdown().await;
    served
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
