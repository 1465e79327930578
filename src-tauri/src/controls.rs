//! The recorder's controls around Record and Stop: the countdown before
//! capture (cancellable by Stop, the tray and the shortcut), moving the
//! window out of the captured area while recording where a window manager
//! can minimise it, pause and resume, and titles (the default one, and
//! renaming a recording here and on its Spool server).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use spool_client::journal::TargetRecord;
use spool_client::remote::Remote;
use tauri::{AppHandle, Manager as _, Runtime};
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorCode, IpcError};
use crate::models::{RecordingState, RecordingView, Renamed, RenamedOnServer};
use crate::state::{AppState, history_changed, lock};

/// The countdown under way, if any (one at a time: starts are serialised).
static COUNTDOWN: Mutex<Option<CancellationToken>> = Mutex::new(None);

/// The longest title accepted (the server keeps metadata values to 4 KiB).
const MAX_TITLE: usize = 1024;

/// The title a recording gets: the one typed, else "Recording <date time>".
pub fn title_or_default(title: Option<String>) -> Result<String, IpcError> {
    match title.as_deref().map(str::trim) {
        Some(t) if t.len() > MAX_TITLE => Err(IpcError::new(
            ErrorCode::InvalidSettings,
            format!("a title must be at most {MAX_TITLE} bytes"),
        )),
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Ok(format!(
            "Recording {}",
            chrono::Local::now().format("%Y-%m-%d %H:%M")
        )),
    }
}

/// Counts `seconds` down in the window's view; false when cancelled.
pub async fn count_down(state: &AppState, generation: u64, seconds: u32, title: &str) -> bool {
    let cancel = CancellationToken::new();
    *lock(&COUNTDOWN) = Some(cancel.clone());
    let done = spool_record::countdown(seconds, &cancel, |left| {
        state.publish_for(
            generation,
            RecordingView {
                state: RecordingState::Countdown,
                countdown: Some(left),
                title: Some(title.to_owned()),
                ..RecordingView::default()
            },
        );
    })
    .await;
    *lock(&COUNTDOWN) = None;
    if !done {
        tracing::info!("countdown cancelled");
    }
    done
}

/// Cancels a countdown under way; false when there is none.
pub fn cancel_countdown() -> bool {
    lock(&COUNTDOWN)
        .as_ref()
        .map(CancellationToken::cancel)
        .is_some()
}

/// Whether the window was minimised for the recording, to undo at Stop.
#[must_use]
pub struct Restore(bool);

impl Restore {
    pub fn restore<R: Runtime>(&self, app: &AppHandle<R>) {
        if self.0 {
            crate::window::show_window(app);
        }
    }
}

/// Minimises the window before the first frame when it would be in the
/// captured picture: a display or region it overlaps, on a desktop whose
/// window manager can minimise (without one — Xvfb in tests, a kiosk —
/// minimising would do nothing or lose the window, so it stays). The tray
/// and the global shortcuts keep Stop and Pause reachable meanwhile.
pub async fn get_out_of_the_way<R: Runtime>(
    app: &AppHandle<R>,
    source: &spool_capture::SourceSpec,
) -> Restore {
    let Some(w) = app.get_webview_window("main") else {
        return Restore(false);
    };
    let display = match source {
        spool_capture::SourceSpec::X11 { display, target } => {
            if matches!(target, spool_capture::X11Target::Window(_)) {
                // Another window is recorded: ours is not in its picture.
                return Restore(false);
            }
            display.clone()
        }
        // A synthetic picture or a video file never shows the window.
        spool_capture::SourceSpec::Synthetic { .. } | spool_capture::SourceSpec::File(_) => {
            return Restore(false);
        }
        spool_capture::SourceSpec::Screen(_) => None,
    };
    if !w.is_visible().unwrap_or(false) || w.is_minimized().unwrap_or(false) {
        return Restore(false);
    }
    if let spool_capture::SourceSpec::X11 {
        target: spool_capture::X11Target::Region(r),
        ..
    } = source
        && let (Ok(pos), Ok(size)) = (w.outer_position(), w.outer_size())
    {
        let (x, y) = (i64::from(pos.x), i64::from(pos.y));
        let (rx, ry) = (i64::from(r.x), i64::from(r.y));
        let apart = x + i64::from(size.width) <= rx
            || rx + i64::from(r.width) <= x
            || y + i64::from(size.height) <= ry
            || ry + i64::from(r.height) <= y;
        if apart {
            return Restore(false);
        }
    }
    if !spool_capture::window_manager_running(display.as_deref()) {
        tracing::info!("no window manager: the window stays where it is while recording");
        return Restore(false);
    }
    match w.minimize() {
        Ok(()) => {
            // The window manager minimises asynchronously: capture starts
            // once it has (bounded, so a slow one never blocks Record).
            for _ in 0..50 {
                if w.is_minimized().unwrap_or(true) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tracing::info!("window minimised for the recording");
            Restore(true)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot minimise the window");
            Restore(false)
        }
    }
}

/// Pauses or resumes the recording; whether it is paused now.
pub fn toggle_pause(state: &AppState) -> Result<bool, IpcError> {
    let controls = lock(&state.recording).as_ref().map(|a| a.controls.clone());
    match controls {
        Some(c) => Ok(c.toggle()),
        None => Err(IpcError::new(
            ErrorCode::NotRecording,
            "nothing is being recorded",
        )),
    }
}

/// Renames a recording: in the journal (the history's title), and on the
/// Spool server it was uploaded to through its asset API. A plain TUS
/// endpoint has no titles: the rename stays local, and says so.
pub async fn rename<R: Runtime>(
    app: &AppHandle<R>,
    id: &str,
    title: &str,
) -> Result<Renamed, IpcError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(IpcError::new(
            ErrorCode::InvalidSettings,
            "a title cannot be empty",
        ));
    }
    let title = title_or_default(Some(title.to_owned()))?;
    let state = app.state::<AppState>();
    let rec = state.journaled(id).await?;
    state.client.journal().set_title(id, Some(&title)).await?;
    history_changed(app);
    let renamed = |on_server: RenamedOnServer, error: Option<String>| Renamed {
        title: title.clone(),
        on_server,
        error,
    };
    let (server, token_id) = match &rec.target {
        TargetRecord::OnDemand { server, token_id } => (server, token_id),
        TargetRecord::Endpoint { .. } | TargetRecord::Attached => {
            return Ok(renamed(RenamedOnServer::Local, None));
        }
    };
    let Some(asset_id) = rec.asset_id.as_deref() else {
        return Ok(renamed(
            RenamedOnServer::Failed,
            Some("the server has not created the recording yet".into()),
        ));
    };
    let Some(spool_client::Target::OnDemand { token_secret, .. }) =
        state.target_for(&rec.target).await
    else {
        return Ok(renamed(
            RenamedOnServer::Failed,
            Some("the token secret for this server is not known: enter it in Settings".into()),
        ));
    };
    let timeouts = spool_client::tus::Timeouts {
        connect: Duration::from_secs(5),
        response: Duration::from_secs(15),
        ..Default::default()
    };
    let changes = BTreeMap::from([("title".to_owned(), Some(title.clone()))]);
    let result = match Remote::new(timeouts) {
        Ok(remote) => {
            remote
                .update_asset_metadata(server, token_id, &token_secret, asset_id, &changes)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            tracing::info!(%id, "renamed here and on the server");
            Ok(renamed(RenamedOnServer::Renamed, None))
        }
        Err(e) => {
            tracing::warn!(%id, error = %e, "renamed here; the server was not updated");
            Ok(renamed(RenamedOnServer::Failed, Some(e.to_string())))
        }
    }
}
