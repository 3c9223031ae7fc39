//! A client for the standard gRPC health service, so a container can check
//! itself with its own binary and no shell.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long a probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Succeeds when the Thespian at `address` reports SERVING.
pub async fn check(address: &str) -> Result<(), crate::Error> {
    let target = crate::behaviour::Target::parse(address)?;
    let probe = async {
        let channel = tonic::transport::Endpoint::from_shared(target.as_str().to_owned())?
            .connect()
            .await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok::<_, crate::Error>(response.into_inner().status())
    };
    let status = tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| format!("{target} did not answer within {PROBE_TIMEOUT:?}"))??;
    if status == ServingStatus::Serving {
        println!("{target}: SERVING");
        Ok(())
    } else {
        Err(format!("{target}: {}", status.as_str_name()).into())
    }
}
