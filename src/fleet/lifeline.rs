//! What ties an instance's life to `up`'s, so that none outlives it, even
//! when `up` is killed with SIGKILL and can clean nothing up:
//!
//! - On Linux the kernel sends the instance SIGTERM when `up` dies
//!   (`PR_SET_PDEATHSIG`), and it shuts down gracefully.
//! - Everywhere, the instance's stdin is a pipe from `up`, and the hidden
//!   setting [`STOP_ON_STDIN_EOF`] makes it shut down gracefully when the
//!   pipe closes, which it does when `up` dies, however it dies.
//!
//! Each instance is also put in a process group of its own, so Ctrl-C in a
//! terminal reaches `up` alone, and `up` stops the instances in its own way.

use std::{future::Future, io::Read as _};

use tokio::{process::Command, sync::oneshot};

/// The variable that makes an instance shut down when its stdin closes.
pub const STOP_ON_STDIN_EOF: &str = "STOP_ON_STDIN_EOF";

/// Makes `command` start an instance whose life ends with this process's.
///
/// The death signal is tied to the *thread* that spawns the child, not to
/// the process: `up` spawns every instance from the thread that runs its
/// main future, which lives as long as `up` does.
pub fn tie(command: &mut Command) {
    command.stdin(std::process::Stdio::piped());
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs in the child between fork and exec, and
        // calls only async-signal-safe functions (prctl, getppid).
        let parent = std::process::id();
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the death signal was set: it will
                // never come, so do not start at all.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("up exited while starting"));
                }
                Ok(())
            });
        }
    }
}

/// When `watch`, `signal` or the closing of stdin, whichever comes first;
/// otherwise `signal` alone. The watch starts now, not at the first poll.
pub fn or_stdin_closed(signal: impl Future<Output = ()>, watch: bool) -> impl Future<Output = ()> {
    let closed = watch.then(stdin_closed).flatten();
    async move {
        match closed {
            Some(closed) => {
                tokio::select! {
                    () = signal => {}
                    _ = closed => {}
                }
            }
            None => signal.await,
        }
    }
}

/// Completes when stdin reaches its end or fails; `None` when it cannot be
/// watched. Reading stdin blocks, so a thread of its own does it.
fn stdin_closed() -> Option<oneshot::Receiver<()>> {
    let (closed, receiver) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut buffer = [0u8; 64];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = closed.send(());
        });
    match spawned {
        Ok(_) => Some(receiver),
        Err(e) => {
            tracing::warn!("cannot watch stdin for the end of `up`: {e}");
            None
        }
    }
}
