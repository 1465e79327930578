//! What an upload is, read with FFmpeg (ffmpeg-next): container, streams,
//! codecs, duration, size.
//!
//! CONTRACT (filled in by the ffmpeg helper; keep these signatures).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::MediaError;

/// A video stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// FFmpeg's codec name (`h264`, `vp9`, `av1`, `hevc`, `mpeg4`, …).
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// An audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    /// FFmpeg's codec name (`aac`, `opus`, `mp3`, `pcm_s16le`, …).
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
}

/// The probe's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// FFmpeg's demuxer name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, …).
    pub format: String,
    pub duration_ms: Option<u64>,
    /// The first (default) video stream; always present (no video =
    /// [`MediaError::Unsupported`]).
    pub video: VideoStream,
    pub audio: Option<AudioStream>,
}

/// Probes the file. Anything without a decodable video stream (text, an
/// image-only or audio-only file, random bytes) is [`MediaError::Unsupported`].
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    let _ = path;
    unimplemented!("ffmpeg helper")
}
