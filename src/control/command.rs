//! `thespian scenario list|start|stop|describe ADDRESS`: the control API
//! from a shell, the token taken from `CONTROL_TOKEN` or `--token`.

use std::time::Duration;

use clap::{Args, Subcommand};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};

use super::AUTHORIZATION;
use crate::proto::{
    DescribeBehaviourRequest, ListScenariosRequest, ScenarioState, StartScenarioRequest,
    StopScenarioRequest, control_client::ControlClient,
};

/// How long a control call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Drive the scenarios of a running instance through its control API.
#[derive(Debug, Args)]
pub struct ScenarioCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: ScenarioAction,
}

/// What `thespian scenario` does.
#[derive(Debug, Subcommand)]
pub enum ScenarioAction {
    /// List the scenarios an instance declares or runs, and their state.
    List {
        /// The instance, such as localhost:6379.
        address: String,
    },
    /// Start a declared scenario by name, or one given with --inline.
    Start {
        /// The instance, such as localhost:6379.
        address: String,
        /// The scenario's name, as the instance's config declares it.
        name: Option<String>,
        /// A scenario as JSON, written as a config's `scenarios` entry.
        #[arg(long, conflicts_with = "name")]
        inline: Option<String>,
        /// How long it stays active, such as 2m [default: its schedule's `for`, or until
        /// stopped].
        #[arg(long = "for")]
        length: Option<String>,
    },
    /// Stop an active scenario.
    Stop {
        /// The instance, such as localhost:6379.
        address: String,
        /// The scenario's name.
        name: String,
    },
    /// Show what each method of an instance does now, under its active scenarios.
    Describe {
        /// The instance, such as localhost:6379.
        address: String,
    },
}

/// Runs `command` with `token`, printing what the instance answered.
pub async fn run(command: ScenarioCommand, token: Option<&str>) -> Result<(), crate::Error> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("the control API needs its token: set CONTROL_TOKEN or give --token")?;
    let bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the control token must be printable ASCII")?;
    let address = match &command.action {
        ScenarioAction::List { address }
        | ScenarioAction::Start { address, .. }
        | ScenarioAction::Stop { address, .. }
        | ScenarioAction::Describe { address } => crate::with_http_scheme(address),
    };
    let channel = Channel::from_shared(address.clone())?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot reach {address}: {}", crate::explain(&e)))?;
    let mut client = ControlClient::with_interceptor(channel, move |mut request: Request<()>| {
        request.metadata_mut().insert(AUTHORIZATION, bearer.clone());
        Ok(request)
    });
    let said = |status: Status| {
        let code = crate::failure::code_name(status.code());
        format!("{address}: {code}: {}", status.message())
    };
    match command.action {
        ScenarioAction::List { .. } => {
            let listed = client
                .list_scenarios(ListScenariosRequest {})
                .await
                .map_err(said)?;
            let scenarios = listed.into_inner().scenarios;
            if scenarios.is_empty() {
                println!("no scenarios: the config declares none and none run");
            }
            for scenario in &scenarios {
                println!("{}", line(scenario));
            }
        }
        ScenarioAction::Start {
            name,
            inline,
            length,
            ..
        } => {
            let started = client
                .start_scenario(StartScenarioRequest {
                    name: name.unwrap_or_default(),
                    inline: inline.unwrap_or_default(),
                    duration: length.unwrap_or_default(),
                })
                .await
                .map_err(said)?;
            if let Some(scenario) = started.into_inner().scenario {
                println!("started: {}", line(&scenario));
            }
        }
        ScenarioAction::Stop { name, .. } => {
            client
                .stop_scenario(StopScenarioRequest { name: name.clone() })
                .await
                .map_err(said)?;
            println!("stopped: {name}");
        }
        ScenarioAction::Describe { .. } => {
            let described = client
                .describe_behaviour(DescribeBehaviourRequest {})
                .await
                .map_err(said)?;
            for method in described.into_inner().methods {
                println!("{}:", method.method);
                for text in method.text.lines() {
                    println!("  {text}");
                }
            }
        }
    }
    Ok(())
}

/// One scenario on one line.
fn line(scenario: &ScenarioState) -> String {
    let mut line = format!(
        "{}\t{}\t{}\t{}\t{}",
        scenario.name, scenario.state, scenario.scope, scenario.effect, scenario.schedule
    );
    if let Some(ends) = scenario.ends_in_seconds {
        line.push_str(&format!("\tends in {ends:.0}s"));
    }
    if let Some(next) = scenario.next_start_in_seconds {
        line.push_str(&format!("\tnext start in {next:.0}s"));
    }
    line
}
