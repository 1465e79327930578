//! A recorder's failure as its stable [`ErrorCode`], shared by the CLI
//! (which prints it and picks its exit status from it) and the desktop app
//! (which carries it over IPC); an upload's failure keeps the client's own
//! code ([`spool_client::ClientError::error_code`]).

use spool_proto::ErrorCode;

use crate::RecordError;

pub use spool_proto::error::is_disk_full;

impl RecordError {
    /// This error's stable code.
    pub fn error_code(&self) -> ErrorCode {
        use spool_capture::audio::AudioError;
        match self {
            RecordError::Invalid(_) | RecordError::Audio(AudioError::Invalid(_)) => {
                ErrorCode::InvalidSettings
            }
            RecordError::Capture(_) => ErrorCode::Source,
            RecordError::Audio(AudioError::Unavailable(_)) => ErrorCode::AudioUnavailable,
            RecordError::Encode(_) => ErrorCode::Encode,
            RecordError::Upload(c) => c.error_code(),
            RecordError::NoProgress(_) => ErrorCode::Upload,
            RecordError::Io { source, .. } if is_disk_full(source) => ErrorCode::DiskFull,
            RecordError::Io { .. } => ErrorCode::LocalFile,
            RecordError::Internal(_) => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool_client::ClientError;

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(RecordError::NoProgress(30).error_code(), ErrorCode::Upload);
        assert_eq!(
            RecordError::Upload(ClientError::Terminated("x".into())).error_code(),
            ErrorCode::UploadTerminated
        );
        assert_eq!(
            RecordError::Upload(ClientError::Unreachable("refused".into())).error_code(),
            ErrorCode::ServerUnreachable
        );
        let full = RecordError::Io {
            context: "writing".into(),
            source: std::io::ErrorKind::StorageFull.into(),
        };
        assert_eq!(full.error_code(), ErrorCode::DiskFull);
        assert_eq!(
            RecordError::Invalid("--fps".into()).error_code(),
            ErrorCode::InvalidSettings
        );
    }
}
