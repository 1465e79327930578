//! The typed IPC between the web UI and the app: every command and event the
//! window may use, with TypeScript bindings generated from these very types
//! (ui/src/bindings.ts, kept current by the `bindings_are_current` test).
//! Errors cross as `{code, message}` with stable `ERR_*` codes — the app's
//! own below, or the upload protocol's (`spool_proto::ErrorCode`) carried
//! through unchanged where the client library's error has one; recording
//! progress goes over a channel at most ten times a second.

use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use crate::audio::AudioDevicesView;
use crate::recording;
use crate::settings::{SettingsInput, SettingsView};
use crate::state::AppState;

/// An error as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IpcError {
    pub code: String,
    pub message: String,
}

impl IpcError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        IpcError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Stable error codes of the IPC boundary.
pub mod codes {
    pub const INVALID_SETTINGS: &str = "ERR_INVALID_SETTINGS";
    pub const ALREADY_RECORDING: &str = "ERR_ALREADY_RECORDING";
    pub const NOT_RECORDING: &str = "ERR_NOT_RECORDING";
    pub const SOURCE: &str = "ERR_SOURCE";
    pub const ENCODE: &str = "ERR_ENCODE";
    pub const UPLOAD: &str = "ERR_UPLOAD";
    pub const NO_DESTINATION: &str = "ERR_NO_DESTINATION";
    pub const NOT_FOUND: &str = "ERR_NOT_FOUND";
    pub const LOCAL_FILE: &str = "ERR_LOCAL_FILE";
    pub const DESKTOP: &str = "ERR_DESKTOP";
    pub const INTERNAL: &str = "ERR_INTERNAL";
}

/// The code of a client library error: its protocol code where it has one
/// (`ERR_RECORDING_IN_PROGRESS`, `ERR_UPLOAD_TERMINATED`, the server's own…),
/// else `ERR_UPLOAD`.
fn client_code(e: &spool_client::ClientError) -> &'static str {
    e.code().map_or(codes::UPLOAD, |c| c.as_str())
}

impl From<spool_record::RecordError> for IpcError {
    fn from(e: spool_record::RecordError) -> Self {
        use spool_record::RecordError as E;
        let code = match &e {
            E::Invalid(_) => codes::INVALID_SETTINGS,
            E::Capture(_) => codes::SOURCE,
            // ERR_AUDIO_UNAVAILABLE: sound asked for that cannot be recorded.
            E::Audio(spool_capture::audio::AudioError::Unavailable(_)) => {
                spool_proto::ErrorCode::AudioUnavailable.as_str()
            }
            E::Audio(spool_capture::audio::AudioError::Invalid(_)) => codes::INVALID_SETTINGS,
            E::Encode(_) => codes::ENCODE,
            E::Upload(c) => client_code(c),
            E::NoProgress(_) => codes::UPLOAD,
            E::Io { .. } => codes::LOCAL_FILE,
            E::Internal(_) => codes::INTERNAL,
        };
        IpcError::new(code, e.to_string())
    }
}

impl From<spool_client::ClientError> for IpcError {
    fn from(e: spool_client::ClientError) -> Self {
        IpcError::new(client_code(&e), e.to_string())
    }
}

impl From<spool_capture::CaptureError> for IpcError {
    fn from(e: spool_capture::CaptureError) -> Self {
        IpcError::new(codes::SOURCE, e.to_string())
    }
}

/// Something that can be recorded, for the source picker.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct SourceInfo {
    /// What to pass to `start_recording`.
    pub id: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// "display" or "window".
    pub kind: String,
}

