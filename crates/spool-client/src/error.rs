//! The client's errors. Policy: library functions return [`ClientError`];
//! server answers keep their stable `ERR_*` code where the server sent one;
//! no message ever contains an upload URL's signature or a credential
//! (reqwest errors are stripped of their URL before they become messages).

use spool_proto::ErrorCode;

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("journal: {0}")]
    Journal(#[from] rusqlite::Error),
    #[error("local file {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("network: {0}")]
    Network(String),
    /// The connection could not be made: the request was never sent.
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("the server answered {status}{}: {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Server {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the local bytes changed since they were queued: {0}")]
    LocalDataChanged(String),
    #[error("the upload is gone from the server and {0}")]
    Gone(String),
    /// Another live process owns this journal entry (it is still recording
    /// or uploading it); nothing was done to it.
    #[error("{0}")]
    RecordingInProgress(String),
    /// The upload was terminated on purpose (a TUS DELETE, or its asset was
    /// deleted): it is never re-created.
    #[error(
        "the upload was terminated on the server (ERR_UPLOAD_TERMINATED), so it is not created again: {0}"
    )]
    Terminated(String),
    #[error("stopped")]
    Stopped,
    #[error("internal: {0}")]
    Internal(String),
}

impl ClientError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ClientError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A network-level failure, with any URL removed from the message.
    pub(crate) fn network(e: reqwest::Error) -> Self {
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        ClientError::Network(msg)
    }

    /// The stable `ERR_*` code this error carries, where it has one: the
    /// server's own, or the client's for ownership and termination.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => *code,
            ClientError::RecordingInProgress(_) => Some(ErrorCode::RecordingInProgress),
            ClientError::Terminated(_) => Some(ErrorCode::UploadTerminated),
            _ => None,
        }
    }

    /// The HTTP status if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
