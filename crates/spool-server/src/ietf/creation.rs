//! Upload creation for the draft: a `POST /v1/uploads` with
//! `Upload-Complete` creates the upload (and its asset) before reading a
//! byte of the body, announces it with `104 Upload Resumption Supported`
//! (its `Location`, `Upload-Limit` and interop version) so a client cut off
//! mid-body knows where to resume, then appends the body through the TUS
//! append path. `?0` answers 201 with the upload's URL; a `?1` request that
//! arrives whole is an ordinary upload and gets the final answer. Metadata
//! comes from tus-style `Upload-Metadata` when a client sends it, otherwise
//! from the representation's `Content-Type` and `Content-Disposition`.

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use spool_proto::ErrorCode;
use spool_proto::ietf::{self as d, Interop};
use spool_proto::tus::{UPLOAD_LENGTH, UPLOAD_METADATA, UPLOAD_OFFSET};

use super::{
    complete_field, completed, content_digest, incomplete, integer_field, request_length,
    upload_limit,
};
use crate::app::App;
use crate::auth;
use crate::db::{NewAsset, UploadRow};
use crate::error::{ApiError, ApiResult};
use crate::http_util::header_str;
use crate::locks::Mode;
use crate::space;
use crate::tus::core::declare_length;
use crate::tus::creation::stored_metadata;
use crate::uploads::{self, create_upload};

pub(super) async fn create(app: &App, interop: Interop, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    auth::require_basic(app, headers)?;
    if headers.contains_key(UPLOAD_OFFSET) {
        return Err(ApiError::new(
            ErrorCode::InvalidOffset,
            "a creation request must not carry Upload-Offset",
        ));
    }
    let complete = complete_field(headers, interop)?;
    let declared = integer_field(headers, UPLOAD_LENGTH, ErrorCode::InvalidLength)?;
    let content_length = integer_field(
        headers,
        header::CONTENT_LENGTH.as_str(),
        ErrorCode::InvalidRequest,
    )?;
    let length = request_length(declared, complete, 0, content_length)?;
    if length.is_some_and(|l| l > app.config.max_size) {
        return Err(ApiError::new(
            ErrorCode::MaxSizeExceeded,
            format!("the maximum upload size is {} bytes", app.config.max_size),
        ));
    }
    let digest = content_digest(headers)?;
    let (metadata, asset_metadata) = stored_metadata(&metadata_of(headers)?);
    // Chunked (no Content-Length) may carry bytes; an explicit 0 does not.
    let has_body = content_length.is_none_or(|n| n > 0);
    if has_body {
        // Refused before anything is created, so nothing is left behind.
        let need = content_length.unwrap_or(space::CHECK_EVERY);
        if let Err(e) = app.space.check(need, None).await {
            let stop = app.shutdown.cancelled();
            space::discard(&mut body.into_data_stream(), app.config.idle_timeout, stop).await;
            return Err(e);
        }
    }
    let asset = NewAsset {
        id: crate::ids::new_id(),
        metadata: asset_metadata,
    };
    let mut row =
        create_upload(app, length, metadata, None, Vec::new(), None, Some(&asset)).await?;
    if has_body {
        announce(app, &parts, &row, interop);
        let guard = uploads::lock(app, &row.id, Mode::Try).await?;
        row = match crate::tus::append::append(app, &row, &guard, body, digest, content_length)
            .await
        {
            Ok(r) => r,
            Err(e) if e.code == ErrorCode::ChecksumMismatch => return Err(e),
            // The upload exists either way and the 104 named it: answer
            // with the offset that was saved, so the client can resume.
            Err(e) => {
                tracing::info!(upload = %row.id, code = %e.code, "creation body ended early");
                let row = uploads::load(app, &row.id).await?;
                app.events_enqueued();
                return Ok(created(app, &row, interop, false));
            }
        };
        drop(guard);
    }
    if complete && row.length.is_none() {
        row = declare_length(app, &row, row.offset).await?;
    }
    app.events_enqueued();
    Ok(created(app, &row, interop, complete))
}

/// 201 with the upload's `Location`: the final answer when the request
/// completed the upload, the resumable one otherwise.
fn created(app: &App, row: &UploadRow, interop: Interop, complete: bool) -> Response {
    let mut resp = if complete && row.is_complete() {
        completed(app, row, interop, StatusCode::CREATED)
    } else {
        incomplete(app, row, interop, StatusCode::CREATED)
    };
    if let Ok(v) = HeaderValue::from_str(&app.signed_upload_url(&row.id, row.sig_exp)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Sends the 104 before the body is read, when the connection can carry
/// one (an HTTP/1.1 connection of Spool's listener).
fn announce(app: &App, parts: &Parts, row: &UploadRow, interop: Interop) {
    let Some(interim) = parts.extensions.get::<crate::listener::Interim>() else {
        return;
    };
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&app.signed_upload_url(&row.id, row.sig_exp)) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&upload_limit(app, row, interop)) {
        h.insert(d::UPLOAD_LIMIT, v);
    }
    h.insert(d::INTEROP_VERSION, HeaderValue::from(interop.number()));
    let sent = interim.send(
        StatusCode::from_u16(d::STATUS_UPLOAD_RESUMPTION_SUPPORTED).unwrap_or(StatusCode::CONTINUE),
        &h,
    );
    if !sent {
        tracing::debug!(upload = %row.id, "no 104 on this connection");
    }
}

/// The upload's metadata: `Upload-Metadata` if the client sent it (as
/// tus-js-client does in draft mode), else `filename` from
/// `Content-Disposition` and `filetype` from the representation's
/// `Content-Type`.
fn metadata_of(headers: &HeaderMap) -> ApiResult<Vec<(String, Vec<u8>)>> {
    if let Some(v) = header_str(headers, UPLOAD_METADATA) {
        return spool_proto::metadata::decode(v)
            .map_err(|e| ApiError::new(ErrorCode::InvalidMetadata, e.to_string()));
    }
    let mut md = Vec::new();
    if let Some(name) =
        header_str(headers, header::CONTENT_DISPOSITION.as_str()).and_then(disposition_filename)
    {
        md.push(("filename".to_owned(), name.into_bytes()));
    }
    if let Some(t) = header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        // A client that labels the creation like an append says nothing
        // about the representation.
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(d::PARTIAL_UPLOAD))
    {
        md.push(("filetype".to_owned(), t.as_bytes().to_vec()));
    }
    Ok(md)
}

/// `filename` of a `Content-Disposition` value (quoted or token form);
/// a name with a path or control characters is dropped, not cleaned.
fn disposition_filename(value: &str) -> Option<String> {
    let raw = value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("filename").then(|| v.trim())
    })?;
    let name = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.contains(['/', '\\', '"'])
        && !name.chars().any(char::is_control);
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_come_from_content_disposition_only_when_plain() {
        assert_eq!(
            disposition_filename("inline; filename=\"talk.mp4\"").as_deref(),
            Some("talk.mp4")
        );
        assert_eq!(
            disposition_filename("attachment; FILENAME=a.webm").as_deref(),
            Some("a.webm")
        );
        assert_eq!(
            disposition_filename("inline; filename=\"../etc/passwd\""),
            None
        );
        assert_eq!(disposition_filename("inline"), None);
    }
}
