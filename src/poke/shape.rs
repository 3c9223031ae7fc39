//! The shape of poke's traffic: how many requests a second it aims for at
//! each moment of the run, as a pure function of the time since it began.
//!
//! A shape is written `KIND:PARAMETERS` on the command line:
//!
//! - `constant:50`: 50 a second throughout (what `--rate 50` means);
//! - `ramp:from=10,to=200,over=5m`: from 10 up to 200 over five minutes,
//!   then 200;
//! - `steps:10@30s,50@30s,100@1m`: each rate for its time in turn, then the
//!   last one;
//! - `sine:min=5,max=100,period=10m`: a day's ebb and flow compressed into
//!   ten minutes, starting at its lowest;
//! - `bursts:base=10,peak=300,every=1m,for=5s`: 10 a second, with 5 s at
//!   300 at the start of every minute.

use std::{fmt, str::FromStr, time::Duration};

/// The highest rate any shape may ask for: beyond it the schedule is finer
/// than the timer and the figure would only mislead.
pub const MAX_RATE: f64 = 1_000_000.0;

/// The most steps a `steps:` shape may have.
const MAX_STEPS: usize = 1_000;

/// How many requests a second to aim for, moment by moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// The same rate throughout.
    Constant(f64),
    /// From one rate to another in a straight line, then the second.
    Ramp {
        /// The rate at the start.
        from: f64,
        /// The rate at the end of the ramp, and after.
        to: f64,
        /// How long the ramp takes.
        over: Duration,
    },
    /// Each rate for its time in turn, then the last rate.
    Steps(Vec<(f64, Duration)>),
    /// A sine wave between two rates, starting at the lower.
    Sine {
        /// The lowest rate.
        min: f64,
        /// The highest rate.
        max: f64,
        /// How long one whole wave takes.
        period: Duration,
    },
    /// A base rate, with a burst at a peak rate at the start of every period.
    Bursts {
        /// The rate between bursts.
        base: f64,
        /// The rate during a burst.
        peak: f64,
        /// How often a burst starts.
        every: Duration,
        /// How long each burst lasts.
        length: Duration,
    },
}

impl Shape {
    /// The rate to aim for `elapsed` into the run, in requests per second.
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        let t = elapsed.as_secs_f64();
        match self {
            Shape::Constant(rate) => *rate,
            Shape::Ramp { from, to, over } => {
                let done = (t / over.as_secs_f64()).min(1.0);
                from + (to - from) * done
            }
            Shape::Steps(steps) => {
                let mut left = t;
                for (rate, length) in steps {
                    if left < length.as_secs_f64() {
                        return *rate;
                    }
                    left -= length.as_secs_f64();
                }
                steps.last().map_or(0.0, |(rate, _)| *rate)
            }
            Shape::Sine { min, max, period } => {
                let phase = t / period.as_secs_f64() * std::f64::consts::TAU;
                min + (max - min) * (1.0 - phase.cos()) / 2.0
            }
            Shape::Bursts {
                base,
                peak,
                every,
                length,
            } => {
                if t % every.as_secs_f64() < length.as_secs_f64() {
                    *peak
                } else {
                    *base
                }
            }
        }
    }
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(text: &str) -> Result<Shape, String> {
        let (kind, spec) = text.split_once(':').unwrap_or((text, ""));
        let shape = match kind.trim() {
            "constant" => Shape::Constant(rate(spec.trim())?),
            "ramp" => {
                let p = Parameters::read(spec, &["from", "to", "over"])?;
                Shape::Ramp {
                    from: p.rate("from")?,
                    to: p.rate("to")?,
                    over: p.duration("over")?,
                }
            }
            "steps" => Shape::Steps(steps(spec)?),
            "sine" => {
                let p = Parameters::read(spec, &["min", "max", "period"])?;
                Shape::Sine {
                    min: p.rate("min")?,
                    max: p.rate("max")?,
                    period: p.duration("period")?,
                }
            }
            "bursts" => {
                let p = Parameters::read(spec, &["base", "peak", "every", "for"])?;
                let (every, length) = (p.duration("every")?, p.duration("for")?);
                if length > every {
                    return Err("a burst cannot last longer than `every`".to_owned());
                }
                Shape::Bursts {
                    base: p.rate("base")?,
                    peak: p.rate("peak")?,
                    every,
                    length,
                }
            }
            other => {
                return Err(format!(
                    "`{other}` is not a shape: use constant, ramp, steps, sine or bursts"
                ));
            }
        };
        Ok(shape)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Shape::Constant(rate) => write!(f, "constant:{rate}"),
            Shape::Ramp { from, to, over } => {
                write!(f, "ramp:from={from},to={to},over={}", d(over))
            }
            Shape::Steps(steps) => {
                let steps: Vec<String> =
                    steps.iter().map(|(r, l)| format!("{r}@{}", d(l))).collect();
                write!(f, "steps:{}", steps.join(","))
            }
            Shape::Sine { min, max, period } => {
                write!(f, "sine:min={min},max={max},period={}", d(period))
            }
            Shape::Bursts {
                base,
                peak,
                every,
                length,
            } => write!(
                f,
                "bursts:base={base},peak={peak},every={},for={}",
                d(every),
                d(length)
            ),
        }
    }
}

