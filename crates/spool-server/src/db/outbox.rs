//! The webhook outbox, a table in the server's SQLite database: its schema
//! and migrations, [`Ops::enqueue`] (called by the state changes in
//! [`crate::db`], inside their transaction), and the queries the delivery
//! worker in [`crate::webhooks`] runs. An event is pending until it is
//! delivered or dead-lettered (given up after `--webhook-max-age`, kept with
//! its last error); only the oldest pending event of an asset is due, so one
//! asset's events go out in order, and a dead one no longer holds back the
//! next. Delivered and dead rows are pruned after `--webhook-retention`.
//! Every query the worker repeats runs on a partial index (a test checks the
//! query plans), so a large history of delivered rows costs nothing. The
//! event types: `video.asset.created`, `.live`, `.uploaded`, `.ready`,
//! `.errored`, `.updated` (its metadata changed, e.g. a rename; never after
//! deletion) and `.deleted`, each carrying the asset view.

use std::sync::LazyLock;

use rusqlite::Connection;

use crate::db::sql::params;

use crate::db::{DbError, Ops, ms_to_rfc3339, now_ms};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    asset_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL DEFAULT 0,
    dead_at INTEGER
);
"#;

/// Created after the migration has added the columns they cover. The old
/// `outbox_pending` index served the head-of-line query before dead events
/// existed; `outbox_head` replaces it.
const INDEXES: &str = r#"
DROP INDEX IF EXISTS outbox_pending;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_at, seq)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_head ON outbox(asset_id, seq)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox(delivered_at)
    WHERE delivered_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox(dead_at)
    WHERE dead_at IS NOT NULL;
"#;

/// An event with no earlier pending event of its asset.
const IS_HEAD: &str = "NOT EXISTS (SELECT 1 FROM outbox p
    WHERE p.asset_id = o.asset_id AND p.delivered_at IS NULL AND p.dead_at IS NULL AND p.seq < o.seq)";

static DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT o.seq, o.id, o.asset_id, o.type, o.body, o.attempts, o.created_at FROM outbox o
         WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= ?1
           AND (o.lease_until IS NULL OR o.lease_until <= ?1) AND {IS_HEAD}
         ORDER BY o.next_attempt_at, o.seq LIMIT ?2 FOR UPDATE SKIP LOCKED"
    )
});

/// Only asked when nothing is due by `?1`, so every candidate lies after it
/// (which lets the query search the index rather than scan it).
static NEXT_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT o.next_attempt_at FROM outbox o
         WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at > ?1 AND {IS_HEAD}
         ORDER BY o.next_attempt_at, o.seq LIMIT 1"
    )
});

const PRUNE_DELIVERED_SQL: &str =
    "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?1";
const PRUNE_DEAD_SQL: &str = "DELETE FROM outbox WHERE dead_at IS NOT NULL AND dead_at < ?1";

/// Creates the outbox, or brings an older one up to date: `created_at`
/// (backfilled with the time of the migration, so an upgrade gives old
/// pending events a full `--webhook-max-age` rather than dead-lettering them
/// at once) and `dead_at`, then the indexes.
pub(crate) fn migrate(conn: &Connection) -> Result<(), DbError> {
    // Runs inside the schema migration's transaction (see crate::db::schema).
    let tx = conn;
    tx.execute_batch(SCHEMA)?;
    let columns: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM pragma_table_info('outbox')")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if !columns.iter().any(|c| c == "created_at") {
        tx.execute_batch("ALTER TABLE outbox ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0")?;
        tx.execute("UPDATE outbox SET created_at = ?1", [now_ms()])?;
    }
    if !columns.iter().any(|c| c == "dead_at") {
        tx.execute_batch("ALTER TABLE outbox ADD COLUMN dead_at INTEGER")?;
    }
    tx.execute_batch(INDEXES)?;
    Ok(())
}

/// One webhook waiting for delivery.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub seq: i64,
    pub id: String,
    pub asset_id: String,
    pub kind: String,
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix ms when the event was enqueued; its age counts from here.
    pub created_at: i64,
}

/// How many outbox rows a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub delivered: usize,
    pub dead: usize,
}

