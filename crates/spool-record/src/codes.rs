//! The one mapping from a recorder's or an upload's failure to its stable
//! [`ErrorCode`], shared by the CLI (which prints it and picks its exit
//! status from it) and the desktop app (which carries it over IPC): the
//! server's own code where it sent one, else the class of the failure —
//! unreachable, credentials refused (by status), a full disk — else
//! `ERR_UPLOAD`.

use spool_client::ClientError;
use spool_proto::ErrorCode;

use crate::RecordError;

/// ENOSPC (and its quota twin): the disk is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The code of an upload client's error.
pub fn client_code(e: &ClientError) -> ErrorCode {
    use ClientError as C;
    if let Some(code) = e.code() {
        return code;
    }
    match e {
        C::Network(_) | C::Unreachable(_) => ErrorCode::ServerUnreachable,
        C::Server { status: 401, .. } => ErrorCode::Unauthorized,
        C::Server { status: 403, .. } => ErrorCode::Forbidden,
        C::Server { status: 507, .. } => ErrorCode::InsufficientStorage,
        C::Io { source, .. } if is_disk_full(source) => ErrorCode::DiskFull,
        C::Io { .. } | C::LocalDataChanged(_) => ErrorCode::LocalFile,
        C::Invalid(_) => ErrorCode::InvalidSettings,
        C::Journal(_) | C::Internal(_) => ErrorCode::Internal,
        C::Server { .. } | C::Protocol(_) | C::Gone(_) | C::Stopped => ErrorCode::Upload,
        C::RecordingInProgress(_) => ErrorCode::RecordingInProgress,
        C::Terminated(_) => ErrorCode::UploadTerminated,
    }
}

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
            RecordError::Upload(c) => client_code(c),
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

    #[test]
    fn failures_are_classed_by_code_then_status() {
        let server = |status, code| ClientError::Server {
            status,
            code,
            message: String::new(),
            retry_after: None,
        };
        assert_eq!(
            client_code(&server(401, Some(ErrorCode::InvalidSignature))),
            ErrorCode::InvalidSignature
        );
        assert_eq!(client_code(&server(401, None)), ErrorCode::Unauthorized);
        assert_eq!(client_code(&server(502, None)), ErrorCode::Upload);
        assert_eq!(
            client_code(&ClientError::Unreachable("refused".into())),
            ErrorCode::ServerUnreachable
        );
        let full = ClientError::Io {
            path: "/x".into(),
            source: std::io::ErrorKind::StorageFull.into(),
        };
        assert_eq!(client_code(&full), ErrorCode::DiskFull);
        assert_eq!(RecordError::NoProgress(30).error_code(), ErrorCode::Upload);
        assert_eq!(
            RecordError::Upload(ClientError::Terminated("x".into())).error_code(),
            ErrorCode::UploadTerminated
        );
    }
}
