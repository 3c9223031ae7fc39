//! Hot reload: watches the folders that hold the scripts in use and
//! recompiles a script when its file changes, with no restart.
//!
//! Folders are watched rather than files, because editors save by writing a
//! new file and renaming it over the old one, and Kubernetes updates a
//! mounted ConfigMap by swapping a symlink: either way the watched file is
//! replaced, not written. After a burst of events settles, every script in
//! the folder is read again; one whose text changed is recompiled. A version
//! that does not compile is logged with its position and the last good one
//! keeps serving. Requests already running finish on the version they
//! started with, since each builds its steps when it starts.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, mpsc},
    time::Duration,
};

use notify::{
    EventKind, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode},
};

use super::{Reload, Script};

/// How long the folder must be quiet before scripts are read again: an
/// editor's save or a ConfigMap swap is several events in a few
/// milliseconds.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Keeps the watch running; dropping it stops the watch.
pub struct Watch {
    /// The OS watch; its events feed the reload thread, which ends when this
    /// is dropped.
    _watcher: notify::RecommendedWatcher,
}

impl Watch {
    /// Holds `watcher` running until the returned watch is dropped.
    pub(crate) fn holding(watcher: notify::RecommendedWatcher) -> Watch {
        Watch { _watcher: watcher }
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// Starts watching the files of `scripts`. Returns `None`, after logging
/// why, when there is nothing to watch or the OS refuses a watch; scripts
/// then keep the version they started with.
pub fn watch(scripts: &[Arc<Script>]) -> Option<Watch> {
    let scripts: Vec<Arc<Script>> = scripts
        .iter()
        .filter(|script| script.path().is_some())
        .cloned()
        .collect();
    let folders: BTreeSet<PathBuf> = scripts
        .iter()
        .filter_map(|script| script.path()?.parent().map(PathBuf::from))
        .map(|folder| {
            if folder.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                folder
            }
        })
        .collect();
    if folders.is_empty() {
        return None;
    }

    let (events, received) = mpsc::channel();
    let mut watcher = match notify::recommended_watcher(move |event| {
        let _ = events.send(event);
    }) {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!("scripts will not reload when they change: cannot watch files: {e}");
            return None;
        }
    };
    for folder in &folders {
        if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
            tracing::warn!(
                folder = %folder.display(),
                "scripts in this folder will not reload when they change: {e}"
            );
        }
    }
    let spawned = std::thread::Builder::new()
        .name("script-reload".to_owned())
        .spawn(move || reload_on_change(&received, &scripts));
    if let Err(e) = spawned {
        tracing::warn!("scripts will not reload when they change: {e}");
        return None;
    }
    tracing::info!(
        folders = ?folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "watching scripts for changes"
    );
    Some(Watch { _watcher: watcher })
}

/// Waits for a change, lets the burst settle, then reloads; until the
/// watcher is dropped.
fn reload_on_change(
    received: &mpsc::Receiver<notify::Result<notify::Event>>,
    scripts: &[Arc<Script>],
) {
    while let Ok(event) = received.recv() {
        if !matters(&event) {
            continue;
        }
        if !settle(received) {
            return;
        }
        for script in scripts {
            match script.reload() {
                Reload::Unchanged => {}
                Reload::Reloaded => {
                    tracing::info!(script = script.label(), "reloaded a changed script");
                }
                Reload::Failed(e) => {
                    tracing::error!(
                        script = script.label(),
                        "the changed script cannot be used, so the last good version keeps serving: {e}"
                    );
                }
            }
        }
    }
}

/// Waits until `received` has been quiet for [`DEBOUNCE`]: an editor's save
/// or a ConfigMap swap is several events in a few milliseconds. False when
/// the watcher is gone.
pub(crate) fn settle(received: &mpsc::Receiver<notify::Result<notify::Event>>) -> bool {
    loop {
        match received.recv_timeout(DEBOUNCE) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => return true,
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// Whether an event may mean a changed script. Opening and reading a file
/// does not, and is ignored: the reload itself reads every script.
fn matters(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        Err(e) => {
            tracing::warn!("watching scripts: {e}");
            false
        }
    }
}