/// The `name=value` parameters of a shape, each of `names` given once.
struct Parameters<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Parameters<'a> {
    fn read(spec: &'a str, names: &[&str]) -> Result<Parameters<'a>, String> {
        let mut given = Vec::new();
        for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` should be name=value"))?;
            let name = name.trim();
            if !names.contains(&name) {
                return Err(format!(
                    "unknown parameter `{name}`: expected {}",
                    names.join(", ")
                ));
            }
            if given.iter().any(|(n, _)| *n == name) {
                return Err(format!("`{name}` is given twice"));
            }
            given.push((name, value.trim()));
        }
        if let Some(missing) = names.iter().find(|n| !given.iter().any(|(g, _)| g == *n)) {
            return Err(format!(
                "missing `{missing}=`: expected {}",
                names.join(", ")
            ));
        }
        Ok(Parameters(given))
    }

    fn value(&self, name: &str) -> &'a str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v)
    }

    fn rate(&self, name: &str) -> Result<f64, String> {
        rate(self.value(name)).map_err(|e| format!("`{name}`: {e}"))
    }

    fn duration(&self, name: &str) -> Result<Duration, String> {
        duration(self.value(name)).map_err(|e| format!("`{name}`: {e}"))
    }
}

/// `10@30s,50@1m`: rates, each with how long it lasts.
fn steps(spec: &str) -> Result<Vec<(f64, Duration)>, String> {
    let steps: Vec<(f64, Duration)> = spec
        .split(',')
        .map(|step| {
            let (rate_text, length) = step
                .split_once('@')
                .ok_or_else(|| format!("`{step}` should be RATE@DURATION, such as 50@30s"))?;
            Ok((rate(rate_text.trim())?, duration(length.trim())?))
        })
        .collect::<Result<_, String>>()?;
    if steps.len() > MAX_STEPS {
        return Err(format!("at most {MAX_STEPS} steps"));
    }
    Ok(steps)
}

/// A rate: a number of requests per second from 0 (a pause) to
/// [`MAX_RATE`].
pub fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && (0.0..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "a rate must be from 0 to {MAX_RATE} requests per second"
        ))
    }
}

/// A length of time longer than zero, such as `30s` or `5m`.
fn duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than 0".to_owned()),
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(shape: &str, seconds: f64) -> f64 {
        shape
            .parse::<Shape>()
            .unwrap()
            .rate_at(Duration::from_secs_f64(seconds))
    }

    #[test]
    fn each_shape_gives_its_rate_at_each_moment() {
        assert_eq!(at("constant:50", 123.0), 50.0);

        let ramp = "ramp:from=10,to=110,over=10s";
        assert_eq!(at(ramp, 0.0), 10.0);
        assert_eq!(at(ramp, 5.0), 60.0);
        assert_eq!(at(ramp, 10.0), 110.0);
        assert_eq!(at(ramp, 100.0), 110.0);

        let steps = "steps:10@30s,50@30s,0@10s,100@1m";
        assert_eq!(at(steps, 0.0), 10.0);
        assert_eq!(at(steps, 29.9), 10.0);
        assert_eq!(at(steps, 30.0), 50.0);
        assert_eq!(at(steps, 65.0), 0.0);
        assert_eq!(at(steps, 70.0), 100.0);
        assert_eq!(at(steps, 1000.0), 100.0);

        let sine = "sine:min=10,max=30,period=1m";
        assert!((at(sine, 0.0) - 10.0).abs() < 1e-9);
        assert!((at(sine, 15.0) - 20.0).abs() < 1e-9);
        assert!((at(sine, 30.0) - 30.0).abs() < 1e-9);
        assert!((at(sine, 60.0) - 10.0).abs() < 1e-9);

        let bursts = "bursts:base=10,peak=300,every=1m,for=5s";
        assert_eq!(at(bursts, 0.0), 300.0);
        assert_eq!(at(bursts, 4.9), 300.0);
        assert_eq!(at(bursts, 5.0), 10.0);
        assert_eq!(at(bursts, 61.0), 300.0);
    }

    #[test]
    fn a_shape_reads_back_as_it_is_written() {
        for text in [
            "constant:50",
            "ramp:from=10,to=200,over=5m",
            "steps:10@30s,50@1m",
            "sine:min=5,max=100,period=10m",
            "bursts:base=10,peak=300,every=1m,for=5s",
        ] {
            assert_eq!(text.parse::<Shape>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_shapes_say_what_is_wrong() {
        let error = |text: &str| text.parse::<Shape>().unwrap_err();
        assert!(error("square:1").contains("not a shape"));
        assert!(error("ramp:from=1,to=2").contains("missing `over=`"));
        assert!(error("ramp:from=1,to=2,over=0s").contains("longer than 0"));
        assert!(error("ramp:from=-1,to=2,over=1s").contains("`from`"));
        assert!(error("sine:min=1,max=2,period=1m,phase=3").contains("unknown parameter"));
        assert!(error("steps:10").contains("RATE@DURATION"));
        assert!(error("bursts:base=1,peak=2,every=1s,for=2s").contains("longer than `every`"));
        assert!(error("constant:fast").contains("not a number"));
        assert!(error("constant:2000000").contains("from 0 to"));
    }
}
