//! The types that cross IPC: what commands take and return and what events
//! carry, with their TypeScript twins generated into ui/src/bindings.ts.
//! Every state word the window switches on is an enum here (a union of
//! string literals there), so a new word is a compile error in the UI
//! rather than a silently unhandled string.

use serde::{Deserialize, Serialize};

use crate::error::IpcError;

/// A recording's state, as the main view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    #[default]
    Idle,
    Countdown,
    Recording,
    Paused,
    Uploading,
    Reconnecting,
    Stalled,
    Complete,
    Failed,
    /// Recorded locally only (no destination).
    Saved,
}

impl RecordingState {
    /// The recorder's progress word (spool_record::Progress::state).
    pub fn from_word(word: &str) -> RecordingState {
        match word {
            "countdown" => RecordingState::Countdown,
            "recording" => RecordingState::Recording,
            "paused" => RecordingState::Paused,
            "uploading" => RecordingState::Uploading,
            "reconnecting" => RecordingState::Reconnecting,
            "stalled" => RecordingState::Stalled,
            "complete" => RecordingState::Complete,
            "failed" => RecordingState::Failed,
            "saved" => RecordingState::Saved,
            "idle" => RecordingState::Idle,
            other => {
                // A word spool-record added without the app: shown as
                // recording (the capture is still what the user sees) and
                // logged, so the gap is found.
                tracing::error!(word = other, "unknown recording state word");
                RecordingState::Recording
            }
        }
    }
}

/// An upload's own state (while capturing, beside the recording's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum UploadPhase {
    Uploading,
    Reconnecting,
    Stalled,
    Complete,
    Failed,
}

impl From<spool_client::State> for UploadPhase {
    fn from(s: spool_client::State) -> Self {
        use spool_client::State as S;
        match s {
            S::Uploading => UploadPhase::Uploading,
            S::Reconnecting => UploadPhase::Reconnecting,
            S::Stalled => UploadPhase::Stalled,
            S::Complete => UploadPhase::Complete,
            S::Failed => UploadPhase::Failed,
        }
    }
}

impl UploadPhase {
    /// spool_record's upload word.
    pub fn from_word(word: &str) -> Option<UploadPhase> {
        Some(match word {
            "uploading" => UploadPhase::Uploading,
            "reconnecting" => UploadPhase::Reconnecting,
            "stalled" => UploadPhase::Stalled,
            "complete" => UploadPhase::Complete,
            "failed" => UploadPhase::Failed,
            other => {
                tracing::error!(word = other, "unknown upload state word");
                return None;
            }
        })
    }
}

/// A recording's state in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum HistoryState {
    Recording,
    Uploading,
    Reconnecting,
    Stalled,
    Complete,
    Failed,
    /// Deleted here; being deleted on the server, retried until it is.
    Deleting,
}

impl From<UploadPhase> for HistoryState {
    fn from(p: UploadPhase) -> Self {
        match p {
            UploadPhase::Uploading => HistoryState::Uploading,
            UploadPhase::Reconnecting => HistoryState::Reconnecting,
            UploadPhase::Stalled => HistoryState::Stalled,
            UploadPhase::Complete => HistoryState::Complete,
            UploadPhase::Failed => HistoryState::Failed,
        }
    }
}

impl From<spool_client::HistoryState> for HistoryState {
    fn from(s: spool_client::HistoryState) -> Self {
        use spool_client::HistoryState as C;
        match s {
            C::Deleting => HistoryState::Deleting,
            C::Uploading => HistoryState::Uploading,
            C::Reconnecting => HistoryState::Reconnecting,
            C::Stalled => HistoryState::Stalled,
            C::Complete => HistoryState::Complete,
            C::Failed => HistoryState::Failed,
            // Unfinished and not running: it needs a retry.
            C::Waiting => HistoryState::Stalled,
        }
    }
}

/// What kind of thing a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Display,
    Window,
}

/// A sound source's state while recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum SoundState {
    Active,
    /// Gone: silence is recorded in its place.
    Lost,
    /// Back after being lost.
    Restored,
}

impl SoundState {
    pub fn from_word(word: &str) -> Option<SoundState> {
        match word {
            "active" => Some(SoundState::Active),
            "lost" => Some(SoundState::Lost),
            "restored" => Some(SoundState::Restored),
            other => {
                tracing::error!(word = other, "unknown sound state word");
                None
            }
        }
    }
}

/// What Delete did on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum DeletedOnServer {
    /// Deleted there too.
    Deleted,
    /// Not yet (unreachable or refused): retried in the background and at
    /// every launch until it is.
    Deleting,
    /// Nothing was uploaded.
    Nothing,
}

/// What Rename did on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum RenamedOnServer {
    /// Renamed here and on the server.
    Renamed,
    /// A plain TUS endpoint has no titles: renamed in Spool only.
    Local,
    /// Renamed here; the server could not be updated.
    Failed,
}

/// What a launch notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// The journal was unreadable: kept under another name, a new one started.
    JournalSetAside,
    /// The embedded server did not start.
    EmbeddedServer,
    /// The managed policy file is malformed and was ignored.
    Policy,
}

