//! "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload), the
//! IETF successor of TUS, as client and server both speak it: the header
//! names, the Structured Field values they carry (RFC 9651 booleans,
//! integers, the `Upload-Limit` dictionary), the problem types of RFC 9457
//! answers, and [`Interop`], the one place where the revisions Spool speaks
//! differ. Supporting the next revision means adding a variant and answering
//! its rows in the `impl Interop` tables below; nothing else in either side
//! branches on a version number.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::checksum::{Checksum, ChecksumAlgorithm};

pub const UPLOAD_COMPLETE: &str = "upload-complete";
pub const UPLOAD_LIMIT: &str = "upload-limit";
pub const INTEROP_VERSION: &str = "upload-draft-interop-version";
/// RFC 9530: the digest of one request's content.
pub const CONTENT_DIGEST: &str = "content-digest";
/// The media type of an append's body.
pub const PARTIAL_UPLOAD: &str = "application/partial-upload";
/// RFC 9457's media type for problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// `104 Upload Resumption Supported`.
pub const STATUS_UPLOAD_RESUMPTION_SUPPORTED: u16 = 104;
pub const REASON_104: &str = "Upload Resumption Supported";

/// An interop version of the draft: what its implementations send in
/// `Upload-Draft-Interop-Version`, naming the revision they follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Interop {
    /// Interop 6: drafts -04 and -05 (2024), spoken by iOS 18.1 / macOS
    /// 15.1 URLSession, tusd (experimental) and tus-js-client's
    /// `ietf-draft-05` mode.
    V6,
    /// Interop 8: drafts -09 to -11 (2026-03-02) and the editor's copy of
    /// 2026-07-01 (httpwg/http-extensions b1b1c72), the newest text.
    V8,
}

/// The rules that differ between interop versions, one row each.
impl Interop {
    /// The newest version, which Spool's client speaks.
    pub const NEWEST: Interop = Interop::V8;
    /// Every version Spool's server answers, oldest first.
    pub const ALL: [Interop; 2] = [Interop::V6, Interop::V8];

    pub fn number(self) -> u32 {
        match self {
            Interop::V6 => 6,
            Interop::V8 => 8,
        }
    }

    /// The revision whose text the version follows.
    pub fn revision(self) -> &'static str {
        match self {
            Interop::V6 => "draft-ietf-httpbis-resumable-upload-05",
            Interop::V8 => "draft-ietf-httpbis-resumable-upload-11 (editor's copy of 2026-07-01)",
        }
    }

    /// The `Upload-Draft-Interop-Version` value of a request; `Err` for a
    /// version this side does not speak, `Ok(None)` when the field is absent.
    pub fn from_header(value: Option<&str>) -> Result<Option<Interop>, SfError> {
        value.map(Interop::parse).transpose()
    }

    /// An `Upload-Draft-Interop-Version` value.
    pub fn parse(value: &str) -> Result<Interop, SfError> {
        let n = parse_integer(value)?;
        Interop::ALL
            .into_iter()
            .find(|i| u64::from(i.number()) == n)
            .ok_or(SfError::Unsupported(n))
    }

    /// -05 requires `Upload-Offset` on every answer about an active upload;
    /// later revisions only on 409 and offset retrieval. Spool sends it on
    /// every answer either way (tus-js-client needs it); this row is what
    /// the conformance suite checks.
    pub fn offset_on_every_response(self) -> bool {
        self == Interop::V6
    }

    /// The status of an answer to an append (or a creation) that leaves the
    /// upload incomplete: -05 says 201, later revisions any 2xx (204).
    pub fn incomplete_status(self) -> u16 {
        match self {
            Interop::V6 => 201,
            Interop::V8 => 204,
        }
    }

    /// The `Upload-Limit` key for the upload's remaining lifetime in
    /// seconds: `expires` in -05, renamed `max-age` in -06.
    pub fn lifetime_key(self) -> &'static str {
        match self {
            Interop::V6 => "expires",
            Interop::V8 => "max-age",
        }
    }

    /// -05 refuses (400) an offset retrieval or cancellation carrying
    /// `Upload-Offset`, `Upload-Complete` or `Upload-Length`; later
    /// revisions dropped the rule.
    pub fn refuses_upload_fields_on_head_and_delete(self) -> bool {
        self == Interop::V6
    }

    /// What an append without `Upload-Complete` means: -05 only requires
    /// `?0` when more is to come, so its absence means the end (as Apple's
    /// server reads it); later revisions require the field (`None`: refuse).
    pub fn missing_complete_means(self) -> Option<bool> {
        match self {
            Interop::V6 => Some(true),
            Interop::V8 => None,
        }
    }

    /// Whether an append to a completed upload is refused with the
    /// `completed-upload` problem (-04 to -11); the editor's copy removed
    /// the type and lets the server replay the final answer instead, which
    /// Spool does for an empty `?1` append under every version.
    pub fn has_completed_upload_problem(self) -> bool {
        self == Interop::V6
    }

    /// Whether a 409 carries `Upload-Complete: ?0` (new after -11; harmless
    /// before, so Spool sends it to every version).
    pub fn conflict_carries_complete(self) -> bool {
        self == Interop::V8
    }
}

