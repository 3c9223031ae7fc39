//! The control API, `thespian.Control`: lists, starts and stops scenarios
//! on a live instance and shows what each method does, so an incident can
//! be set off by hand and watched, with no restart.
//!
//! It is served on the instance's own port only when `CONTROL_TOKEN` is
//! set, and every call must carry that token; the pretend methods never
//! need it.
//!
//! Its parts:
//!
//! - here: the [`Control`] service.
//! - `token`: the [`ControlToken`] every call is checked against.
//! - `describe`: a method's effective behaviour as text.
//! - `command`: `thespian scenario`, the client that drives it.

mod command;
mod describe;
mod token;

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

pub use command::{ScenarioAction, ScenarioCommand, run as drive};
pub use token::{AUTHORIZATION, ControlToken};

use crate::{
    behaviour::{MethodName, Repertoire, Scenario, Schedule, Start, parse_time},
    incident::{Incidents, Listing, Refusal},
    proto::{
        DescribeBehaviourRequest, DescribeBehaviourResponse, ListScenariosRequest,
        ListScenariosResponse, MethodBehaviour, ScenarioState, StartScenarioRequest,
        StartScenarioResponse, StopScenarioRequest, StopScenarioResponse,
        control_server::{self, ControlServer},
    },
};

/// The most bytes an inline scenario may take.
const MAX_INLINE_BYTES: usize = 64 * 1024;

/// The `thespian.Control` service.
#[derive(Debug, Clone)]
pub struct Control {
    /// The board it starts and stops scenarios on.
    incidents: Incidents,
    /// What the methods act out, to describe.
    behaviour: Repertoire,
}

impl Control {
    /// The service for `incidents` and `behaviour`, behind `token`: ready
    /// to add to a server.
    pub fn serve(
        incidents: Incidents,
        behaviour: Repertoire,
        token: ControlToken,
    ) -> tonic::service::interceptor::InterceptedService<ControlServer<Control>, ControlToken> {
        ControlServer::with_interceptor(
            Control {
                incidents,
                behaviour,
            },
            token,
        )
    }

    /// The state of the scenario `name`, as listed now.
    fn state_of(&self, name: &str) -> Option<ScenarioState> {
        self.incidents
            .list()
            .iter()
            .find(|l| &*l.scenario.name == name)
            .map(state)
    }
}

#[tonic::async_trait]
impl control_server::Control for Control {
    async fn list_scenarios(
        &self,
        _: Request<ListScenariosRequest>,
    ) -> Result<Response<ListScenariosResponse>, Status> {
        let scenarios = self.incidents.list().iter().map(state).collect();
        Ok(Response::new(ListScenariosResponse { scenarios }))
    }

    async fn start_scenario(
        &self,
        request: Request<StartScenarioRequest>,
    ) -> Result<Response<StartScenarioResponse>, Status> {
        let request = request.into_inner();
        let length = match request.duration.trim() {
            "" => None,
            text => Some(
                parse_time(text)
                    .map_err(|e| Status::invalid_argument(format!("`duration`: {e}")))?,
            ),
        };
        if length == Some(Duration::ZERO) {
            return Err(Status::invalid_argument("`duration` must be longer than 0"));
        }
        let name = match (request.name.trim(), request.inline.trim()) {
            ("", "") => {
                return Err(Status::invalid_argument(
                    "give a scenario's `name`, or a scenario `inline` as JSON",
                ));
            }
            (name, "") => {
                self.incidents.start(name, length).map_err(refused)?;
                name.to_owned()
            }
            ("", inline) => {
                let scenario = inline_scenario(inline)?;
                let name = scenario.name.to_string();
                self.incidents
                    .start_scenario(Arc::new(scenario), length)
                    .map_err(refused)?;
                name
            }
            _ => {
                return Err(Status::invalid_argument(
                    "give a scenario's `name` or one `inline`, not both",
                ));
            }
        };
        Ok(Response::new(StartScenarioResponse {
            scenario: self.state_of(&name),
        }))
    }

    async fn stop_scenario(
        &self,
        request: Request<StopScenarioRequest>,
    ) -> Result<Response<StopScenarioResponse>, Status> {
        let name = request.into_inner().name;
        if self.incidents.stop(name.trim()) {
            Ok(Response::new(StopScenarioResponse {}))
        } else {
            Err(Status::not_found(format!(
                "no active scenario is named `{}`",
                name.trim()
            )))
        }
    }

    async fn describe_behaviour(
        &self,
        _: Request<DescribeBehaviourRequest>,
    ) -> Result<Response<DescribeBehaviourResponse>, Status> {
        let behaviour = self.behaviour.current();
        let methods = MethodName::ALL
            .into_iter()
            .map(|method| {
                let in_play = self.incidents.in_play(method);
                MethodBehaviour {
                    method: method.to_string(),
                    text: describe::describe(&behaviour, method, in_play.as_ref()),
                    scenarios: in_play
                        .iter()
                        .flat_map(|p| p.0.iter().map(|s| s.name.to_string()))
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(DescribeBehaviourResponse { methods }))
    }
}

/// A scenario given inline, read as the config reads one, with the JSON
/// path of a mistake.
fn inline_scenario(text: &str) -> Result<Scenario, Status> {
    if text.len() > MAX_INLINE_BYTES {
        return Err(Status::invalid_argument(format!(
            "an inline scenario may be at most {MAX_INLINE_BYTES} bytes"
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let scenario: Scenario = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        Status::invalid_argument(format!("the inline scenario{at}: {}", e.inner()))
    })?;
    deserializer
        .end()
        .map_err(|e| Status::invalid_argument(format!("the inline scenario: {e}")))?;
    Ok(scenario)
}

/// A refusal to start as a status.
fn refused(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Unknown(..) => Status::not_found(refusal.to_string()),
        Refusal::Full => Status::resource_exhausted(refusal.to_string()),
    }
}

/// A listed scenario as the API shows it.
fn state(listing: &Listing) -> ScenarioState {
    let scenario = &listing.scenario;
    ScenarioState {
        name: scenario.name.to_string(),
        state: if listing.active { "active" } else { "idle" }.to_owned(),
        scope: scenario.scope.to_string(),
        effect: scenario.disruption.to_string(),
        schedule: schedule_text(&scenario.schedule),
        ends_in_seconds: listing.ends_in.map(|d| d.as_secs_f64()),
        next_start_in_seconds: listing.starts_in.map(|d| d.as_secs_f64()),
    }
}

/// A schedule as it was written, in a line.
fn schedule_text(schedule: &Schedule) -> String {
    let time = |d: Duration| humantime::format_duration(d).to_string();
    let mut text = match &schedule.start {
        None => "by hand".to_owned(),
        Some(Start::After { at, every }) => {
            let mut text = format!("at {}", time(*at));
            if let Some(every) = every {
                text.push_str(&format!(" every {}", time(*every)));
            }
            text
        }
        Some(Start::Cron(_, written)) => format!("cron `{written}`"),
    };
    if let Some(length) = schedule.length {
        text.push_str(&format!(" for {}", time(length)));
    }
    text
}
