//! What the app does with spool-record and spool-client: start and stop the
//! recording, publish how far its upload keeps pace (at most ten views a
//! second), keep finished recordings' uploads running in the background,
//! resume unfinished uploads on launch, and build the history from the
//! journal plus what is live.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use spool_client::{SourceRecord, UploadState};
use spool_record::{ProgressHandle, Recorder, Upload};
use tauri::{AppHandle, Manager as _};
use tauri_specta::Event as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::desktop::notify;
use crate::ipc::{HistoryChanged, HistoryItem, IpcError, RecordingToggled, RecordingView, codes};
use crate::state::AppState;

/// The recording being captured.
pub struct Active {
    stop: CancellationToken,
    pub(crate) controls: spool_record::Controls,
    /// The recording has sound (Mute works).
    pub(crate) has_audio: bool,
    upload_id: Option<String>,
    /// Turns true once the last fragment is on disk and the upload's length
    /// is journaled.
    saved: watch::Receiver<bool>,
}

/// Which recording the main view follows; a newer one takes the view over
/// from an older one still uploading.
static VIEW_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Serialises starts (button, tray and shortcut at once).
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PUBLISH_EVERY: Duration = Duration::from_millis(100);

pub fn is_capturing(app: &AppHandle) -> bool {
    let state = app.state::<AppState>();
    state.recording.lock().map(|r| r.is_some()).unwrap_or(false)
}

pub(crate) fn history_changed(app: &AppHandle) {
    let _ = HistoryChanged.emit(app);
}

/// A fresh view generation: the caller's views now take the window over.
pub(crate) fn new_view_generation() -> u64 {
    VIEW_GENERATION.fetch_add(1, Ordering::AcqRel) + 1
}

pub async fn start(
    app: &AppHandle,
    source: Option<String>,
    title: Option<String>,
) -> Result<RecordingView, IpcError> {
    let _starting = STARTING.lock().await;
    if is_capturing(app) {
        return Err(IpcError::new(
            codes::ALREADY_RECORDING,
            "a recording is already running",
        ));
    }
    let state = app.state::<AppState>();
    let mut settings = state.settings();
    let source = match source.filter(|s| !s.trim().is_empty()) {
        Some(s) => s,
        None => match settings.source.clone() {
            Some(s) => s,
            None => tokio::task::spawn_blocking(|| spool_capture::list(None))
                .await
                .map_err(|e| IpcError::new(codes::INTERNAL, e.to_string()))??
                .into_iter()
                .next()
                .map(|t| t.source)
                .ok_or_else(|| IpcError::new(codes::SOURCE, "nothing to record was found"))?,
        },
    };
    let mut rec_settings = settings.recorder(state.paths.recordings.clone(), &source)?;
    let target = state.target().await?;
    let title = crate::controls::title_or_default(title)?;
    let generation = new_view_generation();
    let seconds = settings.countdown();
    if seconds > 0 && !crate::controls::count_down(app, generation, seconds, &title).await {
        let idle = RecordingView {
            state: "idle".into(),
            ..RecordingView::default()
        };
        publish(app, generation, idle.clone());
        return Ok(idle);
    }
    let mut audio = crate::audio::plan(&settings).await;
    let restore = crate::controls::get_out_of_the_way(app, &rec_settings.source).await;
    let mut options = spool_client::Options::default();
    options.timeouts.no_progress = Duration::from_secs(15);
    options.metadata.push(("title".into(), title.clone()));
    let upload = || Upload {
        client: state.client.clone(),
        target: target.clone(),
        options: options.clone(),
    };
    rec_settings.audio = audio.request.clone();
    let mut started = Recorder::start(rec_settings.clone(), Some(upload())).await;
    if let Err(spool_record::RecordError::Audio(spool_capture::audio::AudioError::Unavailable(why))) =
        &started
        && audio.soft_mic
    {
        // The default microphone went away since it was listed: the
        // default setting records video only then, saying why.
        tracing::warn!(error = %why, "the default microphone cannot be recorded");
        audio = audio.without_mic(why);
        rec_settings.audio = audio.request.clone();
        started = Recorder::start(rec_settings, Some(upload())).await;
    }
    let mut recorder = match started {
        Ok(r) => r,
        Err(e) => {
            // Nothing is recorded: the window must not stay out of the way.
            restore.restore(app);
            return Err(e.into());
        }
    };
    tracing::info!(source = %recorder.description, path = %recorder.path.display(), "recording");

    if settings.source.as_deref() != Some(source.as_str()) {
        settings.source = Some(source);
        if let Err(e) = settings.save(&state.paths.settings) {
            tracing::warn!(error = %e.message, "cannot remember the source");
        }
        if let Ok(mut s) = state.settings.lock() {
            s.source = settings.source.clone();
        }
    }

    let (saved_tx, saved_rx) = watch::channel(false);
    let active = Active {
        stop: recorder.stop_handle(),
        controls: recorder.controls(),
        has_audio: recorder.progress_handle().progress().audio.is_some(),
        upload_id: recorder.upload_id.clone(),
        saved: saved_rx,
    };
    if let Ok(mut r) = state.recording.lock() {
        *r = Some(active);
    }
    let capturing = Arc::new(AtomicBool::new(true));
    let base = RecordingView {
        upload_id: recorder.upload_id.clone(),
        local_path: Some(recorder.path.display().to_string()),
        title: Some(title),
        audio_note: audio.note,
        ..RecordingView::default()
    };
    if let Some(events) = recorder.take_events() {
        tauri::async_runtime::spawn(forward_events(app.clone(), events));
    }
    let progress = recorder.progress_handle();
    let first = view_of(&progress.progress(), &base, true);
    publish(app, generation, first.clone());
    let done = CancellationToken::new();
    let pump = tauri::async_runtime::spawn(pump(
        app.clone(),
        generation,
        progress.clone(),
        base.clone(),
        capturing.clone(),
        done.clone(),
    ));
    tauri::async_runtime::spawn(drive(
        app.clone(),
        recorder,
        Driver {
            generation,
            progress,
            base,
            capturing,
            done,
            pump,
            saved: saved_tx,
            restore,
        },
    ));
    history_changed(app);
    let _ = RecordingToggled { capturing: true }.emit(app);
    Ok(first)
}

