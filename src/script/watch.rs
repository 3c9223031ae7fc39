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
    path::{Path, PathBuf},
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
        .filter_map(|script| script.path().map(folder_of))
        .collect();
    if folders.is_empty() {
        return None;
    }
    let watch = watch_folders(
        &folders,
        "scripts will not reload when they change",
        "script-reload",
        move || {
            reload(&scripts);
        },
    )?;
    tracing::info!(
        folders = ?folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "watching scripts for changes"
    );
    Some(watch)
}

/// The folder that holds `file`, watched in its place.
pub(crate) fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Watches `folders` and, on a thread named `thread`, calls `on_change`
/// once each burst of changes in them has settled, until the returned
/// watch is dropped. `unwatched` begins the warnings when the OS refuses
/// a watch, saying what will not reload; `None` when none could start.
pub(crate) fn watch_folders(
    folders: &BTreeSet<PathBuf>,
    unwatched: &str,
    thread: &str,
    mut on_change: impl FnMut() + Send + 'static,
) -> Option<Watch> {
    let (events, received) = mpsc::channel();
    let mut watcher = match notify::recommended_watcher(move |event| {
        let _ = events.send(event);
    }) {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!("{unwatched}: cannot watch files: {e}");
            return None;
        }
    };
    for folder in folders {
        if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
            tracing::warn!(
                folder = %folder.display(),
                "{unwatched}: cannot watch this folder: {e}"
            );
        }
    }
    let spawned = std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            while let Ok(event) = received.recv() {
                if !matters(&event) {
                    continue;
                }
                if !settle(&received) {
                    return;
                }
                on_change();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("{unwatched}: {e}");
        return None;
    }
    Some(Watch { _watcher: watcher })
}

/// Reads every script again, recompiling those whose text changed.
fn reload(scripts: &[Arc<Script>]) {
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

/// Waits until `received` has been quiet for [`DEBOUNCE`]: an editor's save
/// or a ConfigMap swap is several events in a few milliseconds. False when
/// the watcher is gone.
fn settle(received: &mpsc::Receiver<notify::Result<notify::Event>>) -> bool {
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
            tracing::warn!("watching for changes: {e}");
            false
        }
    }
}
