//! The upload lifecycle that both the TUS endpoint and the asset API drive:
//! creating an upload (storage first, then its row and asset), ending one
//! (termination, asset deletion) under a forced lock, and expiring the
//! unfinished ones in the background. Protocol handlers and API routes call
//! these; none of them knows about HTTP headers.

use spool_proto::ErrorCode;

use crate::app::App;
use crate::db::{ConcatKind, NewAsset, NewUpload, UploadRow, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::locks::{Mode, WriteGuard};
use crate::space;

/// Loads an upload by id; an id that is malformed or unknown is 404.
pub(crate) async fn load(app: &App, id: &str) -> ApiResult<UploadRow> {
    let not_found = || ApiError::new(ErrorCode::UploadNotFound, "no upload has this id");
    if !crate::ids::is_valid_id(id) {
        return Err(not_found());
    }
    let rid = id.to_owned();
    app.db
        .read(move |ops| ops.upload(&rid))
        .await?
        .ok_or_else(not_found)
}

/// Takes the upload's one-writer lock in `mode`; a lock held by another
/// writer is 423 with `Retry-After`.
/// On a database other nodes share, the lock includes the upload's lease
/// there ([`crate::lease`]).
pub(crate) async fn lock(app: &App, id: &str, mode: Mode) -> ApiResult<WriteGuard> {
    let mut guard = app.locks.acquire(id, mode).await?;
    crate::lease::attach(app, id, mode, &mut guard).await?;
    Ok(guard)
}

/// The lock if no writer (on any node) holds it now, for background work
/// that leaves live uploads alone.
pub(crate) async fn try_lock(app: &App, id: &str) -> ApiResult<Option<WriteGuard>> {
    match lock(app, id, Mode::Try).await {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.code == ErrorCode::UploadLocked => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates an upload (and its asset) in the database and the store.
pub async fn create_upload(
    app: &App,
    length: Option<u64>,
    metadata: String,
    concat: Option<ConcatKind>,
    parts: Vec<String>,
    cors_origin: Option<String>,
    asset: Option<&NewAsset>,
) -> ApiResult<UploadRow> {
    let now = app.now_ms();
    let ttl_ms = app.config.upload_ttl.as_millis() as i64;
    let up = NewUpload {
        id: crate::ids::new_id(),
        length,
        metadata,
        concat,
        parts,
        cors_origin,
        created_at: now,
        expires_at: now + ttl_ms,
        // Rounded up so the URL is never shorter-lived than the upload.
        sig_exp: ((now + ttl_ms + 999) / 1000).max(0) as u64,
    };
    // Storage first: a row without bytes behind it must never exist (a
    // file without a row is an orphan that startup removes).
    app.store
        .create(&up.id)
        .await
        .map_err(|e| space::store_error(e, None))?;
    crate::fault::point("created-before-row");
    let asset = asset.cloned();
    let id = up.id.clone();
    let row = app
        .db
        .call(move |ops| {
            ops.create_upload(&up, asset.as_ref())?;
            ops.upload(&id)
        })
        .await?
        .ok_or_else(|| ApiError::internal("created upload vanished"))?;
    Ok(row)
}

/// Ends an upload (termination, asset deletion, expiry): interrupts any
/// writer, removes the bytes, and records the end with its webhook.
/// A complete upload is assembled by its store (one object in a bucket)
/// before the client hears it is complete. A failure is logged, not
/// answered: every byte is already acknowledged and readable where it is,
/// and startup assembles what is left ([`crate::repair`]).
pub async fn assemble(app: &App, row: &UploadRow) {
    if !row.is_complete() {
        return;
    }
    if let Err(e) = app.store.complete(&row.id, row.offset).await {
        tracing::warn!(upload = %row.id, error = %e, "assembling the complete upload in storage failed; retried at startup");
    }
}

pub async fn end_upload(app: &App, id: &str, state: UploadState) -> ApiResult<()> {
    let _guard = lock(app, id, Mode::Force).await?;
    // The end state is committed before any byte goes: a crash in between
    // leaves an orphan file that startup removes, never an upload that
    // looks alive with its bytes gone.
    let rid = id.to_owned();
    let now = app.now_ms();
    let asset_id = app
        .db
        .call(move |ops| {
            ops.end_upload(&rid, state, now)?;
            ops.asset_of_upload(&rid)
        })
        .await?;
    crate::fault::point("end-recorded-before-delete");
    app.store.delete(id).await?;
    app.live.forget(id);
    if let Some(asset_id) = asset_id
        && state == UploadState::Terminated
    {
        // Derived outputs go with the asset (startup removes any left by a crash here).
        let outputs = crate::outputs::Outputs::new(&app.config.data_dir, &asset_id);
        tokio::task::spawn_blocking(move || outputs.remove())
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    app.events_enqueued();
    Ok(())
}

/// Expires unfinished uploads whose time has passed, in the background;
/// requests already answer 410 for them, this frees their bytes and tells the
/// asset's owner.
pub async fn sweep_expired(app: &App) -> ApiResult<usize> {
    let now = app.now_ms();
    let candidates = app.db.call(move |ops| ops.expired_candidates(now)).await?;
    let mut expired = 0;
    for id in candidates {
        // A live writer keeps its upload alive; look again next round.
        let Some(guard) = try_lock(app, &id).await? else {
            continue;
        };
        let row = load(app, &id).await?;
        if row.state == UploadState::Active && row.expires_at < app.now_ms() {
            let (rid, now) = (id.clone(), app.now_ms());
            app.db
                .call(move |ops| ops.end_upload(&rid, UploadState::Expired, now))
                .await?;
            app.store.delete(&id).await?;
            expired += 1;
            tracing::info!(upload = %id, "upload expired");
        }
        drop(guard);
    }
    if expired > 0 {
        app.events_enqueued();
    }
    Ok(expired)
}
