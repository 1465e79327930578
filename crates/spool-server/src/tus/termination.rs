//! Termination and expiration: DELETE ends an upload through
//! [`crate::uploads::end_upload`]; an upload that is terminated, expired,
//! damaged, or past its expiry with no writer on it answers 410; and
//! `Upload-Expires` is written as an HTTP date.

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use spool_proto::ErrorCode;

use super::{authorize_and_load, check_version};
use crate::app::App;
use crate::db::{UploadRow, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::uploads;

pub(super) async fn terminate(
    app: &App,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<Response> {
    check_version(headers)?;
    authorize_and_load(app, id, &Method::DELETE, headers, query).await?;
    uploads::end_upload(app, id, UploadState::Terminated).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) fn upload_expires(expires_at_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(expires_at_ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// Refuses uploads that are gone: terminated, expired, or past their expiry
/// with no writer on them (`writer_active` is true when the caller holds or
/// sees a live writer, whose bytes keep the upload alive), at `now` (Unix ms).
pub(crate) fn check_live(row: &UploadRow, writer_active: bool, now: i64) -> ApiResult<()> {
    match row.state {
        UploadState::Terminated => Err(ApiError::new(
            ErrorCode::UploadTerminated,
            "the upload was terminated",
        )),
        UploadState::Expired => Err(ApiError::new(
            ErrorCode::UploadExpired,
            "the upload expired",
        )),
        UploadState::Damaged => Err(ApiError::new(
            ErrorCode::UploadDamaged,
            row.error_message
                .clone()
                .unwrap_or_else(|| ErrorCode::UploadDamaged.description().to_owned()),
        )),
        UploadState::Active if !writer_active && row.expires_at < now => Err(ApiError::new(
            ErrorCode::UploadExpired,
            "the upload expired",
        )),
        _ => Ok(()),
    }
}
