//! The database's schema, versioned: `PRAGMA user_version` counts the
//! migrations applied, and [`migrate`] runs the missing ones in order, each
//! in its own transaction, on every open (`rusqlite_migration`, as the
//! client's journal does). Migration 1 is the baseline: it creates the
//! schema on an empty database and brings any database made before
//! versioning (user version 0, with whichever of the old ad-hoc column
//! additions it had) up to the same shape. Later changes are appended as
//! new migrations, never by editing a released one.

use std::sync::LazyLock;

use rusqlite::{Connection, Transaction};
use rusqlite_migration::{HookError, M, Migrations};

use super::DbError;

/// The tables as the first release created them (`IF NOT EXISTS`: the
/// baseline also runs over databases that have them).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (kid TEXT PRIMARY KEY, secret BLOB NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    asset_id TEXT,
    "offset" INTEGER NOT NULL,
    length INTEGER,
    metadata TEXT NOT NULL,
    concat TEXT,
    parts TEXT,
    cors_origin TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    first_byte_at INTEGER,
    expires_at INTEGER NOT NULL,
    sig_exp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_expiry ON uploads(state, expires_at);
"#;

/// Columns added after the first release, before versioning, with their
/// declarations: the baseline adds those an older database lacks.
const ADDED_UPLOAD_COLUMNS: &[(&str, &str)] = &[("error_code", "TEXT"), ("error_message", "TEXT")];

/// Asset columns added for processing and playback (issue 10): what the
/// index and the processor found, and a processing failure's reason.
const ADDED_ASSET_COLUMNS: &[(&str, &str)] = &[
    ("live", "INTEGER NOT NULL DEFAULT 0"),
    ("duration_ms", "INTEGER"),
    ("width", "INTEGER"),
    ("height", "INTEGER"),
    ("progress", "REAL"),
    ("poster", "INTEGER NOT NULL DEFAULT 0"),
    ("error_code", "TEXT"),
    ("error_message", "TEXT"),
    // Issue 11: the video has a sound track.
    ("has_audio", "INTEGER NOT NULL DEFAULT 0"),
];

/// Every migration, in order. Append only: a database records how many it
/// has had, so editing a released one would leave databases that ran the
/// old text behind.
fn migration_list() -> Vec<M<'static>> {
    vec![M::up_with_hook("", baseline_hook), M::up(SHARED)]
}

/// Migration 2 (issue 14): what several nodes sharing one database need,
/// kept on SQLite too so both engines have one schema — a lease on each
/// webhook delivery (`lease_until`, `worker`: one node sends it at a time)
/// and on each upload's writer (`upload_leases`), and the index that finds
/// an upload's asset.
const SHARED: &str = r#"
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
ALTER TABLE outbox ADD COLUMN worker TEXT;
CREATE TABLE upload_leases (
    upload_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    last_progress INTEGER NOT NULL,
    interrupt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS assets_upload ON assets(upload_id);
"#;

static MIGRATIONS: LazyLock<Migrations<'static>> =
    LazyLock::new(|| Migrations::new(migration_list()));

/// The number of migrations: the `user_version` of an up-to-date database.
#[cfg(test)]
pub fn latest_version() -> usize {
    migration_list().len()
}

/// Adds each of `columns` to `table` where it is missing.
fn add_missing_columns(
    conn: &Connection,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), DbError> {
    let existing: Vec<String> = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, decl) in columns {
        if !existing.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {decl}"))?;
        }
    }
    Ok(())
}

/// Migration 1: the schema of the last release without versioning, reached
/// from nothing or from any of that release's predecessors.
fn baseline(tx: &Transaction<'_>) -> Result<(), DbError> {
    tx.execute_batch(SCHEMA)?;
    add_missing_columns(tx, "uploads", ADDED_UPLOAD_COLUMNS)?;
    add_missing_columns(tx, "assets", ADDED_ASSET_COLUMNS)?;
    super::max_size::migrate(tx)?;
    super::outbox::migrate(tx)?;
    crate::jobs::migrate(tx)?;
    Ok(())
}

fn baseline_hook(tx: &Transaction<'_>) -> Result<(), HookError> {
    baseline(tx).map_err(|e| match e {
        DbError::Sqlite(e) => HookError::RusqliteError(e),
        other => HookError::Hook(other.to_string()),
    })
}

