//! Spool's encoder: frames from spool-capture become H.264 (libx264 through
//! ffmpeg-next, yuv420p) in one fragmented MP4 — an init segment (ftyp +
//! moov) followed by moof + mdat fragments of a fixed duration, each
//! starting with a keyframe. The encoder runs on its own thread; each
//! finished fragment is written and fsynced to disk and only then announced
//! as an [`Event::Fragment`] with its byte range, so a consumer (the
//! uploader) can append exactly those bytes. A pause closes the fragment
//! being written at once (the next one starts with a keyframe), so what was
//! recorded before a pause can all be uploaded during it. It never touches
//! the network. With a [`Config::audio`] mix, every fragment also carries
//! the AAC sound of its own time span.

mod audio;
mod encoder;

use std::path::PathBuf;
use std::time::Duration;

pub use encoder::{Encoder, spawn};
pub use spool_capture::Captured;

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The fragmented MP4 to write.
    pub path: PathBuf,
    /// Input frame size (from the source).
    pub width: u32,
    pub height: u32,
    /// Scale down so the output is at most this tall (keeps the aspect).
    pub max_height: Option<u32>,
    /// Nominal frame rate (the GOP and rate control use it; timestamps come
    /// from the frames).
    pub fps: u32,
    /// Fragment (and GOP) duration, 0.5 s to 10 s.
    pub fragment: Duration,
    /// libx264 preset.
    pub preset: String,
    /// libx264 constant rate factor (quality; lower is better).
    pub crf: u8,
    /// The sound to record with it (an AAC-LC track in the same fragments).
    pub audio: Option<std::sync::Arc<spool_capture::audio::Mixer>>,
}

impl Config {
    /// The default preset: the fastest x264 preset keeps 1080p30 in real
    /// time on a 2-core machine with room for capture and upload (see the
    /// README's performance section for the measured figures).
    pub const DEFAULT_PRESET: &'static str = "ultrafast";
    pub const DEFAULT_CRF: u8 = 26;

    /// The output size after `max_height`, both even.
    pub fn output_size(&self) -> (u32, u32) {
        match self.max_height {
            Some(mh) if mh < self.height => {
                let h = mh.max(2) & !1;
                let w = ((self.width as u64 * h as u64 / self.height as u64) as u32).max(2) & !1;
                (w, h)
            }
            _ => (self.width & !1, self.height & !1),
        }
    }
}

/// What the encoder announces, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The init segment (ftyp + moov) is on disk: bytes `0..len`.
    Init { len: u64 },
    /// A finished fragment (moof + mdat) is on disk at `offset..offset+len`.
    Fragment(Fragment),
}

/// One finished fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub index: u64,
    pub offset: u64,
    pub len: u64,
    /// Presentation time of its first frame.
    pub first_pts: Duration,
    pub duration: Duration,
    pub frames: u64,
    /// Why it ended where it did.
    pub reason: Cut,
}

/// Why a fragment was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// It reached the fragment duration.
    Duration,
    /// The recording was paused: everything before the pause is sendable.
    Pause,
    /// The recording ended.
    End,
}

impl Cut {
    /// The word events carry (`"reason":"pause"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::Duration => "duration",
            Cut::Pause => "pause",
            Cut::End => "end",
        }
    }
}

/// How an encoding ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub frames: u64,
    pub fragments: u64,
    pub bytes: u64,
    pub duration: Duration,
    /// The sound track's length, when there is one.
    pub audio: Option<Duration>,
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("FFmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    #[error("the H.264 encoder libx264 is not available in this FFmpeg")]
    NoEncoder,
    #[error("{0}")]
    Invalid(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