pub fn stop(app: &AppHandle) -> Result<(), IpcError> {
    if crate::controls::cancel_countdown() {
        return Ok(());
    }
    let state = app.state::<AppState>();
    let r = state.recording.lock();
    match r.as_ref().ok().and_then(|r| r.as_ref()) {
        Some(active) => {
            active.stop.cancel();
            Ok(())
        }
        None => Err(IpcError::new(
            codes::NOT_RECORDING,
            "nothing is being recorded",
        )),
    }
}

pub async fn toggle(app: &AppHandle) -> Result<bool, IpcError> {
    if crate::controls::cancel_countdown() {
        return Ok(false);
    }
    if is_capturing(app) {
        stop(app)?;
        let _ = RecordingToggled { capturing: false }.emit(app);
        Ok(false)
    } else {
        start(app, None, None).await?;
        Ok(true)
    }
}

/// Stops the recording for the app to quit: waits (bounded) until its last
/// fragment is on disk and journaled, so the next launch uploads all of it.
pub async fn stop_for_exit(app: &AppHandle) {
    let saved = {
        let state = app.state::<AppState>();
        let r = state.recording.lock();
        r.as_ref().ok().and_then(|r| r.as_ref()).map(|a| {
            a.stop.cancel();
            a.saved.clone()
        })
    };
    if let Some(mut saved) = saved {
        let wait = saved.wait_for(|s| *s);
        if tokio::time::timeout(Duration::from_secs(15), wait)
            .await
            .is_err()
        {
            tracing::warn!("the recording did not finish saving before exit");
        }
    }
}

