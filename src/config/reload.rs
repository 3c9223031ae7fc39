//! Hot reload of `CONFIG_FILE`: watches the file's folder and, when the
//! file's text changes, reads and checks it again, with no restart.
//!
//! The folder is watched rather than the file for the reasons scripts'
//! folders are (see [`script::watch`](crate::script::watch)): editors save
//! by renaming a new file over the old, and Kubernetes updates a mounted
//! ConfigMap by swapping a symlink. A good version serves from the next
//! request; a bad one is logged with its path and the JSON path of the
//! mistake, and the last good one keeps serving. Requests already in flight
//! finish on the version they started with, since each takes the version
//! current when it starts.

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
};

use notify::{RecursiveMode, Watcher};

use super::Config;
use crate::{
    behaviour::Repertoire,
    script::{self, Scripting},
};

/// What a reload needs besides the file: how to load its scripts, where
/// to put the new behaviour, and the scenario names read at start.
pub struct Reloading {
    /// Loads the scripts a new version names.
    pub scripting: Scripting,
    /// Where a good version goes.
    pub repertoire: Repertoire,
    /// The names of the scenarios declared at start, to warn when a new
    /// version declares others: scenarios are read once.
    pub scenarios: Vec<String>,
}

/// Starts watching the config file at `path`. Returns `None`, after
/// logging why, when the OS refuses a watch; the config then keeps the
/// version it started with.
pub fn watch(path: &Path, reloading: Reloading) -> Option<script::Watch> {
    let path = path.to_path_buf();
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let last = std::fs::read_to_string(&path).unwrap_or_default();
    let (events, received) = mpsc::channel();
    let watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(event);
    })
    .and_then(|mut watcher| {
        watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    let watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(
                config = %path.display(),
                "the config will not reload when it changes: cannot watch its folder: {e}"
            );
            return None;
        }
    };
    let label = path.display().to_string();
    let spawned = std::thread::Builder::new()
        .name("config-reload".to_owned())
        .spawn(move || reload_on_change(&received, &path, last, &reloading));
    if let Err(e) = spawned {
        tracing::warn!(
            config = label,
            "the config will not reload when it changes: {e}"
        );
        return None;
    }
    tracing::info!(config = label, "watching the config for changes");
    Some(script::Watch::holding(watcher))
}

/// Waits for a change, lets the burst settle, then reloads a file whose
/// text changed; until the watcher is dropped.
fn reload_on_change(
    received: &mpsc::Receiver<notify::Result<notify::Event>>,
    path: &Path,
    mut last: String,
    reloading: &Reloading,
) {
    // The scripts of the versions loaded since start, watched in turn.
    let mut _scripts = None;
    while let Ok(event) = received.recv() {
        if event.is_err() {
            continue;
        }
        if !script::settle(received) {
            return;
        }
        let label = path.display().to_string();
        let Ok(text) = std::fs::read_to_string(path) else {
            // Mid-swap, or removed: the next event reads it again.
            continue;
        };
        if text == last {
            continue;
        }
        last = text;
        match Config::from_str(&last, &label, &reloading.scripting) {
            Ok(config) => {
                let names: Vec<String> = config
                    .scenarios
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect();
                if names != reloading.scenarios {
                    tracing::warn!(
                        config = label,
                        "the changed config declares other scenarios; scenarios are read \
                         once, at start, so the ones from then stay until a restart"
                    );
                }
                _scripts = script::watch(&config.scripts);
                reloading.repertoire.replace(config.behaviour);
                tracing::info!(config = label, "reloaded the changed config");
            }
            Err(e) => {
                tracing::error!(
                    config = label,
                    "the changed config cannot be used, so the last good version keeps \
                     serving: {e}"
                );
            }
        }
    }
}
