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
    collections::BTreeSet,
    path::{Path, PathBuf},
};

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
    let folders = BTreeSet::from([script::folder_of(&path)]);
    let label = path.display().to_string();
    let mut reload = Reload {
        last: std::fs::read_to_string(&path).unwrap_or_default(),
        path,
        reloading,
        _scripts: None,
    };
    let watch = script::watch_folders(
        &folders,
        &format!("the config {label} will not reload when it changes"),
        "config-reload",
        move || reload.run(),
    )?;
    tracing::info!(config = label, "watching the config for changes");
    Some(watch)
}

/// The state of the config's reloads between changes.
struct Reload {
    /// The config file.
    path: PathBuf,
    /// Its text as last read, so an event that changed nothing is ignored.
    last: String,
    /// Where a good version goes.
    reloading: Reloading,
    /// The watch on the scripts of the version serving, replaced with it.
    _scripts: Option<script::Watch>,
}

impl Reload {
    /// Reads the file after a change and, when its text changed, serves
    /// it if it is good, or logs why not.
    fn run(&mut self) {
        let label = self.path.display().to_string();
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            // Mid-swap, or removed: the next event reads it again.
            return;
        };
        if text == self.last {
            return;
        }
        self.last = text;
        let reloading = &self.reloading;
        match Config::from_str(&self.last, &label, &reloading.scripting) {
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
                self._scripts = script::watch(&config.scripts);
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
