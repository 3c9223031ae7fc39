//! A client for the standard gRPC health service, so a container can check
//! itself with its own binary and no shell.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{behaviour::Target, client};

/// How long a probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Succeeds when the Thespian at `address` reports SERVING, and says so on
/// stdout.
pub async fn check(address: &str) -> Result<(), crate::Error> {
    let target = serving(address).await?;
    println!("{target}: SERVING");
    Ok(())
}

/// Succeeds, quietly, when the Thespian at `address` reports SERVING, so
/// that `thespian up` can ask many instances at once; returns the target
/// asked.
pub async fn serving(address: &str) -> Result<Target, crate::Error> {
    let target = Target::parse(address)?;
    let probe = async {
        let channel = client::endpoint(&target)?.connect().await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok::<_, crate::Error>(response.into_inner().status())
    };
    let status = tokio::select! {
        // The probe's deadline is looked at before the probe: the
        // endpoint's connect timeout is as long and starts later, but both
        // can fall due in the same timer tick, and a target that never
        // accepts should still read as not answering in time.
        biased;
        () = tokio::time::sleep(PROBE_TIMEOUT) => {
            Err(format!("{target} did not answer within {PROBE_TIMEOUT:?}").into())
        }
        status = probe => status,
    }?;
    if status == ServingStatus::Serving {
        Ok(target)
    } else {
        Err(format!("{target}: {}", status.as_str_name()).into())
    }
}
