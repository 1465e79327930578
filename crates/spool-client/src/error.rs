//! The client's errors. Policy: library functions return [`ClientError`];
//! server answers keep their stable `ERR_*` code where the server sent one,
//! and every decision about an answer (retry, recreate, give up, which
//! [`FailureClass`] a front end shows) is taken on that code, falling back
//! on the HTTP status only for answers without one (other TUS servers); no
//! message ever contains an upload URL's signature or a credential (reqwest
//! errors are stripped of their URL before they become messages).

use serde::Serialize;
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
    /// The server does not speak the protocol asked for (`--protocol
    /// ietf` against a TUS-only server); nothing was sent to the upload.
    #[error("{0}")]
    Unsupported(String),
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

    /// The stable `ERR_*` code this error carries, where one is meaningful:
    /// the server's own; for an answer without one (another TUS server) the
    /// code its status can only mean (401, 423, 460, 500, 507); the client's
    /// own for ownership, termination and a protocol the server lacks.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server {
                code: Some(code), ..
            } => Some(*code),
            ClientError::Server { status, .. } => code_of_status(*status),
            ClientError::RecordingInProgress(_) => Some(ErrorCode::RecordingInProgress),
            ClientError::Terminated(_) => Some(ErrorCode::UploadTerminated),
            ClientError::Unsupported(_) => Some(ErrorCode::UnsupportedVersion),
            _ => None,
        }
    }

    /// The stable code a front end shows for this error: the server's own
    /// (or the one its status alone implies), else its class's —
    /// `ERR_SERVER_UNREACHABLE`, `ERR_DISK_FULL`, `ERR_LOCAL_FILE`, … — and
    /// `ERR_UPLOAD` for a server's answer that says nothing more.
    pub fn error_code(&self) -> ErrorCode {
        if let Some(code) = self.code() {
            return code;
        }
        match self.class() {
            FailureClass::Unauthorized => ErrorCode::Unauthorized,
            FailureClass::Unreachable => ErrorCode::ServerUnreachable,
            FailureClass::DiskFull if matches!(self, ClientError::Server { .. }) => {
                ErrorCode::InsufficientStorage
            }
            FailureClass::DiskFull => ErrorCode::DiskFull,
            FailureClass::NotFound => ErrorCode::UploadNotFound,
            FailureClass::Gone => ErrorCode::UploadExpired,
            FailureClass::Local => ErrorCode::LocalFile,
            FailureClass::Invalid => ErrorCode::InvalidSettings,
            FailureClass::Stopped => ErrorCode::Interrupted,
            FailureClass::Internal => ErrorCode::Internal,
            FailureClass::Conflict | FailureClass::Server => ErrorCode::Upload,
        }
    }

    /// What kind of failure this is, for a front end to pick an exit code or
    /// a message: decided by the error's code where it has one
    /// ([`ClientError::code`]), else by its status or its kind.
    pub fn class(&self) -> FailureClass {
        if let Some(code) = self.code() {
            return FailureClass::of_code(code);
        }
        match self {
            ClientError::Server { status, .. } => FailureClass::of_status(*status),
            ClientError::Journal(e) => match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => FailureClass::DiskFull,
                _ => FailureClass::Internal,
            },
            ClientError::Io { source, .. } if spool_proto::error::is_disk_full(source) => {
                FailureClass::DiskFull
            }
            ClientError::Io { .. } => FailureClass::Local,
            ClientError::LocalDataChanged(_) => FailureClass::Local,
            ClientError::Network(_) | ClientError::Unreachable(_) => FailureClass::Unreachable,
            ClientError::Protocol(_) => FailureClass::Server,
            ClientError::Invalid(_) => FailureClass::Invalid,
            ClientError::Gone(_) | ClientError::Terminated(_) => FailureClass::Gone,
            ClientError::RecordingInProgress(_) => FailureClass::Conflict,
            ClientError::Unsupported(_) => FailureClass::Invalid,
            ClientError::Stopped => FailureClass::Stopped,
            ClientError::Internal(_) => FailureClass::Internal,
        }
    }

    /// Whether the same request may succeed later without anyone changing
    /// anything: by the code's own rule ([`ErrorCode::is_retryable`]) where
    /// there is a code, else for a broken connection, 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        if let Some(code) = self.code() {
            return code.is_retryable();
        }
        match self {
            ClientError::Network(_) | ClientError::Unreachable(_) => true,
            ClientError::Server { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }

    /// The server's `Retry-After`, if it answered one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ClientError::Server { retry_after, .. } => *retry_after,
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

/// The code an answer without one can only mean: statuses that TUS and HTTP
/// give a single meaning. Others (400, 403, 404, 409, 413, 503…) stand for
/// several codes and stay without one.
fn code_of_status(status: u16) -> Option<ErrorCode> {
    match status {
        401 => Some(ErrorCode::Unauthorized),
        423 => Some(ErrorCode::UploadLocked),
        460 => Some(ErrorCode::ChecksumMismatch),
        500 => Some(ErrorCode::Internal),
        507 => Some(ErrorCode::InsufficientStorage),
        _ => None,
    }
}

/// What kind of failure an error is, as a person would act on it. Front
/// ends map these to exit codes and messages ([`FailureClass::hint`]); the
/// serialised form (`"disk_full"`…) is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The server refused the credentials or the upload URL's signature
    /// (401, `ERR_UNAUTHORIZED`, `ERR_INVALID_SIGNATURE`, `ERR_FORBIDDEN`).
    Unauthorized,
    /// The server could not be reached, or the connection broke, stalled or
    /// damaged bytes in transit (`ERR_REQUEST_TIMEOUT`, `ERR_CHECKSUM_MISMATCH`).
    Unreachable,
    /// No space: the local disk (ENOSPC, a full journal) or the server's
    /// reserve (507, `ERR_INSUFFICIENT_STORAGE`).
    DiskFull,
    /// The server has no such upload, asset or route (404).
    NotFound,
    /// The upload is gone for good: expired, terminated, damaged, or its
    /// signed URL expired, and it cannot be created again from here (410).
    Gone,
    /// The upload is busy or not in a state for this now: another writer,
    /// a live recording, an offset that moved, not complete yet (409, 423).
    Conflict,
    /// The request or its input is wrong and retrying will not help (400,
    /// 413, 415…, or a wrong argument).
    Invalid,
    /// The local bytes are missing, unreadable or changed since queued.
    Local,
    /// The server failed, is shutting down or busy, or broke the protocol (5xx).
    Server,
    /// Stopped on purpose.
    Stopped,
    /// A bug or an unexpected local failure (the journal, a task).
    Internal,
}

