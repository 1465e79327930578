//! Turns any probed upload into the fragmented MP4 the player needs:
//! keyframe-led fragments (`frag_keyframe+empty_moov+default_base_moof`),
//! H.264, VP9 and AV1 video copied as they are and AAC/Opus audio copied;
//! any other video codec transcoded to H.264 (libx264) and any other audio
//! to AAC-LC, with progress reported as it goes.
//!
//! CONTRACT (filled in by the ffmpeg helper; keep these signatures).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::MediaError;
use crate::probe::Probe;

/// What [`normalize`] will do with each stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Every stream is copied (no re-encoding).
    Remux,
    /// Video is re-encoded to H.264 (audio copied or re-encoded as needed).
    TranscodeVideo,
    /// Video copied, audio re-encoded to AAC.
    TranscodeAudio,
}

/// The plan for `probe`.
pub fn plan(probe: &Probe) -> Plan {
    let _ = probe;
    unimplemented!("ffmpeg helper")
}

/// Writes `output` (a fragmented MP4) from `input`. `progress` is called
/// with 0..=1 as input time advances (at most a few times a second);
/// `cancel` stops it with [`MediaError::Cancelled`]. Runs on the calling
/// thread (blocking). `output` is written in place: callers write to a
/// temporary name and rename.
pub fn normalize(
    input: &Path,
    output: &Path,
    probe: &Probe,
    progress: &mut dyn FnMut(f64),
    cancel: &AtomicBool,
) -> Result<Plan, MediaError> {
    let _ = (input, output, probe, progress, cancel);
    unimplemented!("ffmpeg helper")
}
