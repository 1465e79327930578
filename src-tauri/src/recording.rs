//! What the app does with spool-record: start and stop the recording
//! (after the countdown), publish how far its upload keeps pace (at most
//! ten views a second), and hand a finished recording's upload to the
//! background (uploads.rs follows it from there).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spool_record::{ProgressHandle, Recorder, Upload};
use tauri::{AppHandle, Manager as _, Runtime};
use tauri_specta::Event as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorCode, IpcError};
use crate::models::{RecordingState, RecordingToggled, RecordingView, UploadPhase};
use crate::state::{ActiveRecording, AppState, history_changed, lock};

/// Serialises starts (button, tray and shortcut at once).
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PUBLISH_EVERY: Duration = Duration::from_millis(100);

fn toggled<R: Runtime>(app: &AppHandle<R>, capturing: bool) {
    if let Err(e) = (RecordingToggled { capturing }).emit(app) {
        tracing::debug!(error = %e, "recording-toggled not delivered");
    }
}

pub async fn start<R: Runtime>(
    app: &AppHandle<R>,
    source: Option<String>,
    title: Option<String>,
) -> Result<RecordingView, IpcError> {
    let _starting = STARTING.lock().await;
    let state = app.state::<AppState>();
    if state.is_capturing() {
        return Err(IpcError::new(
            ErrorCode::AlreadyRecording,
            "a recording is already running",
        ));
    }
    let mut settings = state.settings();
    let source = match source.filter(|s| !s.trim().is_empty()) {
        Some(s) => s,
        None => match settings.source.clone() {
            Some(s) => s,
            None => tokio::task::spawn_blocking(|| spool_capture::list(None))
                .await??
                .into_iter()
                .next()
                .map(|t| t.source)
                .ok_or_else(|| IpcError::new(ErrorCode::Source, "nothing to record was found"))?,
        },
    };
    let mut rec_settings = settings.recorder(state.paths.recordings.clone(), &source)?;
    let target = state.target().await?;
    let title = crate::controls::title_or_default(title)?;
    let generation = state.new_view_generation();
    let seconds = settings.countdown();
    if seconds > 0 && !crate::controls::count_down(&state, generation, seconds, &title).await {
        let idle = RecordingView::default();
        state.publish_for(generation, idle.clone());
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
        lock(&state.settings).source = settings.source.clone();
    }

    let (saved_tx, saved_rx) = watch::channel(false);
    let active = ActiveRecording {
        stop: recorder.stop_handle(),
        controls: recorder.controls(),
        has_audio: recorder.progress_handle().progress().audio.is_some(),
        upload_id: recorder.upload_id.clone(),
        saved: saved_rx,
    };
    *lock(&state.recording) = Some(active);
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
    state.publish_for(generation, first.clone());
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
    toggled(app, true);
    Ok(first)
}

pub fn stop(state: &AppState) -> Result<(), IpcError> {
    if crate::controls::cancel_countdown() {
        return Ok(());
    }
    let r = lock(&state.recording);
    match r.as_ref() {
        Some(active) => {
            active.stop.cancel();
            Ok(())
        }
        None => Err(IpcError::new(
            ErrorCode::NotRecording,
            "nothing is being recorded",
        )),
    }
}

pub async fn toggle<R: Runtime>(app: &AppHandle<R>) -> Result<bool, IpcError> {
    if crate::controls::cancel_countdown() {
        return Ok(false);
    }
    if app.state::<AppState>().is_capturing() {
        stop(&app.state::<AppState>())?;
        toggled(app, false);
        Ok(false)
    } else {
        start(app, None, None).await?;
        Ok(true)
    }
}

/// Stops the recording for the app to quit: waits (bounded) until its last
/// fragment is on disk and journaled, so the next launch uploads all of it.
pub async fn stop_for_exit(state: &AppState) {
    let saved = {
        let r = lock(&state.recording);
        r.as_ref().map(|a| {
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
        state: RecordingState::from_word(&p.state),
        capturing,
        paused: p.paused,
        paused_ms: p.paused_ms,
        upload_state: p.upload_state.as_deref().and_then(UploadPhase::from_word),
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

/// Publishes the recording's progress at most every 100 ms, only changes.
async fn pump<R: Runtime>(
    app: AppHandle<R>,
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
        app.state::<AppState>().publish_for(generation, view);
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
async fn drive<R: Runtime>(app: AppHandle<R>, recorder: Recorder, d: Driver) {
    let state = app.state::<AppState>();
    let result = recorder.finish().await;
    d.capturing.store(false, Ordering::Release);
    d.restore.restore(&app);
    let mut recorded = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the recording failed");
            let _ = d.saved.send(true);
            *lock(&state.recording) = None;
            d.done.cancel();
            let _ = d.pump.await;
            let mut view = view_of(&d.progress.progress(), &d.base, false);
            view.state = RecordingState::Failed;
            view.error = Some(e.into());
            state.publish_for(d.generation, view);
            toggled(&app, false);
            history_changed(&app);
            return;
        }
    };
    if let Some(session) = &recorded.upload {
        if let Err(e) = session.finish().await {
            tracing::error!(error = %e, "declaring the upload's length failed");
        }
        if let Err(e) = state.client.uploads().track(session) {
            tracing::error!(error = %e, "cannot follow the recording's upload");
        }
    }
    let _ = d.saved.send(true);
    *lock(&state.recording) = None;
    toggled(&app, false);
    history_changed(&app);
    tracing::info!(
        frames = recorded.frames,
        fragments = recorded.fragments,
        bytes = recorded.bytes,
        dropped = recorded.dropped,
        "recording saved"
    );

    let result = recorded.finish_upload(None).await;
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
            view.state = RecordingState::Complete;
            view.confirmed = c.bytes;
            view.backlog = 0;
            view.fragments_confirmed = view.fragments_recorded;
            // A plain TUS server has no share page: its upload URL is the link.
            view.share_url = c.share_url.or(Some(c.upload_url));
        }
        Ok(None) => view.state = RecordingState::Saved,
        Err(spool_record::RecordError::Upload(spool_client::ClientError::Stopped)) => {
            // Stopped on purpose: deleted, or handed to a fresh session by
            // Retry (the history follows that one); the window stops following.
            tracing::info!("the recording's upload was stopped");
            view.state = RecordingState::Idle;
        }
        Err(e) => {
            tracing::warn!(error = %e, "the upload did not complete");
            view.state = RecordingState::Failed;
            view.error = Some(e.into());
        }
    }
    state.publish_for(d.generation, view);
    history_changed(&app);
}

async fn forward_events<R: Runtime>(
    app: AppHandle<R>,
    mut events: tokio::sync::mpsc::Receiver<spool_record::Event>,
) {
    while let Some(e) = events.recv().await {
        match e {
            spool_record::Event::Upload(e) => crate::uploads::on_upload_event(&app, &e),
            spool_record::Event::Audio(e) => crate::audio::on_event(&app.state::<AppState>(), &e),
            _ => {}
        }
    }
}
