//! One owner per journal entry. The process producing or sending an upload
//! holds an exclusive OS file lock (`flock` on Unix, `LockFileEx` on Windows,
//! through std's `File::try_lock`) on `<journal dir>/owners/<id>.lock` for as
//! long as it works on it. The kernel releases the lock when that process
//! exits in any way — `kill -9` and power loss included — so an entry is
//! resumable the moment its owner is gone, and never while it is alive:
//! a second `spool resume`, or a second app, cannot finish a recording that
//! is still being captured and so truncate it. The lock is per open file, so
//! it also keeps two sessions of one process off the same entry. The pid
//! written into the file is only for messages, never for the decision.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{ClientError, Result};

const DIR: &str = "owners";

/// The held lock of one entry; dropping it releases ownership.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
    path: PathBuf,
}

/// Where the lock file of entry `id` lives.
pub fn lock_path(journal_dir: &Path, id: &str) -> PathBuf {
    journal_dir.join(DIR).join(format!("{id}.lock"))
}

fn open(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ClientError::io(parent, e))?;
    }
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| ClientError::io(path, e))
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

impl OwnerLock {
    /// Takes ownership of entry `id`, or fails at once with
    /// [`ClientError::RecordingInProgress`] if a live process holds it.
    /// Blocking (a few syscalls); call it off the async runtime's hot path.
    pub fn acquire(journal_dir: &Path, id: &str) -> Result<OwnerLock> {
        let path = lock_path(journal_dir, id);
        let mut file = open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = holder_pid(&mut file)
                    .map(|p| format!(" (process {p})"))
                    .unwrap_or_default();
                return Err(ClientError::RecordingInProgress(format!(
                    "ERR_RECORDING_IN_PROGRESS: upload {id} is still being recorded or uploaded by a live process{who}; \
                     it was left untouched (resume it once that process has ended)"
                )));
            }
            Err(TryLockError::Error(e)) => return Err(ClientError::io(&path, e)),
        }
        // For messages only: who holds it now.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(OwnerLock { _file: file, path })
    }

    /// Whether some live process (this one included) owns entry `id` now.
    pub fn is_held(journal_dir: &Path, id: &str) -> bool {
        let path = lock_path(journal_dir, id);
        if !path.exists() {
            return false;
        }
        match open(&path) {
            Ok(f) => matches!(f.try_lock(), Err(TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes entry `id`'s lock file (when the entry itself is deleted). A
/// holder keeps its lock on the unlinked file; nobody can resume a deleted
/// entry, so that is harmless.
pub fn remove(journal_dir: &Path, id: &str) {
    let _ = std::fs::remove_file(lock_path(journal_dir, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_even_within_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let lock = OwnerLock::acquire(dir.path(), "a").unwrap();
        assert!(OwnerLock::is_held(dir.path(), "a"));
        let err = OwnerLock::acquire(dir.path(), "a").unwrap_err();
        assert!(matches!(err, ClientError::RecordingInProgress(_)), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        // Other entries are independent.
        let _b = OwnerLock::acquire(dir.path(), "b").unwrap();
        drop(lock);
        assert!(!OwnerLock::is_held(dir.path(), "a"));
        let _again = OwnerLock::acquire(dir.path(), "a").unwrap();
    }

    #[test]
    fn a_killed_owner_releases_at_once() {
        let dir = tempfile::tempdir().unwrap();
        // flock(1) holds the lock in its own process (`-o`: not in the
        // command it runs); SIGKILL it and the kernel drops the lock.
        let path = lock_path(dir.path(), "x");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut child = std::process::Command::new("flock")
            .args(["-x", "-o"])
            .arg(&path)
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !OwnerLock::is_held(dir.path(), "x") {
            assert!(start.elapsed().as_secs() < 10, "flock never took the lock");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(OwnerLock::acquire(dir.path(), "x").is_err());
        child.kill().unwrap();
        child.wait().unwrap();
        OwnerLock::acquire(dir.path(), "x").unwrap();
    }
}
