//! SQLite metadata: assets, uploads, the webhook outbox, signing keys and
//! settings, in one WAL-mode database under the data directory. Every state
//! change that emits a webhook enqueues it in the same transaction (a
//! transactional outbox), so an event is never lost nor sent for a change that
//! did not happen. The tables and their migrations are in [`schema`], the
//! upload rows and their state changes in [`uploads`], the assets in
//! [`assets`] and the webhook outbox in [`outbox`]. All access runs on the
//! blocking pool so SQLite never stalls the async runtime: changes through
//! [`Db::call`] on the one writing connection, the reads of the request path
//! through [`Db::read`] on read-only connections beside it (WAL lets them
//! read while a commit is being fsynced), and a chunk's new offset through
//! [`Db::record_progress`], which commits the offsets of every PATCH waiting
//! at that moment in one transaction ([`progress`]: group commit).

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

mod assets;
mod leases;
mod max_size;
mod media;
mod metadata;
pub mod outbox;
mod pg;
mod pg_schema;
mod progress;
mod schema;
pub(crate) mod sql;
mod uploads;
mod view;

pub use assets::{AssetError, AssetStatus, AssetView, NewAsset};
pub use leases::LeaseTake;
pub use media::Playable;
pub use metadata::MetadataUpdate;
pub use uploads::{ConcatKind, NewUpload, UploadRow, UploadState};

use sql::{OptionalExtension, Tx, params};

/// A database failure; an internal error to clients, except that an
/// unreachable database is a 503 they retry.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
    #[error("the query returned no rows")]
    NoRows,
    #[error("database task failed: {0}")]
    Task(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("migrating the schema: {0}")]
    Migration(#[from] rusqlite_migration::Error),
}

impl DbError {
    /// Whether the database could not be reached (a connection refused,
    /// closed, or a server shutting down), rather than refusing a query:
    /// the request may be retried once it is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Postgres(e) => pg::is_connection_error(e),
            _ => false,
        }
    }
}

/// How many read-only connections serve [`Db::read`]: enough that a read
/// rarely waits for another, few since each read takes microseconds.
const READERS: usize = 4;

/// The SQLite connections: one writer, read-only readers beside it.
struct Lite {
    conn: Mutex<Connection>,
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
}

enum Engine {
    Lite(Lite),
    Pg(pg::Pool),
}

/// The handle to the database.
#[derive(Clone)]
pub struct Db {
    engine: Arc<Engine>,
    /// Offsets waiting for the next group commit.
    progress: Arc<progress::Queue>,
    /// Base of share and playback URLs, which asset views include (the
    /// share URL if configured, else the public URL).
    public_url: Arc<str>,
    /// Whether state changes enqueue webhooks at all.
    pub(crate) webhooks: bool,
}

