//! Why a recording failed: [`RecordError`], a thiserror enum wrapping the
//! capture, sound, encoder and upload errors beneath it; its stable codes
//! live in [`crate::codes`].

use spool_client::ClientError;

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Capture(#[from] spool_capture::CaptureError),
    #[error("{0}")]
    Audio(#[from] spool_capture::audio::AudioError),
    #[error("encoding failed (the fragments finished so far are kept): {0}")]
    Encode(#[from] spool_encode::EncodeError),
    #[error(transparent)]
    Upload(#[from] ClientError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
    #[error(
        "no upload progress for {0} s; the recording is kept and its upload stays in the journal"
    )]
    NoProgress(u64),
}

impl RecordError {
    /// The stable code of the errors that have one.
    pub fn code(&self) -> Option<spool_proto::ErrorCode> {
        match self {
            RecordError::Audio(spool_capture::audio::AudioError::Unavailable(_)) => {
                Some(spool_proto::ErrorCode::AudioUnavailable)
            }
            RecordError::Upload(e) => e.code(),
            _ => None,
        }
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RecordError {
    let context = context.into();
    move |source| RecordError::Io { context, source }
}