fn view_of(p: &spool_record::Progress, base: &RecordingView, capturing: bool) -> RecordingView {
    let mut view = RecordingView {
        state: p.state.clone(),
        capturing,
        paused: p.paused,
        paused_ms: p.paused_ms,
        upload_state: p.upload_state.clone(),
        // Whole seconds: the window shows mm:ss, and a view that differs only
        // in milliseconds is not worth a repaint.
        elapsed_ms: p.elapsed_ms / 1000 * 1000,
        fragments_recorded: p.fragments_recorded,
        fragments_confirmed: p.fragments_confirmed,
        recorded: p.recorded,
        confirmed: p.confirmed,
        backlog: p.backlog,
        attempt: p.attempt,
        next_retry_in_ms: p.next_retry_in_ms,
        last_error: p.last_error.clone(),
        dropped: p.dropped,
        live_url: p.live_url.clone().or_else(|| base.live_url.clone()),
        ..base.clone()
    };
    crate::audio::apply(&mut view, p.audio.as_ref(), capturing);
    view
}

pub(crate) fn publish(app: &AppHandle, generation: u64, view: RecordingView) {
    if VIEW_GENERATION.load(Ordering::Acquire) == generation {
        app.state::<AppState>().publish(view);
    }
}

/// Publishes the recording's progress at most every 100 ms, only changes.
async fn pump(
    app: AppHandle,
    generation: u64,
    progress: ProgressHandle,
    base: RecordingView,
    capturing: Arc<AtomicBool>,
    done: CancellationToken,
) {
    loop {
        let view = view_of(
            &progress.progress(),
            &base,
            capturing.load(Ordering::Acquire),
        );
        publish(&app, generation, view);
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(PUBLISH_EVERY) => {}
        }
    }
}

struct Driver {
    generation: u64,
    progress: ProgressHandle,
    base: RecordingView,
    capturing: Arc<AtomicBool>,
    done: CancellationToken,
    pump: tauri::async_runtime::JoinHandle<()>,
    saved: watch::Sender<bool>,
    /// Brings the window back at Stop if it was moved out of the way.
    restore: crate::controls::Restore,
}

/// Follows a recording to its end: capture and encoding, then its upload,
/// which goes on in the background (a new recording may start meanwhile).
async fn drive(app: AppHandle, recorder: Recorder, d: Driver) {
    let state = app.state::<AppState>();
    let result = recorder.finish().await;
    d.capturing.store(false, Ordering::Release);
    d.restore.restore(&app);
    let mut recorded = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the recording failed");
            let _ = d.saved.send(true);
            if let Ok(mut r) = state.recording.lock() {
                *r = None;
            }
            d.done.cancel();
            let _ = d.pump.await;
            let mut view = view_of(&d.progress.progress(), &d.base, false);
            view.state = "failed".into();
            view.error = Some(e.into());
            publish(&app, d.generation, view);
            let _ = RecordingToggled { capturing: false }.emit(&app);
            history_changed(&app);
            return;
        }
    };
    let upload_id = d.base.upload_id.clone().unwrap_or_default();
    if let Some(session) = &recorded.upload {
        if let Err(e) = session.finish().await {
            tracing::error!(error = %e, "declaring the upload's length failed");
        }
        state.track_upload(&upload_id, session);
    }
    let _ = d.saved.send(true);
    if let Ok(mut r) = state.recording.lock() {
        *r = None;
    }
    let _ = RecordingToggled { capturing: false }.emit(&app);
    history_changed(&app);
    tracing::info!(
        frames = recorded.frames,
        fragments = recorded.fragments,
        bytes = recorded.bytes,
        dropped = recorded.dropped,
        "recording saved"
    );

    let result = recorded.finish_upload(None).await;
    state.untrack_upload(&upload_id);
    d.done.cancel();
    let _ = d.pump.await;
    let base = RecordingView {
        duration_ms: Some(recorded.duration.as_millis() as u64),
        ..d.base.clone()
    };
    let mut view = view_of(&d.progress.progress(), &base, false);
    match result {
        Ok(Some(c)) => {
            tracing::info!(
                ms = recorded.stopped_at.elapsed().as_millis() as u64,
                "link ready after Stop"
            );
            view.state = "complete".into();
            view.confirmed = c.bytes;
            view.backlog = 0;
            view.fragments_confirmed = view.fragments_recorded;
            // A plain TUS server has no share page: its upload URL is the link.
            view.share_url = c.share_url.or(Some(c.upload_url));
        }
        Ok(None) => view.state = "saved".into(),
        Err(spool_record::RecordError::Upload(spool_client::ClientError::Stopped)) => {
            // Stopped on purpose: deleted, or handed to a fresh session by
            // Retry (the history follows that one); the window stops following.
            tracing::info!("the recording's upload was stopped");
            view.state = "idle".into();
        }
        Err(e) => {
            tracing::warn!(error = %e, "the upload did not complete");
            view.state = "failed".into();
            view.error = Some(e.into());
        }
    }
    publish(&app, d.generation, view);
    history_changed(&app);
}

