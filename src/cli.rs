//! The command line: every setting, each also readable from the environment
//! (containers configure Thespian with nothing else), and the subcommands
//! that serve, check a config, probe health and generate load.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    admission::Admission,
    behaviour::Bytes,
    behaviour::Repertoire,
    config::{self, Config, Reloading},
    control::{self, ControlToken, ScenarioCommand},
    ecosystem::Ecosystem,
    executor::{DEFAULT_MAX_HELD_BYTES, Executor, LoadLimits, SpanNames},
    fleet::{self, UpArgs},
    health,
    incident::Incidents,
    poke::{self, PokeArgs},
    propagation::{Propagation, Propagators},
    relay::{DEFAULT_MAX_HOPS, Relay},
    render::{self, RenderArgs},
    script::{self, ScriptSettings, Scripting},
    server::{self, ServerOptions},
    telemetry::{
        Batching, DEFAULT_METRIC_INTERVAL, Exporter, LogFormat, MetricsTemporality,
        ResourceAttributes, Telemetry, TelemetrySettings,
    },
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
    /// Check a config, or a whole ecosystem file, and exit: 0 when it is
    /// valid, 1 with the problem otherwise.
    Check {
        /// The config or ecosystem file to check; without it, the configured
        /// CONFIG_FILE or CONFIG_JSON.
        config: Option<PathBuf>,
    },
    /// Ask a Thespian whether it is serving, through the standard gRPC health
    /// service: 0 when it is, 1 otherwise. Made for container health checks.
    Health {
        /// The instance to ask; defaults to this machine's PORT.
        address: Option<String>,
    },
    /// Call Thespians' methods at a rate of a chosen shape, each call a traced client
    /// span, then sum up latency and status codes (and, with --verify, whether the tracing
    /// backend kept every span): 0 when it ran, whatever the answers; 1 when it could not.
    Poke(Box<PokeArgs>),
    /// Write an ecosystem file out as deployable files for Docker Compose,
    /// Kubernetes or AWS ECS.
    Render(RenderArgs),
    /// Run every service of an ecosystem file as local processes, on
    /// declared or free ports, until Ctrl-C or SIGTERM stops them all.
    ///
    /// Instances take their settings from the environment `up` runs in
    /// (`OTEL_BACKEND_ADDRESS=... thespian up ecosystem.yaml`), then from the
    /// file. A call to a replicated service reaches its first replica.
    Up(UpArgs),
    /// List, start and stop the scenarios of a running instance through its control API
    /// (`thespian scenario list|start|stop|describe ADDRESS`).
    Scenario(ScenarioCommand),
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

    /// Serves the control API (`thespian.Control`: start and stop scenarios) on the same
    /// port, to calls that carry `authorization: Bearer <token>`. Unset, it is off.
    #[arg(
        long = "control-token",
        visible_alias = "token",
        env = "CONTROL_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub control_token: Option<String>,

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

    /// Makes requests replayable: every roll of a request (drawn durations, failure
    /// rolls, a script's `random()`) follows from this seed and the request's trace id.
    /// Unset, every request rolls fresh dice.
    #[arg(long, env = "THESPIAN_SEED", global = true)]
    pub seed: Option<u64>,

    /// How long a call to another instance may wait for its answer, in milliseconds;
    /// then it fails with DEADLINE_EXCEEDED. A call's own `timeout_ms`, or the
    /// request's deadline when sooner, takes its place.
    #[arg(
        long,
        env = "CALL_TIMEOUT_MS",
        default_value_t = crate::client::DEFAULT_CALL_TIMEOUT.as_millis() as u64,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub call_timeout_ms: u64,

    /// How many `burn` steps keep a core busy at once; more wait for a thread, as under
    /// real CPU contention [default: the number of cores].
    #[arg(
        long,
        env = "MAX_BURN_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=256),
        global = true
    )]
    pub max_burn_threads: Option<u16>,

    /// How much memory the `hold_memory` steps of all requests in flight may hold together,
    /// in bytes or with a unit (`256MiB`, `1GB`); a hold past it fails with RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "MAX_HELD_BYTES",
        default_value_t = DEFAULT_MAX_HELD_BYTES,
        global = true
    )]
    pub max_held_bytes: Bytes,

    /// How long in-flight requests may finish after SIGTERM or SIGINT, in milliseconds.
    #[arg(
        long,
        env = "SHUTDOWN_GRACE_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub shutdown_grace_ms: u64,

    /// The most requests acted out at once; the rest wait in a queue for a slot, in order.
    /// Unset, every request is acted out as it comes.
    #[arg(
        long,
        env = "MAX_IN_FLIGHT",
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_in_flight: Option<u32>,

    /// The most requests waiting for a slot under MAX_IN_FLIGHT; one more is shed at once
    /// with RESOURCE_EXHAUSTED. 0 sheds every request that finds no slot free.
    #[arg(
        long,
        env = "MAX_QUEUE",
        default_value_t = crate::admission::DEFAULT_MAX_QUEUE,
        global = true
    )]
    pub max_queue: u32,

    /// The most Thespians one request may pass through: the next in the chain refuses
    /// it with FAILED_PRECONDITION, naming the path, so a call cycle ends at once.
    #[arg(
        long,
        env = "MAX_HOPS",
        default_value_t = DEFAULT_MAX_HOPS,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_hops: u32,

    /// Where spans go, over OTLP/gRPC [default: http://localhost:4317]. An empty value
    /// exports nothing.
    #[arg(
        long,
        env = "OTEL_BACKEND_ADDRESS",
        global = true,
        help_heading = "Telemetry"
    )]
    pub otel_backend_address: Option<String>,

    /// The standard name for the same thing; OTEL_BACKEND_ADDRESS wins when both are set.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// Where spans go: `otlp` or `none` [default: otlp].
    #[arg(
        long,
        env = "OTEL_TRACES_EXPORTER",
        value_enum,
        ignore_case = true,
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_traces_exporter: Option<Exporter>,

    /// Where log records go: `otlp` or `none` [default: otlp when an OTLP endpoint is set
    /// and LOKI_ADDRESS is not].
    #[arg(
        long,
        env = "OTEL_LOGS_EXPORTER",
        value_enum,
        ignore_case = true,
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_logs_exporter: Option<Exporter>,

    /// Where request metrics go: `otlp` or `none` [default: otlp when an OTLP endpoint is set].
    #[arg(
        long,
        env = "OTEL_METRICS_EXPORTER",
        value_enum,
        ignore_case = true,
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_metrics_exporter: Option<Exporter>,

    /// How often metrics are exported, in milliseconds.
    #[arg(
        long,
        env = "OTEL_METRIC_EXPORT_INTERVAL",
        default_value_t = DEFAULT_METRIC_INTERVAL.as_millis() as u64,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_metric_export_interval: u64,

    /// Whether metrics are exported as running totals or per interval.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        value_enum,
        ignore_case = true,
        default_value_t = MetricsTemporality::Cumulative,
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_exporter_otlp_metrics_temporality_preference: MetricsTemporality,

    /// Extra resource attributes, `key=value,key=value` with values percent-encoded, on
    /// everything exported; SERVICE_NAME wins over a `service.name` among them.
    #[arg(
        long,
        env = "OTEL_RESOURCE_ATTRIBUTES",
        global = true,
        help_heading = "Telemetry",
        hide_short_help = true
    )]
    pub otel_resource_attributes: Option<ResourceAttributes>,

    /// The header formats trace context and baggage travel in, read and written:
    /// `tracecontext`, `baggage`, `b3` (one header), `b3multi` (`x-b3-*`) or `none`,
    /// separated by commas. An unknown name stops startup; `jaeger`, `xray` and `ottrace`
    /// are ignored with a warning.
    #[arg(
        long,
        env = "OTEL_PROPAGATORS",
        default_value_t = Propagators::default(),
        global = true,
        help_heading = "Telemetry"
    )]
    pub otel_propagators: Propagators,

    /// A Loki to push logs to directly, such as http://localhost:3100.
    #[arg(long, env = "LOKI_ADDRESS", global = true, help_heading = "Telemetry")]
    pub loki_address: Option<String>,

    /// How spans and log records are batched on their way to the collector.
    #[command(flatten, next_help_heading = "Export batching")]
    pub batching: Batching,

    /// Shut down gracefully when stdin reaches its end: set by `thespian up`
    /// on its instances, whose stdin is a pipe from it, so none outlives it.
    #[arg(long, env = fleet::STOP_ON_STDIN_EOF, hide = true, global = true)]
    pub stop_on_stdin_eof: bool,

    /// Where scripts are found, and what one evaluation of a script may do.
    #[command(flatten, next_help_heading = "Scripts")]
    pub scripts: ScriptSettings,
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
        if self.otel_traces_exporter == Some(Exporter::Off) {
            return None;
        }
        self.otlp_base_endpoint()
    }

    /// The OTLP endpoint every signal shares, whichever of them are on.
    fn otlp_base_endpoint(&self) -> Option<String> {
        let endpoint = self
            .otel_backend_address
            .clone()
            .or_else(|| self.otel_exporter_otlp_endpoint.clone())
            .unwrap_or_else(|| DEFAULT_OTLP_ENDPOINT.to_owned());
        Some(endpoint).filter(|e| !e.trim().is_empty())
    }

    /// Where log records go over OTLP, or `None`. Unless OTEL_LOGS_EXPORTER
    /// says otherwise, they go there only when Loki is not configured, so a
    /// collector that forwards to the same Loki never gets each line twice.
    pub fn otlp_logs_endpoint(&self) -> Option<String> {
        match self.otel_logs_exporter {
            Some(Exporter::Off) => None,
            Some(Exporter::Otlp) => self.otlp_base_endpoint(),
            None if self.loki_address().is_some() => None,
            None => self.otlp_base_endpoint(),
        }
    }

    /// Where request metrics go over OTLP, or `None` when they are off.
    pub fn otlp_metrics_endpoint(&self) -> Option<String> {
        match self.otel_metrics_exporter {
            Some(Exporter::Off) => None,
            Some(Exporter::Otlp) | None => self.otlp_base_endpoint(),
        }
    }

    /// The Loki to push log lines to, or `None`; an empty value is none.
    pub fn loki_address(&self) -> Option<String> {
        self.loki_address
            .clone()
            .filter(|address| !address.trim().is_empty())
    }

    /// Reads the config: `file` if given, else CONFIG_FILE, else CONFIG_JSON,
    /// else an empty config whose methods do nothing.
    pub fn config(&self, file: Option<&std::path::Path>) -> Result<Config, crate::Error> {
        let scripting = Scripting::new(&self.scripts);
        if let Some(file) = file {
            return Ok(Config::from_file(file, &scripting)?);
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
            (Some(file), None) => Ok(Config::from_file(file, &scripting)?),
            (None, Some(json)) => Ok(Config::from_str(json, "CONFIG_JSON", &scripting)?),
            (None, None) => Ok(Config::default()),
        }
    }

    /// How much real load requests may make: burn threads and memory held.
    pub fn load_limits(&self) -> LoadLimits {
        let defaults = LoadLimits::default();
        LoadLimits {
            burn_threads: self
                .max_burn_threads
                .map_or(defaults.burn_threads, usize::from),
            max_held_bytes: self.max_held_bytes,
        }
    }

    /// What telemetry is set up with.
    pub fn telemetry(&self) -> TelemetrySettings {
        TelemetrySettings {
            service_name: self.service_name(),
            resource_attributes: self.otel_resource_attributes.clone().unwrap_or_default(),
            otlp_endpoint: self.otlp_endpoint(),
            log_format: self.log_format,
            verbosity: self.verbosity.clone(),
            otlp_logs_endpoint: self.otlp_logs_endpoint(),
            otlp_metrics_endpoint: self.otlp_metrics_endpoint(),
            metric_export_interval: Duration::from_millis(self.otel_metric_export_interval),
            metrics_temporality: self.otel_exporter_otlp_metrics_temporality_preference,
            loki_address: self.loki_address(),
            batching: self.batching,
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
            Command::Poke(args) => {
                let export = poke::TraceExport {
                    endpoint: self.settings.otlp_endpoint(),
                    propagators: self.settings.otel_propagators.clone(),
                    batch: self.settings.batching.spans(),
                };
                poke::run(*args, export, shutdown_signal()).await
            }
            Command::Render(args) => render::run(&args),
            Command::Up(args) => {
                let attributes = self.settings.otel_resource_attributes.unwrap_or_default();
                fleet::run(&args, &attributes, shutdown_signal()).await
            }
            Command::Scenario(command) => {
                control::drive(command, self.settings.control_token.as_deref()).await
            }
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", crate::explain(&*e));
                ExitCode::FAILURE
            }
        }
    }
}