/// A Structured Field value that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfError {
    #[error("is not a Structured Field boolean (?0 or ?1)")]
    NotBoolean,
    #[error("is not a non-negative Structured Field integer")]
    NotInteger,
    #[error("is not a digest dictionary (algorithm=:base64:)")]
    NotDigest,
    #[error("names interop version {0}, which this side does not speak")]
    Unsupported(u64),
}

/// The bare item of an SF Item, its parameters (`;key=value`) dropped: they
/// carry nothing Spool reads.
fn bare_item(value: &str) -> &str {
    let v = value.trim_matches([' ', '\t']);
    v.split_once(';').map_or(v, |(item, _)| item)
}

/// An sf-boolean item: exactly `?0` or `?1`.
pub fn parse_boolean(value: &str) -> Result<bool, SfError> {
    match bare_item(value) {
        "?0" => Ok(false),
        "?1" => Ok(true),
        _ => Err(SfError::NotBoolean),
    }
}

pub fn boolean(value: bool) -> &'static str {
    if value { "?1" } else { "?0" }
}

/// A non-negative sf-integer item: 1 to 15 digits, no sign.
pub fn parse_integer(value: &str) -> Result<u64, SfError> {
    let v = bare_item(value);
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SfError::NotInteger);
    }
    v.parse().map_err(|_| SfError::NotInteger)
}

/// `Upload-Limit`: the limits an upload (or the server) applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadLimit {
    pub max_size: Option<u64>,
    pub min_size: Option<u64>,
    pub max_append_size: Option<u64>,
    pub min_append_size: Option<u64>,
    /// Seconds the upload has left (`max-age`, or `expires` for -05).
    pub lifetime_secs: Option<u64>,
}

impl UploadLimit {
    /// The field value for `interop`; `min-size=0` when there is no limit,
    /// because the field must not be empty.
    pub fn to_header(&self, interop: Interop) -> String {
        let mut parts = Vec::new();
        let mut push = |k: &str, v: Option<u64>| {
            if let Some(v) = v {
                parts.push(format!("{k}={}", v.min(999_999_999_999_999)));
            }
        };
        push("max-size", self.max_size);
        push("min-size", self.min_size);
        push("max-append-size", self.max_append_size);
        push("min-append-size", self.min_append_size);
        push(interop.lifetime_key(), self.lifetime_secs);
        if parts.is_empty() {
            "min-size=0".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Reads the dictionary (either lifetime key); unknown keys are ignored
    /// and a known key with a non-integer value voids the whole field.
    pub fn parse(value: &str) -> Option<UploadLimit> {
        let mut limit = UploadLimit::default();
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, v) = member.split_once('=').unwrap_or((member, "?1"));
            let slot = match bare_item(key) {
                "max-size" => &mut limit.max_size,
                "min-size" => &mut limit.min_size,
                "max-append-size" => &mut limit.max_append_size,
                "min-append-size" => &mut limit.min_append_size,
                "max-age" | "expires" => &mut limit.lifetime_secs,
                _ => continue,
            };
            *slot = Some(parse_integer(v).ok()?);
        }
        Some(limit)
    }
}

/// The `sha-256` member of an RFC 9530 digest dictionary (`Content-Digest`,
/// `Repr-Digest`): `Ok(None)` when it names only algorithms Spool does not
/// compute (the RFC lets a recipient ignore those), `Err` when malformed.
pub fn parse_digest(value: &str) -> Result<Option<Checksum>, SfError> {
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        let Some((key, v)) = member.split_once('=') else {
            return Err(SfError::NotDigest);
        };
        let bytes = bare_item(v)
            .strip_prefix(':')
            .and_then(|b| b.strip_suffix(':'))
            .ok_or(SfError::NotDigest)?;
        if key == "sha-256" {
            let digest = STANDARD.decode(bytes).map_err(|_| SfError::NotDigest)?;
            if digest.len() != ChecksumAlgorithm::Sha256.digest_len() {
                return Err(SfError::NotDigest);
            }
            return Ok(Some(Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                digest,
            }));
        }
    }
    Ok(None)
}

/// A digest field value carrying a SHA-256 digest.
pub fn digest_header(sha256: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(sha256))
}