/// The recording (or its upload after Stop), as the main window shows it.
/// Byte counts are numbers (exact up to 2^53 bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, specta::Type)]
pub struct RecordingView {
    /// "idle", "countdown", "recording", "paused", "uploading",
    /// "reconnecting", "stalled", "complete", "failed" or "saved" (recorded
    /// locally only).
    pub state: String,
    /// Capture is running (Stop is possible; also while paused).
    pub capturing: bool,
    /// Capture is paused: the elapsed time stands still.
    pub paused: bool,
    pub paused_ms: u64,
    /// The recording's exact length (pauses left out), once it is stopped.
    pub duration_ms: Option<u64>,
    /// Seconds left before capture starts, while counting down.
    pub countdown: Option<u32>,
    /// The upload's own state word while capturing (`state` says "paused"
    /// or "recording"; this says "uploading", "reconnecting", …).
    pub upload_state: Option<String>,
    pub title: Option<String>,
    pub upload_id: Option<String>,
    /// Elapsed recording time, in whole seconds (as milliseconds).
    pub elapsed_ms: u64,
    pub fragments_recorded: u64,
    pub fragments_confirmed: u64,
    /// Bytes recorded (on disk, queued for upload).
    pub recorded: u64,
    /// Bytes the server acknowledged.
    pub confirmed: u64,
    pub backlog: u64,
    pub attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub last_error: Option<String>,
    pub dropped: u64,
    pub share_url: Option<String>,
    /// The share link from Start: the page plays the recording live while
    /// it uploads (`share_url` is set once the upload is complete).
    pub live_url: Option<String>,
    pub local_path: Option<String>,
    /// Why the recording or its upload failed.
    pub error: Option<IpcError>,
    /// The recording has sound (Mute works).
    pub has_audio: bool,
    pub muted: bool,
    /// The newest level of each source while capturing, 0–1 (absent: not
    /// recorded, or not capturing).
    pub mic_level: Option<f32>,
    pub system_level: Option<f32>,
    /// Each source's state: "active", "lost" (recording silence in its
    /// place) or "restored" (absent: not recorded).
    pub mic_state: Option<String>,
    pub system_state: Option<String>,
    /// Why the microphone is not recorded though the settings would have it
    /// (no audio server, no input): the recording is video only.
    pub audio_note: Option<String>,
}

/// One recording in the history.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct HistoryItem {
    pub upload_id: String,
    pub asset_id: Option<String>,
    pub title: Option<String>,
    /// "recording", "uploading", "reconnecting", "stalled", "complete",
    /// "failed", or "deleting" (deleted here; being deleted on the server,
    /// retried until it is — `last_error` says why it has not been yet).
    pub state: String,
    pub share_url: Option<String>,
    pub local_path: Option<String>,
    pub local_exists: bool,
    pub recorded: u64,
    pub confirmed: u64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_error: Option<String>,
}

/// What Delete did on the server.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct Deleted {
    /// "deleted" (on the server too), "deleting" (the server could not be
    /// reached or refused: retried in the background and at every launch
    /// until it is deleted there), or "nothing" (nothing was uploaded).
    pub on_server: String,
    /// Why it is not deleted on the server yet, when "deleting".
    pub error: Option<String>,
}

/// What Rename did.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct Renamed {
    pub title: String,
    /// "renamed" (here and on the server), "local" (the destination is a
    /// plain TUS endpoint, which has no titles: renamed in Spool only), or
    /// "failed" (renamed here; the server could not be updated — `error`
    /// says why).
    pub on_server: String,
    pub error: Option<String>,
}

/// Something the user must be told once (on the launch it happened).
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct Notice {
    /// "journal-set-aside" (the journal was unreadable: kept under another
    /// name, and a new one started) or "embedded-server" (it did not start).
    pub kind: String,
    pub message: String,
}

/// The history changed (a state, a new recording, a deletion).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct HistoryChanged;

/// The recording was started or stopped from outside the window (tray,
/// global shortcut).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct RecordingToggled {
    pub capturing: bool,
}

type IpcResult<T> = Result<T, IpcError>;

