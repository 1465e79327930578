//! The core protocol: HEAD reports an upload's offset, length, metadata and
//! expiry; PATCH appends at the offset it names (declaring a deferred
//! length on the way), under the upload's one-writer lock, interrupting a
//! stalled writer, and answers only once the bytes are durable.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use spool_proto::ErrorCode;
use spool_proto::tus;

use super::termination::{check_live, upload_expires};
use super::{
    asset_headers, authorize_and_load, check_version, is_offset_stream, parse_checksum, parse_num,
};
use crate::app::App;
use crate::db::{ConcatKind, UploadRow, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::locks::Mode;
use crate::uploads;

pub(super) async fn head(
    app: &App,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<Response> {
    check_version(headers)?;
    let row = authorize_and_load(app, id, &Method::HEAD, headers, query).await?;
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(tus::UPLOAD_OFFSET, HeaderValue::from(row.offset));
    match row.length {
        Some(len) => h.insert(tus::UPLOAD_LENGTH, HeaderValue::from(len)),
        None => h.insert(tus::UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1")),
    };
    // An upload with a limit of its own names it (OPTIONS names the server's).
    if row.max_size.is_some() {
        let max = row.size_limit(app.config.max_size);
        h.insert(tus::TUS_MAX_SIZE, HeaderValue::from(max));
    }
    if !row.metadata.is_empty()
        && let Ok(v) = HeaderValue::from_str(&row.metadata)
    {
        h.insert(tus::UPLOAD_METADATA, v);
    }
    let concat = match row.concat {
        Some(ConcatKind::Partial) => Some("partial".to_owned()),
        Some(ConcatKind::Final) => Some(format!(
            "final;{}",
            row.parts
                .iter()
                .map(|p| format!("/v1/uploads/{p}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        None => None,
    };
    if let Some(v) = concat.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(tus::UPLOAD_CONCAT, v);
    }
    if row.state == UploadState::Active
        && let Ok(v) = HeaderValue::from_str(&upload_expires(row.expires_at))
    {
        h.insert(tus::UPLOAD_EXPIRES, v);
    }
    asset_headers(app, &row, h);
    Ok(resp)
}

pub(super) async fn patch(app: &App, id: &str, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    check_version(headers)?;
    if !is_offset_stream(headers) {
        return Err(ApiError::new(
            ErrorCode::InvalidContentType,
            format!("Content-Type must be {}", tus::OFFSET_OCTET_STREAM),
        ));
    }
    let offset = parse_num(headers, tus::UPLOAD_OFFSET, ErrorCode::InvalidOffset)?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidOffset, "Upload-Offset is required"))?;
    let declared = parse_num(headers, tus::UPLOAD_LENGTH, ErrorCode::InvalidLength)?;
    let checksum = parse_checksum(headers)?;
    let content_length = parse_num(
        headers,
        header::CONTENT_LENGTH.as_str(),
        ErrorCode::InvalidRequest,
    )?;

    let row = authorize_and_load(app, id, &Method::PATCH, headers, parts.uri.query()).await?;
    if row.concat == Some(ConcatKind::Final) {
        return Err(ApiError::new(
            ErrorCode::ModifyFinal,
            "a final concatenated upload cannot be patched",
        ));
    }

    let guard = uploads::lock(
        app,
        id,
        Mode::InterruptStalled {
            grace: app.config.stall_grace,
        },
    )
    .await?;
    // Re-read under the lock: the previous writer may have moved the offset.
    let mut row = uploads::load(app, id).await?;
    check_live(&row, true, app.now_ms())?;
    if offset != row.offset {
        return Err(mismatch(row.offset, offset));
    }
    if let Some(len) = declared {
        row = declare_length(app, &row, len).await?;
    }
    if row.is_complete() {
        // An idempotent repeat of the final PATCH (empty body) succeeds; more
        // bytes do not fit.
        if content_length.unwrap_or(0) > 0 || body_has_bytes(body, app.config.idle_timeout).await {
            return Err(ApiError::new(
                ErrorCode::UploadComplete,
                "the upload is already complete",
            ));
        }
        return Ok(patch_ok(app, &row));
    }
    let row = super::append::append(app, &row, &guard, body, checksum, content_length).await?;
    drop(guard);
    app.events_enqueued();
    Ok(patch_ok(app, &row))
}

/// Whether a body (of unknown length) carries at least one byte.
pub(crate) async fn body_has_bytes(body: Body, idle: Duration) -> bool {
    let mut stream = body.into_data_stream();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(data))) if data.is_empty() => continue,
            Ok(Some(Ok(_))) => return true,
            _ => return false,
        }
    }
}

pub(crate) fn mismatch(server: u64, client: u64) -> ApiError {
    ApiError::new(
        ErrorCode::MismatchedOffset,
        format!("Upload-Offset {client} does not match the upload's offset {server}"),
    )
    .with_header(tus::UPLOAD_OFFSET, server)
    .with_offsets(server, client)
}

fn patch_ok(app: &App, row: &UploadRow) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(tus::UPLOAD_OFFSET, HeaderValue::from(row.offset));
    // Every PATCH answer names the expiry: for an unfinished upload the
    // moment it would expire without more bytes.
    let expires = if row.state == UploadState::Active {
        row.expires_at
    } else {
        app.now_ms() + app.expiry_ms()
    };
    if let Ok(v) = HeaderValue::from_str(&upload_expires(expires)) {
        h.insert(tus::UPLOAD_EXPIRES, v);
    }
    resp
}

pub(crate) async fn declare_length(app: &App, row: &UploadRow, len: u64) -> ApiResult<UploadRow> {
    match row.length {
        Some(l) if l == len => return Ok(row.clone()),
        Some(l) => {
            return Err(ApiError::new(
                ErrorCode::LengthAlreadySet,
                format!("the upload's length is already {l}"),
            ));
        }
        None => {}
    }
    if len < row.offset {
        return Err(ApiError::new(
            ErrorCode::LengthBelowOffset,
            format!(
                "Upload-Length {len} is below the {} bytes already received",
                row.offset
            ),
        ));
    }
    let max = row.size_limit(app.config.max_size);
    if len > max {
        return Err(ApiError::new(
            ErrorCode::MaxSizeExceeded,
            format!("the maximum size of this upload is {max} bytes"),
        ));
    }
    let id = row.id.clone();
    let expiry = app.expiry_ms();
    let offset = row.offset;
    let now = app.now_ms();
    let row = app
        .db
        .call(move |ops| {
            ops.declare_length(&id, len)?;
            // Declaring the length at the current offset completes the upload.
            ops.record_progress(&id, offset, now, expiry)
        })
        .await?;
    crate::uploads::assemble(app, &row).await;
    crate::live::on_progress(app, &row).await;
    app.events_enqueued();
    Ok(row)
}
