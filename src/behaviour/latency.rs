//! How long a step takes: a fixed wait, or a draw from a distribution
//! shaped the way people describe latency.
//!
//! Distributions come from `rand_distr`; only the percentile table's
//! interpolation is Thespian's own. Every draw is clamped to
//! [`MAX_LATENCY`]. Both front ends read a latency through the one
//! `Deserialize` impl in `parse`.

mod parse;

use std::time::Duration;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, LogNormal, Normal, Uniform, weighted::WeightedIndex};

/// The longest a drawn latency may be, and the largest parameter a shape
/// may name. A heavy tail or a wide normal can draw days; a request held
/// that long outlives any caller's deadline and keeps its memory in flight
/// for nothing, so draws beyond an hour are clamped to it.
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// How long a step takes. The large shapes are boxed so that the enum stays
/// three words: scripts build one per sleep of every request in flight.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Any time between a minimum and a maximum, equally likely.
    Uniform(Uniform<f64>),
    /// A bell around a mean: steady work with jitter.
    Normal(Normal<f64>),
    /// A heavy right tail: most calls quick, a few very slow, as measured
    /// latencies usually are.
    LogNormal(LogNormal<f64>),
    /// A piecewise-linear inverse CDF through given percentiles.
    Percentiles(Box<[Point]>),
    /// One of a few values, each with a weight.
    Weighted(Box<Weighted>),
}

/// One point of a percentile table: the quantile in `[0, 1]` and the
/// latency there, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The fraction of draws at or below `ms`.
    pub quantile: f64,
    /// The latency at that quantile, in milliseconds.
    pub ms: f64,
}

/// Values in milliseconds and the index that picks one by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    /// The values, in milliseconds.
    values: Box<[f64]>,
    /// Picks an index into `values`.
    index: WeightedIndex<f64>,
}

impl Latency {
    /// The duration to wait for this one performance, drawn with `rng`.
    /// A fixed latency is returned as it is, without touching `rng`.
    pub fn sample(&self, rng: &mut (impl Rng + ?Sized)) -> Duration {
        let ms = match self {
            Latency::Fixed(duration) => return *duration,
            Latency::Uniform(uniform) => uniform.sample(rng),
            Latency::Normal(normal) => normal.sample(rng),
            Latency::LogNormal(lognormal) => lognormal.sample(rng),
            Latency::Percentiles(points) => interpolate(points, rng.random::<f64>()),
            Latency::Weighted(weighted) => weighted.values[weighted.index.sample(rng)],
        };
        clamped(ms)
    }

    /// What kind of latency this is, for the span: `fixed`, `uniform`,
    /// `normal`, `lognormal`, `percentiles` or `weighted`.
    pub fn kind(&self) -> &'static str {
        match self {
            Latency::Fixed(_) => "fixed",
            Latency::Uniform(_) => "uniform",
            Latency::Normal(_) => "normal",
            Latency::LogNormal(_) => "lognormal",
            Latency::Percentiles(_) => "percentiles",
            Latency::Weighted(_) => "weighted",
        }
    }
}

/// A draw in milliseconds as a duration in `[0, MAX_LATENCY]`; NaN is 0.
fn clamped(ms: f64) -> Duration {
    let cap = MAX_LATENCY.as_secs_f64() * 1000.0;
    Duration::from_secs_f64(ms.max(0.0).min(cap) / 1000.0)
}

