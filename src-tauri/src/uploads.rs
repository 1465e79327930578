//! The uploads the app keeps going in the background: resuming unfinished
//! ones at launch and on Retry, telling the desktop when one completes or
//! stalls, building the history from the journal plus what is live, and
//! showing a recording's file.

use std::path::PathBuf;
use std::time::Duration;

use spool_client::{SourceRecord, UploadState};
use tauri::{AppHandle, Manager as _, Runtime};

use crate::error::{ErrorCode, IpcError};
use crate::models::{HistoryItem, HistoryState, UploadPhase};
use crate::state::{AppState, history_changed};

/// Notifications and history updates from an upload's events.
pub fn on_upload_event<R: Runtime>(app: &AppHandle<R>, e: &spool_client::Event) {
    let state = app.state::<AppState>();
    match e {
        spool_client::Event::Complete { share_url, .. } => {
            state.notify(
                "Link ready",
                share_url.as_deref().unwrap_or("The upload is complete."),
            );
            history_changed(app);
        }
        spool_client::Event::Stalled { error } => {
            state.notify(
                "Upload stalled",
                &format!("Spool keeps retrying; nothing is lost. ({error})"),
            );
            history_changed(app);
        }
        spool_client::Event::Reconnecting { .. }
        | spool_client::Event::Recreated { .. }
        | spool_client::Event::Created { .. } => history_changed(app),
        spool_client::Event::Progress { .. } => {}
    }
}

/// Resumes every unfinished upload in the journal, in the background.
pub fn resume_unfinished<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let state = app.state::<AppState>();
        let pending = match state.client.unfinished().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal");
                return;
            }
        };
        for rec in pending {
            // Failed ones wait for the user; deleted ones are the deleter's.
            if matches!(rec.state, UploadState::Failed | UploadState::Deleting) {
                continue;
            }
            match resume(&app, &rec.id, false).await {
                Ok(()) => {}
                // Another live process is producing it (it owns the entry):
                // not ours to finish, and not failed either.
                Err(e) if e.code == ErrorCode::RecordingInProgress => {
                    tracing::info!(id = %rec.id, "not resuming an upload another process is still recording");
                }
                Err(e) => {
                    tracing::warn!(id = %rec.id, code = %e.code, error = %e.message, "cannot resume an upload");
                }
            }
        }
    });
}

/// Resumes an upload in the background; `retry_now` restarts one that is
/// live but waiting out a backoff.
pub async fn resume<R: Runtime>(
    app: &AppHandle<R>,
    id: &str,
    retry_now: bool,
) -> Result<(), IpcError> {
    let state = app.state::<AppState>();
    if state.recording_upload().as_deref() == Some(id) {
        return Ok(());
    }
    if let Some((status, stop)) = state.live_upload(id) {
        use spool_client::State;
        if !(retry_now && matches!(status.state, State::Reconnecting | State::Stalled)) {
            return Ok(());
        }
        stop.cancel();
        // The old worker saves its state and lets go of the upload.
        for _ in 0..50 {
            if state.live_upload(id).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let rec = state.journaled(id).await?;
    if rec.state == UploadState::Deleting {
        return Err(IpcError::new(
            ErrorCode::RecordingNotFound,
            format!("recording {id} was deleted"),
        ));
    }
    let target = state.target_for(&rec.target).await;
    let mut session = state.client.resume_orphaned(id, target).await?;
    if let Some(mut events) = session.take_events() {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            while let Some(e) = events.recv().await {
                on_upload_event(&app, &e);
            }
        });
    }
    state.track_upload(id, &session);
    history_changed(app);
    let app = app.clone();
    let id = id.to_owned();
    tauri::async_runtime::spawn(async move {
        let r = session.wait().await;
        if let Err(e) = &r {
            tracing::warn!(%id, error = %e, "resumed upload ended without completing");
        }
        app.state::<AppState>().untrack_upload(&id);
        history_changed(&app);
    });
    Ok(())
}

pub(crate) fn local_path(source: &SourceRecord) -> PathBuf {
    match source {
        SourceRecord::File { path, .. } => path.clone(),
        SourceRecord::Stream { label } => PathBuf::from(label),
    }
}

pub async fn history(state: &AppState) -> Result<Vec<HistoryItem>, IpcError> {
    let recs = state.client.journal().list().await?;
    let recording = state.recording_upload();
    let mut items: Vec<HistoryItem> = recs
        .into_iter()
        .map(|r| {
            let live = state.live_upload(&r.id).map(|(status, _)| status);
            let path = local_path(&r.source);
            let (state_word, confirmed, error) = if r.state == UploadState::Deleting {
                (HistoryState::Deleting, r.acked, r.last_error.clone())
            } else if recording.as_deref() == Some(r.id.as_str()) {
                (HistoryState::Recording, r.acked, None)
            } else if let Some(s) = &live {
                (
                    UploadPhase::from(s.state).into(),
                    s.confirmed,
                    s.last_error.clone(),
                )
            } else {
                let w = match r.state {
                    UploadState::Complete => HistoryState::Complete,
                    UploadState::Failed => HistoryState::Failed,
                    // Unfinished and not running: it needs a retry.
                    _ => HistoryState::Stalled,
                };
                (w, r.acked, r.last_error.clone())
            };
            HistoryItem {
                upload_id: r.id.clone(),
                asset_id: r.asset_id.clone(),
                title: r.title.clone(),
                state: state_word,
                share_url: r.share_url.clone(),
                local_exists: path.is_file(),
                local_path: Some(path.display().to_string()),
                recorded: r.produced,
                confirmed,
                created_at: r.created_at,
                last_error: error,
            }
        })
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    Ok(items)
}

pub async fn reveal<R: Runtime>(app: &AppHandle<R>, id: &str) -> Result<(), IpcError> {
    use tauri_plugin_opener::OpenerExt as _;
    let state = app.state::<AppState>();
    let rec = state.journaled(id).await?;
    let path = local_path(&rec.source);
    if !path.is_file() {
        return Err(IpcError::new(
            ErrorCode::LocalFile,
            format!("{} is no longer there", path.display()),
        ));
    }
    app.opener()
        .reveal_item_in_dir(&path)
        .map_err(|e| IpcError::new(ErrorCode::Desktop, format!("cannot show the file: {e}")))
}
