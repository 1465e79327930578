//! How `spool` fails: every error is printed as `spool: ERR_…: message`
//! with the stable code from spool-proto's one list, and the exit status
//! says the class of the failure, so scripts can branch without parsing
//! messages. The table (also in the README):
//!
//! | status | class | codes |
//! |---|---|---|
//! | 0 | success | |
//! | 1 | anything else (capture, encoding, sound, a local file, internal) | `ERR_SOURCE`, `ERR_ENCODE`, `ERR_AUDIO_UNAVAILABLE`, `ERR_LOCAL_FILE`, `ERR_INTERNAL`, … |
//! | 2 | bad arguments (as clap's usage errors) | `ERR_INVALID_SETTINGS` |
//! | 3 | `spool record`: the recording is kept, its upload did not complete (`spool resume` finishes it) | any |
//! | 4 | the server cannot be reached, or the connection broke | `ERR_SERVER_UNREACHABLE`, `ERR_REQUEST_TIMEOUT`, `ERR_CHECKSUM_MISMATCH` |
//! | 5 | the credentials or the signed URL were refused | `ERR_UNAUTHORIZED`, `ERR_INVALID_SIGNATURE`, `ERR_FORBIDDEN` |
//! | 6 | no space, here or on the server | `ERR_DISK_FULL`, `ERR_INSUFFICIENT_STORAGE` |
//! | 7 | the server refused or failed the request | every other server code, `ERR_UPLOAD` |
//! | 8 | not there, or gone from the server | `ERR_UPLOAD_TERMINATED`, `ERR_UPLOAD_EXPIRED`, `ERR_UPLOAD_NOT_FOUND`, `ERR_UPLOAD_DAMAGED`, `ERR_SIGNATURE_EXPIRED`, `ERR_ASSET_NOT_FOUND`, `ERR_NOT_FOUND` |
//! | 9 | busy: another process or writer has it, or it is not ready | `ERR_RECORDING_IN_PROGRESS`, `ERR_UPLOAD_LOCKED`, `ERR_MISMATCHED_OFFSET`, … |
//! | 130 | interrupted (Ctrl-C, SIGTERM) | `ERR_INTERRUPTED` |

use std::process::ExitCode;

use spool_proto::ErrorCode;

/// An error the CLI raises itself, with its code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Coded {
    pub code: ErrorCode,
    pub message: String,
}

/// An `anyhow` error with `code`.
pub fn coded(code: ErrorCode, message: impl std::fmt::Display) -> anyhow::Error {
    Coded {
        code,
        message: message.to_string(),
    }
    .into()
}

/// `spool record`'s status when the recording is kept but not uploaded.
pub const KEPT_NOT_UPLOADED: u8 = 3;

/// Names the code of one error of a chain, for the error types only
/// `spool-full` links (the recorder's, the capture's); `None` otherwise.
pub type Classify = fn(&(dyn std::error::Error + 'static)) -> Option<ErrorCode>;

/// The launcher's classification: nothing beyond the client's own types.
pub fn no_more(_: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    None
}

/// The code of an error: the first typed error in its chain that has one
/// (the CLI's own, `more`'s, the client's); an I/O error is a local file's
/// (or a full disk); anything else the CLI raised is about its arguments.
pub fn code_of(e: &anyhow::Error, more: Classify) -> ErrorCode {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(code) = more(cause) {
            return code;
        }
        if let Some(c) = cause.downcast_ref::<spool_client::ClientError>() {
            return c.error_code();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return if spool_proto::error::is_disk_full(io) {
                ErrorCode::DiskFull
            } else {
                ErrorCode::LocalFile
            };
        }
    }
    ErrorCode::InvalidSettings
}

/// The exit status of a failure with `code`: the recorder's own codes by
/// their meaning, every other by the client's class of it (one
/// classification of server answers, `spool_client::FailureClass`).
pub fn status(code: ErrorCode) -> u8 {
    use ErrorCode as C;
    use spool_client::FailureClass as F;
    match code {
        C::InvalidSettings => 2,
        C::Interrupted => 130,
        C::Source
        | C::Encode
        | C::AudioUnavailable
        | C::LocalFile
        | C::Internal
        | C::Desktop
        | C::AlreadyRecording
        | C::NotRecording
        | C::NoDestination
        | C::RecordingNotFound => 1,
        _ => match F::of_code(code) {
            F::Unreachable => 4,
            F::Unauthorized => 5,
            F::DiskFull => 6,
            F::Invalid | F::Server | F::Local | F::Internal => 7,
            F::NotFound | F::Gone => 8,
            F::Conflict => 9,
            F::Stopped => 130,
        },
    }
}

/// Prints `spool: ERR_…: message` and gives the exit status of its class.
pub fn fail_with(e: &anyhow::Error, more: Classify) -> ExitCode {
    let code = code_of(e, more);
    eprintln!("spool: {code}: {e:#}");
    ExitCode::from(status(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_its_status() {
        assert_eq!(status(ErrorCode::AudioUnavailable), 1);
        assert_eq!(status(ErrorCode::InvalidSettings), 2);
        assert_eq!(status(ErrorCode::ServerUnreachable), 4);
        assert_eq!(status(ErrorCode::Unauthorized), 5);
        assert_eq!(status(ErrorCode::DiskFull), 6);
        assert_eq!(status(ErrorCode::MismatchedOffset), 9);
        assert_eq!(status(ErrorCode::InvalidMetadata), 7);
        assert_eq!(status(ErrorCode::Upload), 7);
        assert_eq!(status(ErrorCode::UploadTerminated), 8);
        assert_eq!(status(ErrorCode::RecordingInProgress), 9);
        assert_eq!(status(ErrorCode::Interrupted), 130);
        // 3 is `spool record`'s own (kept, not uploaded): no code maps to it.
        assert!(
            ErrorCode::ALL
                .iter()
                .all(|&c| status(c) != KEPT_NOT_UPLOADED && status(c) != 0)
        );
    }

    #[test]
    fn the_code_is_found_through_the_chain() {
        let e = anyhow::Error::new(spool_client::ClientError::Server {
            status: 401,
            code: Some(ErrorCode::Unauthorized),
            message: "wrong secret".into(),
            retry_after: None,
        })
        .context("uploading");
        assert_eq!(code_of(&e, no_more), ErrorCode::Unauthorized);
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("reading x");
        assert_eq!(code_of(&e, no_more), ErrorCode::LocalFile);
        assert_eq!(
            code_of(&anyhow::anyhow!("--fps must be positive"), no_more),
            ErrorCode::InvalidSettings
        );
        assert_eq!(
            code_of(&coded(ErrorCode::Interrupted, "interrupted"), no_more),
            ErrorCode::Interrupted
        );
    }
}
