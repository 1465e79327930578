//! The processor's queue, fed by the same event emission that feeds the
//! webhook outbox: when an asset's `video.asset.uploaded` event is emitted
//! (inside the transaction that completes the upload), a job row is written
//! beside it, so a completed upload without its job cannot exist. A worker
//! claims a job with a lease (`lease_until`); a worker that dies (kill -9)
//! simply lets the lease run out and the job is claimed again, and startup
//! releases this node's leases at once. Failures are retried with
//! exponential backoff until [`MAX_ATTEMPTS`]. Claim, renew, finish and fail
//! are the whole seam a processor on another machine needs (see the README's
//! "Processing" section).

use rusqlite::Connection;

use crate::db::sql::{OptionalExtension, params};

use crate::db::{DbError, Ops};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    asset_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    worker TEXT,
    done_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(next_attempt_at) WHERE done_at IS NULL;
"#;

/// After this many failed attempts a job gives up and its asset errors.
pub const MAX_ATTEMPTS: u32 = 5;

pub(crate) fn migrate(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub asset_id: String,
    pub event_id: String,
    /// This claim's attempt number, from 1.
    pub attempt: u32,
}

impl Ops<'_> {
    /// Subscribes the processor to an emitted `video.asset.uploaded`:
    /// (re)queues the asset's job. Called by the emission, in its
    /// transaction.
    pub(crate) fn enqueue_job(
        &self,
        asset_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<(), DbError> {
        self.tx.execute(
            "INSERT INTO jobs(asset_id, event_id, attempts, next_attempt_at, created_at) VALUES (?1, ?2, 0, ?3, ?3)
             ON CONFLICT(asset_id) DO UPDATE SET event_id = excluded.event_id, attempts = 0,
                 next_attempt_at = excluded.next_attempt_at, lease_until = NULL, worker = NULL,
                 done_at = NULL, last_error = NULL",
            params![asset_id, event_id, now],
        )?;
        Ok(())
    }

    /// Claims the oldest due job whose lease (if any) ran out, for
    /// `lease_ms`, as `worker`.
    pub fn claim_job(&self, now: i64, lease_ms: i64, worker: &str) -> Result<Option<Job>, DbError> {
        let found: Option<(String, String, u32)> = self
            .tx
            .query_row(
                "SELECT asset_id, event_id, attempts FROM jobs
                 WHERE done_at IS NULL AND next_attempt_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                 ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((asset_id, event_id, attempts)) = found else {
            return Ok(None);
        };
        self.tx.execute(
            "UPDATE jobs SET attempts = attempts + 1, lease_until = ?2, worker = ?3 WHERE asset_id = ?1",
            params![asset_id, now + lease_ms, worker],
        )?;
        Ok(Some(Job {
            asset_id,
            event_id,
            attempt: attempts + 1,
        }))
    }

    /// When the next job becomes claimable, if any is pending.
    pub fn next_job_at(&self) -> Result<Option<i64>, DbError> {
        self.tx.query_row(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0))) FROM jobs WHERE done_at IS NULL",
            (),
            |r| r.get(0),
        )
    }

    /// Extends a lease `worker` holds; false if it no longer holds it.
    pub fn renew_job(&self, asset_id: &str, worker: &str, until: i64) -> Result<bool, DbError> {
        Ok(self.tx.execute(
            "UPDATE jobs SET lease_until = ?3 WHERE asset_id = ?1 AND worker = ?2 AND done_at IS NULL",
            params![asset_id, worker, until],
        )? == 1)
    }

    /// The job is finished (its asset is ready or errored for good).
    pub fn finish_job(&self, asset_id: &str, now: i64) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE jobs SET done_at = ?2, lease_until = NULL WHERE asset_id = ?1",
            params![asset_id, now],
        )?;
        Ok(())
    }

    /// The attempt failed; it runs again at `retry_at`.
    pub fn retry_job(&self, asset_id: &str, retry_at: i64, error: &str) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE jobs SET next_attempt_at = ?2, lease_until = NULL, worker = NULL, last_error = ?3 WHERE asset_id = ?1",
            params![asset_id, retry_at, error],
        )?;
        Ok(())
    }

    /// Startup: no worker of this data folder can be alive, so its leases
    /// (`worker` given: the database is shared with other nodes, whose
    /// leases stay) or every lease (one node) are released and the
    /// interrupted jobs run at once.
    pub fn release_job_leases(&self, worker: Option<&str>) -> Result<usize, DbError> {
        match worker {
            Some(w) => self.tx.execute(
                "UPDATE jobs SET lease_until = NULL, worker = NULL WHERE done_at IS NULL AND lease_until IS NOT NULL AND worker = ?1",
                [w],
            ),
            None => self.tx.execute(
                "UPDATE jobs SET lease_until = NULL, worker = NULL WHERE done_at IS NULL AND lease_until IS NOT NULL",
                (),
            ),
        }
    }

    /// Drops an asset's job (the asset was deleted).
    pub fn drop_job(&self, asset_id: &str) -> Result<(), DbError> {
        self.tx
            .execute("DELETE FROM jobs WHERE asset_id = ?1", [asset_id])?;
        Ok(())
    }
}
