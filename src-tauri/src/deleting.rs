//! Deleting a recording everywhere. Delete stops the recording's upload,
//! removes its local file when asked, marks its journal entry `deleting`
//! (sticky: no upload worker can turn it back) and deletes what the server
//! holds — a TUS termination of the upload URL while the upload is
//! unfinished (or on a plain TUS endpoint), Spool's asset API with the
//! credentials once it is complete. Only the server's answer (deleted, or
//! 404/410: already gone) removes the entry from the journal; until then it
//! stays in the history as "deleting" and is retried in the background with
//! backoff (1 s doubling to 30 s) and at every launch, so a deletion the
//! server has not seen is never forgotten.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use spool_client::journal::TargetRecord;
use spool_client::remote::{Remote, Removed};
use spool_client::{Target, UploadRecord, UploadState};
use tauri::{AppHandle, Manager as _, Runtime};
use tokio::sync::Notify;

use crate::error::{ErrorCode, IpcError};
use crate::models::{Deleted, DeletedOnServer};
use crate::state::{AppState, history_changed, lock};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How long Delete waits for the server before answering "deleting" (the
/// attempt goes on in the background).
const INLINE_WAIT: Duration = Duration::from_secs(5);

/// The retry schedule of deletions the server has not confirmed (managed
/// by the app beside [`AppState`]).
pub struct Deletions {
    remote: Remote,
    wake: Notify,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Failed attempts so far and when the next is due, per upload id.
    failures: HashMap<String, (u32, Instant)>,
    /// Attempts under way (one per upload at a time).
    running: HashSet<String>,
    /// The launch's first sweep (which tries every pending deletion) is done.
    swept: bool,
}

/// The wait after `failures` failed attempts: the one backoff formula
/// (spool_proto::backoff), without jitter — one app's own deletions do
/// not come back in a herd.
fn backoff(failures: u32) -> Duration {
    spool_proto::backoff::delay(FIRST_RETRY, MAX_RETRY, failures, 0.0, None)
}

impl Deletions {
    pub fn new() -> spool_client::Result<Deletions> {
        let timeouts = spool_client::tus::Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(15),
            ..Default::default()
        };
        Ok(Deletions {
            remote: Remote::new(timeouts)?,
            wake: Notify::new(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut lock(&self.inner))
    }
}

/// What one attempt ended with.
enum Attempt {
    /// Deleted on the server (or nothing was ever there): gone from the journal.
    Done(DeletedOnServer),
    /// Not yet: retried later.
    Failed(String),
    /// Another attempt is under way, or the entry is not being deleted.
    Skipped,
}

/// Delete, as the history's button does it.
pub async fn delete<R: Runtime>(
    app: &AppHandle<R>,
    id: &str,
    delete_file: bool,
) -> Result<Deleted, IpcError> {
    let state = app.state::<AppState>();
    if state.recording_upload().as_deref() == Some(id) {
        return Err(IpcError::new(
            ErrorCode::AlreadyRecording,
            "stop the recording before deleting it",
        ));
    }
    let rec = state.journaled(id).await?;
    // Its upload stops first, and has let go of the entry when this returns.
    state.client.uploads().stop(id).await?;
    if delete_file {
        let path = rec.source.local_path();
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(IpcError::new(
                    ErrorCode::LocalFile,
                    format!("cannot delete {}: {e}", path.display()),
                ));
            }
        }
    }
    state
        .client
        .journal()
        .set_state(id, UploadState::Deleting, None)
        .await?;
    tracing::info!(%id, delete_file, "recording deleted here; deleting it on the server");
    state.forget_view_of(id);
    history_changed(app);
    // Pressing Delete again on a "deleting" item means: try now.
    app.state::<Deletions>().with(|i| i.failures.remove(id));
    let task = tauri::async_runtime::spawn(attempt(app.clone(), id.to_owned()));
    let pending = |error: Option<String>| Deleted {
        on_server: DeletedOnServer::Deleting,
        error,
    };
    Ok(match tokio::time::timeout(INLINE_WAIT, task).await {
        Ok(Ok(Attempt::Done(on_server))) => Deleted {
            on_server,
            error: None,
        },
        Ok(Ok(Attempt::Failed(e))) => pending(Some(e)),
        Ok(Ok(Attempt::Skipped)) | Ok(Err(_)) => pending(None),
        Err(_) => pending(Some(format!(
            "the server did not answer within {} s",
            INLINE_WAIT.as_secs()
        ))),
    })
}

