//! `burn_cpu` and `hold_memory`: the steps they record, read by the same
//! parsers as a config's `Burn` and `HoldMemory`, and their mistakes
//! placed at their line.

use super::*;
use crate::behaviour::{Burn, Bytes, HoldMemory};

#[test]
fn burn_cpu_takes_what_sleep_takes() {
    let steps = steps(&script(
        r#"burn_cpu(50);
           burn_cpu("hash", 2.5);
           burn_cpu("resize", "1.5s");
           burn_cpu("parse", #{ lognormal: #{ median: 20, p99: 200 } });"#,
    ));
    let burns: Vec<_> = steps
        .iter()
        .map(|step| match step {
            Step::Burn(Burn { name, cpu, .. }) => (name.as_str(), cpu.clone()),
            other => panic!("expected a burn, got {other:?}"),
        })
        .collect();
    assert_eq!(
        burns[..3],
        [
            ("burn_cpu", Latency::Fixed(Duration::from_millis(50))),
            ("hash", Latency::Fixed(Duration::from_micros(2500))),
            ("resize", Latency::Fixed(Duration::from_millis(1500))),
        ]
    );
    assert_eq!((burns[3].0, burns[3].1.kind()), ("parse", "lognormal"));
}

#[test]
fn hold_memory_takes_a_size_and_a_duration() {
    let steps = steps(&script(
        r#"hold_memory(4096, 10);
           hold_memory("cache", "64MiB", "2s");"#,
    ));
    let holds: Vec<_> = steps
        .iter()
        .map(|step| match step {
            Step::HoldMemory(HoldMemory {
                name,
                bytes,
                duration,
                ..
            }) => (name.as_str(), *bytes, duration.clone()),
            other => panic!("expected a hold, got {other:?}"),
        })
        .collect();
    assert_eq!(
        holds,
        [
            (
                "hold_memory",
                Bytes(4096),
                Latency::Fixed(Duration::from_millis(10))
            ),
            (
                "cache",
                Bytes(64 << 20),
                Latency::Fixed(Duration::from_secs(2))
            ),
        ]
    );
}

#[test]
fn mistakes_fail_at_their_line() {
    for (call, expected) in [
        (
            r#"hold_memory("cache", -1, 10);"#,
            "hold_memory: invalid value: integer `-1`, expected a size in bytes",
        ),
        (
            r#"hold_memory("cache", "lots", 10);"#,
            "hold_memory: `lots` is not a size in bytes",
        ),
        (
            r#"hold_memory("cache", 1, -10);"#,
            "hold_memory takes a duration of 0 or more milliseconds",
        ),
        (
            r#"burn_cpu("hash", 3600001);"#,
            "burn_cpu takes at most 3600000 ms (1h), not 3600001 ms",
        ),
        (
            r#"burn_cpu("hash", "2h");"#,
            "burn_cpu: a duration may be at most 1h",
        ),
        (
            r#"burn_cpu("hash", "soon");"#,
            "burn_cpu: `soon` is not a duration",
        ),
    ] {
        let steps = steps(&script(&format!("sleep(1);\n{call}\nsleep(2);")));
        assert_eq!(steps.len(), 2, "{call}: {steps:?}");
        let message = &raise(&steps[1]).message;
        assert!(
            message.starts_with(&format!("test.rhai, line 2, column 1: {expected}")),
            "{call}: {message}"
        );
    }
}
