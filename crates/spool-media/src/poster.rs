//! The poster: a representative frame (not a black or blank first frame)
//! as a JPEG at most `max_width` wide, chosen among a few candidate frames by
//! how much there is to see in them.
//!
//! CONTRACT (filled in by the ffmpeg helper; keep these signatures).

use std::path::Path;

use crate::MediaError;

/// A JPEG poster.
#[derive(Debug, Clone)]
pub struct Poster {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Presentation time of the chosen frame in the source, in ms.
    pub at_ms: u64,
}

/// Picks the poster of the video file at `path` (any container FFmpeg
/// reads, a fragmented MP4 included), looking at frames near each of
/// `candidates_ms` (seeking to the keyframe at or before each).
pub fn poster_from_file(
    path: &Path,
    candidates_ms: &[u64],
    max_width: u32,
) -> Result<Poster, MediaError> {
    let _ = (path, candidates_ms, max_width);
    unimplemented!("ffmpeg helper")
}