/// The latency at quantile `u` of a table whose quantiles rise from 0 to 1.
fn interpolate(points: &[Point], u: f64) -> f64 {
    let above = points
        .iter()
        .position(|point| point.quantile > u)
        .unwrap_or(points.len() - 1)
        .max(1);
    let (low, high) = (points[above - 1], points[above]);
    let span = high.quantile - low.quantile;
    if span <= 0.0 {
        return high.ms;
    }
    low.ms + (high.ms - low.ms) * ((u - low.quantile) / span).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::SmallRng};

    use super::*;

    /// How many draws each statistic is taken over.
    const DRAWS: usize = 20_000;

    fn parsed(json: &str) -> Latency {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// `DRAWS` draws from a fixed seed, in milliseconds, sorted.
    fn draws(latency: &Latency) -> Vec<f64> {
        let rng = &mut SmallRng::seed_from_u64(14);
        let mut ms: Vec<f64> = (0..DRAWS)
            .map(|_| latency.sample(rng).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    fn mean(ms: &[f64]) -> f64 {
        ms.iter().sum::<f64>() / ms.len() as f64
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    #[track_caller]
    fn near(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn a_latency_is_small_enough_to_hold_per_step() {
        assert!(std::mem::size_of::<Latency>() <= 24);
    }

    #[test]
    fn fixed_durations_read_as_milliseconds_or_humantime() {
        for (json, expected) in [
            ("250", Duration::from_millis(250)),
            ("2.5", Duration::from_micros(2_500)),
            (r#""250ms""#, Duration::from_millis(250)),
            (r#""1.5s""#, Duration::from_millis(1_500)),
        ] {
            let latency = parsed(json);
            assert_eq!(latency.kind(), "fixed");
            assert_eq!(latency.sample(&mut rand::rng()), expected, "{json}");
        }
    }

    #[test]
    fn uniform_draws_spread_evenly_between_min_and_max() {
        let ms = draws(&parsed(r#"{"uniform": {"min": 10, "max": "30ms"}}"#));
        near(mean(&ms), 20.0, 0.3);
        near(quantile(&ms, 0.5), 20.0, 0.5);
        near(quantile(&ms, 0.9), 28.0, 0.5);
        assert!(ms[0] >= 10.0 && ms[DRAWS - 1] <= 30.0);
    }

    #[test]
    fn normal_draws_centre_on_the_mean() {
        let ms = draws(&parsed(r#"{"normal": {"mean": 100, "stddev": 10}}"#));
        near(mean(&ms), 100.0, 0.5);
        near(quantile(&ms, 0.5), 100.0, 0.5);
        // One standard deviation above the mean is the 84th percentile.
        near(quantile(&ms, 0.8413), 110.0, 0.8);
    }

    #[test]
    fn lognormal_draws_have_the_median_and_p99_given() {
        let latency = parsed(r#"{"lognormal": {"median": "20ms", "p99": 400}}"#);
        assert_eq!(latency.kind(), "lognormal");
        let ms = draws(&latency);
        near(quantile(&ms, 0.5), 20.0, 1.0);
        near(quantile(&ms, 0.99), 400.0, 40.0);
        // The heavy tail pulls the mean well above the median.
        assert!(mean(&ms) > 30.0, "{}", mean(&ms));
    }

    #[test]
    fn percentile_draws_pass_through_the_table() {
        let ms = draws(&parsed(
            r#"{"percentiles": {"min": 2, "p50": 10, "p90": 50, "p99": 200, "max": "0.5s"}}"#,
        ));
        // The share of draws at or below each point is its quantile.
        let share = |limit: f64| ms.iter().filter(|ms| **ms <= limit).count() as f64 / DRAWS as f64;
        near(share(10.0), 0.5, 0.01);
        near(share(50.0), 0.9, 0.006);
        near(share(200.0), 0.99, 0.002);
        // Each segment adds its width times its midpoint.
        near(
            mean(&ms),
            0.5 * 6.0 + 0.4 * 30.0 + 0.09 * 125.0 + 0.01 * 350.0,
            1.0,
        );
        assert!(ms[0] >= 2.0 && ms[DRAWS - 1] <= 500.0);
        // Left out, min is 0 and max the highest percentile given.
        let ms = draws(&parsed(r#"{"percentiles": {"p50": 10, "p90": 50}}"#));
        near(quantile(&ms, 0.25), 5.0, 0.5);
        near(quantile(&ms, 0.95), 50.0, 0.01);
        assert!(ms[0] >= 0.0 && ms[DRAWS - 1] <= 50.0);
    }

    #[test]
    fn weighted_draws_pick_values_by_weight() {
        let ms = draws(&parsed(
            r#"{"weighted": [{"value": 5, "weight": 3}, {"value": "100ms", "weight": 1},
                             {"value": 7, "weight": 0}]}"#,
        ));
        let fast = ms.iter().filter(|ms| **ms == 5.0).count() as f64 / DRAWS as f64;
        near(fast, 0.75, 0.01);
        assert!(ms.iter().all(|ms| *ms == 5.0 || *ms == 100.0));
    }

    #[test]
    fn draws_are_clamped_to_zero_and_the_cap() {
        let cap = MAX_LATENCY.as_secs_f64() * 1000.0;
        let ms = draws(&parsed(r#"{"normal": {"mean": 0, "stddev": 10}}"#));
        assert_eq!(ms[0], 0.0);
        near(quantile(&ms, 0.25), 0.0, 0.0);
        let ms = draws(&parsed(r#"{"normal": {"mean": "1h", "stddev": "30m"}}"#));
        assert_eq!(ms[DRAWS - 1], cap);
        near(quantile(&ms, 0.75), cap, 0.0);
    }
}
