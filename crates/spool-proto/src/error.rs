//! Stable error codes and their HTTP statuses. Policy: every error that crosses
//! the HTTP boundary is one [`ErrorCode`] plus a human message, serialised as
//! [`ErrorBody`] (`{"code","message"}`); the code is the contract that clients
//! match on and never changes meaning, the message may be reworded. New codes
//! may be added; existing ones are never renamed.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($variant:ident = ($code:literal, $status:literal, $doc:literal)),* $(,)?) => {
        /// One stable error code with its HTTP status. It serialises as its
        /// wire form (`"ERR_…"`); with the `specta` feature the desktop app's
        /// TypeScript bindings get it as a union of those strings.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        pub enum ErrorCode {
            $(#[doc = $doc] #[serde(rename = $code)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, for documentation and exhaustive tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire form, e.g. `ERR_MISMATCHED_OFFSET`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// What the code means, in one sentence.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc,)* }
            }

            /// Parses the wire form; `None` for a code this version does not know.
            pub fn parse(s: &str) -> Option<ErrorCode> {
                match s { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    Unauthorized = ("ERR_UNAUTHORIZED", 401, "Missing or wrong API credentials and no valid upload signature."),
    InvalidSignature = ("ERR_INVALID_SIGNATURE", 403, "The upload URL's signature is malformed, forged, or for another upload."),
    SignatureExpired = ("ERR_SIGNATURE_EXPIRED", 403, "The upload URL expired before the upload received its first byte."),
    InvalidJson = ("ERR_INVALID_JSON", 400, "The request body is not the JSON this endpoint expects."),
    InvalidRequest = ("ERR_INVALID_REQUEST", 400, "A request field has a value outside what the endpoint accepts."),
    UnsupportedVersion = ("ERR_UNSUPPORTED_VERSION", 412, "Tus-Resumable is missing or names a protocol version this server does not speak."),
    InvalidContentType = ("ERR_INVALID_CONTENT_TYPE", 415, "A PATCH body must be sent as application/offset+octet-stream."),
    InvalidOffset = ("ERR_INVALID_OFFSET", 400, "Upload-Offset is missing, not a number, or negative."),
    MismatchedOffset = ("ERR_MISMATCHED_OFFSET", 409, "Upload-Offset differs from the server's offset; HEAD for the current one."),
    InvalidLength = ("ERR_INVALID_LENGTH", 400, "Upload-Length or Upload-Defer-Length is malformed, missing, or both were sent."),
    LengthAlreadySet = ("ERR_LENGTH_ALREADY_SET", 400, "The upload's length was already declared with another value; it can be set once."),
    LengthBelowOffset = ("ERR_LENGTH_BELOW_OFFSET", 400, "The declared Upload-Length is smaller than the bytes already received."),
    MaxSizeExceeded = ("ERR_MAX_SIZE_EXCEEDED", 413, "The upload would grow past the server's maximum size (Tus-Max-Size)."),
    UploadSizeExceeded = ("ERR_UPLOAD_SIZE_EXCEEDED", 413, "The body carries more bytes than the upload's declared length leaves room for."),
    InvalidMetadata = ("ERR_INVALID_METADATA", 400, "Upload-Metadata is malformed: bad base64, a bad key, or a duplicate key."),
    InvalidChecksum = ("ERR_INVALID_CHECKSUM", 400, "Upload-Checksum is malformed or names an unsupported algorithm."),
    ChecksumMismatch = ("ERR_CHECKSUM_MISMATCH", 460, "The body's checksum differs from Upload-Checksum; nothing was stored."),
    InvalidConcat = ("ERR_INVALID_CONCAT", 400, "Upload-Concat is malformed, or names parts that are unknown, unfinished or not partial."),
    ModifyFinal = ("ERR_MODIFY_FINAL", 403, "A final concatenated upload cannot be patched."),
    UploadNotFound = ("ERR_UPLOAD_NOT_FOUND", 404, "No upload has this id."),
    UploadExpired = ("ERR_UPLOAD_EXPIRED", 410, "The upload expired after a period without activity."),
    UploadTerminated = ("ERR_UPLOAD_TERMINATED", 410, "The upload was terminated."),
    UploadIncomplete = ("ERR_UPLOAD_INCOMPLETE", 409, "The upload has not received all of its bytes yet."),
    UploadComplete = ("ERR_UPLOAD_COMPLETE", 400, "The upload is already complete; it takes no more bytes."),
    UploadLocked = ("ERR_UPLOAD_LOCKED", 423, "Another request is writing to this upload right now; retry shortly."),
    UploadInterrupted = ("ERR_UPLOAD_INTERRUPTED", 400, "This request was interrupted by a newer one for the same upload; what arrived was saved."),
    RequestTimeout = ("ERR_REQUEST_TIMEOUT", 408, "The request body stalled; what arrived was saved."),
    BodyTooLarge = ("ERR_BODY_TOO_LARGE", 413, "The request body is larger than this endpoint accepts."),
    AssetNotFound = ("ERR_ASSET_NOT_FOUND", 404, "No asset has this id."),
    AssetNotReady = ("ERR_ASSET_NOT_READY", 409, "The asset's bytes are not complete yet."),
    RangeNotSatisfiable = ("ERR_RANGE_NOT_SATISFIABLE", 416, "The Range header does not fit the resource."),
    MethodNotAllowed = ("ERR_METHOD_NOT_ALLOWED", 405, "This resource does not answer that method."),
    NotFound = ("ERR_NOT_FOUND", 404, "No such route."),
    ShuttingDown = ("ERR_SHUTTING_DOWN", 503, "The server is shutting down; what arrived was saved. Retry."),
    Internal = ("ERR_INTERNAL", 500, "An internal error; the details are in the log (the server's, or the app's)."),
    Forbidden = ("ERR_FORBIDDEN", 403, "The credentials or signed URL are valid but do not allow this request (e.g. an upload URL after its upload completed)."),
    InsufficientStorage = ("ERR_INSUFFICIENT_STORAGE", 507, "The server is keeping its free-space reserve; nothing of this chunk was stored. Retry later."),
    UploadDamaged = ("ERR_UPLOAD_DAMAGED", 410, "The server's storage lost acknowledged bytes of this upload (found at startup); it was marked errored rather than filled with anything else. Create a new upload and send it again."),
    RecordingInProgress = ("ERR_RECORDING_IN_PROGRESS", 409, "The recording is still being produced by a live process; it cannot be resumed or finished from here."),
    ServerBusy = ("ERR_SERVER_BUSY", 503, "The server is at its connection limit with every connection serving a request; retry shortly."),
    UnsupportedMedia = ("ERR_UNSUPPORTED_MEDIA", 415, "The upload is not a video the server can play (no video stream it can read); its original stays downloadable."),
    ProcessingFailed = ("ERR_PROCESSING_FAILED", 500, "Processing the upload into a playable video failed after every retry; its original stays downloadable."),
    AudioUnavailable = ("ERR_AUDIO_UNAVAILABLE", 503, "Sound was asked for but cannot be recorded: no audio server answers, or it has no such device. Nothing was recorded."),
    // The recorder's own codes (the CLI, the desktop app's IPC and its UI):
    // never answered by the server; the status is the closest HTTP one.
    InvalidSettings = ("ERR_INVALID_SETTINGS", 400, "A setting or argument has a value outside what it accepts (a title too long, a bad URL, a missing token secret)."),
    AlreadyRecording = ("ERR_ALREADY_RECORDING", 409, "A recording is already running; stop it first."),
    NotRecording = ("ERR_NOT_RECORDING", 409, "Nothing is being recorded."),
    Source = ("ERR_SOURCE", 503, "The screen, window or region to record cannot be captured (no display, no such window)."),
    Encode = ("ERR_ENCODE", 500, "The video could not be encoded."),
    NoDestination = ("ERR_NO_DESTINATION", 409, "There is nowhere to upload to: the embedded server is not running, or the remote server's token secret is not known."),
    RecordingNotFound = ("ERR_RECORDING_NOT_FOUND", 404, "No recording has this id here (never recorded, or deleted)."),
    LocalFile = ("ERR_LOCAL_FILE", 500, "A local file could not be read or written."),
    DiskFull = ("ERR_DISK_FULL", 507, "This computer's disk is full: the recording stopped where it was, what was recorded is kept."),
    Desktop = ("ERR_DESKTOP", 500, "The desktop refused (no clipboard, no browser, no file manager)."),
    ServerUnreachable = ("ERR_SERVER_UNREACHABLE", 502, "The server cannot be reached (connection refused, no network, DNS); what was recorded is kept and the upload resumes."),
    Upload = ("ERR_UPLOAD", 502, "The upload failed with an answer that has no code of its own (e.g. a proxy's error page)."),
    Interrupted = ("ERR_INTERRUPTED", 499, "Stopped by the user (Ctrl-C, SIGTERM) before it was done; what was done is kept."),
    UpdateSignature = ("ERR_UPDATE_SIGNATURE", 403, "An update's signature is missing, bad, made with another key or for another version: nothing of it was installed."),
    UpdateUnavailable = ("ERR_UPDATE_UNAVAILABLE", 503, "The update server cannot be reached or has no update for this app; the app stays as it is and checks again later."),
    UpdateInstall = ("ERR_UPDATE_INSTALL", 500, "A verified update could not be installed (the package manager refused); the app stays as it is."),
    InvalidPolicy = ("ERR_INVALID_POLICY", 400, "The managed policy file is malformed; it is ignored and the app runs on its own settings."),
    StorageUnavailable = ("ERR_STORAGE_UNAVAILABLE", 503, "The server cannot reach its storage (object store or database) right now; nothing of this request was acknowledged and the offset is unchanged. Retry."),
}

impl ErrorCode {
    /// Whether a client may retry the same request later (possibly after HEAD).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::MismatchedOffset
                | ErrorCode::UploadLocked
                | ErrorCode::UploadInterrupted
                | ErrorCode::RequestTimeout
                | ErrorCode::ChecksumMismatch
                | ErrorCode::ShuttingDown
                | ErrorCode::InsufficientStorage
                | ErrorCode::ServerBusy
                | ErrorCode::StorageUnavailable
                | ErrorCode::Internal
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The response header that repeats an error answer's code, so that answers
/// without a body (HEAD) still tell, e.g., a terminated upload
/// (`ERR_UPLOAD_TERMINATED`) from an expired one (`ERR_UPLOAD_EXPIRED`).
pub const ERROR_CODE_HEADER: &str = "spool-error-code";

/// The JSON body of every error answer except HEAD's: `{"code","message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable `ERR_*` code, as a string so that a client older than the
    /// server still parses codes it does not know.
    pub code: String,
    /// A human-readable explanation; never contains secrets or signatures.
    pub message: String,
}

impl ErrorBody {
    /// A body for `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// The known code, if this version knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.code)
    }
}

/// Whether a local I/O failure means the volume is full (ENOSPC, or its
/// quota twin): the one test behind `ERR_DISK_FULL` on the client, the
/// recorder and the server's 507.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's error table lists every code with its status.
    #[test]
    fn the_readme_lists_every_code() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        for &code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status());
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(code.as_str().starts_with("ERR_"));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!((400..600).contains(&code.status()));
        }
        assert_eq!(ErrorCode::parse("ERR_NOPE"), None);
    }

    #[test]
    fn body_serialises_as_code_and_message() {
        let body = ErrorBody::new(ErrorCode::MismatchedOffset, "expected 5");
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"code":"ERR_MISMATCHED_OFFSET","message":"expected 5"}"#
        );
        let back: ErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(back.error_code(), Some(ErrorCode::MismatchedOffset));
    }
}
