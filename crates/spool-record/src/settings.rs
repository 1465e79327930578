//! What a recording is asked to be: its [`Settings`] (source, rate,
//! fragment duration, encoding, output folder, sound) with their defaults
//! and validation, and the [`Upload`] it streams to while it is made.

use std::path::PathBuf;
use std::time::Duration;

use spool_capture::audio::AudioRequest;
use spool_client::{Client, Options, Target};

use crate::RecordError;

/// What to record and how.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: spool_capture::SourceSpec,
    pub fps: u32,
    /// Fragment (and keyframe interval) duration, 0.5 s to 10 s.
    pub fragment: Duration,
    /// Scale down to at most this many pixels tall.
    pub max_height: Option<u32>,
    pub preset: String,
    pub crf: u8,
    /// Where the local .mp4 goes (created if missing).
    pub output_dir: PathBuf,
    /// The sound to record (none by default).
    pub audio: AudioRequest,
    /// A CMAF chunk (moof + mdat, sent at once) this often inside each
    /// fragment; `None`: one per fragment.
    pub chunk: Option<Duration>,
    /// Lower the bitrate while the uplink falls behind (off: quality first).
    pub adapt_bitrate: bool,
}

impl Settings {
    pub const DEFAULT_FPS: u32 = 30;
    pub const DEFAULT_FRAGMENT_SECS: f64 = 2.0;
    pub const DEFAULT_CHUNK: Duration = spool_encode::Config::DEFAULT_CHUNK;

    /// Checks the numbers a user can get wrong.
    pub fn validate(&self) -> Result<(), RecordError> {
        if !(1..=240).contains(&self.fps) {
            return Err(RecordError::Invalid(
                "the frame rate must be between 1 and 240".into(),
            ));
        }
        if !(0.5..=10.0).contains(&self.fragment.as_secs_f64()) {
            return Err(RecordError::Invalid(
                "the fragment duration must be between 0.5 and 10 seconds".into(),
            ));
        }
        if self
            .chunk
            .is_some_and(|c| c < spool_encode::Config::MIN_CHUNK)
        {
            return Err(RecordError::Invalid(
                "the chunk duration must be at least 50 ms (or 0: one per fragment)".into(),
            ));
        }
        if self.crf > 51 {
            return Err(RecordError::Invalid(
                "the quality (CRF) must be between 0 and 51".into(),
            ));
        }
        if self.max_height.is_some_and(|h| h < 16) {
            return Err(RecordError::Invalid(
                "the downscale height must be at least 16 pixels".into(),
            ));
        }
        Ok(())
    }
}

/// Where a recording is uploaded while it is made.
pub struct Upload {
    pub client: Client,
    pub target: Target,
    pub options: Options,
}
