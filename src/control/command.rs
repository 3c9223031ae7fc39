//! `thespian scenario list|start|stop|describe ADDRESS`: the control API
//! from a shell, the token taken from `CONTROL_TOKEN` or `--token`; with
//! `--ecosystem FILE`, on every instance of an ecosystem that declares the
//! scenario, so an incident can span the fleet.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};

use super::AUTHORIZATION;
use crate::{
    ecosystem::{Ecosystem, Peer, Service},
    proto::{
        DescribeBehaviourRequest, ListScenariosRequest, ScenarioState, StartScenarioRequest,
        StopScenarioRequest, control_client::ControlClient,
    },
};

/// How long a control call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Drive the scenarios of a running instance through its control API.
#[derive(Debug, Args)]
pub struct ScenarioCommand {
    /// Act on the instances of this ecosystem file instead of one ADDRESS: each service's
    /// first replica, at its local `port` (as `thespian up` runs it); `start` and `stop` only
    /// those whose config declares the scenario. The first argument is then the scenario's
    /// name.
    #[arg(long, global = true, value_name = "FILE")]
    pub ecosystem: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: ScenarioAction,
}

/// What `thespian scenario` does.
#[derive(Debug, Clone, Subcommand)]
pub enum ScenarioAction {
    /// List the scenarios an instance declares or runs, and their state.
    List {
        /// The instance, such as localhost:6379; left out with --ecosystem.
        address: Option<String>,
    },
    /// Start a declared scenario by name, or one given with --inline.
    Start {
        /// The instance, such as localhost:6379; left out with --ecosystem.
        address: Option<String>,
        /// The scenario's name, as the instance's config declares it.
        name: Option<String>,
        /// A scenario as JSON, written as a config's `scenarios` entry.
        #[arg(long)]
        inline: Option<String>,
        /// How long it stays active, such as 2m [default: its schedule's `for`, or until
        /// stopped].
        #[arg(long = "for")]
        length: Option<String>,
    },
    /// Stop an active scenario.
    Stop {
        /// The instance, such as localhost:6379; left out with --ecosystem.
        address: Option<String>,
        /// The scenario's name.
        name: Option<String>,
    },
    /// Show what each method of an instance does now, under its active scenarios.
    Describe {
        /// The instance, such as localhost:6379; left out with --ecosystem.
        address: Option<String>,
    },
}

/// Runs `command` with `token`, printing what each instance answered;
/// fails when any instance could not do as asked.
pub async fn run(command: ScenarioCommand, token: Option<&str>) -> Result<(), crate::Error> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("the control API needs its token: set CONTROL_TOKEN or give --token")?;
    let bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the control token must be printable ASCII")?;
    let (action, targets) = targets(command)?;
    let mut failed = 0;
    for (label, address) in &targets {
        if let Some(label) = label {
            println!("{label} ({address}):");
        }
        if let Err(e) = act(address, &action, bearer.clone()).await {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    match failed {
        0 => Ok(()),
        1 if targets.len() == 1 => Err("the instance did not do as asked".into()),
        _ => Err(format!(
            "{failed} of {} instances did not do as asked",
            targets.len()
        )
        .into()),
    }
}

/// The action, with its name in place, and the instances to act on: one
/// ADDRESS (unlabelled), or the services of an ecosystem, by name.
type Targets = (ScenarioAction, Vec<(Option<String>, String)>);

/// Where `command` acts.
fn targets(command: ScenarioCommand) -> Result<Targets, crate::Error> {
    let Some(file) = command.ecosystem else {
        let address = match &command.action {
            ScenarioAction::List { address }
            | ScenarioAction::Start { address, .. }
            | ScenarioAction::Stop { address, .. }
            | ScenarioAction::Describe { address } => address.clone(),
        };
        let address = address.ok_or("give the instance's ADDRESS, or --ecosystem FILE")?;
        return Ok((
            command.action,
            vec![(None, crate::with_http_scheme(&address))],
        ));
    };
    // With an ecosystem there is no ADDRESS: the first argument is the name.
    let action = match command.action {
        ScenarioAction::Start {
            address,
            name,
            inline,
            length,
        } => ScenarioAction::Start {
            address: None,
            name: name.or(address),
            inline,
            length,
        },
        ScenarioAction::Stop { address, name } => ScenarioAction::Stop {
            address: None,
            name: name.or(address),
        },
        other => other,
    };
    let named = match &action {
        ScenarioAction::Start {
            name, inline: None, ..
        }
        | ScenarioAction::Stop { name, .. } => name.clone(),
        _ => None,
    };
    let ecosystem = Ecosystem::from_file(&file)?;
    let mut targets = Vec::new();
    for service in &ecosystem.services {
        if named
            .as_deref()
            .is_some_and(|name| !declares(service, name))
        {
            continue;
        }
        match service.port {
            Some(port) => targets.push((Some(service.name.clone()), Peer::local(port).url())),
            None => eprintln!(
                "note: {} has no `port` in {}, so it cannot be found on this machine",
                service.name,
                file.display()
            ),
        }
    }
    if targets.is_empty() {
        return Err(match named {
            Some(name) => format!(
                "no service of {} with a `port` declares the scenario `{name}`",
                file.display()
            ),
            None => format!("no service of {} has a `port`", file.display()),
        }
        .into());
    }
    Ok((action, targets))
}

/// Whether `service`'s config declares the scenario `name`.
fn declares(service: &Service, name: &str) -> bool {
    service
        .document
        .get("scenarios")
        .and_then(|s| s.as_array())
        .is_some_and(|all| {
            all.iter()
                .any(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))
        })
}

/// Does `action` on the instance at `address`, printing its answer.
async fn act(
    address: &str,
    action: &ScenarioAction,
    bearer: MetadataValue<tonic::metadata::Ascii>,
) -> Result<(), String> {
    let channel = Channel::from_shared(address.to_owned())
        .map_err(|e| format!("{address}: {e}"))?
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
    match action.clone() {
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
            let name = name.ok_or("give the name of the scenario to stop")?;
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
