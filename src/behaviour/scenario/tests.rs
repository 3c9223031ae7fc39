use super::*;

fn read(json: &str) -> Result<Scenario, String> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

#[test]
fn each_scope_effect_and_schedule_is_read() {
    let slow = read(
        r#"{"name": "db-slow", "scope": {"step": "query"},
            "effect": {"multiply": 3}, "schedule": {"at": "5m", "for": "2m"}}"#,
    )
    .unwrap();
    assert_eq!(&*slow.name, "db-slow");
    assert_eq!(slow.scope, Scope::Step("query".into()));
    assert_eq!(slow.disruption.slowdown, Some(Slowdown::Multiply(3.0)));
    assert!(matches!(
        slow.schedule.start,
        Some(Start::After { at, every: None }) if at == Duration::from_secs(300)
    ));
    assert_eq!(slow.schedule.length, Some(Duration::from_secs(120)));

    let down =
        read(r#"{"name": "down", "scope": {"method": "B"}, "effect": {"outage": true}}"#).unwrap();
    assert_eq!(down.scope, Scope::Method(MethodName::B));
    let replaced = read(
        r#"{"name": "r", "scope": "service", "effect": {"replace": {"uniform": {"min": 1, "max": 2}}}}"#,
    )
    .unwrap();
    assert!(matches!(
        replaced.disruption.slowdown,
        Some(Slowdown::Replace(Latency::Uniform(_)))
    ));
    assert!(down.disruption.outage);
    assert!(down.schedule.start.is_none(), "started only by hand");

    let flaky = read(
        r#"{"name": "flaky", "scope": "service",
            "effect": {"duration": "200ms", "failures": [{"chance": 0.5, "code": "UNAVAILABLE"}]},
            "schedule": {"cron": "*/5 * * * *", "for": "1m"}}"#,
    )
    .unwrap();
    assert_eq!(flaky.scope, Scope::Service);
    assert_eq!(flaky.disruption.failures.outcomes().len(), 1);
    assert!(matches!(flaky.schedule.start, Some(Start::Cron(..))));
    let seconds = read(
        r#"{"name": "s", "scope": "service", "effect": {"hang": true},
            "schedule": {"cron": "30 */5 * * * *", "for": "10s"}}"#,
    );
    assert!(seconds.is_ok(), "a leading seconds field: {seconds:?}");
    assert_eq!(
        flaky.disruption.to_string(),
        "waits +fixed, fails 50%",
        "the summary the control API lists"
    );
}

#[test]
fn mistakes_are_named_at_their_path() {
    for (json, path, says) in [
        (
            r#"{"name": "x", "scope": "everywhere", "effect": {"hang": true}}"#,
            "scope",
            "a scope",
        ),
        (
            r#"{"name": "x", "scope": {"method": "D"}, "effect": {"hang": true}}"#,
            "scope",
            "unknown method",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"multiply": 2, "duration": 5}}"#,
            "effect",
            "at most one of",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"multiply": -1}}"#,
            "effect",
            "above 0",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"outage": true, "multiply": 2}}"#,
            "effect",
            "no other effect",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {}}"#,
            "effect",
            "at least one",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"failures": [{"chance": 2}]}}"#,
            "effect.failures[0].chance",
            "between 0 and 1",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"replace": "soon"}}"#,
            "effect.replace",
            "soon",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"hang": true},
                "schedule": {"every": "1m"}}"#,
            "schedule",
            "needs `for`",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"hang": true},
                "schedule": {"every": "1m", "for": "2m"}}"#,
            "schedule",
            "shorter than `every`",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"hang": true},
                "schedule": {"cron": "not a cron", "for": "1m"}}"#,
            "schedule",
            "not a cron",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"hang": true},
                "schedule": {"at": "whenever"}}"#,
            "schedule.at",
            "not a time",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"hang": true},
                "schedule": {"at": "2y"}}"#,
            "schedule.at",
            "at most",
        ),
        (
            r#"{"name": "", "scope": "service", "effect": {"hang": true}}"#,
            ".",
            "1 to 64 bytes",
        ),
        (
            r#"{"name": "x", "scope": "service", "effect": {"hang": true}, "when": 1}"#,
            "when",
            "unknown field",
        ),
    ] {
        let error = read(json).expect_err(json);
        assert!(
            error.starts_with(&format!("{path}:")),
            "{json}: {error} is not at {path}"
        );
        assert!(error.contains(says), "{json}: {error}");
    }
}

#[test]
fn a_scope_reaches_its_requests() {
    assert!(Scope::Service.covers_request(MethodName::A));
    assert!(Scope::Method(MethodName::B).covers_request(MethodName::B));
    assert!(!Scope::Method(MethodName::B).covers_request(MethodName::A));
    assert!(!Scope::Method(MethodName::B).reaches(MethodName::A));
    let step = Scope::Step("db".into());
    assert!(!step.covers_request(MethodName::A) && step.reaches(MethodName::A));
}

#[test]
fn a_time_from_the_control_api_is_bounded_as_a_configs_is() {
    assert_eq!(
        super::parse_time(" 90s "),
        Ok(std::time::Duration::from_secs(90))
    );
    let error = super::parse_time("400days").unwrap_err();
    assert!(error.contains("at most"), "{error}");
    assert!(super::parse_time("soon").is_err());
}
