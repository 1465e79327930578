//! The app's one error type, a leaf every module depends on. An error
//! crosses IPC as `{code, message}` where `code` is a
//! [`spool_proto::ErrorCode`] — the same list the server answers with and
//! the CLI prints, typed in the generated bindings — carried through
//! unchanged from wherever it arose: a remote server's `ERR_UNAUTHORIZED`
//! reaches the window as `ERR_UNAUTHORIZED`, never as a catch-all.

use serde::{Deserialize, Serialize};
pub use spool_proto::ErrorCode;

/// An error as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
}

pub type IpcResult<T> = Result<T, IpcError>;

impl IpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        IpcError {
            code,
            message: message.into(),
        }
    }

    /// A failure of the app's own plumbing (a task that panicked, a value
    /// that would not serialise): ERR_INTERNAL.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        IpcError::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<spool_record::RecordError> for IpcError {
    fn from(e: spool_record::RecordError) -> Self {
        IpcError::new(e.error_code(), e.to_string())
    }
}

impl From<&spool_client::ClientError> for IpcError {
    fn from(e: &spool_client::ClientError) -> Self {
        IpcError::new(e.error_code(), e.to_string())
    }
}

impl From<spool_client::ClientError> for IpcError {
    fn from(e: spool_client::ClientError) -> Self {
        IpcError::from(&e)
    }
}

impl From<spool_capture::CaptureError> for IpcError {
    fn from(e: spool_capture::CaptureError) -> Self {
        IpcError::new(ErrorCode::Source, e.to_string())
    }
}

impl From<tokio::task::JoinError> for IpcError {
    fn from(e: tokio::task::JoinError) -> Self {
        IpcError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::{ErrorCode, IpcError};

    /// The UI sees the protocol's code of a client error, not a catch-all.
    #[test]
    fn client_errors_keep_their_codes_across_ipc() {
        use spool_client::ClientError as C;
        let code = |e: C| IpcError::from(e).code;
        assert_eq!(
            code(C::RecordingInProgress("recorded by pid 7".into())),
            ErrorCode::RecordingInProgress
        );
        assert_eq!(
            code(C::Terminated("deleted".into())),
            ErrorCode::UploadTerminated
        );
        assert_eq!(
            code(C::Server {
                status: 507,
                code: Some(ErrorCode::InsufficientStorage),
                message: "full".into(),
                retry_after: None,
            }),
            ErrorCode::InsufficientStorage
        );
        // A remote server's refusal of the credentials reaches the user.
        assert_eq!(
            code(C::Server {
                status: 401,
                code: Some(ErrorCode::Unauthorized),
                message: "wrong secret".into(),
                retry_after: None,
            }),
            ErrorCode::Unauthorized
        );
        // An unreachable server is said so, not "upload failed".
        assert_eq!(
            code(C::Network("connection reset".into())),
            ErrorCode::ServerUnreachable
        );
        assert_eq!(
            code(C::Unreachable("refused".into())),
            ErrorCode::ServerUnreachable
        );
        // Without a code of its own, a server's answer is classed by status.
        assert_eq!(
            code(C::Server {
                status: 401,
                code: None,
                message: "proxy auth".into(),
                retry_after: None,
            }),
            ErrorCode::Unauthorized
        );
        assert_eq!(
            code(C::Server {
                status: 502,
                code: None,
                message: "bad gateway".into(),
                retry_after: None,
            }),
            ErrorCode::Upload
        );
        // Sound that cannot be recorded keeps its protocol code.
        let e = spool_record::RecordError::Audio(spool_capture::audio::AudioError::Unavailable(
            "no such device".into(),
        ));
        assert_eq!(IpcError::from(e).code, ErrorCode::AudioUnavailable);
        // Also when it comes through the recorder.
        let e = spool_record::RecordError::Upload(C::Terminated("deleted".into()));
        assert_eq!(IpcError::from(e).code, ErrorCode::UploadTerminated);
        // A full disk is told as such.
        let e = spool_record::RecordError::Io {
            context: "writing /x".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert_eq!(IpcError::from(e).code, ErrorCode::DiskFull);
    }

    /// On the wire the code is its `ERR_*` string, as every other client sees it.
    #[test]
    fn the_code_crosses_as_its_wire_string() {
        let e = IpcError::new(ErrorCode::NoDestination, "nowhere");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "ERR_NO_DESTINATION");
        assert_eq!(serde_json::from_value::<IpcError>(v).unwrap(), e);
    }
}
