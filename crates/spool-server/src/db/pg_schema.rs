//! The PostgreSQL schema, versioned like SQLite's ([`super::schema`]): the
//! `spool_schema` table counts the migrations applied, and [`migrate`] runs
//! the missing ones in order in one transaction, under an advisory lock so
//! that nodes starting together migrate once. Migration 1 creates the
//! tables in the shape SQLite's migrations reach (integers as BIGINT, bytes
//! as BYTEA), so the one set of queries in [`super`] runs on both. Later
//! changes are appended, on both engines, never by editing a released one.

use super::DbError;
use super::sql::PgConn;

/// An arbitrary constant: the advisory lock key of Spool's migrations.
const MIGRATION_LOCK: i64 = 0x5350_4f4f_4c01;

/// Every migration, in order. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE signing_keys (kid TEXT PRIMARY KEY, secret BYTEA NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    live BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT,
    width BIGINT,
    height BIGINT,
    progress DOUBLE PRECISION,
    poster BIGINT NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    has_audio BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX assets_upload ON assets(upload_id);
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    asset_id TEXT,
    "offset" BIGINT NOT NULL,
    length BIGINT,
    metadata TEXT NOT NULL,
    concat TEXT,
    parts TEXT,
    cors_origin TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    first_byte_at BIGINT,
    expires_at BIGINT NOT NULL,
    sig_exp BIGINT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    max_size BIGINT
);
CREATE INDEX uploads_expiry ON uploads(state, expires_at);
CREATE TABLE outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    asset_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL DEFAULT 0,
    dead_at BIGINT,
    lease_until BIGINT,
    worker TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at, seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_head ON outbox(asset_id, seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_delivered ON outbox(delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_dead ON outbox(dead_at) WHERE dead_at IS NOT NULL;
CREATE TABLE jobs (
    asset_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    worker TEXT,
    done_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(next_attempt_at) WHERE done_at IS NULL;
CREATE TABLE upload_leases (
    upload_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_progress BIGINT NOT NULL,
    interrupt BIGINT NOT NULL DEFAULT 0
);
"#];

/// Brings the database to the latest version; one from a newer server is
/// refused rather than written with an older idea of the schema.
pub(super) fn migrate(conn: &mut PgConn) -> Result<(), DbError> {
    let mut tx = conn.client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS spool_schema (version BIGINT NOT NULL)")?;
    let version: i64 = match tx.query_opt("SELECT version FROM spool_schema", &[])? {
        Some(row) => row.try_get(0)?,
        None => {
            tx.execute("INSERT INTO spool_schema(version) VALUES (0)", &[])?;
            0
        }
    };
    let applied = usize::try_from(version)
        .map_err(|_| DbError::Corrupt(format!("schema version {version}")))?;
    if applied > MIGRATIONS.len() {
        return Err(DbError::Corrupt(format!(
            "the database is at schema version {applied}, made by a newer Spool (this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for m in &MIGRATIONS[applied..] {
        tx.batch_execute(m)?;
    }
    let latest = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    tx.execute("UPDATE spool_schema SET version = $1", &[&latest])?;
    tx.commit()?;
    Ok(())
}
