//! Group commit of upload offsets. Every acknowledged chunk needs its new
//! offset committed with `synchronous=FULL` (an fsync of the WAL) before its
//! 204; committed one by one on the single writing connection, those fsyncs
//! queue behind each other and behind the uploads' own data flushes, so at
//! many concurrent uploads the commits, not the disk's bandwidth, set the
//! pace. Here a PATCH whose bytes are durable queues its offset and waits;
//! one leader on the blocking pool takes the writing connection, then every
//! offset queued by that moment, and commits them in one transaction — each
//! in its own savepoint, so one failing does not fail the others. Offsets
//! that arrive while that commit is being fsynced form the next batch. Each
//! waiter is answered only after the commit that holds its offset returned,
//! so an acknowledged offset is as durable as before: only the number of
//! fsyncs per acknowledged chunk goes down.

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::{Db, DbError, Ops, UploadRow};

/// The offsets waiting for a commit.
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Pending>,
    /// A leader is on its way and has not yet taken `waiting`: whatever
    /// joins now goes into its batch.
    leader_queued: bool,
}

struct Pending {
    id: String,
    offset: u64,
    now: i64,
    expiry_ms: i64,
    reply: oneshot::Sender<Result<UploadRow, DbError>>,
}

impl Queue {
    /// Adds `p`; true when the caller must send a leader for it.
    fn push(&self, p: Pending) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.waiting.push(p);
        !std::mem::replace(&mut state.leader_queued, true)
    }

    /// Everything waiting; the next arrival sends a new leader.
    fn take(&self) -> Vec<Pending> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.leader_queued = false;
        std::mem::take(&mut state.waiting)
    }
}

/// Commits one batch. Dropped without running (a runtime shutting down),
/// it takes the batch anyway, so its waiters hear an error rather than wait
/// for a leader that never comes.
struct Leader {
    db: Db,
    ran: bool,
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.ran {
            drop(self.db.progress.take());
        }
    }
}

impl Leader {
    fn run(mut self) {
        self.ran = true;
        let db = self.db.clone();
        // The connection first, then the batch: whatever queued while the
        // previous commit held the connection joins this one.
        let mut batch = None;
        let outcome = db.transaction(false, |ops| {
            let taken = batch.insert(db.progress.take());
            commit(ops, taken)
        });
        // No transaction at all (the database unreachable): the batch is
        // taken anyway, so its waiters hear the error and the next arrival
        // sends a new leader.
        let batch = batch.unwrap_or_else(|| db.progress.take());
        if batch.is_empty() {
            return;
        }
        let results = match outcome {
            Ok(results) => results,
            // Alone in its batch: its own error, as without group commit.
            Err(e) if batch.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::error!(error = %e, uploads = batch.len(), "committing offsets");
                let unavailable = e.is_unavailable();
                batch
                    .iter()
                    .map(|_| {
                        Err(if unavailable {
                            DbError::Unavailable(e.to_string())
                        } else {
                            DbError::Task(format!("committing the offset: {e}"))
                        })
                    })
                    .collect()
            }
        };
        for (p, result) in batch.into_iter().zip(results) {
            let _ = p.reply.send(result);
        }
    }
}

/// Records `batch` in the transaction of `ops`; the result of each, once
/// committed. One failing alone fails the transaction (its own error, as
/// without group commit); in a batch, each runs in its own savepoint.
fn commit(
    ops: &mut Ops<'_>,
    batch: &[Pending],
) -> Result<Vec<Result<UploadRow, DbError>>, DbError> {
    if let [p] = batch {
        return ops
            .record_progress(&p.id, p.offset, p.now, p.expiry_ms)
            .map(|row| vec![Ok(row)]);
    }
    let mut results = Vec::with_capacity(batch.len());
    for p in batch {
        ops.tx.execute_batch("SAVEPOINT progress")?;
        match ops.record_progress(&p.id, p.offset, p.now, p.expiry_ms) {
            Ok(row) => {
                ops.tx.execute_batch("RELEASE progress")?;
                results.push(Ok(row));
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                ops.tx
                    .execute_batch("ROLLBACK TO progress; RELEASE progress")?;
                results.push(Err(e));
            }
        }
    }
    Ok(results)
}

