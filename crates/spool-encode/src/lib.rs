//! Spool's encoder: frames from spool-capture become H.264 (libx264 through
//! ffmpeg-next, yuv420p) in one fragmented MP4 — an init segment (ftyp +
//! moov) followed by moof + mdat fragments of a fixed duration, each
//! starting with a keyframe. The encoder runs on its own thread; each
//! fragment is a keyframe-led group of CMAF chunks: every [`Config::chunk`]
//! (~250 ms) a `moof` + `mdat` is closed, written and fsynced, and only then
//! announced as an [`Event::Chunk`] with its byte range, so a consumer (the
//! uploader) can append exactly those bytes while the fragment goes on;
//! [`Event::Fragment`] follows its last chunk. A pause closes the fragment
//! being written at once (the next one starts with a keyframe), so what was
//! recorded before a pause can all be uploaded during it. It never touches
//! the network. With a [`Config::audio`] mix, every fragment also carries
//! the AAC sound of its own time span.

mod audio;
mod encoder;
pub mod rate;

use std::path::PathBuf;
use std::time::Duration;

pub use encoder::{Encoder, spawn};
pub use rate::RateCap;
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
    /// Close a CMAF chunk (`moof` + `mdat`) this often inside each fragment,
    /// so it can be sent before the fragment ends; `None` (or at least the
    /// fragment duration): one `moof` per fragment.
    pub chunk: Option<Duration>,
    /// A bitrate cap to follow (VBV on top of the CRF); `None`: quality
    /// first, no VBV at all.
    pub rate: Option<std::sync::Arc<RateCap>>,
}

impl Config {
    /// The default preset: the fastest x264 preset keeps 1080p30 in real
    /// time on a 2-core machine with room for capture and upload (see the
    /// README's performance section for the measured figures).
    pub const DEFAULT_PRESET: &'static str = "ultrafast";
    pub const DEFAULT_CRF: u8 = 26;
    /// The default chunk: at Stop at most this much video is left to encode
    /// and send, at a cost of ~100 bytes of `moof` per chunk.
    pub const DEFAULT_CHUNK: Duration = Duration::from_millis(250);
    /// Chunks shorter than this would cost more in requests than they save.
    pub const MIN_CHUNK: Duration = Duration::from_millis(50);

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
    /// A finished chunk (moof + mdat) is on disk at `offset..offset+len`:
    /// the bytes to send. Chunks are contiguous after the init segment.
    Chunk(Chunk),
    /// A fragment's last chunk has been announced: the fragment (its
    /// chunks, `offset..offset+len`) is complete. Nothing new to send.
    Fragment(Fragment),
}

/// One finished CMAF chunk: part of a fragment, its first one starting
/// with the fragment's keyframe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The fragment it belongs to.
    pub fragment: u64,
    /// Its place in the fragment (0: the keyframe-led one).
    pub index: u32,
    pub offset: u64,
    pub len: u64,
    pub first_pts: Duration,
    pub duration: Duration,
    pub frames: u64,
    /// Whether it ends its fragment.
    pub last: bool,
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
    /// How many chunks it is made of.
    pub chunks: u32,
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