#[tauri::command]
#[specta::specta]
async fn list_sources() -> IpcResult<Vec<SourceInfo>> {
    let targets = tokio::task::spawn_blocking(|| spool_capture::list(None))
        .await
        .map_err(|e| IpcError::new(codes::INTERNAL, e.to_string()))??;
    Ok(targets
        .into_iter()
        .map(|t| SourceInfo {
            kind: if t.source.starts_with("window:") {
                "window".into()
            } else {
                "display".into()
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
async fn start_recording(
    app: AppHandle,
    source: String,
    title: Option<String>,
) -> IpcResult<RecordingView> {
    recording::start(&app, Some(source), title).await
}

/// Stops the recording (or cancels the countdown before it).
#[tauri::command]
#[specta::specta]
async fn stop_recording(app: AppHandle) -> IpcResult<()> {
    recording::stop(&app)
}

/// Pauses or resumes the recording; whether it is paused now.
#[tauri::command]
#[specta::specta]
async fn toggle_pause(app: AppHandle) -> IpcResult<bool> {
    crate::controls::toggle_pause(&app)
}

/// Mutes or unmutes the recording's sound; whether it is muted now.
#[tauri::command]
#[specta::specta]
async fn toggle_mute(app: AppHandle) -> IpcResult<bool> {
    crate::audio::toggle_mute(&app)
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
async fn rename_recording(app: AppHandle, upload_id: String, title: String) -> IpcResult<Renamed> {
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
async fn list_history(app: AppHandle) -> IpcResult<Vec<HistoryItem>> {
    recording::history(&app).await
}

/// Resumes (or retries now) an unfinished upload.
#[tauri::command]
#[specta::specta]
async fn resume_upload(app: AppHandle, upload_id: String) -> IpcResult<()> {
    recording::resume(&app, &upload_id, true).await
}

/// Deletes a recording: from the history, on the server it was uploaded
/// to, and with `delete_file` its local file too.
#[tauri::command]
#[specta::specta]
async fn delete_recording(
    app: AppHandle,
    upload_id: String,
    delete_file: bool,
) -> IpcResult<Deleted> {
    crate::deleting::delete(&app, &upload_id, delete_file).await
}

/// What the user must be told about this launch; each notice is given once.
#[tauri::command]
#[specta::specta]
fn take_notices(state: State<'_, AppState>) -> Vec<Notice> {
    state.take_notices()
}

#[tauri::command]
#[specta::specta]
async fn reveal_file(app: AppHandle, upload_id: String) -> IpcResult<()> {
    recording::reveal(&app, &upload_id).await
}

#[tauri::command]
#[specta::specta]
fn copy_text(app: AppHandle, text: String) -> IpcResult<()> {
    use tauri_plugin_clipboard_manager::ClipboardExt as _;
    app.clipboard()
        .write_text(text)
        .map_err(|e| IpcError::new(codes::DESKTOP, format!("cannot use the clipboard: {e}")))
}

/// Opens a share link in the default browser (never inside the app's window).
#[tauri::command]
#[specta::specta]
fn open_link(app: AppHandle, url: String) -> IpcResult<()> {
    use tauri_plugin_opener::OpenerExt as _;
    if crate::settings::http_url(&url).is_none() {
        return Err(IpcError::new(codes::INVALID_SETTINGS, "not a web link"));
    }
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(|e| IpcError::new(codes::DESKTOP, format!("cannot open a browser: {e}")))
}

/// Every command and event of the window, for the invoke handler and the
/// TypeScript bindings.
pub fn builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .dangerously_cast_bigints_to_number()
        .disable_serde_phases()
        .commands(tauri_specta::collect_commands![
            list_sources,
            watch_recording,
            start_recording,
            stop_recording,
            toggle_pause,
            toggle_mute,
            list_audio_devices,
            set_audio,
            rename_recording,
            get_settings,
            save_settings,
            list_history,
            resume_upload,
            delete_recording,
            take_notices,
            reveal_file,
            copy_text,
            open_link,
        ])
        .events(tauri_specta::collect_events![
            HistoryChanged,
            RecordingToggled
        ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::IpcError;

    /// The UI sees the protocol's code of a client error, not a catch-all.
    #[test]
    fn client_errors_keep_their_codes_across_ipc() {
        use spool_client::ClientError as C;
        use spool_proto::ErrorCode;
        let code = |e: C| IpcError::from(e).code;
        assert_eq!(
            code(C::RecordingInProgress("recorded by pid 7".into())),
            "ERR_RECORDING_IN_PROGRESS"
        );
        assert_eq!(
            code(C::Terminated("deleted".into())),
            "ERR_UPLOAD_TERMINATED"
        );
        assert_eq!(
            code(C::Server {
                status: 507,
                code: Some(ErrorCode::InsufficientStorage),
                message: "full".into(),
                retry_after: None,
            }),
            "ERR_INSUFFICIENT_STORAGE"
        );
        // Without a code of its own, an upload error is ERR_UPLOAD.
        assert_eq!(code(C::Network("reset".into())), "ERR_UPLOAD");
        assert_eq!(
            code(C::Server {
                status: 502,
                code: None,
                message: "bad gateway".into(),
                retry_after: None,
            }),
            "ERR_UPLOAD"
        );
        // Sound that cannot be recorded keeps its protocol code.
        let e = spool_record::RecordError::Audio(spool_capture::audio::AudioError::Unavailable(
            "no such device".into(),
        ));
        assert_eq!(IpcError::from(e).code, "ERR_AUDIO_UNAVAILABLE");
        // Also when it comes through the recorder.
        let e = spool_record::RecordError::Upload(C::Terminated("deleted".into()));
        assert_eq!(IpcError::from(e).code, "ERR_UPLOAD_TERMINATED");
    }

    /// The committed bindings are what these types generate; a stale file is
    /// rewritten and the test fails so the change gets committed.
    #[test]
    fn bindings_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let committed = root.join("ui/src/bindings.ts");
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("bindings.ts");
        super::builder()
            .export(specta_typescript::Typescript::default(), &fresh)
            .unwrap();
        let fresh = std::fs::read_to_string(&fresh).unwrap();
        let old = std::fs::read_to_string(&committed).unwrap_or_default();
        if old != fresh {
            std::fs::write(&committed, &fresh).unwrap();
            panic!(
                "ui/src/bindings.ts was stale and has been regenerated: rebuild the UI and commit it"
            );
        }
    }
}