impl Db {
    /// [`Ops::record_progress`] for upload `id`, committed together with
    /// the offsets of the other uploads waiting at the same moment; returns
    /// once the commit holding it is durable.
    pub async fn record_progress(
        &self,
        id: &str,
        offset: u64,
        now: i64,
        expiry_ms: i64,
    ) -> Result<UploadRow, DbError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            id: id.to_owned(),
            offset,
            now,
            expiry_ms,
            reply,
        };
        if self.progress.push(pending) {
            let leader = Leader {
                db: self.clone(),
                ran: false,
            };
            tokio::task::spawn_blocking(move || leader.run());
        }
        answer
            .await
            .map_err(|_| DbError::Task("the offset's commit ended without an answer".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NewUpload;

    fn new_upload(id: &str, length: u64) -> NewUpload {
        NewUpload {
            id: id.to_owned(),
            length: Some(length),
            metadata: String::new(),
            concat: None,
            parts: Vec::new(),
            cors_origin: None,
            created_at: 1,
            expires_at: 2,
            sig_exp: 3,
        }
    }

    /// Many concurrent offsets, each answered with its own row, all of them
    /// committed; one that is refused (going back) fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_offsets_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let db = Db::open(&path, "http://spool.test", false).unwrap();
        let ids: Vec<String> = (0..32).map(|_| crate::ids::new_id()).collect();
        let ups: Vec<NewUpload> = ids.iter().map(|id| new_upload(id, 100)).collect();
        db.call(move |ops| {
            for up in &ups {
                ops.create_upload(up, None)?;
            }
            Ok(())
        })
        .await
        .unwrap();
        db.record_progress(&ids[0], 50, 10, 1000).await.unwrap();

        let tasks: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let (db, id) = (db.clone(), id.clone());
                // Upload 0 is told to go back from 50 to 7: refused.
                let offset = if i == 0 { 7 } else { 10 + i as u64 };
                tokio::spawn(async move { db.record_progress(&id, offset, 20, 1000).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let result = task.await.unwrap();
            if i == 0 {
                assert!(matches!(result, Err(DbError::Corrupt(_))), "{result:?}");
            } else {
                let row = result.unwrap();
                assert_eq!(
                    (row.id.as_str(), row.offset),
                    (ids[i].as_str(), 10 + i as u64)
                );
                assert_eq!(row.expires_at, 1020);
            }
        }
        // Committed, as another connection sees.
        drop(db);
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let offset: u64 = conn
                .query_row(r#"SELECT "offset" FROM uploads WHERE id = ?1"#, [id], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(offset, if i == 0 { 50 } else { 10 + i as u64 });
        }
    }

    /// The last chunk completes the upload through the group commit too.
    #[tokio::test]
    async fn the_last_offset_completes_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("spool.db"), "http://spool.test", false).unwrap();
        let id = crate::ids::new_id();
        let up = new_upload(&id, 9);
        db.call(move |ops| ops.create_upload(&up, None))
            .await
            .unwrap();
        let row = db.record_progress(&id, 9, 5, 1000).await.unwrap();
        assert!(row.is_complete());
        let read = {
            let id = id.clone();
            db.read(move |ops| ops.upload(&id)).await.unwrap().unwrap()
        };
        assert_eq!((read.offset, read.first_byte_at), (9, Some(5)));
        // A reader cannot write.
        let id2 = crate::ids::new_id();
        let up = new_upload(&id2, 1);
        assert!(
            db.read(move |ops| ops.create_upload(&up, None))
                .await
                .is_err()
        );
    }
}