/// The draft's problem types (RFC 9457 `type` URIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    MismatchingUploadOffset,
    InconsistentUploadLength,
    CompletedUpload,
}

impl ProblemType {
    pub fn uri(self) -> &'static str {
        match self {
            ProblemType::MismatchingUploadOffset => {
                "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
            }
            ProblemType::InconsistentUploadLength => {
                "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
            }
            ProblemType::CompletedUpload => {
                "https://iana.org/assignments/http-problem-types#completed-upload"
            }
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemType::MismatchingUploadOffset => "Mismatching Upload Offset",
            ProblemType::InconsistentUploadLength => "Inconsistent Upload Length Values",
            ProblemType::CompletedUpload => "Upload Is Completed",
        }
    }
}

/// An RFC 9457 problem details body as Spool's server answers draft
/// requests: the standard members, the draft's extension members, and
/// Spool's `code` and `message`, so a client classifies it exactly as it
/// classifies `{"code","message"}` ([`crate::ErrorBody`] reads it as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    pub message: String,
    #[serde(
        rename = "expected-offset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_offset: Option<u64>,
    #[serde(
        rename = "provided-offset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub provided_offset: Option<u64>,
}

/// The body of a draft upload's final answer (the one with
/// `Upload-Complete: ?1`): what the creation endpoint makes of a complete
/// representation, its asset and share link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    pub length: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_url: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn booleans_and_integers_are_strict_structured_fields() {
        assert_eq!(parse_boolean("?1"), Ok(true));
        assert_eq!(parse_boolean(" ?0;x=1 "), Ok(false));
        for bad in ["1", "?2", "true", "", "?"] {
            assert_eq!(parse_boolean(bad), Err(SfError::NotBoolean), "{bad}");
        }
        assert_eq!(parse_integer("0"), Ok(0));
        assert_eq!(parse_integer("999999999999999"), Ok(999_999_999_999_999));
        for bad in ["-1", "1000000000000000", "1.5", "", "0x1", "+3"] {
            assert_eq!(parse_integer(bad), Err(SfError::NotInteger), "{bad}");
        }
    }

    #[test]
    fn digests_take_sha256_and_ignore_other_algorithms() {
        let d = [7u8; 32];
        let v = format!(
            "sha-512=:{}:, {}",
            STANDARD.encode([1u8; 64]),
            digest_header(&d)
        );
        assert_eq!(parse_digest(&v).unwrap().unwrap().digest, d.to_vec());
        assert_eq!(parse_digest("sha-512=:AAAA:"), Ok(None));
        assert_eq!(parse_digest("sha-256=AAAA"), Err(SfError::NotDigest));
        assert_eq!(parse_digest("sha-256=:AAAA:"), Err(SfError::NotDigest));
    }

    #[test]
    fn interop_versions_are_read_from_the_header() {
        assert_eq!(Interop::from_header(None), Ok(None));
        assert_eq!(Interop::from_header(Some("6")), Ok(Some(Interop::V6)));
        assert_eq!(Interop::from_header(Some("8")), Ok(Some(Interop::V8)));
        assert_eq!(
            Interop::from_header(Some("7")),
            Err(SfError::Unsupported(7))
        );
        assert_eq!(Interop::from_header(Some("x")), Err(SfError::NotInteger));
    }

    #[test]
    fn upload_limit_names_the_lifetime_per_version_and_round_trips() {
        let l = UploadLimit {
            max_size: Some(1000),
            lifetime_secs: Some(60),
            ..UploadLimit::default()
        };
        assert_eq!(l.to_header(Interop::V8), "max-size=1000, max-age=60");
        assert_eq!(l.to_header(Interop::V6), "max-size=1000, expires=60");
        assert_eq!(UploadLimit::parse(&l.to_header(Interop::V8)), Some(l));
        assert_eq!(UploadLimit::default().to_header(Interop::V8), "min-size=0");
        assert_eq!(
            UploadLimit::parse("max-size=5, future-key=?1"),
            Some(UploadLimit {
                max_size: Some(5),
                ..UploadLimit::default()
            })
        );
        assert_eq!(UploadLimit::parse("max-size=\"5\""), None);
    }

    #[test]
    fn a_problem_is_also_an_error_body() {
        let p = Problem {
            kind: ProblemType::MismatchingUploadOffset.uri().to_owned(),
            title: ProblemType::MismatchingUploadOffset.title().to_owned(),
            status: 409,
            detail: "d".into(),
            code: "ERR_MISMATCHED_OFFSET".into(),
            message: "m".into(),
            expected_offset: Some(5),
            provided_offset: Some(3),
        };
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""expected-offset":5"#), "{json}");
        let body: crate::ErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(body.error_code(), Some(crate::ErrorCode::MismatchedOffset));
    }
}
