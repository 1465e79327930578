//! The window's commands: each a thin call into the module that does the
//! work, and [`builder`], which registers them (from the one list in
//! command_list.rs) with their events for the invoke handler and the
//! TypeScript bindings.

use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime, State};

use crate::deleting;
use crate::error::{ErrorCode, IpcError, IpcResult};
use crate::models::{
    AudioDevicesView, Deleted, HistoryChanged, HistoryItem, Notice, RecordingToggled,
    RecordingView, Renamed, SettingsInput, SettingsView, SourceInfo, SourceKind,
};
use crate::state::AppState;
use crate::updates::{UpdateChanged, UpdateView, Updates};
use crate::{recording, uploads};

#[tauri::command]
#[specta::specta]
async fn list_sources() -> IpcResult<Vec<SourceInfo>> {
    let targets = tokio::task::spawn_blocking(|| spool_capture::list(None)).await??;
    Ok(targets
        .into_iter()
        .map(|t| SourceInfo {
            kind: if t.source.starts_with("window:") {
                SourceKind::Window
            } else {
                SourceKind::Display
            },
            id: t.source,
            name: t.name,
            width: t.width,
            height: t.height,
        })
        .collect())
}

/// Subscribes the window to recording progress (the latest view at once,
/// then changes, at most ten a second).
#[tauri::command]
#[specta::specta]
fn watch_recording(state: State<'_, AppState>, on_progress: Channel<RecordingView>) {
    // The window's first call: the UI is up (the launch benchmark reads this).
    tracing::info!(
        ms = crate::STARTED.elapsed().as_millis() as u64,
        "window ready"
    );
    state.set_progress_channel(on_progress);
}

/// Starts recording `source` (after the countdown, which Stop cancels)
/// under `title` (empty: "Recording <date time>").
#[tauri::command]
#[specta::specta]
async fn start_recording<R: Runtime>(
    app: AppHandle<R>,
    source: String,
    title: Option<String>,
) -> IpcResult<RecordingView> {
    recording::start(&app, Some(source), title).await
}

/// Stops the recording (or cancels the countdown before it).
#[tauri::command]
#[specta::specta]
async fn stop_recording(state: State<'_, AppState>) -> IpcResult<()> {
    recording::stop(&state)
}

/// Pauses or resumes the recording; whether it is paused now.
#[tauri::command]
#[specta::specta]
async fn toggle_pause(state: State<'_, AppState>) -> IpcResult<bool> {
    crate::controls::toggle_pause(&state)
}

/// Mutes or unmutes the recording's sound; whether it is muted now.
#[tauri::command]
#[specta::specta]
async fn toggle_mute(state: State<'_, AppState>) -> IpcResult<bool> {
    crate::audio::toggle_mute(&state)
}

/// The audio server's microphones and outputs (or why there are none).
#[tauri::command]
#[specta::specta]
async fn list_audio_devices() -> AudioDevicesView {
    crate::audio::devices().await
}

/// Remembers the microphone ("none", "default", a device name; null: not
/// chosen, the default one if there is one) and the system-sound switch.
#[tauri::command]
#[specta::specta]
async fn set_audio(
    state: State<'_, AppState>,
    mic: Option<String>,
    system_audio: bool,
) -> IpcResult<()> {
    crate::audio::set_choice(&state, mic, system_audio)
}

/// Renames a recording here and, on a Spool server, there too.
#[tauri::command]
#[specta::specta]
async fn rename_recording<R: Runtime>(
    app: AppHandle<R>,
    upload_id: String,
    title: String,
) -> IpcResult<Renamed> {
    crate::controls::rename(&app, &upload_id, &title).await
}

#[tauri::command]
#[specta::specta]
async fn get_settings(state: State<'_, AppState>) -> IpcResult<SettingsView> {
    Ok(state.settings_view().await)
}

#[tauri::command]
#[specta::specta]
async fn save_settings(
    state: State<'_, AppState>,
    settings: SettingsInput,
) -> IpcResult<SettingsView> {
    state.save_settings(settings).await
}

#[tauri::command]
#[specta::specta]
async fn list_history(state: State<'_, AppState>) -> IpcResult<Vec<HistoryItem>> {
    uploads::history(&state).await
}

/// Resumes (or retries now) an unfinished upload.
#[tauri::command]
#[specta::specta]
async fn resume_upload<R: Runtime>(app: AppHandle<R>, upload_id: String) -> IpcResult<()> {
    uploads::resume(&app, &upload_id, true).await
}

/// Deletes a recording: from the history, on the server it was uploaded
/// to, and with `delete_file` its local file too.
#[tauri::command]
#[specta::specta]
async fn delete_recording<R: Runtime>(
    app: AppHandle<R>,
    upload_id: String,
    delete_file: bool,
) -> IpcResult<Deleted> {
    deleting::delete(&app, &upload_id, delete_file).await
}

/// What the user must be told about this launch; each notice is given once.
#[tauri::command]
#[specta::specta]
fn take_notices(state: State<'_, AppState>) -> Vec<Notice> {
    state.take_notices()
}

#[tauri::command]
#[specta::specta]
async fn reveal_file<R: Runtime>(app: AppHandle<R>, upload_id: String) -> IpcResult<()> {
    uploads::reveal(&app, &upload_id).await
}

#[tauri::command]
#[specta::specta]
fn copy_text<R: Runtime>(app: AppHandle<R>, text: String) -> IpcResult<()> {
    use tauri_plugin_clipboard_manager::ClipboardExt as _;
    app.clipboard()
        .write_text(text)
        .map_err(|e| IpcError::new(ErrorCode::Desktop, format!("cannot use the clipboard: {e}")))
}

/// Opens a share link in the default browser (never inside the app's window).
#[tauri::command]
#[specta::specta]
fn open_link<R: Runtime>(app: AppHandle<R>, url: String) -> IpcResult<()> {
    use tauri_plugin_opener::OpenerExt as _;
    if crate::settings::http_url(&url).is_none() {
        return Err(IpcError::new(ErrorCode::InvalidSettings, "not a web link"));
    }
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(|e| IpcError::new(ErrorCode::Desktop, format!("cannot open a browser: {e}")))
}

/// Where updates stand now (then `UpdateChanged` events).
#[tauri::command]
#[specta::specta]
fn get_update(updates: State<'_, Updates>) -> UpdateView {
    updates.view()
}

/// Asks the update server now.
#[tauri::command]
#[specta::specta]
fn check_for_updates(updates: State<'_, Updates>) -> UpdateView {
    updates.check_now();
    updates.view()
}

/// Installs the verified update — once nothing is recorded or uploaded.
#[tauri::command]
#[specta::specta]
fn install_update(updates: State<'_, Updates>) -> IpcResult<UpdateView> {
    updates.ask_install()
}

/// Every command and event of the window, for the invoke handler and the
/// TypeScript bindings.
pub fn builder<R: Runtime>() -> tauri_specta::Builder<R> {
    macro_rules! collect {
        ($($command:ident $([$generic:path])?),* $(,)?) => {
            tauri_specta::collect_commands![$($command $(::<$generic>)?),*]
        };
    }
    tauri_specta::Builder::<R>::new()
        .dangerously_cast_bigints_to_number()
        .disable_serde_phases()
        .commands(crate::app_commands!(collect))
        .events(tauri_specta::collect_events![
            HistoryChanged,
            RecordingToggled,
            UpdateChanged
        ])
}
