//! Upload append for the draft: `PATCH` with `application/partial-upload`,
//! `Upload-Offset` and `Upload-Complete`, under the upload's one-writer
//! lock, through the same append path as TUS. A `?1` append records the
//! length its content implies and gets the final answer; an upload whose
//! declared length is reached is complete too (the newest text lets the
//! server mark completion, and tus-js-client 4.3.1 can reach the end of a
//! file without ever sending `?1`). An empty `?1` to a completed upload
//! replays its final answer.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use spool_proto::ErrorCode;
use spool_proto::ietf::{self as d, Interop};
use spool_proto::tus::{UPLOAD_LENGTH, UPLOAD_OFFSET};

use super::{complete_field, completed, content_digest, incomplete, integer_field, request_length};
use crate::app::App;
use crate::db::ConcatKind;
use crate::error::{ApiError, ApiResult};
use crate::http_util::header_str;
use crate::locks::Mode;
use crate::tus::authorize_and_load;
use crate::tus::core::{body_has_bytes, declare_length, mismatch};
use crate::tus::termination::check_live;
use crate::uploads;

fn is_partial_upload(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(d::PARTIAL_UPLOAD))
}

pub(super) async fn append(
    app: &App,
    id: &str,
    interop: Interop,
    req: Request,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if !is_partial_upload(headers) {
        return Err(ApiError::new(
            ErrorCode::InvalidContentType,
            format!("an append's Content-Type must be {}", d::PARTIAL_UPLOAD),
        ));
    }
    let offset = integer_field(headers, UPLOAD_OFFSET, ErrorCode::InvalidOffset)?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidOffset, "Upload-Offset is required"))?;
    let complete = complete_field(headers, interop)?;
    let declared = integer_field(headers, UPLOAD_LENGTH, ErrorCode::InvalidLength)?;
    let digest = content_digest(headers)?;
    let content_length = integer_field(
        headers,
        header::CONTENT_LENGTH.as_str(),
        ErrorCode::InvalidRequest,
    )?;
    let length = request_length(declared, complete, offset, content_length)?;

    let query = parts.uri.query();
    let row = match authorize_and_load(app, id, &Method::PATCH, headers, query).await {
        // An upload URL no longer appends once the upload is complete, but
        // an empty `?1` changes nothing: it may still hear the final answer
        // (a client whose first one was lost asks again).
        Err(e) if e.code == ErrorCode::Forbidden && complete && content_length == Some(0) => {
            let row = authorize_and_load(app, id, &Method::HEAD, headers, query).await?;
            if !row.is_complete() {
                return Err(e);
            }
            return Ok(completed(app, &row, interop, StatusCode::OK));
        }
        r => r?,
    };
    if row.concat == Some(ConcatKind::Final) {
        return Err(ApiError::new(
            ErrorCode::ModifyFinal,
            "a final concatenated upload cannot be appended to",
        ));
    }
    let guard = match uploads::lock(
        app,
        id,
        Mode::InterruptStalled {
            grace: app.config.stall_grace,
        },
    )
    .await
    {
        Ok(g) => g,
        // A live writer holds the upload: the conflict names the offset it
        // has stored so far.
        Err(e) if e.code == ErrorCode::UploadLocked => {
            let now = uploads::load(app, id).await?;
            return Err(e
                .with_header(UPLOAD_OFFSET, now.offset)
                .with_offsets(now.offset, offset));
        }
        Err(e) => return Err(e),
    };
    // Re-read under the lock: the previous writer may have moved the offset.
    let mut row = uploads::load(app, id).await?;
    check_live(&row, true, app.now_ms())?;
    if row.is_complete() {
        // A repeat of the final append (empty) replays its answer; more
        // bytes do not fit.
        if content_length.unwrap_or(0) > 0 || body_has_bytes(body, app.config.idle_timeout).await {
            return Err(ApiError::new(
                ErrorCode::UploadComplete,
                "the upload is already complete",
            ));
        }
        return Ok(completed(app, &row, interop, StatusCode::OK));
    }
    if offset != row.offset {
        return Err(mismatch(row.offset, offset));
    }
    if let Some(len) = length {
        row = declare_length(app, &row, len).await?;
    }
    if !row.is_complete() {
        row = crate::tus::append::append(app, &row, &guard, body, digest, content_length).await?;
        // A `?1` body of unknown length ends the upload where it ended.
        if complete && row.length.is_none() {
            row = declare_length(app, &row, row.offset).await?;
        }
        if complete && !row.is_complete() {
            return Err(ApiError::new(
                ErrorCode::InvalidLength,
                format!(
                    "the append said it completes the upload at {} bytes, but its length is {}",
                    row.offset,
                    row.length.unwrap_or_default()
                ),
            ));
        }
    }
    drop(guard);
    app.events_enqueued();
    Ok(if row.is_complete() {
        completed(app, &row, interop, StatusCode::OK)
    } else {
        let status = StatusCode::from_u16(interop.incomplete_status()).unwrap_or(StatusCode::OK);
        incomplete(app, &row, interop, status)
    })
}