fn check(settings: &Settings, file: Option<&std::path::Path>) -> Result<(), crate::Error> {
    if let Some(file) = file.filter(|f| Ecosystem::describes(f)) {
        return check_ecosystem(file);
    }
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

/// Checks a whole ecosystem: every service's config with its peers
/// resolved and its scripts compiled, as each instance will read it.
fn check_ecosystem(file: &std::path::Path) -> Result<(), crate::Error> {
    let ecosystem = Ecosystem::from_file(file)?;
    let origin = file.display();
    for service in &ecosystem.services {
        let scripts: Vec<&str> = service.scripts.keys().map(String::as_str).collect();
        println!(
            "{origin}: {} ok ({} {}{})",
            service.name,
            service.replicas,
            if service.replicas == 1 {
                "replica"
            } else {
                "replicas"
            },
            if scripts.is_empty() {
                String::new()
            } else {
                format!(", scripts {}", scripts.join(", "))
            }
        );
    }
    println!(
        "{origin}: ok, ecosystem `{}` of {} services",
        ecosystem.name,
        ecosystem.services.len()
    );
    Ok(())
}

async fn serve(settings: &Settings) -> Result<(), crate::Error> {
    // The config is read before telemetry starts, so a bad one fails fast
    // with a plain message on stderr.
    let mut config = settings.config(None)?;
    let listener = server::listen(settings.port)
        .map_err(|e| format!("cannot listen on port {}: {e}", settings.port))?;

    let destinations = settings.telemetry();
    let telemetry = Telemetry::install(&destinations)?;
    if let Some(legacy) = &config.legacy_service_name {
        tracing::warn!(
            "the config's top-level `service_name` (\"{legacy}\") is ignored; SERVICE_NAME names this instance"
        );
    }
    // Held until the server stops; dropping it ends the watch.
    let _watch = script::watch(&config.scripts);
    let repertoire = Repertoire::from(std::mem::take(&mut config.behaviour));
    // Only a file can change; CONFIG_JSON is fixed for the process's life.
    let _reload = settings
        .config_file
        .as_deref()
        .filter(|file| !file.as_os_str().is_empty())
        .and_then(|file| {
            let reloading = Reloading {
                scripting: Scripting::new(&settings.scripts),
                repertoire: repertoire.clone(),
                scenarios: config
                    .scenarios
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect(),
            };
            config::watch(file, reloading)
        });
    let incidents = Incidents::new(std::mem::take(&mut config.scenarios), telemetry.metrics());
    // Held until the server stops, like the watch.
    let _schedules = incidents.run_schedules();
    // Listening starts before "serving" is announced: a SIGTERM sent as
    // soon as the instance looks ready must still drain it gracefully.
    let shutdown = fleet::or_stdin_closed(shutdown_signal(), settings.stop_on_stdin_eof);
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        traces = destinations.otlp_endpoint.as_deref().unwrap_or("off"),
        otlp_logs = destinations.otlp_logs_endpoint.as_deref().unwrap_or("off"),
        metrics = destinations.otlp_metrics_endpoint.as_deref().unwrap_or("off"),
        loki = destinations.loki_address.as_deref().unwrap_or("off"),
        control = if settings.control_token.as_deref().and_then(ControlToken::new).is_some() {
            "on"
        } else {
            "off"
        },
        "Thespian is serving"
    );
    for ignored in &settings.otel_propagators.ignored {
        tracing::warn!("OTEL_PROPAGATORS: `{ignored}` is not supported here and is ignored");
    }
    let relay = Relay::new(
        Propagation::new(&settings.otel_propagators),
        &settings.service_name(),
        settings.max_hops,
    );
    let served = server::run(
        listener,
        repertoire,
        Executor::new(settings.span_names)
            .with_call_timeout(Duration::from_millis(settings.call_timeout_ms))
            .with_metrics(telemetry.metrics())
            .with_tracer(telemetry.tracer())
            .with_seed(settings.seed)
            .with_load_limits(settings.load_limits())
            .with_relay(relay)
            .with_incidents(incidents),
        ServerOptions {
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
            metrics: telemetry.metrics(),
            admission: Admission::new(
                settings.max_in_flight,
                settings.max_queue,
                telemetry.metrics(),
            ),
            control: settings
                .control_token
                .as_deref()
                .and_then(ControlToken::new),
        },
        shutdown,
    )
    .await;
    telemetry.shutdown().await;
    served
}

/// Listens for SIGINT (Ctrl-C) and, on Unix, SIGTERM from the moment it is
/// called, not from the first poll, so no signal slips past between
/// startup and serving; the future completes on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        let received = |signal: std::io::Result<Signal>| async move {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        async move {
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn resource_attributes_given_as_a_flag_reach_telemetry() {
        let flag = "team=payments,note=a%20b";
        let cli = Cli::try_parse_from(["thespian", "--otel-resource-attributes", flag]).unwrap();
        assert_eq!(
            cli.settings.telemetry().resource_attributes,
            flag.parse().unwrap()
        );
    }
}
