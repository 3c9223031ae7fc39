use std::time::Duration;

use super::*;
use crate::behaviour::Scope;

fn scenario(json: &str) -> Scenario {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn names(incidents: &Incidents, method: MethodName) -> Vec<String> {
    incidents.in_play(method).map_or_else(Vec::new, |in_play| {
        in_play.0.iter().map(|s| s.name.to_string()).collect()
    })
}

/// Lets the tasks woken by an advance of paused time run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_scenario_starts_at_its_time_and_ends_after_its_length() {
    let incidents = Incidents::new(
        vec![scenario(
            r#"{"name": "slow", "scope": "service", "effect": {"multiply": 2},
                "schedule": {"at": "5m", "for": "2m"}}"#,
        )],
        Metrics::default(),
    );
    let _schedules = incidents.run_schedules();
    settle().await;
    assert!(!incidents.any());
    assert_eq!(
        incidents.list()[0].starts_in,
        Some(Duration::from_secs(300))
    );
    tokio::time::sleep(Duration::from_secs(299)).await;
    settle().await;
    assert!(!incidents.any(), "not before five minutes");
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(names(&incidents, MethodName::A), ["slow"]);
    let listed = &incidents.list()[0];
    assert!(listed.active);
    assert_eq!(listed.ends_in, Some(Duration::from_secs(119)));
    assert_eq!(listed.starts_in, None, "it never starts again");
    tokio::time::sleep(Duration::from_secs(120)).await;
    settle().await;
    assert!(!incidents.any(), "over after two minutes");
}

#[tokio::test(start_paused = true)]
async fn a_repeating_scenario_comes_back_every_period() {
    let incidents = Incidents::new(
        vec![scenario(
            r#"{"name": "blip", "scope": {"method": "B"}, "effect": {"outage": true},
                "schedule": {"every": "10m", "for": "1m"}}"#,
        )],
        Metrics::default(),
    );
    let _schedules = incidents.run_schedules();
    let mut windows = Vec::new();
    for second in 0..(35 * 60) {
        settle().await;
        if incidents.any() {
            windows.push(second / 60);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    windows.dedup();
    assert_eq!(
        windows,
        [0, 10, 20, 30],
        "active for the first minute of each ten"
    );
    assert!(names(&incidents, MethodName::A).is_empty(), "out of scope");
}

#[tokio::test(start_paused = true)]
async fn a_cron_scenario_starts_on_the_minute() {
    let incidents = Incidents::new(
        vec![scenario(
            r#"{"name": "cron", "scope": "service", "effect": {"hang": true},
                "schedule": {"cron": "* * * * *", "for": "10s"}}"#,
        )],
        Metrics::default(),
    );
    let _schedules = incidents.run_schedules();
    let first = incidents.list()[0]
        .starts_in
        .expect("a cron always starts again");
    assert!(first <= Duration::from_secs(60), "{first:?}");
    tokio::time::sleep(first + Duration::from_millis(1)).await;
    settle().await;
    assert!(incidents.any(), "on the minute");
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert!(!incidents.any(), "for ten seconds");
    tokio::time::sleep(Duration::from_secs(50)).await;
    settle().await;
    assert!(incidents.any(), "and on the next minute");
}

#[tokio::test(start_paused = true)]
async fn scenarios_are_started_and_stopped_by_name_in_order() {
    let incidents = Incidents::new(
        vec![
            scenario(r#"{"name": "one", "scope": "service", "effect": {"multiply": 2}}"#),
            scenario(r#"{"name": "two", "scope": {"step": "db"}, "effect": {"multiply": 3}}"#),
        ],
        Metrics::default(),
    );
    assert!(matches!(
        incidents.start("three", None),
        Err(Refusal::Unknown(_, names)) if names == "`one`, `two`"
    ));
    assert!(!incidents.any());
    incidents.start("two", None).unwrap();
    incidents
        .start("one", Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        names(&incidents, MethodName::C),
        ["two", "one"],
        "in the order started"
    );
    assert!(incidents.stop("two"));
    assert!(!incidents.stop("two"), "stopped already");
    incidents.start("one", None).unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;
    settle().await;
    assert_eq!(
        names(&incidents, MethodName::C),
        ["one"],
        "a restart outlives the timer of the start before it"
    );
    let inline = scenario(r#"{"name": "adhoc", "scope": "service", "effect": {"hang": true}}"#);
    incidents.start_scenario(Arc::new(inline), None).unwrap();
    let listed: Vec<_> = incidents
        .list()
        .iter()
        .map(|l| (l.scenario.name.to_string(), l.active))
        .collect();
    assert_eq!(
        listed,
        [
            ("one".into(), true),
            ("two".into(), false),
            ("adhoc".into(), true)
        ]
    );
    assert_eq!(incidents.list()[2].scenario.scope, Scope::Service);
}

#[tokio::test]
async fn the_number_active_is_bounded() {
    let incidents = Incidents::default();
    for n in 0..MAX_SCENARIOS {
        let inline = scenario(&format!(
            r#"{{"name": "s{n}", "scope": "service", "effect": {{"hang": true}}}}"#
        ));
        incidents.start_scenario(Arc::new(inline), None).unwrap();
    }
    let more = scenario(r#"{"name": "more", "scope": "service", "effect": {"hang": true}}"#);
    assert_eq!(
        incidents.start_scenario(Arc::new(more), None),
        Err(Refusal::Full)
    );
}
