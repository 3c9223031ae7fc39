//! When poke starts each request: the shape of the traffic it sends.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

/// The pace of requests, kept apart from the loop that sends them so that
/// the loop does not care how the traffic is shaped.
#[derive(Debug)]
pub(super) enum Schedule {
    /// As fast as the limit on requests in flight allows (closed loop).
    Unpaced,
    /// A steady number of requests per second, whatever the answers (open
    /// loop).
    Steady(Interval),
}

impl Schedule {
    /// A steady schedule at `rate` requests per second, or an unpaced one
    /// without a rate. A steady schedule's first request is due at once.
    pub(super) fn new(rate: Option<f64>) -> Schedule {
        match rate {
            None => Schedule::Unpaced,
            Some(rate) => {
                let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                // A request that could not start on time (every slot busy)
                // is not made up for later with a burst.
                interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
                Schedule::Steady(interval)
            }
        }
    }

    /// Waits until the next request is due.
    pub(super) async fn wait(&mut self) {
        match self {
            Schedule::Unpaced => {}
            Schedule::Steady(interval) => {
                interval.tick().await;
            }
        }
    }
}