/// Notifications and history updates from an upload's events.
fn on_upload_event(app: &AppHandle, e: &spool_client::Event) {
    match e {
        spool_client::Event::Complete { share_url, .. } => {
            notify(
                "Link ready",
                share_url.as_deref().unwrap_or("The upload is complete."),
            );
            history_changed(app);
        }
        spool_client::Event::Stalled { error } => {
            notify(
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

async fn forward_events(
    app: AppHandle,
    mut events: tokio::sync::mpsc::Receiver<spool_record::Event>,
) {
    while let Some(e) = events.recv().await {
        match e {
            spool_record::Event::Upload(e) => on_upload_event(&app, &e),
            spool_record::Event::Audio(e) => crate::audio::on_event(&e),
            _ => {}
        }
    }
}

/// Resumes every unfinished upload in the journal, in the background.
pub fn resume_unfinished(app: AppHandle) {
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
                Err(e) if e.code == spool_proto::ErrorCode::RecordingInProgress.as_str() => {
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
pub async fn resume(app: &AppHandle, id: &str, retry_now: bool) -> Result<(), IpcError> {
    let state = app.state::<AppState>();
    if recording_upload(app).as_deref() == Some(id) {
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
            codes::NOT_FOUND,
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

/// The upload of the recording being captured, if any.
pub(crate) fn recording_upload(app: &AppHandle) -> Option<String> {
    let state = app.state::<AppState>();
    let r = state.recording.lock().ok()?;
    r.as_ref().and_then(|a| a.upload_id.clone())
}

pub(crate) fn local_path(source: &SourceRecord) -> PathBuf {
    match source {
        SourceRecord::File { path, .. } => path.clone(),
        SourceRecord::Stream { label } => PathBuf::from(label),
    }
}

pub async fn history(app: &AppHandle) -> Result<Vec<HistoryItem>, IpcError> {
    let state = app.state::<AppState>();
    let recs = state.client.journal().list().await?;
    let recording = recording_upload(app);
    let mut items: Vec<HistoryItem> = recs
        .into_iter()
        .map(|r| {
            let live = state.live_upload(&r.id).map(|(status, _)| status);
            let path = local_path(&r.source);
            let (state_word, confirmed, error) = if r.state == UploadState::Deleting {
                ("deleting", r.acked, r.last_error.clone())
            } else if recording.as_deref() == Some(r.id.as_str()) {
                ("recording", r.acked, None)
            } else if let Some(s) = &live {
                (
                    spool_record::state_word(s.state),
                    s.confirmed,
                    s.last_error.clone(),
                )
            } else {
                let w = match r.state {
                    UploadState::Complete => "complete",
                    UploadState::Failed => "failed",
                    // Unfinished and not running: it needs a retry.
                    _ => "stalled",
                };
                (w, r.acked, r.last_error.clone())
            };
            HistoryItem {
                upload_id: r.id.clone(),
                asset_id: r.asset_id.clone(),
                title: r.title.clone(),
                state: state_word.into(),
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

pub async fn reveal(app: &AppHandle, id: &str) -> Result<(), IpcError> {
    use tauri_plugin_opener::OpenerExt as _;
    let state = app.state::<AppState>();
    let rec = state.journaled(id).await?;
    let path = local_path(&rec.source);
    if !path.is_file() {
        return Err(IpcError::new(
            codes::LOCAL_FILE,
            format!("{} is no longer there", path.display()),
        ));
    }
    app.opener()
        .reveal_item_in_dir(&path)
        .map_err(|e| IpcError::new(codes::DESKTOP, format!("cannot show the file: {e}")))
}