/// A stored Unix-millisecond time as RFC 3339 in UTC. One outside chrono's
/// range can only come from a damaged row, so it is an error rather than a
/// plausible-looking 1970.
pub(crate) fn ms_to_rfc3339(ms: i64) -> Result<String, DbError> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .ok_or_else(|| DbError::Corrupt(format!("time {ms} ms is out of range")))
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub fn open(path: &Path, public_url: &str, webhooks: bool) -> Result<Db, DbError> {
        let mut conn = Connection::open(path)?;
        // WAL + FULL: every commit is fsynced before it returns, so an
        // offset acknowledged to a client survives a power cut, not only a
        // killed process (NORMAL may roll the last commits back on power
        // loss). The uploaded bytes are fsynced by the store before that.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Room for every statement the metadata code runs (the default 16
        // would evict on the request path).
        conn.set_prepared_statement_cache_capacity(128);
        schema::migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path)?;
                // A read-only connection never writes: a change through it
                // fails rather than bypass the writer's ordering.
                reader.pragma_update(None, "query_only", "ON")?;
                reader.busy_timeout(std::time::Duration::from_secs(5))?;
                reader.set_prepared_statement_cache_capacity(128);
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let lite = Lite {
            conn: Mutex::new(conn),
            readers: readers.into(),
            next_reader: AtomicUsize::new(0),
        };
        Ok(Db::with_engine(Engine::Lite(lite), public_url, webhooks))
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`) and
    /// migrates it. Unreachable, it is an error: a node does not start
    /// without its database (the service manager retries).
    pub fn open_postgres(url: &str, public_url: &str, webhooks: bool) -> Result<Db, DbError> {
        let pool = pg::Pool::new(url)?;
        pool.with_conn(pg_schema::migrate)?;
        Ok(Db::with_engine(Engine::Pg(pool), public_url, webhooks))
    }

    fn with_engine(engine: Engine, public_url: &str, webhooks: bool) -> Db {
        Db {
            engine: Arc::new(engine),
            progress: Arc::default(),
            public_url: public_url.trim_end_matches('/').into(),
            webhooks,
        }
    }

    /// Whether several nodes may share this database (PostgreSQL): then
    /// writers, jobs and deliveries are coordinated through it.
    pub fn is_shared(&self) -> bool {
        matches!(*self.engine, Engine::Pg(_))
    }

    /// Runs `f` in one transaction of the writing connection (SQLite) or a
    /// pooled one (PostgreSQL), on the blocking pool.
    pub async fn call<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Ops<'_>) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.transaction(false, f))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Runs `f`, which only reads, on a read-only connection on the blocking
    /// pool, in one read transaction: it sees every commit that finished
    /// before it began, and does not queue behind one being fsynced. A
    /// change attempted in `f` fails.
    pub async fn read<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Ops<'_>) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.transaction(true, f))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Runs `f` in a transaction, blocking; `read_only` picks a reader.
    fn transaction<F, R>(&self, read_only: bool, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Ops<'_>) -> Result<R, DbError>,
    {
        match &*self.engine {
            Engine::Lite(lite) => {
                let mut conn = if read_only {
                    lite.reader()
                } else {
                    lite.conn
                        .lock()
                        .map_err(|_| DbError::Task("connection mutex poisoned".into()))?
                };
                let tx = conn.transaction()?;
                let out = f(&mut Ops {
                    tx: Tx::Lite(&tx),
                    db: self,
                })?;
                tx.commit()?;
                Ok(out)
            }
            Engine::Pg(pool) => pool.with_conn(|conn| {
                let tx = conn.client.transaction()?;
                let mut ops = Ops {
                    tx: Tx::Pg(RefCell::new(sql::PgTx {
                        tx,
                        statements: &mut conn.statements,
                    })),
                    db: self,
                };
                let out = f(&mut ops)?;
                ops.commit()?;
                Ok(out)
            }),
        }
    }

    /// The share URL of an asset.
    pub fn share_url(&self, asset_id: &str) -> String {
        format!("{}/v/{asset_id}", self.public_url)
    }
}

impl Lite {
    /// A free reader, else the next one in turn. A reader poisoned by a
    /// panic is still sound: its transaction rolled back as it unwound, and
    /// it cannot have changed anything.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in self.readers.iter() {
            match reader.try_lock() {
                Ok(conn) => return conn,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Operations inside one transaction.
pub struct Ops<'a> {
    pub(crate) tx: Tx<'a>,
    pub(crate) db: &'a Db,
}

impl Ops<'_> {
    /// Commits a PostgreSQL transaction (SQLite's is committed by its owner).
    fn commit(self) -> Result<(), DbError> {
        if let Tx::Pg(pg) = self.tx {
            pg.into_inner().tx.commit()?;
        }
        Ok(())
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        self.tx
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.tx.execute("INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])?;
        Ok(())
    }

    /// Every signing key, oldest first.
    pub fn signing_keys(&self) -> Result<Vec<(String, Vec<u8>)>, DbError> {
        let mut stmt = self
            .tx
            .prepare("SELECT kid, secret FROM signing_keys ORDER BY created_at, kid")?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()
    }

    pub fn insert_signing_key(&self, kid: &str, secret: &[u8]) -> Result<(), DbError> {
        self.tx.execute(
            "INSERT INTO signing_keys(kid, secret, created_at) VALUES (?1, ?2, ?3)",
            params![kid, secret, now_ms()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_range_format_and_others_are_errors() {
        assert_eq!(ms_to_rfc3339(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            ms_to_rfc3339(1_767_225_600_123).unwrap(),
            "2026-01-01T00:00:00.123Z"
        );
        assert!(matches!(ms_to_rfc3339(i64::MAX), Err(DbError::Corrupt(_))));
    }
}
