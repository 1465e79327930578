//! PostgreSQL connections for [`super::Db`]: a fixed set of slots, each
//! holding a connection made on first use and made again after it broke (a
//! restarted or unreachable server), so a node rides out a database restart
//! without a restart of its own: requests in the gap fail as unavailable
//! (503, retried by clients) and the next one after it reconnects. The
//! connections are blocking ones (`postgres`), used from the blocking pool
//! like SQLite's, so both engines run the same synchronous metadata code.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use super::DbError;
use super::sql::PgConn;

/// Connections per node: enough for the PATCHes committing at once (group
/// commit folds them) and the reads beside them.
const SLOTS: usize = 16;

/// How long a connection attempt may take before the database counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Pool {
    config: postgres::Config,
    slots: Box<[Mutex<Option<PgConn>>]>,
    next: AtomicUsize,
}

/// Whether `e` is the connection failing rather than the server refusing a
/// statement: closed, never opened, or the server going away (class 57:
/// shutdown; class 08: connection exception).
pub fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("57") || c.starts_with("08")
        }
        // No SQLSTATE: an I/O or protocol failure on the socket.
        None => e.as_db_error().is_none(),
    }
}

impl Pool {
    /// A pool for `url`; connects nothing yet, but checks the URL.
    pub fn new(url: &str) -> Result<Pool, DbError> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| DbError::Unavailable(format!("the database URL is not valid: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("spool-serve");
        }
        Ok(Pool {
            config,
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// A free slot, else the next in turn (waiting for it).
    fn slot(&self) -> MutexGuard<'_, Option<PgConn>> {
        for slot in self.slots.iter() {
            match slot.try_lock() {
                Ok(s) => return s,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with a live connection, blocking. A connection that broke
    /// is dropped, so the next use connects afresh; the error is returned
    /// (a statement is never silently replayed on a new connection).
    pub fn with_conn<R>(
        &self,
        f: impl FnOnce(&mut PgConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|c| c.client.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            let client = self
                .config
                .connect(postgres::NoTls)
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            *slot = Some(PgConn {
                client,
                statements: Default::default(),
            });
        }
        let Some(conn) = slot.as_mut() else {
            return Err(DbError::Unavailable("no connection".into()));
        };
        let out = f(conn);
        if out.as_ref().is_err_and(DbError::is_unavailable) || conn.client.is_closed() {
            *slot = None;
        }
        out
    }
}

impl Drop for Pool {
    // A blocking client's drop runs its own runtime to say goodbye, which
    // panics on a thread that drives async tasks (where the last handle to
    // the database is usually dropped): the goodbyes go on a thread of
    // their own.
    fn drop(&mut self) {
        let conns: Vec<PgConn> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.get_mut().unwrap_or_else(|e| e.into_inner()).take())
            .collect();
        if !conns.is_empty() {
            let _ = std::thread::Builder::new()
                .name("spool-pg-close".into())
                .spawn(move || drop(conns));
        }
    }
}
