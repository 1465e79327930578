//! Leases in the database, for the work several nodes sharing it must not
//! do twice at once: an upload's writer (`upload_leases`, see
//! [`crate::lease`]) and the delivery of a webhook (`outbox.lease_until`).
//! A lease names its holder and runs out unless renewed, so a node that dies
//! (kill -9, a lost machine) holds nothing for longer than one lease. On
//! SQLite (one node) the same rows exist and cost one statement each.

use super::sql::{OptionalExtension, params};
use super::{DbError, Ops};

/// The outcome of asking for an upload's writer lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseTake {
    /// This holder has it now.
    Taken,
    /// A writer on another node holds it (and is not stalled, or the
    /// request may not interrupt it): its lease runs to `expires_at`, and
    /// it last reported bytes at `last_progress`.
    Held { expires_at: i64, last_progress: i64 },
    /// The holder was asked to stop (or the row just changed hands): ask
    /// again shortly.
    Asked,
}

impl Ops<'_> {
    /// Takes upload `id`'s writer lease for `holder` (`node:token`) until
    /// `now + ttl_ms`. A lease that ran out, or one of this node (whose
    /// local lock is already held by the caller), is taken over; a live one
    /// elsewhere is asked to stop when `interrupt_after` is given and its
    /// holder has received nothing for that long (0: always).
    pub fn take_upload_lease(
        &self,
        id: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
        last_progress: i64,
        interrupt_after: Option<i64>,
    ) -> Result<LeaseTake, DbError> {
        let current: Option<(String, i64, i64)> = self
            .tx
            .query_row(
                "SELECT node, expires_at, last_progress FROM upload_leases WHERE upload_id = ?1 FOR UPDATE",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let node = holder.split_once(':').map_or(holder, |(n, _)| n);
        match current {
            None => {
                let n = self.tx.execute(
                    "INSERT INTO upload_leases(upload_id, node, expires_at, last_progress, interrupt)
                     VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT(upload_id) DO NOTHING",
                    params![id, holder, now + ttl_ms, last_progress],
                )?;
                Ok(if n == 1 {
                    LeaseTake::Taken
                } else {
                    LeaseTake::Asked
                })
            }
            Some((current, expires_at, _))
                if expires_at <= now || current.split_once(':').map(|(n, _)| n) == Some(node) =>
            {
                self.tx.execute(
                    "UPDATE upload_leases SET node = ?2, expires_at = ?3, last_progress = ?4, interrupt = 0 WHERE upload_id = ?1",
                    params![id, holder, now + ttl_ms, last_progress],
                )?;
                Ok(LeaseTake::Taken)
            }
            Some(their @ (_, _, their_progress)) => match interrupt_after {
                Some(after) if now - their_progress >= after => {
                    self.tx.execute(
                        "UPDATE upload_leases SET interrupt = 1 WHERE upload_id = ?1",
                        [id],
                    )?;
                    Ok(LeaseTake::Asked)
                }
                _ => Ok(LeaseTake::Held {
                    expires_at: their.1,
                    last_progress: their_progress,
                }),
            },
        }
    }

    /// Extends `holder`'s lease of upload `id` and records when its writer
    /// last received bytes. `None`: the lease is no longer its own;
    /// `Some(true)`: another node asked it to stop.
    pub fn renew_upload_lease(
        &self,
        id: &str,
        holder: &str,
        until: i64,
        last_progress: i64,
    ) -> Result<Option<bool>, DbError> {
        self.tx
            .query_row(
                "UPDATE upload_leases SET expires_at = ?3, last_progress = ?4 WHERE upload_id = ?1 AND node = ?2 RETURNING interrupt",
                params![id, holder, until, last_progress],
                |r| r.get::<_, i64>(0).map(|i| i != 0),
            )
            .optional()
    }

    /// Gives `holder`'s lease of upload `id` back (nothing if it lost it).
    pub fn release_upload_lease(&self, id: &str, holder: &str) -> Result<(), DbError> {
        self.tx.execute(
            "DELETE FROM upload_leases WHERE upload_id = ?1 AND node = ?2",
            [id, holder],
        )?;
        Ok(())
    }

    /// Whether a live writer on another node than `node` holds upload `id`.
    pub fn upload_leased_elsewhere(&self, id: &str, node: &str, now: i64) -> Result<bool, DbError> {
        let holder: Option<String> = self
            .tx
            .query_row(
                "SELECT node FROM upload_leases WHERE upload_id = ?1 AND expires_at > ?2",
                params![id, now],
                |r| r.get(0),
            )
            .optional()?;
        Ok(holder.is_some_and(|h| h.split_once(':').map_or(h.as_str(), |(n, _)| n) != node))
    }

    /// Startup: drops the leases of `node`'s previous life (the data-folder
    /// lock proves it is gone), or on a database no other node shares
    /// (`node` None) every lease, so nothing waits for one to run out.
    pub fn release_node_leases(&self, node: Option<&str>) -> Result<usize, DbError> {
        Ok(match node {
            Some(node) => {
                let pattern = format!("{node}:%");
                self.tx.execute(
                    "DELETE FROM upload_leases WHERE node LIKE ?1",
                    [pattern.as_str()],
                )? + self.tx.execute(
                    "UPDATE outbox SET lease_until = NULL, worker = NULL WHERE worker = ?1 AND lease_until IS NOT NULL",
                    [node],
                )?
            }
            None => {
                self.tx.execute("DELETE FROM upload_leases", ())?
                    + self.tx.execute(
                        "UPDATE outbox SET lease_until = NULL, worker = NULL WHERE lease_until IS NOT NULL",
                        (),
                    )?
            }
        })
    }

    /// Takes a lock for the rest of the transaction that no other node's
    /// transaction holding the same `key` can share (PostgreSQL advisory
    /// lock); SQLite's one writer serializes transactions already.
    pub fn serialize(&self, key: i64) -> Result<(), DbError> {
        if matches!(self.tx, super::sql::Tx::Pg(_)) {
            self.tx
                .query_row("SELECT 1 FROM pg_advisory_xact_lock(?1)", [key], |_| Ok(()))?;
        }
        Ok(())
    }
}
