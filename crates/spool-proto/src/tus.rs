//! TUS 1.0.0 header names, the extension list Spool's server speaks, and strict
//! parsers for header values. Parsers reject rather than guess: a value with a
//! sign, spaces inside, or an overflow is an error, because a lenient parse of
//! an offset is how uploads get corrupted.

/// The protocol version Spool speaks, for `Tus-Resumable` and `Tus-Version`.
pub const TUS_VERSION: &str = "1.0.0";
/// Every extension the server implements, for `Tus-Extension`.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation";
/// Checksum algorithms the server accepts, for `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// The only Content-Type a PATCH (or a creation-with-upload POST) body may have.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

pub const TUS_RESUMABLE: &str = "tus-resumable";
pub const TUS_VERSION_HEADER: &str = "tus-version";
pub const TUS_EXTENSION: &str = "tus-extension";
pub const TUS_MAX_SIZE: &str = "tus-max-size";
pub const TUS_CHECKSUM_ALGORITHM: &str = "tus-checksum-algorithm";
pub const UPLOAD_OFFSET: &str = "upload-offset";
pub const UPLOAD_LENGTH: &str = "upload-length";
pub const UPLOAD_DEFER_LENGTH: &str = "upload-defer-length";
pub const UPLOAD_METADATA: &str = "upload-metadata";
pub const UPLOAD_EXPIRES: &str = "upload-expires";
pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
pub const UPLOAD_CONCAT: &str = "upload-concat";
pub const METHOD_OVERRIDE: &str = "x-http-method-override";

/// Headers a browser client must be allowed to send (CORS preflight).
pub const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, Tus-Resumable, Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Checksum, Upload-Concat, X-HTTP-Method-Override, X-Requested-With, Upload-Complete, Upload-Draft-Interop-Version, Content-Digest, Content-Disposition";
/// Headers a browser client must be allowed to read (CORS).
pub const CORS_EXPOSE_HEADERS: &str = "Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Expires, Upload-Concat, Spool-Asset-Id, Spool-Share-Url, Upload-Complete, Upload-Limit, Upload-Draft-Interop-Version";

/// Spool's extension on creation and HEAD answers: the asset an upload
/// belongs to and its share link, so any TUS client can hand out the link
/// at once.
pub const SPOOL_ASSET_ID: &str = "spool-asset-id";
pub const SPOOL_SHARE_URL: &str = "spool-share-url";

/// Why a numeric header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("is empty")]
    Empty,
    #[error("is not a non-negative decimal integer")]
    NotDigits,
    #[error("is too large")]
    Overflow,
}

/// Parses an offset or length: ASCII digits only, at most `u64::MAX`.
pub fn parse_u64(value: &str) -> Result<u64, NumberError> {
    if value.is_empty() {
        return Err(NumberError::Empty);
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotDigits);
    }
    value.parse::<u64>().map_err(|_| NumberError::Overflow)
}

pub use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumError, parse_checksum};

/// A parsed `Upload-Concat` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// This upload is a part of a later final upload.
    Partial,
    /// This upload is the concatenation of the listed part URLs, in order.
    Final(Vec<String>),
}

/// Why an `Upload-Concat` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Upload-Concat: expected 'partial' or 'final;<url> <url> ...'")]
pub struct ConcatError;

/// Parses `Upload-Concat: partial` or `final;<url> <url>…` (at least one URL).
pub fn parse_concat(value: &str) -> Result<Concat, ConcatError> {
    let value = value.trim();
    if value == "partial" {
        return Ok(Concat::Partial);
    }
    let urls = value.strip_prefix("final;").ok_or(ConcatError)?;
    let urls: Vec<String> = urls.split_ascii_whitespace().map(str::to_owned).collect();
    if urls.is_empty() {
        return Err(ConcatError);
    }
    Ok(Concat::Final(urls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_u64("18446744073709551616"),
            Err(NumberError::Overflow)
        );
        for bad in ["-1", "+1", " 1", "1 ", "0x10", "1.0", "abc"] {
            assert_eq!(parse_u64(bad), Err(NumberError::NotDigits), "{bad:?}");
        }
        assert_eq!(parse_u64(""), Err(NumberError::Empty));
    }

    #[test]
    fn concat_header() {
        assert_eq!(parse_concat("partial"), Ok(Concat::Partial));
        assert_eq!(
            parse_concat("final;/v1/uploads/a http://h/v1/uploads/b?sig=x"),
            Ok(Concat::Final(vec![
                "/v1/uploads/a".into(),
                "http://h/v1/uploads/b?sig=x".into()
            ]))
        );
        assert_eq!(parse_concat("final;"), Err(ConcatError));
        assert_eq!(parse_concat("whole"), Err(ConcatError));
    }
}
