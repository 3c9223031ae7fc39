//! The counts file the sink examples keep: `scripts/bench.sh` reads it while
//! a load runs to see what a sink has received so far.

use std::{path::PathBuf, time::Duration};

/// Rewrites `path` every 100 ms with `lines()`, one `name=count` line per
/// counter, through a temporary file so a reader never sees half a file.
pub async fn write_counts(path: PathBuf, lines: impl Fn() -> String) {
    let temporary = path.with_extension("tmp");
    let mut last = String::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let now = lines();
        if now == last {
            continue;
        }
        // A few bytes to a local file: too small to be worth a blocking pool.
        let written = std::fs::write(&temporary, &now).and(std::fs::rename(&temporary, &path));
        if let Err(e) = written {
            eprintln!("cannot write {}: {e}", path.display());
        }
        last = now;
    }
}
