//! How far a recording and its upload have come, as a UI shows it: the
//! recorder's counters joined with the upload's status into one
//! [`Progress`], computable during the recording and after it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use spool_client::{State, Status};
use tokio::sync::watch;

use crate::Shared;

/// How far the upload keeps pace with the recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// "recording" while capturing ("paused" while paused); then the
    /// upload's state word ("uploading", "reconnecting", "stalled",
    /// "complete"); "saved" when recording locally only.
    pub state: String,
    /// The upload's own state word, whatever the recording does ("paused"
    /// says nothing of the upload).
    pub upload_state: Option<String>,
    /// The recording's length so far: stands still while paused.
    pub elapsed_ms: u64,
    pub paused: bool,
    /// Time spent paused.
    pub paused_ms: u64,
    pub fragments_recorded: u64,
    pub fragments_confirmed: u64,
    /// Bytes of the recording on disk and queued for upload.
    pub recorded: u64,
    /// Bytes the server acknowledged.
    pub confirmed: u64,
    /// recorded − confirmed.
    pub backlog: u64,
    /// Retry attempt while reconnecting.
    pub attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Capture ticks lost (encoder behind, or slow grabs).
    pub dropped: u64,
    /// The share link from Start (the server's page plays it live).
    pub live_url: Option<String>,
    /// The sound, when recording it.
    pub audio: Option<AudioProgress>,
}

/// The sound of a recording in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AudioProgress {
    pub muted: bool,
    /// The newest level of each source, 0–1 (absent: not recorded).
    pub mic_level: Option<f32>,
    pub system_level: Option<f32>,
    /// Each source's state: `active`, `lost` or `restored`.
    pub mic: Option<String>,
    pub system: Option<String>,
}

/// Computes [`Progress`] for a recording, during and after it.
#[derive(Clone)]
pub struct ProgressHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) upload_status: Option<watch::Receiver<Status>>,
}

impl ProgressHandle {
    pub fn progress(&self) -> Progress {
        progress_of(
            &self.shared,
            self.upload_status.as_ref().map(|s| s.borrow().clone()),
        )
    }
}

fn progress_of(shared: &Shared, upload: Option<Status>) -> Progress {
    let recorded = shared.recorded.load(Ordering::Acquire);
    let capturing = shared.capturing.load(Ordering::Acquire);
    let confirmed = upload.as_ref().map_or(0, |s| s.confirmed);
    // Fragment ends only grow: count them without copying.
    let (fragments_recorded, fragments_confirmed) = shared
        .fragment_ends
        .lock()
        .map(|e| {
            (
                e.len() as u64,
                e.partition_point(|&end| end <= confirmed) as u64,
            )
        })
        .unwrap_or_default();
    let elapsed = match shared.stopped_at.lock().ok().and_then(|s| *s) {
        Some(at) => shared.clock.at(at),
        None => shared.clock.now(),
    };
    let paused = capturing && shared.clock.is_paused();
    let dropped =
        shared.stats.dropped.load(Ordering::Relaxed) + shared.stats.missed.load(Ordering::Relaxed);
    let mut p = Progress {
        state: match (capturing, paused) {
            (true, true) => "paused".into(),
            (true, false) => "recording".into(),
            (false, _) => "saved".into(),
        },
        elapsed_ms: elapsed.as_millis() as u64,
        paused,
        paused_ms: shared.clock.paused().as_millis() as u64,
        fragments_recorded,
        recorded,
        dropped,
        audio: shared.audio.as_ref().map(audio_progress),
        ..Progress::default()
    };
    if let Some(s) = upload {
        p.confirmed = s.confirmed;
        p.fragments_confirmed = fragments_confirmed;
        p.backlog = recorded.saturating_sub(s.confirmed);
        p.attempt = s.attempt;
        p.next_retry_in_ms = s.next_retry_in_ms;
        p.last_error = s.last_error.clone();
        p.live_url = s.share_url.clone();
        p.upload_state = Some(state_word(s.state).into());
        // While capturing, a retrying or stalled upload is what the user must
        // see; otherwise "recording" says it all. Paused wins: the upload's
        // state follows in `upload_state`.
        p.state = match (capturing, paused, s.state) {
            (true, true, _) => "paused".into(),
            (true, false, State::Reconnecting | State::Stalled) => state_word(s.state).into(),
            (true, false, _) => "recording".into(),
            (false, _, st) => state_word(st).into(),
        };
    }
    p
}

/// The word a UI shows for an upload state.
fn audio_progress(a: &crate::AudioShared) -> AudioProgress {
    use spool_capture::audio::AudioKind;
    let states = a.states.lock().map(|s| s.clone()).unwrap_or_default();
    let state = |k: AudioKind| {
        states
            .iter()
            .find(|(kind, _)| *kind == k)
            .map(|(_, s)| s.as_str().to_owned())
    };
    AudioProgress {
        muted: a.mixer.is_muted(),
        mic_level: a.mixer.level(AudioKind::Mic),
        system_level: a.mixer.level(AudioKind::System),
        mic: state(AudioKind::Mic),
        system: state(AudioKind::System),
    }
}

pub fn state_word(state: State) -> &'static str {
    match state {
        State::Uploading => "uploading",
        State::Reconnecting => "reconnecting",
        State::Stalled => "stalled",
        State::Complete => "complete",
        State::Failed => "failed",
    }
}
