//! Sound in the app: the devices the audio server offers (for the
//! microphone picker), what a recording asks spool-record for, mute, and the
//! sound's part of the recording view. The microphone setting defaults to
//! "record the default microphone if there is one": without an audio server
//! or an input, the recording is video only and the view says why. An
//! explicit choice (a named microphone, system sound on) that cannot be met
//! fails Start with ERR_AUDIO_UNAVAILABLE, before anything is recorded.

use spool_capture::audio::{AudioDevice, AudioError, AudioRequest};

use crate::error::{ErrorCode, IpcError};
use crate::models::{AudioDeviceInfo, AudioDevicesView, RecordingView, SoundState};
use crate::settings::{Settings, validate_mic};
use crate::state::{AppState, lock};

/// The microphone setting that records none.
pub const MIC_NONE: &str = "none";
/// The microphone setting that records the default input, if any.
pub const MIC_DEFAULT: &str = "default";

fn info(d: AudioDevice) -> AudioDeviceInfo {
    let description = if d.description.is_empty() {
        d.name.clone()
    } else {
        d.description
    };
    AudioDeviceInfo {
        name: d.name,
        description,
        default: d.default,
    }
}

/// Lists the audio server's devices (off the runtime: libpulse blocks).
pub async fn devices() -> AudioDevicesView {
    let listed = tokio::task::spawn_blocking(spool_capture::audio::devices)
        .await
        .unwrap_or_else(|e| Err(AudioError::Unavailable(e.to_string())));
    match listed {
        Ok(d) => AudioDevicesView {
            inputs: d.inputs.into_iter().map(info).collect(),
            outputs: d.outputs.into_iter().map(info).collect(),
            unavailable: None,
        },
        Err(e) => AudioDevicesView {
            unavailable: Some(e.to_string()),
            ..AudioDevicesView::default()
        },
    }
}

/// The sound a recording asks for.
pub struct Plan {
    pub request: AudioRequest,
    /// The microphone is the default one the settings fall back to: if it
    /// cannot be recorded after all, the recording goes on without it.
    pub soft_mic: bool,
    /// Why the microphone is not recorded though the settings would have it.
    pub note: Option<String>,
}

impl Plan {
    /// The plan without the (soft) microphone, for `why`.
    pub fn without_mic(mut self, why: &str) -> Plan {
        self.request.mic = None;
        self.soft_mic = false;
        self.note = Some(format!("No microphone: {why}"));
        self
    }
}

/// What to record, from the settings: the microphone chosen (none, the
/// default one if there is one, or a named one) and system sound if on.
pub async fn plan(settings: &Settings) -> Plan {
    let system = settings.system_audio.then(|| MIC_DEFAULT.to_owned());
    let mut plan = Plan {
        request: AudioRequest {
            mic: None,
            system,
            ..AudioRequest::default()
        },
        soft_mic: false,
        note: None,
    };
    match settings.mic.as_deref().unwrap_or(MIC_DEFAULT) {
        MIC_NONE => {}
        MIC_DEFAULT => {
            let d = devices().await;
            if let Some(why) = d.unavailable {
                plan.note = Some(format!("No microphone: {why}"));
            } else if d.inputs.is_empty() {
                plan.note = Some("No microphone: the audio server has no input".into());
            } else {
                plan.request.mic = Some(MIC_DEFAULT.into());
                plan.soft_mic = true;
            }
        }
        name => plan.request.mic = Some(name.to_owned()),
    }
    if let Some(note) = &plan.note {
        tracing::info!(%note, "recording without the microphone");
    }
    plan
}

/// Remembers the sound choices (the picker and the switch beside Record).
pub fn set_choice(
    state: &AppState,
    mic: Option<String>,
    system_audio: bool,
) -> Result<(), IpcError> {
    validate_mic(mic.as_deref())?;
    let mut s = state.settings();
    s.mic = mic;
    s.system_audio = system_audio;
    s.save(&state.paths.settings)?;
    tracing::info!(mic = ?s.mic, system_audio, "sound choice saved");
    let mut cur = lock(&state.settings);
    cur.mic = s.mic;
    cur.system_audio = s.system_audio;
    Ok(())
}

/// Mutes or unmutes the recording's sound; whether it is muted now.
pub fn toggle_mute(state: &AppState) -> Result<bool, IpcError> {
    let active = lock(&state.recording)
        .as_ref()
        .map(|a| (a.controls.clone(), a.has_audio));
    match active {
        Some((c, true)) => Ok(c.toggle_mute()),
        Some((_, false)) => Err(IpcError::new(
            ErrorCode::AudioUnavailable,
            "this recording has no sound to mute",
        )),
        None => Err(IpcError::new(
            ErrorCode::NotRecording,
            "nothing is being recorded",
        )),
    }
}

/// A level rounded to hundredths: finer changes are not worth a repaint.
fn level(l: Option<f32>, capturing: bool) -> Option<f32> {
    l.filter(|_| capturing)
        .map(|l| (l.clamp(0.0, 1.0) * 100.0).round() / 100.0)
}

/// The sound's part of the view.
pub fn apply(view: &mut RecordingView, p: Option<&spool_record::AudioProgress>, capturing: bool) {
    let Some(a) = p else { return };
    view.has_audio = true;
    view.muted = a.muted;
    view.mic_level = level(a.mic_level, capturing);
    view.system_level = level(a.system_level, capturing);
    view.mic_state = a.mic.as_deref().and_then(SoundState::from_word);
    view.system_state = a.system.as_deref().and_then(SoundState::from_word);
}

/// A device lost or back, told as a notification (the view shows it too).
pub fn on_event(state: &AppState, e: &spool_capture::audio::AudioEvent) {
    use spool_capture::audio::{AudioKind, AudioState};
    let what = match e.kind {
        AudioKind::Mic => "Microphone",
        AudioKind::System => "System sound",
    };
    let detail = e.detail.as_deref().unwrap_or("");
    match e.state {
        AudioState::Active => tracing::info!(kind = e.kind.as_str(), detail, "sound source active"),
        AudioState::Lost => {
            tracing::warn!(kind = e.kind.as_str(), detail, "sound source lost");
            state.notify(
                &format!("{what} lost"),
                "Recording silence in its place until it is back.",
            );
        }
        AudioState::Restored => {
            tracing::info!(kind = e.kind.as_str(), detail, "sound source restored");
            state.notify(&format!("{what} back"), "Its sound is recorded again.");
        }
    }
}