impl Ops<'_> {
    /// Emits an event of `asset_id` carrying the asset as it is now: to the
    /// webhook outbox (when webhooks are configured) and to the event's
    /// other subscribers — the processor's queue for
    /// `video.asset.uploaded` ([`crate::jobs`]) — in the caller's
    /// transaction.
    pub(crate) fn enqueue(
        &self,
        asset_id: &str,
        event_type: &str,
        now: i64,
    ) -> Result<(), DbError> {
        let id = format!("msg_{}", crate::ids::random_hex(12));
        if event_type == "video.asset.uploaded" {
            self.enqueue_job(asset_id, &id, now)?;
        }
        if !self.db.webhooks {
            return Ok(());
        }
        let asset = self
            .asset(asset_id)?
            .ok_or_else(|| DbError::Corrupt(format!("asset {asset_id} vanished")))?;
        let body = serde_json::json!({
            "type": event_type,
            "timestamp": ms_to_rfc3339(now)?,
            "data": asset,
        });
        self.tx.execute(
            "INSERT INTO outbox(id, asset_id, type, body, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![id, asset_id, event_type, body.to_string(), now],
        )?;
        Ok(())
    }

    /// Claims the oldest pending event of each asset, if it is due by `now`
    /// and no other worker's lease holds it, for `worker` until
    /// `lease_until`: events of one asset go out strictly in order, and
    /// each is sent by one node at a time (the lease runs out if that node
    /// dies, and the event is claimed again).
    pub fn due_events(
        &self,
        now: i64,
        limit: usize,
        worker: &str,
        lease_until: i64,
    ) -> Result<Vec<PendingEvent>, DbError> {
        let due = self.due_rows(now, limit)?;
        for e in &due {
            self.tx.execute(
                "UPDATE outbox SET lease_until = ?2, worker = ?3 WHERE seq = ?1",
                params![e.seq, lease_until, worker],
            )?;
        }
        Ok(due)
    }

    fn due_rows(&self, now: i64, limit: usize) -> Result<Vec<PendingEvent>, DbError> {
        let mut stmt = self.tx.prepare_cached(&DUE_SQL)?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok(PendingEvent {
                seq: r.get(0)?,
                id: r.get(1)?,
                asset_id: r.get(2)?,
                kind: r.get(3)?,
                body: r.get(4)?,
                attempts: r.get(5)?,
                created_at: r.get(6)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
    }

    /// When the next head-of-line event becomes due, given that none is due
    /// by `now` (ask [`Ops::due_events`] first, in the same transaction).
    pub fn next_event_due(&self, now: i64) -> Result<Option<i64>, DbError> {
        let mut stmt = self.tx.prepare_cached(&NEXT_DUE_SQL)?;
        let mut rows = stmt.query_map([now], |r| r.get(0))?;
        rows.next().transpose()
    }

    pub fn event_delivered(&self, seq: i64, now: i64) -> Result<(), DbError> {
        self.tx.execute("UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL, lease_until = NULL, worker = NULL WHERE seq = ?1", params![seq, now])?;
        Ok(())
    }

    pub fn event_failed(&self, seq: i64, next_attempt_at: i64, error: &str) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, lease_until = NULL, worker = NULL WHERE seq = ?1",
            params![seq, next_attempt_at, error],
        )?;
        Ok(())
    }

    /// Gives an event up: it stays in the outbox with its last error, and
    /// the next event of its asset becomes due.
    pub fn event_dead(&self, seq: i64, now: i64, error: &str) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, dead_at = ?2, last_error = ?3, lease_until = NULL, worker = NULL WHERE seq = ?1",
            params![seq, now, error],
        )?;
        Ok(())
    }

    /// Deletes events delivered, or given up, before `cutoff` (Unix ms).
    pub fn prune_events(&self, cutoff: i64) -> Result<Pruned, DbError> {
        Ok(Pruned {
            delivered: self.tx.execute(PRUNE_DELIVERED_SQL, [cutoff])?,
            dead: self.tx.execute(PRUNE_DEAD_SQL, [cutoff])?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let params: Vec<i64> = vec![0; n];
        stmt.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn old_database(path: &std::path::Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, asset_id TEXT NOT NULL,
                type TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at INTEGER NOT NULL, delivered_at INTEGER, last_error TEXT);
             CREATE INDEX outbox_pending ON outbox(asset_id, delivered_at, seq);
             INSERT INTO outbox(id, asset_id, type, body, next_attempt_at) VALUES ('msg_a', 'a', 'video.asset.created', '{}', 5);",
        )
        .unwrap();
    }

    /// Each query the worker repeats searches an index; none scans the
    /// table (nor a whole index), however many delivered rows pile up.
    #[test]
    fn outbox_queries_search_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("spool.db")).unwrap();
        crate::db::schema::migrate(&mut conn).unwrap();
        for (name, sql, index) in [
            ("due events", DUE_SQL.clone(), "outbox_due"),
            ("next due", NEXT_DUE_SQL.clone(), "outbox_due"),
            (
                "prune delivered",
                PRUNE_DELIVERED_SQL.to_owned(),
                "outbox_delivered",
            ),
            ("prune dead", PRUNE_DEAD_SQL.to_owned(), "outbox_dead"),
        ] {
            let steps = plan(&conn, &crate::db::sql::for_sqlite(&sql));
            println!("{name}: {steps:?}");
            assert!(
                steps.iter().all(|s| !s.starts_with("SCAN")),
                "{name} scans: {steps:?}"
            );
            assert!(
                steps
                    .iter()
                    .any(|s| s.starts_with("SEARCH") && s.contains(&format!("INDEX {index} "))),
                "{name} does not search {index}: {steps:?}"
            );
            if sql.contains(IS_HEAD) {
                assert!(
                    steps.iter().any(|s| s.starts_with("SEARCH p USING")
                        && s.contains("INDEX outbox_head (asset_id=? AND seq<?)")),
                    "{name}'s head-of-line check does not search outbox_head: {steps:?}"
                );
            }
        }
    }

    #[test]
    fn an_old_outbox_is_migrated_and_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        old_database(&path);
        let before = now_ms();
        let conn = Connection::open(&path).unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let (created, dead, next): (i64, Option<i64>, i64) = conn
            .query_row(
                "SELECT created_at, dead_at, next_attempt_at FROM outbox WHERE id = 'msg_a'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert!(created >= before, "backfilled with the migration's time");
        assert_eq!((dead, next), (None, 5));
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "outbox_dead",
                "outbox_delivered",
                "outbox_due",
                "outbox_head"
            ]
        );
    }
}