/// Retries pending deletions for the app's life: every one at launch, then
/// each failed one when its backoff is over.
pub fn start<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let next = sweep(&app).await;
            let deletions = app.state::<Deletions>();
            let wait = next
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(MAX_RETRY);
            tokio::select! {
                _ = deletions.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Attempts the deletions that are due; when the next one will be.
async fn sweep<R: Runtime>(app: &AppHandle<R>) -> Option<Instant> {
    let state = app.state::<AppState>();
    let deletions = app.state::<Deletions>();
    let pending: Vec<String> = match state.client.journal().list().await {
        Ok(recs) => recs
            .into_iter()
            .filter(|r| r.state == UploadState::Deleting)
            .map(|r| r.id)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the journal for pending deletions");
            return Some(Instant::now() + MAX_RETRY);
        }
    };
    let first = deletions.with(|i| !i.swept);
    for id in &pending {
        // After the first sweep, an entry without failures belongs to the
        // Delete that is attempting it right now.
        let due = deletions.with(|i| match i.failures.get(id) {
            Some((_, next)) => *next <= Instant::now(),
            None => first,
        });
        if due {
            attempt(app.clone(), id.clone()).await;
        }
    }
    deletions.with(|i| {
        i.swept = true;
        i.failures.retain(|id, _| pending.contains(id));
        i.failures.values().map(|(_, next)| *next).min()
    })
}

/// One attempt at deleting upload `id` on its server.
async fn attempt<R: Runtime>(app: AppHandle<R>, id: String) -> Attempt {
    let state = app.state::<AppState>();
    let deletions = app.state::<Deletions>();
    if !deletions.with(|i| i.running.insert(id.clone())) {
        return Attempt::Skipped;
    }
    let journal = state.client.journal();
    let outcome = match journal.get(&id).await {
        Ok(Some(rec)) if rec.state == UploadState::Deleting => {
            match on_server(&state, &deletions.remote, &rec).await {
                Ok(on_server) => match journal.delete(&id).await {
                    Ok(()) => Attempt::Done(on_server),
                    Err(e) => Attempt::Failed(e.to_string()),
                },
                Err(e) => Attempt::Failed(e),
            }
        }
        Ok(_) => Attempt::Skipped,
        Err(e) => Attempt::Failed(e.to_string()),
    };
    match &outcome {
        Attempt::Done(on_server) => {
            tracing::info!(%id, ?on_server, "recording deleted on the server");
            deletions.with(|i| i.failures.remove(&id));
        }
        Attempt::Failed(e) => {
            let n = deletions.with(|i| {
                let f = i.failures.entry(id.clone()).or_insert((0, Instant::now()));
                f.0 += 1;
                f.1 = Instant::now() + backoff(f.0);
                f.0
            });
            tracing::warn!(%id, attempt = n, retry_in_s = backoff(n).as_secs(), error = %e, "the server did not delete the recording yet");
            if let Err(e) = journal.set_state(&id, UploadState::Deleting, Some(e)).await {
                tracing::warn!(%id, error = %e, "cannot journal the deletion's error");
            }
            deletions.wake.notify_one();
        }
        Attempt::Skipped => {}
    }
    deletions.with(|i| i.running.remove(&id));
    history_changed(&app);
    outcome
}

/// Deletes what the server holds of `rec`: deleted, or nothing when no
/// upload was ever created; the error (kept as the entry's last error).
async fn on_server(
    state: &AppState,
    remote: &Remote,
    rec: &UploadRecord,
) -> Result<DeletedOnServer, String> {
    let Some(url) = rec.upload_url.as_deref() else {
        return Ok(DeletedOnServer::Nothing);
    };
    let gone = |r: Removed| {
        tracing::debug!(?r, "server answer");
        DeletedOnServer::Deleted
    };
    let TargetRecord::OnDemand { server, .. } = &rec.target else {
        // A plain TUS server (or an attached URL): termination is all there is.
        return remote
            .delete_upload(url)
            .await
            .map(gone)
            .map_err(|e| e.to_string());
    };
    let complete = rec.finished && rec.length_declared && rec.acked >= rec.produced;
    if !complete || rec.asset_id.is_none() {
        match remote.delete_upload(url).await {
            Ok(r) => return Ok(gone(r)),
            // Completed meanwhile: its URL no longer deletes it, the API does.
            Err(e) if e.status() == Some(403) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let creds = match state.target_for(&rec.target).await {
        Some(Target::OnDemand {
            server,
            token_id,
            token_secret,
        }) => Some((server, token_id, token_secret)),
        _ => None,
    };
    match (creds, rec.asset_id.as_deref()) {
        (Some((server, token_id, secret)), Some(asset)) => remote
            .delete_asset(&server, &token_id, &secret, asset)
            .await
            .map(gone)
            .map_err(|e| e.to_string()),
        _ => Err(format!(
            "deleting it on {server} needs the server's token secret: enter it in Settings"
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_from_a_second_up_to_thirty() {
        let secs: Vec<u64> = (1..=7).map(|n| super::backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(super::backoff(u32::MAX).as_secs(), 30);
    }
}
