//! The config lock: one changing command at a time per config directory.
//!
//! `add`, `remove`, `enable`, `disable`, `restore` and `client add`, `revoke`
//! and `rotate` each check the files (does the name exist? is the result
//! valid?) and then write. Two of them at once could both pass the check and
//! both write, the later one silently replacing the earlier (and both
//! backups claiming the file was absent). So
//! each holds an exclusive `flock` on `.mcp-hub.lock` beside the main config
//! file from reading the files until the write is done. The hub itself never
//! takes it: it only reads, and every write is an atomic rename.
//!
//! A second command waits for the lock, at most [`WAIT`], then gives up with
//! an error naming the lock file (a command holds it for well under a second;
//! the reload and the test after a write run without it).

use anyhow::anyhow;
use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a command waits for another one to finish its change.
pub const WAIT: Duration = Duration::from_secs(10);

/// Held while a command checks and writes the config; released on drop.
pub struct ConfigLock {
    _lock: Flock<std::fs::File>,
}

/// The lock file of a main config file.
pub fn path(main: &Path) -> PathBuf {
    main.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".mcp-hub.lock")
}

/// Takes the config lock, waiting at most `wait` for another command to
/// release it.
pub fn take(main: &Path, wait: Duration) -> anyhow::Result<ConfigLock> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = path(main);
    // O_NOFOLLOW: a symlink planted here must not make us create or open
    // some other file.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .map_err(|e| anyhow!("{}: cannot open the config lock: {e}", p.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(ConfigLock { _lock: lock }),
            Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) => {
                if Instant::now() >= deadline {
                    return Err(anyhow!(
                        "another mcp-hub command is changing the config (it holds {}); gave up after waiting {}s",
                        p.display(),
                        wait.as_secs()
                    ));
                }
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => return Err(anyhow!("{}: cannot lock the config: {e}", p.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_then_gives_up_naming_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("config.json");
        let held = take(&main, WAIT).unwrap();
        let t0 = Instant::now();
        let e = take(&main, Duration::from_millis(300)).err().unwrap();
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert!(
            e.to_string().contains(".mcp-hub.lock") && e.to_string().contains("gave up"),
            "{e}"
        );
        drop(held);
        take(&main, Duration::ZERO).unwrap();
        // A planted symlink is not followed.
        let d2 = tempfile::tempdir().unwrap();
        let target = d2.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, path(&d2.path().join("config.json"))).unwrap();
        assert!(take(&d2.path().join("config.json"), WAIT).is_err());
        assert!(!target.exists());
    }
}
