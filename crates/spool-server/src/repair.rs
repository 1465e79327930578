//! Startup repair: after a crash (or a power cut, or storage damaged while
//! the server was down) the database and the bytes in storage may disagree,
//! and before serving anything the server makes them agree without ever
//! inventing a byte. An unfinished upload whose storage holds more than its
//! recorded offset keeps the extra bytes (they arrived, in order); one whose
//! storage holds less than its recorded — that is, acknowledged — offset, or
//! none at all, is never padded and never moved back below what a client
//! was told: it is marked damaged (410 `ERR_UPLOAD_DAMAGED`, its asset
//! errored with that reason, `video.asset.errored` sent), so the client
//! re-creates it from its local copy. A complete upload whose bytes are gone
//! or short is marked damaged the same way, so no asset is ever ready
//! without its bytes. Storage that no live upload owns (an upload created
//! but never recorded, or ended but not yet removed, when the crash came) is
//! removed; a damaged upload's remaining bytes are kept for inspection until
//! its asset is deleted.

use anyhow::Context as _;

use crate::app::App;
use crate::db::{UploadState, now_ms};

/// The upload's lock, if no writer on any node holds it.
async fn try_lock(app: &App, id: &str) -> anyhow::Result<Option<crate::locks::WriteGuard>> {
    crate::uploads::try_lock(app, id)
        .await
        .map_err(|e| anyhow::anyhow!("locking upload {id}: {} ({})", e.message, e.code.as_str()))
}

/// Upload `id` again, if it is still in `state` (another node may have
/// moved it on between the listing and the lock).
async fn reload(
    app: &App,
    id: &str,
    state: UploadState,
) -> anyhow::Result<Option<crate::db::UploadRow>> {
    let rid = id.to_owned();
    let row = app.db.call(move |ops| ops.upload(&rid)).await?;
    Ok(row.filter(|r| r.state == state))
}

async fn mark_damaged(app: &App, id: &str, message: String) -> anyhow::Result<()> {
    tracing::error!(upload = %id, %message, "upload damaged: acknowledged bytes are missing from storage");
    let rid = id.to_owned();
    app.db
        .call(move |ops| ops.end_upload_with(&rid, UploadState::Damaged, now_ms(), Some(&message)))
        .await?;
    app.events_enqueued();
    Ok(())
}

/// Runs every repair step; see the module docs.
pub(crate) async fn run(app: &App) -> anyhow::Result<()> {
    unfinished(app)
        .await
        .context("repairing unfinished uploads")?;
    complete(app).await.context("checking complete uploads")?;
    orphans(app).await.context("removing orphaned storage")?;
    orphan_outputs(app)
        .await
        .context("removing outputs of deleted assets")?;
    Ok(())
}

/// Processing outputs whose asset was deleted (or never existed) when the
/// crash came are removed.
async fn orphan_outputs(app: &App) -> anyhow::Result<()> {
    let dir = app.config.data_dir.join("media");
    let names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::ids::is_valid_id(n))
            .collect(),
        Err(_) => return Ok(()),
    };
    for name in names {
        let id = name.clone();
        let gone = app
            .db
            .call(move |ops| {
                Ok(ops
                    .asset(&id)?
                    .is_none_or(|a| a.status == crate::db::AssetStatus::Deleted))
            })
            .await?;
        if gone {
            tracing::info!(asset = %name, "removing the outputs of a deleted asset");
            crate::outputs::Outputs::new(&app.config.data_dir, &name).remove()?;
        }
    }
    Ok(())
}

async fn unfinished(app: &App) -> anyhow::Result<()> {
    let active = app.db.call(|ops| ops.active_uploads()).await?;
    for row in active {
        // Another node may be writing it: only an upload no one holds is
        // repaired, under its lock (on one node, nothing else runs yet).
        let Some(_guard) = try_lock(app, &row.id).await? else {
            continue;
        };
        let Some(row) = reload(app, &row.id, UploadState::Active).await? else {
            continue;
        };
        let valid = app.store.recover(&row.id, row.offset, row.length).await?;
        if valid < row.offset {
            let message = format!(
                "storage holds {valid} of the {} bytes the server acknowledged; send the recording again",
                row.offset
            );
            mark_damaged(app, &row.id, message).await?;
            continue;
        }
        if valid != row.offset {
            tracing::info!(upload = %row.id, recorded = row.offset, on_disk = valid, "reconciled upload offset with storage");
        }
        let expiry = app.expiry_ms();
        let id = row.id.clone();
        app.db
            .call(move |ops| {
                ops.reconcile_offset(&id, valid)?;
                // Re-record at the same offset: completes the upload if
                // storage already holds every byte.
                if row.length == Some(valid) {
                    ops.record_progress(&id, valid, now_ms(), expiry)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(())
}

async fn complete(app: &App) -> anyhow::Result<()> {
    let complete = app.db.call(|ops| ops.complete_uploads()).await?;
    for (id, len) in complete {
        // A node may be assembling it right now.
        let Some(_guard) = try_lock(app, &id).await? else {
            continue;
        };
        match app.store.stored_len(&id).await? {
            Some(stored) if stored >= len => {
                // A crash (or an unreachable store) between the last byte
                // and assembling it: finish it now.
                if let Err(e) = app.store.complete(&id, len).await {
                    tracing::warn!(upload = %id, error = %e, "assembling a complete upload in storage failed");
                }
            }
            stored => {
                let message = match stored {
                    None => format!("the upload's {len} bytes are missing from storage"),
                    Some(s) => format!("storage holds {s} of the upload's {len} bytes"),
                };
                mark_damaged(app, &id, message).await?;
            }
        }
    }
    Ok(())
}

async fn orphans(app: &App) -> anyhow::Result<()> {
    let stored = app.store.list().await?;
    if stored.is_empty() {
        return Ok(());
    }
    let ids = stored.clone();
    let known: std::collections::HashMap<String, UploadState> = app
        .db
        .call(move |ops| ops.upload_states(&ids))
        .await?
        .into_iter()
        .collect();
    for id in stored {
        let orphan = match known.get(&id) {
            // On a shared database an unknown upload may be one another
            // node is creating (storage first, then its row): left alone.
            None => !app.db.is_shared(),
            Some(UploadState::Expired | UploadState::Terminated) => true,
            Some(UploadState::Active | UploadState::Complete | UploadState::Damaged) => false,
        };
        if orphan {
            tracing::info!(upload = %id, "removing orphaned storage");
            app.store.delete(&id).await?;
        }
    }
    Ok(())
}