impl FailureClass {
    /// The class of an `ERR_*` code.
    pub fn of_code(code: ErrorCode) -> FailureClass {
        use ErrorCode as C;
        match code {
            C::Unauthorized | C::InvalidSignature | C::Forbidden => FailureClass::Unauthorized,
            C::RequestTimeout | C::ChecksumMismatch => FailureClass::Unreachable,
            C::InsufficientStorage => FailureClass::DiskFull,
            C::UploadNotFound | C::AssetNotFound | C::NotFound => FailureClass::NotFound,
            C::UploadExpired | C::UploadTerminated | C::UploadDamaged | C::SignatureExpired => {
                FailureClass::Gone
            }
            C::MismatchedOffset
            | C::UploadLocked
            | C::UploadIncomplete
            | C::UploadInterrupted
            | C::AssetNotReady
            | C::RecordingInProgress => FailureClass::Conflict,
            C::ShuttingDown
            | C::ServerBusy
            | C::Internal
            | C::ProcessingFailed
            | C::AudioUnavailable => FailureClass::Server,
            // Every other code names a request the server will never accept
            // as sent; a code added later falls back on its status.
            C::InvalidJson
            | C::InvalidRequest
            | C::UnsupportedVersion
            | C::InvalidContentType
            | C::InvalidOffset
            | C::InvalidLength
            | C::LengthAlreadySet
            | C::LengthBelowOffset
            | C::MaxSizeExceeded
            | C::UploadSizeExceeded
            | C::InvalidMetadata
            | C::InvalidChecksum
            | C::InvalidConcat
            | C::ModifyFinal
            | C::UploadComplete
            | C::BodyTooLarge
            | C::RangeNotSatisfiable
            | C::MethodNotAllowed
            | C::UnsupportedMedia => FailureClass::Invalid,
            // The recorder's own codes (never answered by a server).
            C::ServerUnreachable => FailureClass::Unreachable,
            C::DiskFull => FailureClass::DiskFull,
            C::LocalFile | C::Source | C::Encode | C::Desktop => FailureClass::Local,
            C::InvalidSettings | C::NoDestination => FailureClass::Invalid,
            C::RecordingNotFound => FailureClass::NotFound,
            C::AlreadyRecording | C::NotRecording => FailureClass::Conflict,
            C::Interrupted => FailureClass::Stopped,
            C::Upload => FailureClass::Server,
            // The desktop app's updater and policy: local matters.
            C::UpdateSignature | C::UpdateUnavailable | C::UpdateInstall | C::InvalidPolicy => {
                FailureClass::Local
            }
            #[allow(unreachable_patterns)]
            other => FailureClass::of_status(other.status()),
        }
    }

    /// The class of an answer without a code, by its status alone.
    pub fn of_status(status: u16) -> FailureClass {
        match status {
            401 | 403 => FailureClass::Unauthorized,
            404 => FailureClass::NotFound,
            410 => FailureClass::Gone,
            409 | 423 => FailureClass::Conflict,
            408 | 460 => FailureClass::Unreachable,
            507 => FailureClass::DiskFull,
            400..=499 if status != 429 => FailureClass::Invalid,
            _ => FailureClass::Server,
        }
    }

