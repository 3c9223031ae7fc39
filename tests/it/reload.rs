//! `CONFIG_FILE` reloaded while the instance serves: a good version serves
//! from the next request, a bad one is logged with its path while the last
//! good one keeps serving, a request in flight finishes on the version it
//! started with, and a ConfigMap's symlink swap is picked up as an edit is.

use std::{path::Path, time::Duration};

use crate::support::DEFAULT_WAIT;
use crate::support::instance::Instance;
use serde_json::json;
use thespian::proto::Empty;

/// A config whose method A waits `ms`, then fails with `code` if given.
fn version(ms: u64, code: Option<&str>) -> String {
    let mut sleep = json!({ "tracing_name": "work", "duration_ms": ms });
    if let Some(code) = code {
        sleep["failures"] = json!([{ "chance": 1, "code": code }]);
    }
    json!({ "grpc_method_a": { "tracing_name": "serve A",
        "operations": [{ "Action": { "Sleep": sleep } }] } })
    .to_string()
}

/// Writes `text` to `path` as editors save: a new file renamed over it.
fn save(path: &Path, text: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, text).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// How many lines of `instance` contain `text`.
fn count(instance: &Instance, text: &str) -> usize {
    instance.lines().iter().filter(|l| l.contains(text)).count()
}

/// Waits until `instance` has logged `text` `times` times.
async fn logged(instance: &Instance, text: &str, times: usize) {
    let mut seen = 0;
    instance
        .wait_for_line(
            |l| {
                seen += usize::from(l.contains(text));
                seen >= times
            },
            DEFAULT_WAIT,
        )
        .await;
}

async fn code_of_a(instance: &Instance) -> tonic::Code {
    match instance.client().await.a(Empty {}).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_config_serves_from_the_next_request_and_a_bad_one_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("thespian.jsonc");
    std::fs::write(&path, version(1, None)).unwrap();
    let instance = Instance::builder("reloaded")
        .env("CONFIG_FILE", path.to_str().unwrap())
        .start()
        .await;
    logged(&instance, "watching the config for changes", 1).await;
    assert_eq!(code_of_a(&instance).await, tonic::Code::Ok);

    save(&path, &version(1, Some("NOT_FOUND")));
    logged(&instance, "reloaded the changed config", 1).await;
    assert_eq!(code_of_a(&instance).await, tonic::Code::NotFound);

    // A mistake is logged with the file and the JSON path; the last good
    // version keeps serving.
    save(&path, r#"{"grpc_method_a": {"tracing_name": 5}}"#);
    let refused = instance
        .wait_for_line(|l| l.contains("cannot be used"), DEFAULT_WAIT)
        .await;
    assert!(refused.contains(path.to_str().unwrap()), "{refused}");
    assert!(refused.contains("grpc_method_a.tracing_name"), "{refused}");
    assert_eq!(code_of_a(&instance).await, tonic::Code::NotFound);

    save(&path, &version(1, None));
    logged(&instance, "reloaded the changed config", 2).await;
    assert_eq!(code_of_a(&instance).await, tonic::Code::Ok);
    assert_eq!(
        count(&instance, "cannot be used"),
        1,
        "a bad version is told once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_finishes_on_the_version_it_started_with() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("thespian.jsonc");
    std::fs::write(&path, version(3_000, None)).unwrap();
    // A sleep's start is a debug line: it says when the request is in flight.
    let instance = Instance::builder("in-flight")
        .env("CONFIG_FILE", path.to_str().unwrap())
        .env("RUST_LOG", "info,thespian::executor=debug")
        .start()
        .await;
    logged(&instance, "watching the config for changes", 1).await;
    let mut client = instance.client().await;
    let in_flight = tokio::spawn(async move { client.a(Empty {}).await.map(|_| ()) });
    instance
        .wait_for_line(|l| l.contains("sleeping 3000 ms"), DEFAULT_WAIT)
        .await;

    save(&path, &version(1, Some("ABORTED")));
    logged(&instance, "reloaded the changed config", 1).await;
    assert!(
        !in_flight.is_finished(),
        "the reload came while it was in flight"
    );
    assert_eq!(code_of_a(&instance).await, tonic::Code::Aborted);
    let finished = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("it finishes")
        .unwrap();
    assert!(finished.is_ok(), "on the old version: {finished:?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_config_mounted_from_a_kubernetes_config_map_reloads_when_the_map_changes() {
    use std::os::unix::fs::symlink;
    // Kubernetes mounts a ConfigMap as files that link through `..data` to
    // a timestamped folder, and updates it by swapping `..data`.
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    std::fs::create_dir(root.join("..2026_01")).unwrap();
    std::fs::write(root.join("..2026_01/config.json"), version(1, None)).unwrap();
    symlink("..2026_01", root.join("..data")).unwrap();
    symlink("..data/config.json", root.join("config.json")).unwrap();
    let instance = Instance::builder("mounted-config")
        .env("CONFIG_FILE", root.join("config.json").to_str().unwrap())
        .start()
        .await;
    logged(&instance, "watching the config for changes", 1).await;
    assert_eq!(code_of_a(&instance).await, tonic::Code::Ok);

    std::fs::create_dir(root.join("..2026_02")).unwrap();
    let broken = version(1, Some("UNAVAILABLE"));
    std::fs::write(root.join("..2026_02/config.json"), broken).unwrap();
    symlink("..2026_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_01")).unwrap();
    logged(&instance, "reloaded the changed config", 1).await;
    assert_eq!(code_of_a(&instance).await, tonic::Code::Unavailable);
}
