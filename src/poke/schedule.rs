//! When poke starts each request: the traffic's [`Shape`] turned into start
//! times.

use std::time::Duration;

use tokio::time::Instant;

use super::shape::Shape;

/// The step the rate is followed in: a request is due once the requests
/// per second aimed for, added up over time, make a whole one, and the rate
/// is read again at least this often, so a rate that rises from nothing is
/// followed as it rises rather than after one long first interval.
const STEP: Duration = Duration::from_millis(10);

/// How late a start may be and still be made on its schedule: a start later
/// than this (every slot was busy, or the machine too) is made at once, and
/// the schedule goes on from then, so missed starts are skipped rather than
/// made up later in a long burst. It is well above the timer's millisecond,
/// so that rates above a thousand a second start several requests per tick
/// of the timer, and a busy machine's late wake-ups do not thin the load.
const LATE_SLACK: Duration = Duration::from_millis(100);

/// The pace of requests, kept apart from the loop that sends them so that
/// the loop does not care how the traffic is shaped.
#[derive(Debug)]
pub(super) struct Schedule {
    /// The rate to aim for over time; `None` sends as fast as the limit on
    /// requests in flight allows (closed loop).
    shape: Option<Shape>,
    /// When the run began, which the shape's time counts from.
    started: Instant,
    /// When the last request was due.
    at: Instant,
    /// The part of a request the rate has made due since then.
    due: f64,
}

impl Schedule {
    /// A schedule that follows `shape`, or an unpaced one without; a paced
    /// schedule's first request is due at once.
    pub(super) fn new(shape: Option<Shape>) -> Schedule {
        let started = Instant::now();
        Schedule {
            shape,
            started,
            at: started,
            due: 1.0,
        }
    }

    /// When the next request is due, taking its turn: a start already due
    /// is at or before now. Starts late beyond [`LATE_SLACK`] are given up,
    /// and the schedule goes on from now.
    pub(super) fn next(&mut self) -> Instant {
        let Some(shape) = &self.shape else {
            return self.at;
        };
        let step = STEP.as_secs_f64();
        let mut at = self.at;
        while self.due < 1.0 {
            let rate = shape.rate_at(at - self.started);
            let needed = (1.0 - self.due) / rate;
            if needed <= step {
                at += Duration::from_secs_f64(needed);
                self.due = 1.0;
            } else {
                at += STEP;
                self.due += rate * step;
            }
        }
        self.due -= 1.0;
        let now = Instant::now();
        if now > at + LATE_SLACK {
            self.at = now;
            self.due = 0.0;
            return now;
        }
        self.at = at;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until the next request of `schedule` is due.
    async fn wait(schedule: &mut Schedule) {
        tokio::time::sleep_until(schedule.next()).await;
    }

    /// How many requests `shape` starts in each whole second of `seconds`.
    async fn per_second(shape: &str, seconds: usize) -> Vec<usize> {
        let mut schedule = Schedule::new(Some(shape.parse().unwrap()));
        let started = Instant::now();
        let mut counts = vec![0; seconds];
        loop {
            wait(&mut schedule).await;
            let second = (Instant::now() - started).as_secs() as usize;
            match counts.get_mut(second) {
                Some(count) => *count += 1,
                None => return counts,
            }
        }
    }

    /// Whether `counts` are each within one of `expected`.
    fn near(counts: &[usize], expected: &[usize]) -> bool {
        counts.len() == expected.len()
            && counts
                .iter()
                .zip(expected)
                .all(|(c, e)| c.abs_diff(*e) <= 1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_constant_rate_starts_that_many_each_second() {
        let counts = per_second("constant:20", 5).await;
        assert!(near(&counts, &[20; 5]), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ramp_climbs_by_the_same_step_each_second() {
        // From 10 to 110 over 10 s: on average 15, 25, ... in each second.
        let counts = per_second("ramp:from=10,to=110,over=10s", 12).await;
        let expected = [15, 25, 35, 45, 55, 65, 75, 85, 95, 105, 110, 110];
        assert!(near(&counts, &expected), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn steps_hold_each_rate_and_a_rate_of_zero_pauses() {
        let counts = per_second("steps:10@2s,0@2s,40@2s", 7).await;
        assert!(near(&counts, &[10, 10, 0, 0, 40, 40, 40]), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sine_wave_rises_to_its_peak_and_falls_back() {
        let counts = per_second("sine:min=0,max=100,period=8s", 8).await;
        // The wave's average over each second.
        let expected = [5, 31, 69, 95, 95, 69, 31, 5];
        let close = counts
            .iter()
            .zip(&expected)
            .all(|(c, e)| c.abs_diff(*e) <= 4);
        assert!(close, "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_come_at_the_start_of_every_period() {
        let counts = per_second("bursts:base=5,peak=50,every=3s,for=1s", 6).await;
        assert!(near(&counts, &[50, 5, 5, 50, 5, 5]), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_that_cannot_be_made_on_time_is_skipped() {
        let mut schedule = Schedule::new(Some(Shape::Constant(100.0)));
        wait(&mut schedule).await;
        // Every slot busy for a second: a hundred starts missed.
        tokio::time::advance(Duration::from_secs(1)).await;
        let before = Instant::now();
        wait(&mut schedule).await;
        wait(&mut schedule).await;
        // One late start now, then back on the 10 ms schedule: no burst.
        assert!(Instant::now() - before >= Duration::from_millis(10));
    }
}
