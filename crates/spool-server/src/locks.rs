//! One writer per upload. The policy: a request that wants to write (PATCH,
//! creation-with-upload, DELETE) takes the upload's lock. If another request
//! holds it and has received bytes within the stall grace, the newcomer gets
//! 423 `ERR_UPLOAD_LOCKED` (so a duplicate sender cannot interleave bytes into
//! a live upload). If the holder has received nothing for the stall grace, it
//! is presumed dead (typically a connection that vanished without a FIN, as
//! after a network drop): the newcomer interrupts it, the holder saves what
//! arrived and releases, and the newcomer proceeds. Termination always
//! interrupts. HEAD never takes the lock; it reads the committed offset.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

pub(crate) struct Holder {
    /// Cancelled to ask the holder to save what it has and release.
    interrupt: CancellationToken,
    /// Cancelled by the guard when it is dropped.
    released: CancellationToken,
    /// Unix ms of the last byte the holder received (or of acquisition).
    last_progress: AtomicI64,
}

/// The lock table.
pub struct Locks {
    map: Mutex<HashMap<String, Arc<Holder>>>,
    /// What "stalled for the grace" is measured with.
    clock: Arc<dyn Clock>,
}

impl Default for Locks {
    fn default() -> Self {
        Locks::new(Arc::new(crate::clock::SystemClock))
    }
}

/// Why the lock was not had.
#[derive(Debug, PartialEq, Eq)]
pub enum LockError {
    /// Another live writer holds it.
    Locked,
    /// A panic poisoned the lock table: who holds what is unknown, so no
    /// answer (held or free) can be trusted.
    Poisoned,
}

impl Holder {
    /// Asks the holder to save what it has and release.
    pub(crate) fn interrupt(&self) {
        self.interrupt.cancel();
    }

    /// Unix ms of the last byte it received (or of acquisition).
    pub(crate) fn last_progress_ms(&self) -> i64 {
        self.last_progress.load(Ordering::Relaxed)
    }
}

/// Held while writing; releases on drop.
pub struct WriteGuard {
    locks: Arc<Locks>,
    id: String,
    holder: Arc<Holder>,
    /// The upload's lease in a database other nodes share, released with
    /// the guard (see [`crate::lease`]).
    pub(crate) lease: Option<crate::lease::Lease>,
}

impl WriteGuard {
    /// Resolves when a newer request (or termination) asks this writer to stop.
    pub async fn interrupted(&self) {
        self.holder.interrupt.cancelled().await;
    }

    /// The holder, for what watches it from beside the request (the lease's
    /// heartbeat).
    pub(crate) fn holder(&self) -> Arc<Holder> {
        self.holder.clone()
    }

    /// Notes that bytes arrived, so this writer is not considered stalled.
    pub fn touch(&self) {
        self.holder
            .last_progress
            .store(self.locks.clock.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.locks.map.lock()
            && map
                .get(&self.id)
                .is_some_and(|h| Arc::ptr_eq(h, &self.holder))
        {
            map.remove(&self.id);
        }
        self.holder.released.cancel();
    }
}

/// How hard to try for the lock.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Interrupt the holder only if it has stalled for `grace`.
    InterruptStalled { grace: Duration },
    /// Always interrupt the holder (termination).
    Force,
    /// Never interrupt; fail if held (background sweeps).
    Try,
}

/// How long to wait for an interrupted holder to save and release.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

impl Locks {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Locks {
            map: Mutex::default(),
            clock,
        }
    }

    /// Whether a writer holds `id` now.
    pub fn is_held(&self, id: &str) -> Result<bool, LockError> {
        self.map
            .lock()
            .map(|m| m.contains_key(id))
            .map_err(|_| LockError::Poisoned)
    }

    /// Takes the lock of upload `id` under `mode`.
    pub async fn acquire(self: &Arc<Self>, id: &str, mode: Mode) -> Result<WriteGuard, LockError> {
        loop {
            let current = {
                let mut map = self.map.lock().map_err(|_| LockError::Poisoned)?;
                match map.get(id) {
                    None => {
                        let holder = Arc::new(Holder {
                            interrupt: CancellationToken::new(),
                            released: CancellationToken::new(),
                            last_progress: AtomicI64::new(self.clock.now_ms()),
                        });
                        map.insert(id.to_owned(), holder.clone());
                        return Ok(WriteGuard {
                            locks: self.clone(),
                            id: id.to_owned(),
                            holder,
                            lease: None,
                        });
                    }
                    Some(h) => h.clone(),
                }
            };
            let interrupt = match mode {
                Mode::Force => true,
                Mode::Try => false,
                Mode::InterruptStalled { grace } => {
                    let idle = self.clock.now_ms() - current.last_progress.load(Ordering::Relaxed);
                    idle >= grace.as_millis() as i64
                }
            };
            if !interrupt {
                return Err(LockError::Locked);
            }
            tracing::info!(upload = id, "interrupting the current writer");
            current.interrupt.cancel();
            if tokio::time::timeout(RELEASE_WAIT, current.released.cancelled())
                .await
                .is_err()
            {
                return Err(LockError::Locked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_writer_blocks_stalled_writer_yields() {
        let locks = Arc::new(Locks::default());
        let grace = Duration::from_millis(200);
        let first = locks
            .acquire("a", Mode::InterruptStalled { grace })
            .await
            .unwrap();
        assert_eq!(
            locks
                .acquire("a", Mode::InterruptStalled { grace })
                .await
                .err(),
            Some(LockError::Locked)
        );
        assert_eq!(
            locks.acquire("a", Mode::Try).await.err(),
            Some(LockError::Locked)
        );
        // Another upload is independent.
        let _other = locks.acquire("b", Mode::Try).await.unwrap();

        tokio::time::sleep(Duration::from_millis(250)).await;
        let holder = tokio::spawn(async move {
            first.interrupted().await;
            drop(first);
        });
        let second = locks
            .acquire("a", Mode::InterruptStalled { grace })
            .await
            .unwrap();
        holder.await.unwrap();
        assert!(locks.is_held("a").unwrap());
        drop(second);
        assert!(!locks.is_held("a").unwrap());
    }

    #[tokio::test]
    async fn force_interrupts_a_live_writer() {
        let locks = Arc::new(Locks::default());
        let first = locks.acquire("a", Mode::Try).await.unwrap();
        first.touch();
        let holder = tokio::spawn(async move {
            first.interrupted().await;
        });
        let _second = locks.acquire("a", Mode::Force).await.unwrap();
        holder.await.unwrap();
    }

    /// A lock table poisoned by a panic answers neither "held" nor "free".
    #[tokio::test]
    async fn a_poisoned_table_is_an_error_not_held() {
        let locks = Arc::new(Locks::default());
        let l = locks.clone();
        let _ = std::thread::spawn(move || {
            let _map = l.map.lock().unwrap();
            panic!("poison the table");
        })
        .join();
        assert_eq!(locks.is_held("a"), Err(LockError::Poisoned));
        assert!(matches!(
            locks.acquire("a", Mode::Try).await,
            Err(LockError::Poisoned)
        ));
    }
}