/// Where the remote token secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum SecretStorage {
    /// The OS keyring.
    Keyring,
    /// No keyring answered: memory, asked again next launch.
    Memory,
    /// SPOOL_TOKEN_SECRET.
    Environment,
    /// None stored yet.
    None,
}

/// Something that can be recorded, for the source picker.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct SourceInfo {
    /// What to pass to `start_recording`.
    pub id: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub kind: SourceKind,
}

/// The recording (or its upload after Stop), as the main window shows it.
/// Byte counts are numbers (exact up to 2^53 bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, specta::Type)]
pub struct RecordingView {
    pub state: RecordingState,
    /// Capture is running (Stop is possible; also while paused).
    pub capturing: bool,
    /// Capture is paused: the elapsed time stands still.
    pub paused: bool,
    pub paused_ms: u64,
    /// The recording's exact length (pauses left out), once it is stopped.
    pub duration_ms: Option<u64>,
    /// Seconds left before capture starts, while counting down.
    pub countdown: Option<u32>,
    /// The upload's own state while capturing (`state` says paused or
    /// recording; this says uploading, reconnecting, …).
    pub upload_state: Option<UploadPhase>,
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
    /// Each source's state (absent: not recorded).
    pub mic_state: Option<SoundState>,
    pub system_state: Option<SoundState>,
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
    /// `last_error` says why a deleting one is not deleted there yet.
    pub state: HistoryState,
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
    pub on_server: DeletedOnServer,
    /// Why it is not deleted on the server yet, when "deleting".
    pub error: Option<String>,
}

/// What Rename did.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct Renamed {
    pub title: String,
    /// `error` says why a failed one failed.
    pub on_server: RenamedOnServer,
    pub error: Option<String>,
}

/// Something the user must be told once (on the launch it happened).
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct Notice {
    pub kind: NoticeKind,
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

/// Where recordings are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// The server built into the app, on localhost: links with no account.
    #[default]
    Embedded,
    /// A Spool server with an API token.
    Remote,
    /// Any TUS 1.0 creation endpoint (deferred length).
    Endpoint,
}

/// What is saved in settings.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct Settings {
    pub destination: Destination,
    pub server_url: String,
    pub token_id: String,
    pub endpoint_url: String,
    pub fps: u32,
    pub fragment_secs: f64,
    /// libx264 CRF: lower is better quality, bigger files.
    pub crf: u8,
    /// Scale down to at most this many pixels tall.
    pub max_height: Option<u32>,
    /// The last source recorded.
    pub source: Option<String>,
    /// The embedded server listens on the local network too and its share
    /// links use this computer's LAN address (off by default).
    pub share_on_lan: bool,
    /// Seconds counted down before capture starts: 0 (off), 3, 5 or 10.
    pub countdown_secs: u32,
    /// The microphone: "none", "default" (the default input), or an input's
    /// name. Unset (not chosen yet): the default microphone if there is
    /// one, else video only.
    pub mic: Option<String>,
    /// Records what the default output plays (off by default).
    pub system_audio: bool,
    /// Keeps the quality setting on a slow uplink instead of lowering the
    /// bitrate to keep the upload up with the recording (off by default).
    #[serde(default)]
    pub quality_first: bool,
}

/// Settings as the UI saves them: the secret only when typed (empty keeps the
/// stored one).
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct SettingsInput {
    pub settings: Settings,
    pub token_secret: Option<String>,
}

/// Settings as the UI shows them.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct SettingsView {
    pub settings: Settings,
    /// A secret is known for the remote server (its value never leaves the app).
    pub has_secret: bool,
    pub secret_storage: SecretStorage,
    /// SPOOL_SERVER_URL overrides the destination for this run.
    pub env_override: Option<String>,
    /// The embedded server's address, when it runs.
    pub embedded_url: Option<String>,
    /// Where share links point on the local network, when shared there.
    pub lan_url: Option<String>,
    pub embedded_error: Option<String>,
    pub data_dir: String,
    pub recordings_dir: String,
    pub log_dir: String,
    /// The managed policy in force, if a policy file was read.
    pub managed: Option<ManagedView>,
}

/// What the settings dialog shows of the managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct ManagedView {
    /// The policy file.
    pub path: String,
    /// The destination is the policy's: shown read-only.
    pub lock_destination: bool,
    /// The built-in server may be chosen.
    pub allow_embedded: bool,
    /// Updates are turned off.
    pub updates_off: bool,
}

/// An input or output, as the pickers show it.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct AudioDeviceInfo {
    /// The audio server's stable name (what the settings keep).
    pub name: String,
    pub description: String,
    /// The server's default input (or output).
    pub default: bool,
}

/// The audio server's devices, or why there are none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, specta::Type)]
pub struct AudioDevicesView {
    /// Microphones (monitors left out).
    pub inputs: Vec<AudioDeviceInfo>,
    pub outputs: Vec<AudioDeviceInfo>,
    /// Why no device is listed: no audio server answers.
    pub unavailable: Option<String>,
}
