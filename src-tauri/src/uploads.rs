//! The uploads the app keeps going in the background: resuming unfinished
//! ones at launch and on Retry, telling the desktop when one completes or
//! stalls, building the history from the journal plus what is live, and
//! showing a recording's file.

use spool_client::uploads::HistoryState as ClientHistory;
use spool_client::{Resumed, Resumption, Skip, UploadState};
use tauri::{AppHandle, Manager as _, Runtime};

use crate::error::{ErrorCode, IpcError};
use crate::models::{HistoryItem, HistoryState};
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

/// Resumes every unfinished upload in the journal, in the background
/// (spool-client decides; failed ones wait for the user).
pub fn resume_unfinished<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let state = app.state::<AppState>();
        let resumed = state
            .client
            .resume_unfinished(false, |rec| {
                let target = rec.target.clone();
                let state = &state;
                async move { state.target_for(&target).await }
            })
            .await;
        let resumed = match resumed {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal");
                return;
            }
        };
        for r in resumed {
            match r {
                Resumption::Started { record, session } => follow(&app, &record.id, session),
                Resumption::Skipped { record, reason } => match reason {
                    Skip::Failed | Skip::Running => {}
                    // Deleted ones are the deleter's.
                    Skip::Error(_) if record.state == UploadState::Deleting => {}
                    // Another live process is producing it (it owns the
                    // entry): not ours to finish, and not failed either.
                    Skip::Error(e) if e.code() == Some(ErrorCode::RecordingInProgress) => {
                        tracing::info!(id = %record.id, "not resuming an upload another process is still recording");
                    }
                    Skip::Error(e) => {
                        tracing::warn!(id = %record.id, code = %e.error_code(), error = %e, "cannot resume an upload");
                    }
                },
            }
        }
    });
}

/// Follows a resumed upload: its events become notifications and history
/// changes until it ends.
fn follow<R: Runtime>(app: &AppHandle<R>, id: &str, mut session: spool_client::Session) {
    if let Some(mut events) = session.take_events() {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            while let Some(e) = events.recv().await {
                on_upload_event(&app, &e);
            }
        });
    }
    history_changed(app);
    let app = app.clone();
    let id = id.to_owned();
    tauri::async_runtime::spawn(async move {
        let r = session.wait().await;
        if let Err(e) = &r {
            tracing::warn!(%id, error = %e, "resumed upload ended without completing");
        }
        history_changed(&app);
    });
}

/// Resumes an upload in the background; `retry_now` restarts one that is
/// live but waiting out a backoff (the old session's release is awaited).
pub async fn resume<R: Runtime>(
    app: &AppHandle<R>,
    id: &str,
    retry_now: bool,
) -> Result<(), IpcError> {
    let state = app.state::<AppState>();
    if state.recording_upload().as_deref() == Some(id) {
        return Ok(());
    }
    let rec = state.journaled(id).await?;
    if rec.state == UploadState::Deleting {
        return Err(IpcError::new(
            ErrorCode::RecordingNotFound,
            format!("recording {id} was deleted"),
        ));
    }
    let target = state.target_for(&rec.target).await;
    match state.client.resume_live(id, target, retry_now).await? {
        Resumed::Running(_) => {}
        Resumed::Started(session) => follow(app, id, session),
    }
    Ok(())
}

/// The history: spool-client's (journal + live uploads), with the recording
/// being captured marked as such.
pub async fn history(state: &AppState) -> Result<Vec<HistoryItem>, IpcError> {
    let recording = state.recording_upload();
    let entries = state.client.history().await?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let r = &e.record;
            let capturing = recording.as_deref() == Some(r.id.as_str());
            let (state, confirmed, last_error) = match e.state {
                ClientHistory::Deleting => (HistoryState::Deleting, e.confirmed, e.last_error),
                _ if capturing => (HistoryState::Recording, r.acked, None),
                s => (s.into(), e.confirmed, e.last_error),
            };
            HistoryItem {
                upload_id: r.id.clone(),
                asset_id: r.asset_id.clone(),
                title: r.title.clone(),
                state,
                share_url: r.share_url.clone(),
                local_exists: e.local_exists,
                local_path: Some(e.local_path.display().to_string()),
                recorded: r.produced,
                confirmed,
                created_at: r.created_at,
                last_error,
            }
        })
        .collect())
}

pub async fn reveal<R: Runtime>(app: &AppHandle<R>, id: &str) -> Result<(), IpcError> {
    use tauri_plugin_opener::OpenerExt as _;
    let state = app.state::<AppState>();
    let rec = state.journaled(id).await?;
    let path = rec.source.local_path();
    if !path.is_file() {
        return Err(IpcError::new(
            ErrorCode::LocalFile,
            format!("{} is no longer there", path.display()),
        ));
    }
    app.opener()
        .reveal_item_in_dir(path)
        .map_err(|e| IpcError::new(ErrorCode::Desktop, format!("cannot show the file: {e}")))
}