    /// The stable short name, as serialised (`"disk_full"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Unauthorized => "unauthorized",
            FailureClass::Unreachable => "unreachable",
            FailureClass::DiskFull => "disk_full",
            FailureClass::NotFound => "not_found",
            FailureClass::Gone => "gone",
            FailureClass::Conflict => "conflict",
            FailureClass::Invalid => "invalid",
            FailureClass::Local => "local",
            FailureClass::Server => "server",
            FailureClass::Stopped => "stopped",
            FailureClass::Internal => "internal",
        }
    }

    /// What a person can do about it, in one sentence.
    pub fn hint(self) -> &'static str {
        match self {
            FailureClass::Unauthorized => {
                "The server refused the credentials or the upload link: check the API token."
            }
            FailureClass::Unreachable => {
                "The server cannot be reached: check the network; everything is kept on disk."
            }
            FailureClass::DiskFull => {
                "A disk is full (this computer's or the server's): free space, then retry."
            }
            FailureClass::NotFound => "The server has no such upload.",
            FailureClass::Gone => {
                "The upload is gone from the server and cannot be sent again from here."
            }
            FailureClass::Conflict => {
                "The upload is busy (still recording, or another process is sending it): try again later."
            }
            FailureClass::Invalid => "The request was refused as invalid; retrying will not help.",
            FailureClass::Local => "The local file is missing or changed since it was queued.",
            FailureClass::Server => "The server failed: retry later.",
            FailureClass::Stopped => "Stopped.",
            FailureClass::Internal => "An internal error: see the log.",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A server's answer with `status` and `code`, for the crate's tests.
#[cfg(test)]
pub(crate) fn answer(status: u16, code: Option<ErrorCode>) -> ClientError {
    ClientError::Server {
        status,
        code,
        message: String::new(),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::answer as server;

    #[test]
    fn every_code_has_a_class_agreeing_with_its_status_family() {
        // The recorder's own codes are never answered by a server: their
        // status is only the closest HTTP one, and they class as local.
        let recorder = [
            ErrorCode::LocalFile,
            ErrorCode::Source,
            ErrorCode::Encode,
            ErrorCode::Desktop,
            ErrorCode::DiskFull,
            ErrorCode::ServerUnreachable,
            ErrorCode::UpdateUnavailable,
            ErrorCode::UpdateInstall,
        ];
        for &code in ErrorCode::ALL {
            let class = FailureClass::of_code(code);
            if code.status() >= 500
                && code != ErrorCode::InsufficientStorage
                && !recorder.contains(&code)
            {
                assert_eq!(class, FailureClass::Server, "{code}");
            }
            // The code decides, whatever status came with it.
            assert_eq!(server(418, Some(code)).class(), class, "{code}");
        }
    }

    #[test]
    fn the_code_wins_over_the_status() {
        // A 500 that names a request the server will never take is not retried.
        let e = server(500, Some(ErrorCode::InvalidRequest));
        assert!(!e.is_retryable());
        assert_eq!(e.class(), FailureClass::Invalid);
        // A 400 that says "interrupted by a newer request" is.
        let e = server(400, Some(ErrorCode::UploadInterrupted));
        assert!(e.is_retryable());
        assert_eq!(e.class(), FailureClass::Conflict);
    }

    #[test]
    fn answers_without_a_code_fall_back_on_the_status() {
        assert_eq!(
            server(507, None).code(),
            Some(ErrorCode::InsufficientStorage)
        );
        assert_eq!(server(507, None).class(), FailureClass::DiskFull);
        assert_eq!(server(401, None).class(), FailureClass::Unauthorized);
        assert_eq!(server(403, None).code(), None);
        assert_eq!(server(403, None).class(), FailureClass::Unauthorized);
        assert_eq!(server(404, None).class(), FailureClass::NotFound);
        assert_eq!(server(410, None).class(), FailureClass::Gone);
        assert_eq!(server(503, None).class(), FailureClass::Server);
        assert!(server(503, None).is_retryable());
        assert!(server(429, None).is_retryable());
        assert!(!server(400, None).is_retryable());
        assert_eq!(server(400, None).class(), FailureClass::Invalid);
    }

    #[test]
    fn local_failures() {
        let full = ClientError::io(
            std::path::Path::new("/x"),
            std::io::Error::from_raw_os_error(libc_enospc()),
        );
        assert_eq!(full.class(), FailureClass::DiskFull);
        let missing = ClientError::io(
            std::path::Path::new("/x"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(missing.class(), FailureClass::Local);
        assert_eq!(ClientError::Stopped.class(), FailureClass::Stopped);
        assert_eq!(
            ClientError::Unreachable("refused".into()).class(),
            FailureClass::Unreachable
        );
        assert!(ClientError::Network("reset".into()).is_retryable());
        assert_eq!(
            ClientError::RecordingInProgress(String::new()).class(),
            FailureClass::Conflict
        );
        assert_eq!(
            serde_json::to_string(&FailureClass::DiskFull).unwrap(),
            r#""disk_full""#
        );
    }

    /// ENOSPC: 28 on Linux and the BSDs (macOS included), 112 on Windows.
    fn libc_enospc() -> i32 {
        if cfg!(windows) { 112 } else { 28 }
    }
}