/// Brings the database to the latest version; a database from a newer
/// server (a higher version than this build knows) is refused rather than
/// written with an older idea of the schema.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    MIGRATIONS.to_latest(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{AssetStatus, Db, UploadState};
    use super::*;

    /// The schema the release before versioning left, with a row in each
    /// table that matters.
    const FIXTURE: &str = include_str!("../../tests/fixtures/schema-v0.sql");

    fn user_version(conn: &Connection) -> usize {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A database made by the previous release opens, is versioned, and
    /// keeps every row; opening it again changes nothing.
    #[tokio::test]
    async fn a_database_of_the_previous_release_opens_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(FIXTURE).unwrap();
            conn.execute_batch(
                r#"INSERT INTO settings VALUES ('k', 'v');
                INSERT INTO signing_keys VALUES ('k1', x'0102', 1);
                INSERT INTO uploads(id, asset_id, "offset", length, metadata, state, created_at, expires_at, sig_exp, max_size)
                    VALUES ('up1', 'as1', 7, 10, 'name dGl0bGU=', 'active', 1, 2, 3, 50);
                INSERT INTO assets(id, upload_id, status, metadata, created_at, updated_at, has_audio, duration_ms)
                    VALUES ('as1', 'up1', 'uploading', '{"name":"title"}', 1, 1, 1, 1500);
                INSERT INTO outbox(id, asset_id, type, body, next_attempt_at, created_at)
                    VALUES ('msg_1', 'as1', 'video.asset.created', '{}', 5, 4);"#,
            )
            .unwrap();
            assert_eq!(user_version(&conn), 0);
        }
        for _ in 0..2 {
            let db = Db::open(&path, "http://spool.test", true).unwrap();
            let (up, asset, setting, keys) = db
                .call(|ops| {
                    Ok((
                        ops.upload("up1")?,
                        ops.asset("as1")?,
                        ops.setting("k")?,
                        ops.signing_keys()?,
                    ))
                })
                .await
                .unwrap();
            let up = up.unwrap();
            assert_eq!(
                (up.offset, up.length, up.max_size, up.state),
                (7, Some(10), Some(50), UploadState::Active)
            );
            assert_eq!(up.metadata, "name dGl0bGU=");
            let asset = asset.unwrap();
            assert_eq!(asset.status, AssetStatus::Uploading);
            assert!(asset.has_audio);
            assert_eq!(asset.duration_ms, Some(1500));
            assert_eq!(setting.as_deref(), Some("v"));
            assert_eq!(keys, vec![("k1".to_owned(), vec![1, 2])]);
            drop(db);
            let conn = Connection::open(&path).unwrap();
            assert_eq!(user_version(&conn), latest_version());
            let pending: (String, i64) = conn
                .query_row(
                    "SELECT id, created_at FROM outbox WHERE delivered_at IS NULL",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(pending, ("msg_1".to_owned(), 4));
        }
    }

    /// An older database still, from before the playback and size-limit
    /// columns, gains them with their defaults.
    #[tokio::test]
    async fn an_older_database_gains_the_later_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute_batch(
                r#"INSERT INTO uploads VALUES ('up1', 'as1', 3, NULL, '', NULL, NULL, NULL, 'active', 1, NULL, 2, 3);
                INSERT INTO assets VALUES ('as1', 'up1', 'waiting', '{}', 1, 1);"#,
            )
            .unwrap();
        }
        let db = Db::open(&path, "http://spool.test", false).unwrap();
        let (up, asset) = db
            .call(|ops| Ok((ops.upload("up1")?, ops.asset("as1")?)))
            .await
            .unwrap();
        let (up, asset) = (up.unwrap(), asset.unwrap());
        assert_eq!((up.offset, up.max_size, up.error_message), (3, None, None));
        assert!(!asset.has_audio && !asset.live);
        drop(db);
        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn), latest_version());
        for (table, column) in [
            ("uploads", "error_code"),
            ("uploads", "max_size"),
            ("assets", "has_audio"),
            ("assets", "poster"),
            ("outbox", "dead_at"),
            ("jobs", "lease_until"),
        ] {
            assert!(
                columns(&conn, table).iter().any(|c| c == column),
                "{table}.{column} missing"
            );
        }
    }

    /// A database from a newer server is refused, not rewritten.
    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", latest_version() + 1)
                .unwrap();
        }
        assert!(matches!(
            Db::open(&path, "http://spool.test", false),
            Err(DbError::Migration(_))
        ));
    }
}
