//! One app per data folder. The first launch takes an exclusive OS lock on
//! `spool-desktop.lock` in the data folder (released by the kernel when the
//! process ends, however it ends) and listens on a Unix socket there; a
//! second launch on the same folder finds the lock taken, asks the first
//! over the socket to bring its window forward, and exits 0 before it opens
//! the journal, starts the embedded server or makes a window — so it never
//! rewrites the server's port file or races the first over the journal.
//! Different folders (`SPOOL_DATA_DIR`) are independent. No D-Bus is needed:
//! the app also runs under bare Xvfb. A socket path longer than `sun_path`
//! allows falls back to an abstract socket (Linux) or one in the temp folder
//! named by a hash of the data folder.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOCK: &str = "spool-desktop.lock";
const SOCKET: &str = "spool-desktop.sock";
const SHOW: &[u8] = b"show\n";
const SHOWN: &[u8] = b"ok\n";

/// What launching found.
pub enum Claim {
    /// This is the only app on the folder; keep this alive as long as the process.
    First(Instance),
    /// Another app holds the folder.
    Running,
}

/// The held lock (released when this is dropped or the process ends), and
/// the socket a second launch reaches this one on.
pub struct Instance {
    _lock: File,
    answerer: Option<Answerer>,
}

/// The socket second launches reach this one on.
pub struct Answerer {
    #[cfg(unix)]
    listener: Option<std::os::unix::net::UnixListener>,
}

/// Takes the data folder's lock, or finds it held by another app.
pub fn claim(data: &Path) -> std::io::Result<Claim> {
    std::fs::create_dir_all(data)?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(data.join(LOCK))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Claim::Running),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    // For a person looking at the folder: who holds it.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(Claim::First(Instance {
        answerer: Some(Answerer {
            #[cfg(unix)]
            listener: unix::listen(data),
        }),
        _lock: file,
    }))
}

impl Instance {
    /// What answers second launches (once: it moves to where the window is
    /// known, while the lock stays here).
    pub fn answerer(&mut self) -> Option<Answerer> {
        self.answerer.take()
    }
}

impl Answerer {
    /// Answers second launches for the rest of the process's life: each
    /// one's request runs `show` (bring the window forward). Connections
    /// made before this runs wait in the socket's backlog.
    pub fn serve(self, show: impl Fn() + Send + 'static) {
        #[cfg(unix)]
        if let Some(listener) = self.listener {
            let spawned = std::thread::Builder::new()
                .name("single-instance".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        match stream {
                            Ok(mut s) => {
                                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                                let mut buf = [0u8; 16];
                                let n = s.read(&mut buf).unwrap_or(0);
                                if buf[..n] == *SHOW {
                                    tracing::info!(
                                        "another launch on this data folder: showing the window"
                                    );
                                    show();
                                    let _ = s.write_all(SHOWN);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "single-instance socket");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot answer second launches");
            }
        }
        #[cfg(not(unix))]
        let _ = show;
    }
}

/// Asks the app holding `data` to show its window; true when it said so.
/// Bounded: a few seconds at most, whatever the other app does.
pub fn show_running(data: &Path) -> bool {
    #[cfg(unix)]
    {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match unix::ask(data) {
                Ok(()) => return true,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("spool-desktop: the running app did not answer: {e}");
                    return false;
                }
                // It may be starting: its lock comes a moment before its socket.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (data, Instant::now());
        false
    }
}

/// A stable name for `data` (FNV-1a): the same folder gives the same name
/// in every build, so two versions of the app still find each other.
fn folder_hash(data: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The data folder as one canonical path, so `./data` and `/abs/data` name
/// the same socket.
fn canonical(data: &Path) -> PathBuf {
    std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf())
}

#[cfg(unix)]
mod unix {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::{SHOW, SHOWN, SOCKET, canonical, folder_hash};

    /// `sun_path` holds 108 bytes on Linux (104 on macOS), NUL included.
    const SUN_PATH_MAX: usize = 104;

    enum Addr {
        Path(PathBuf),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Abstract(String),
    }

    fn addr(data: &Path) -> Addr {
        let data = canonical(data);
        let in_folder = data.join(SOCKET);
        if in_folder.as_os_str().len() < SUN_PATH_MAX {
            return Addr::Path(in_folder);
        }
        let name = format!("spool-desktop-{}", folder_hash(&data));
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            Addr::Abstract(name)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            Addr::Path(std::env::temp_dir().join(format!("{name}.sock")))
        }
    }

    /// Binds the socket (the lock is held: a socket file there is stale).
    pub fn listen(data: &Path) -> Option<UnixListener> {
        let r = match addr(data) {
            Addr::Path(p) => {
                let _ = std::fs::remove_file(&p);
                UnixListener::bind(&p)
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Addr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                SocketAddr::from_abstract_name(name.as_bytes())
                    .and_then(|a| UnixListener::bind_addr(&a))
            }
        };
        match r {
            Ok(l) => Some(l),
            Err(e) => {
                // The app still runs alone on the folder (the lock says so);
                // a second launch just cannot bring its window forward.
                tracing::warn!(error = %e, "no single-instance socket");
                None
            }
        }
    }

    pub fn ask(data: &Path) -> std::io::Result<()> {
        let mut s = match addr(data) {
            Addr::Path(p) => UnixStream::connect(p)?,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Addr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                UnixStream::connect_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(SHOW)?;
        let mut buf = [0u8; 8];
        let n = s.read(&mut buf)?;
        if buf[..n] == *SHOWN {
            Ok(())
        } else {
            Err(std::io::Error::other("unexpected answer"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_second_claim_on_a_folder_finds_the_first_and_reaches_it() {
        let dir = tempfile::tempdir().unwrap();
        let Claim::First(mut first) = claim(dir.path()).unwrap() else {
            panic!("the first claim is first");
        };
        let shown = Arc::new(AtomicU32::new(0));
        let counter = shown.clone();
        first.answerer().unwrap().serve(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert!(matches!(claim(dir.path()).unwrap(), Claim::Running));
        assert!(show_running(dir.path()));
        assert_eq!(shown.load(Ordering::SeqCst), 1);

        // Another folder is independent.
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(claim(other.path()).unwrap(), Claim::First(_)));

        // Released when the holder goes (here: dropped; a dead process's
        // lock is released by the kernel the same way).
        drop(first);
        assert!(matches!(claim(dir.path()).unwrap(), Claim::First(_)));
    }

    #[test]
    fn a_folder_too_long_for_a_socket_path_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        let Claim::First(mut first) = claim(&deep).unwrap() else {
            panic!("first");
        };
        let shown = Arc::new(AtomicU32::new(0));
        let counter = shown.clone();
        first.answerer().unwrap().serve(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert!(matches!(claim(&deep).unwrap(), Claim::Running));
        assert!(show_running(&deep));
        assert_eq!(shown.load(Ordering::SeqCst), 1);
    }
}
