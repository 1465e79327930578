//! One writer per upload across nodes. On a database several nodes share,
//! the upload's local lock ([`crate::locks`]) is not enough: a client whose
//! connection broke may resume through the load balancer on another node
//! while the first still holds the upload. So a writer also holds a lease in
//! the database (`upload_leases`), renewed every [`HEARTBEAT`] and running
//! out [`TTL`] after the last renewal. The local rule carries over: a live
//! holder elsewhere makes the newcomer's request 423; one that has received
//! nothing for the stall grace (or any, for termination) is asked to stop
//! through its row, sees it at its next renewal, saves what arrived and
//! releases; a holder that died simply stops renewing, and its lease is
//! taken over once it has run out. A holder that cannot renew for longer
//! than its lease (the database unreachable) stops writing by itself, so two
//! writers never overlap: no node acts on a lease it may have lost.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::db::{LeaseTake, now_ms};
use crate::error::ApiResult;
use crate::locks::{LockError, Mode, WriteGuard};

/// How long a newcomer waits for a lease held elsewhere to be given back
/// or to run out: past one lease and a renewal.
const RELEASE_WAIT: Duration = Duration::from_secs(6);

/// How often a holder renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a lease lasts without renewal: a dead node's uploads can be
/// resumed elsewhere this long after its last renewal.
pub const TTL: Duration = Duration::from_secs(4);

/// A held lease; dropping it stops the renewals and gives it back.
pub struct Lease {
    stop: CancellationToken,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn ttl_ms() -> i64 {
    TTL.as_millis() as i64
}

/// Takes upload `id`'s lease for the writer holding `guard` (its local
/// lock), under the same `mode` the local lock was taken with, and attaches
/// it to the guard. Nothing to do on a database no other node shares.
pub async fn attach(app: &App, id: &str, mode: Mode, guard: &mut WriteGuard) -> ApiResult<()> {
    if !app.db.is_shared() {
        return Ok(());
    }
    let holder = format!("{}:{}", app.node, crate::ids::random_hex(6));
    let interrupt_after = match mode {
        Mode::Try => None,
        Mode::Force => Some(0),
        Mode::InterruptStalled { grace } => Some(grace.as_millis() as i64),
    };
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    let mut asked = false;
    // The holder as first seen: answering 423 at once would be wrong as
    // often as right (a writer killed a moment ago looks alive until its
    // next renewal is missed; a request that just ended on another node
    // is still giving its lease back), and a 423 costs the client every
    // byte it had in flight. So a newcomer waits, its body unread, until
    // the lease is free or has run out — unless the holder renews it
    // having received more bytes: a live writer, which gets 423.
    let mut first_seen: Option<(i64, i64)> = None;
    let mut pause = Duration::from_millis(10);
    loop {
        let (rid, h, progress) = (id.to_owned(), holder.clone(), app.now_ms());
        let took = app
            .db
            .call(move |ops| {
                ops.take_upload_lease(&rid, &h, now_ms(), ttl_ms(), progress, interrupt_after)
            })
            .await?;
        match took {
            LeaseTake::Taken => break,
            LeaseTake::Held {
                expires_at,
                last_progress,
            } => {
                if interrupt_after.is_none() {
                    return Err(LockError::Locked.into());
                }
                let (first_expiry, first_progress) =
                    *first_seen.get_or_insert((expires_at, last_progress));
                if expires_at > first_expiry && last_progress > first_progress {
                    return Err(LockError::Locked.into());
                }
            }
            LeaseTake::Asked => {
                if !asked {
                    tracing::info!(upload = id, "asking the writer on another node to stop");
                    asked = true;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LockError::Locked.into());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    let stop = CancellationToken::new();
    tokio::spawn(heartbeat(
        app.clone(),
        id.to_owned(),
        holder,
        guard.holder(),
        stop.clone(),
    ));
    guard.lease = Some(Lease { stop });
    Ok(())
}

/// Renews the lease until it is dropped, then gives it back; stops the
/// writer when the lease is lost, another node asks, or renewals have
/// failed for as long as the lease lasts.
async fn heartbeat(
    app: App,
    id: String,
    holder: String,
    writer: Arc<crate::locks::Holder>,
    stop: CancellationToken,
) {
    let mut renewed_at = tokio::time::Instant::now();
    let mut stopped_writer = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
        let (rid, h, progress) = (id.clone(), holder.clone(), writer.last_progress_ms());
        let renewed = app
            .db
            .call(move |ops| ops.renew_upload_lease(&rid, &h, now_ms() + ttl_ms(), progress))
            .await;
        let stop_writer = match renewed {
            Ok(Some(false)) => {
                renewed_at = tokio::time::Instant::now();
                false
            }
            Ok(Some(true)) => {
                tracing::info!(upload = %id, "another node asked this writer to stop");
                true
            }
            Ok(None) => {
                tracing::warn!(upload = %id, "the upload's lease was taken over");
                true
            }
            Err(e) => {
                // Stop before the lease could have run out: past that point
                // another node may be writing.
                let lost = renewed_at.elapsed() + HEARTBEAT >= TTL;
                tracing::warn!(upload = %id, error = %e, lost, "renewing the upload's lease failed");
                lost
            }
        };
        if stop_writer && !stopped_writer {
            writer.interrupt();
            stopped_writer = true;
        }
    }
    let give_back = app
        .db
        .call(move |ops| ops.release_upload_lease(&id, &holder))
        .await;
    if let Err(e) = give_back {
        // It runs out by itself.
        tracing::warn!(error = %e, "giving back an upload's lease");
    }
}
