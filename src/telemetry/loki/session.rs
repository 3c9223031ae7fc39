//! A session: one tracing-loki layer and the task that pushes what that
//! layer is given, opened, filled and stopped as a unit.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing_loki::url::Url;

use super::pacing::Paced;

/// One tracing-loki layer and the task that pushes what it is given.
pub(super) struct Session {
    /// Formats lines and hands them to the task. Kept alive until the task
    /// has finished: tracing-loki's task spins if its layer goes first.
    pub(super) layer: tracing_loki::Layer,
    /// Asks the task to push what it holds and finish.
    pub(super) controller: tracing_loki::BackgroundTaskController,
}

/// How a session's task ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Every push it made was accepted.
    Delivered,
    /// A push failed; the lines it held are gone.
    Failed(String),
}

/// Opens a session and starts its task.
pub(super) fn open(
    builder: &tracing_loki::Builder,
    url: &Url,
) -> Result<(Arc<Session>, JoinHandle<Outcome>), tracing_loki::Error> {
    let (layer, controller, task) = builder.clone().build_controller_url(url.clone())?;
    let session = Arc::new(Session { layer, controller });
    Ok((session, tokio::spawn(Paced::new(task))))
}
