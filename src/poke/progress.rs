//! The live progress line poke draws on stderr while it runs.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{shape::Shape, tally::Tally};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// How many progress samples the current rate is averaged over: one second.
const RATE_WINDOW: usize = 5;

/// The live progress line on stderr, so a long run shows how it is going
/// before its summary; hidden when stderr is not a terminal.
pub(super) struct Progress {
    /// The line itself.
    bar: ProgressBar,
    /// Redraws it until the run ends.
    updater: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts drawing the line from `tally`, beside the rate `shape` aims
    /// for, if the run is paced; unless `quiet`.
    pub(super) fn start(tally: Arc<Tally>, shape: Option<Shape>, quiet: bool) -> Progress {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {msg}")
                .expect("the progress template is valid"),
        );
        let updater = if bar.is_hidden() {
            tokio::spawn(async {})
        } else {
            tokio::spawn(update(bar.clone(), tally, shape))
        };
        Progress { bar, updater }
    }

    /// Stops drawing and clears the line, to make room for the summary.
    pub(super) fn finish(self) {
        self.updater.abort();
        self.bar.finish_and_clear();
    }
}

/// Redraws the progress line: sent, answered OK, errors, the answer rate
/// over the last second beside the rate aimed for now, and the p99 latency
/// so far.
async fn update(bar: ProgressBar, tally: Arc<Tally>, shape: Option<Shape>) {
    let started = tokio::time::Instant::now();
    let mut window = VecDeque::with_capacity(RATE_WINDOW + 1);
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    loop {
        ticks.tick().await;
        let answered = tally.answered();
        window.push_back((Instant::now(), answered));
        if window.len() > RATE_WINDOW + 1 {
            window.pop_front();
        }
        let rate = match (window.front(), window.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let p99 = tally.latency().value_at_quantile(0.99) as f64 / 1000.0;
        let ok = tally.ok();
        let aim = shape
            .as_ref()
            .map(|shape| format!(" (target {:.0})", shape.rate_at(started.elapsed())))
            .unwrap_or_default();
        bar.set_message(format!(
            "sent {}  ok {}  errors {}  {:.0} req/s{aim}  p99 {:.2} ms",
            tally.sent(),
            ok,
            answered - ok,
            rate,
            p99,
        ));
    }
}
