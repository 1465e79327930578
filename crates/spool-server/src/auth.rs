//! Who may do what. The upload API and upload creation need the API
//! credentials (HTTP Basic). A request to one upload resource is allowed with
//! either those credentials or a valid upload-purpose signature for that very
//! upload. A signature authorises the upload protocol only — HEAD, PATCH,
//! OPTIONS and, while the upload is unfinished, DELETE — never reading the
//! bytes, and PATCH/DELETE stop working once the upload is complete (403
//! `ERR_FORBIDDEN`). Its expiry bounds only how long an *unused* URL stays
//! good, so a recording that keeps sending bytes is never cut off by it.

use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use spool_proto::ErrorCode;
use spool_proto::token::{Purpose, QUERY_PARAM, Token};

use crate::app::App;
use crate::db::UploadRow;
use crate::error::{ApiError, ApiResult};

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when no Basic credentials were sent, else whether they are right.
pub fn basic(app: &App, headers: &HeaderMap) -> Option<bool> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok();
    let Some((id, secret)) = decoded
        .as_deref()
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|s| s.split_once(':'))
    else {
        return Some(false);
    };
    let c = &app.credentials;
    // Both compared in full, in constant time, so timing tells nothing.
    let id_ok = ct_eq(id.as_bytes(), c.token_id.as_bytes());
    let secret_ok = ct_eq(secret.as_bytes(), c.token_secret.as_bytes());
    Some(id_ok & secret_ok)
}

/// Requires the API credentials.
pub fn require_basic(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    match basic(app, headers) {
        Some(true) => Ok(()),
        Some(false) => Err(unauthorized("wrong API credentials")),
        None => Err(unauthorized(
            "API credentials required (HTTP Basic: token id and secret)",
        )),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
        .with_header("www-authenticate", "Basic realm=\"spool\"")
}

/// The token in a request's query string, if any.
pub fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == QUERY_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// How a request to an upload resource was authorised.
#[derive(Debug)]
pub enum UploadAuth {
    /// API credentials: no further conditions.
    Credentials,
    /// A signature whose MAC matched this upload; its expiry is checked
    /// against the upload's state by [`check_signature_time`].
    Signature(Token),
}

/// Checks credentials or the upload signature for `upload_id`, before the
/// upload is even looked up, so a forged URL learns nothing about it.
pub fn authorize_upload(
    app: &App,
    headers: &HeaderMap,
    query: Option<&str>,
    upload_id: &str,
) -> ApiResult<UploadAuth> {
    if basic(app, headers) == Some(true) {
        return Ok(UploadAuth::Credentials);
    }
    let Some(raw) = query_token(query) else {
        return Err(match basic(app, headers) {
            Some(false) => unauthorized("wrong API credentials"),
            _ => unauthorized("a signed upload URL or API credentials are required"),
        });
    };
    let token = Token::parse(&raw)
        .map_err(|e| ApiError::new(ErrorCode::InvalidSignature, e.to_string()))?;
    let secret = app.keys.keys.get(&token.kid).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidSignature,
            "upload signature was made with an unknown key",
        )
    })?;
    token
        .verify(secret, Purpose::Upload, upload_id)
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidSignature,
                "upload signature does not match this upload",
            )
        })?;
    Ok(UploadAuth::Signature(token))
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

/// What a signature allows on an upload in `row`'s state: HEAD and PATCH
/// (PATCH only while unfinished), DELETE while unfinished (cancelling), and
/// never GET — reading bytes needs the API credentials or the share routes.
pub fn check_signature_scope(auth: &UploadAuth, method: &Method, row: &UploadRow) -> ApiResult<()> {
    if matches!(auth, UploadAuth::Credentials) {
        return Ok(());
    }
    match *method {
        Method::HEAD | Method::OPTIONS => Ok(()),
        // A final concatenation is never patched; the TUS rule says why
        // (403 ERR_MODIFY_FINAL) more precisely than the scope would.
        Method::PATCH if row.concat == Some(crate::db::ConcatKind::Final) => Ok(()),
        Method::PATCH | Method::DELETE if row.is_complete() => Err(forbidden(
            "the upload is complete: its upload URL no longer allows PATCH or DELETE \
             (delete the asset with the API credentials)",
        )),
        Method::PATCH | Method::DELETE => Ok(()),
        Method::GET => Err(forbidden(
            "an upload URL does not grant reading the bytes: use the API credentials or the share link",
        )),
        _ => Err(forbidden("an upload URL does not allow this method")),
    }
}

/// A signature past its expiry still works for an upload that has started
/// receiving bytes (so long recordings are never cut off), has a writer
/// streaming into it right now, or is complete (HEAD only, by the scope rule);
/// `now_ms` is the current time in Unix ms.
pub fn check_signature_time(
    auth: &UploadAuth,
    row: &UploadRow,
    writer_active: bool,
    now_ms: i64,
) -> ApiResult<()> {
    match auth {
        UploadAuth::Credentials => Ok(()),
        UploadAuth::Signature(t) => {
            let now = (now_ms / 1000).max(0) as u64;
            if now <= t.exp || writer_active || row.first_byte_at.is_some() || row.is_complete() {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::SignatureExpired,
                    "the upload URL expired before the upload received its first byte",
                ))
            }
        }
    }
}
