//! Media work Spool's server does that is not HTTP, as a library the server
//! (or a processor on another machine) calls: [`index`] reads the box
//! structure of a fragmented MP4 as its bytes arrive and finds its
//! keyframe-led segments; [`hls`] renders them as an HLS playlist of byte
//! ranges into the one uploaded object; [`indexed`] builds the header (init
//! segment + `sidx`) that makes the same bytes a progressive MP4 that seeks
//! at once; [`probe`], [`normalize`] and [`poster`] use FFmpeg to read any
//! upload, turn it into a fragmented MP4 the player needs (remux, or
//! transcode to H.264), and pick a representative poster frame; [`aac`] is
//! the AAC encoder set-up and sample FIFO that normalizing and the
//! recorder's sound track share.

pub mod aac;
pub mod hls;
pub mod index;
pub mod indexed;
pub mod normalize;
pub mod poster;
pub mod probe;

/// A media failure.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not a video this library can read: no video stream, or not media at
    /// all. Permanent: retrying cannot help.
    #[error("not a playable video: {0}")]
    Unsupported(String),
    /// The bytes claim to be a (fragmented) MP4 but their structure is
    /// broken. Permanent.
    #[error("malformed media: {0}")]
    Malformed(String),
    /// FFmpeg failed while reading, decoding or writing.
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Stopped through the caller's cancel flag.
    #[error("cancelled")]
    Cancelled,
}

impl MediaError {
    /// Whether retrying the same work later might succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, MediaError::Unsupported(_) | MediaError::Malformed(_))
    }
}

impl From<ffmpeg_next::Error> for MediaError {
    fn from(e: ffmpeg_next::Error) -> Self {
        MediaError::Ffmpeg(e.to_string())
    }
}

/// Initialises FFmpeg once (idempotent) and keeps its log quiet.
pub fn init_ffmpeg() -> Result<(), MediaError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg_next::init().map_err(|e| e.to_string())?;
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
        Ok(())
    })
    .clone()
    .map_err(MediaError::Ffmpeg)
}
