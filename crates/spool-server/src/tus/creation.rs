//! Creation and its extensions: POST makes an upload (with its asset unless
//! it is a partial), with a deferred length, with a first chunk in the same
//! request (creation-with-upload), or as the concatenation of complete
//! partial uploads (a final upload, whose bytes are copied at creation).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use spool_proto::ErrorCode;
use spool_proto::tus::{self, Concat};

use super::termination::upload_expires;
use super::{asset_headers, check_version, is_offset_stream, parse_checksum, parse_num};
use crate::app::App;
use crate::auth;
use crate::db::{ConcatKind, NewAsset, UploadRow, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::http_util::header_str;
use crate::locks::Mode;
use crate::space;
use crate::uploads::{self, create_upload};

pub(super) async fn create(app: &App, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    check_version(headers)?;
    auth::require_basic(app, headers)?;
    let concat = header_str(headers, tus::UPLOAD_CONCAT)
        .map(|v| {
            tus::parse_concat(v).map_err(|e| ApiError::new(ErrorCode::InvalidConcat, e.to_string()))
        })
        .transpose()?;
    let metadata_header = header_str(headers, tus::UPLOAD_METADATA).unwrap_or("");
    let metadata = spool_proto::metadata::decode(metadata_header)
        .map_err(|e| ApiError::new(ErrorCode::InvalidMetadata, e.to_string()))?;
    let (metadata_header, asset_metadata) = stored_metadata(&metadata);

    if let Some(Concat::Final(urls)) = concat {
        return create_final(app, headers, &urls, metadata_header, asset_metadata).await;
    }

    let length = parse_num(headers, tus::UPLOAD_LENGTH, ErrorCode::InvalidLength)?;
    let defer = header_str(headers, tus::UPLOAD_DEFER_LENGTH);
    let length = match (length, defer) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidLength,
                "send Upload-Length or Upload-Defer-Length, not both",
            ));
        }
        (None, Some("1")) => None,
        (None, Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidLength,
                "Upload-Defer-Length must be 1",
            ));
        }
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidLength,
                "Upload-Length or Upload-Defer-Length: 1 is required",
            ));
        }
        (Some(l), None) => Some(l),
    };
    if length.is_some_and(|l| l > app.config.max_size) {
        return Err(ApiError::new(
            ErrorCode::MaxSizeExceeded,
            format!("the maximum upload size is {} bytes", app.config.max_size),
        ));
    }
    let checksum = parse_checksum(headers)?;
    let with_upload = is_offset_stream(headers);
    let content_length = parse_num(
        headers,
        header::CONTENT_LENGTH.as_str(),
        ErrorCode::InvalidRequest,
    )?;
    if with_upload {
        // Refused before anything is created, so nothing is left behind.
        let need = content_length.unwrap_or(space::CHECK_EVERY);
        if let Err(e) = app.space.check(need, None).await {
            let stop = app.shutdown.cancelled();
            space::discard(&mut body.into_data_stream(), app.config.idle_timeout, stop).await;
            return Err(e);
        }
    }
    let partial = concat == Some(Concat::Partial);
    let asset = (!partial).then(|| NewAsset {
        id: crate::ids::new_id(),
        metadata: asset_metadata,
    });
    let row = create_upload(
        app,
        length,
        metadata_header,
        partial.then_some(ConcatKind::Partial),
        Vec::new(),
        None,
        asset.as_ref(),
    )
    .await?;

    let row = if with_upload {
        let guard = uploads::lock(app, &row.id, Mode::Try).await?;
        match super::append::append(app, &row, &guard, body, checksum, content_length).await {
            Ok(r) => r,
            // The upload exists either way: answer 201 with the offset that
            // was saved, so the client can resume rather than start over.
            Err(e) if e.code == ErrorCode::ChecksumMismatch => return Err(e),
            Err(e) => {
                tracing::info!(upload = %row.id, code = %e.code, "creation-with-upload body ended early");
                uploads::load(app, &row.id).await?
            }
        }
    } else {
        row
    };
    app.events_enqueued();
    Ok(created(app, &row, with_upload))
}

/// Metadata as an upload stores it (the `Upload-Metadata` form) and as its
/// asset shows it (the UTF-8 values, as JSON strings).
pub(crate) fn stored_metadata(
    metadata: &[(String, Vec<u8>)],
) -> (String, serde_json::Map<String, serde_json::Value>) {
    let asset = metadata
        .iter()
        .filter_map(|(k, v)| {
            std::str::from_utf8(v)
                .ok()
                .map(|s| (k.clone(), serde_json::Value::String(s.to_owned())))
        })
        .collect();
    (spool_proto::metadata::encode(metadata), asset)
}

fn created(app: &App, row: &UploadRow, with_offset: bool) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&app.signed_upload_url(&row.id, row.sig_exp)) {
        h.insert(header::LOCATION, v);
    }
    if with_offset {
        h.insert(tus::UPLOAD_OFFSET, HeaderValue::from(row.offset));
    }
    if row.state == UploadState::Active
        && let Ok(v) = HeaderValue::from_str(&upload_expires(row.expires_at))
    {
        h.insert(tus::UPLOAD_EXPIRES, v);
    }
    asset_headers(app, row, h);
    resp
}

/// The upload id named by a part URL (absolute or relative, signed or not).
fn part_id(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let (prefix, id) = path.rsplit_once('/')?;
    (prefix.ends_with("/uploads") && crate::ids::is_valid_id(id)).then_some(id)
}

async fn create_final(
    app: &App,
    headers: &HeaderMap,
    urls: &[String],
    metadata: String,
    asset_metadata: serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Response> {
    if headers.contains_key(tus::UPLOAD_LENGTH) {
        return Err(ApiError::new(
            ErrorCode::InvalidLength,
            "a final upload takes its length from its parts; omit Upload-Length",
        ));
    }
    let mut part_ids = Vec::with_capacity(urls.len());
    let mut total: u64 = 0;
    for url in urls {
        let id = part_id(url).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidConcat,
                "a part URL does not name an upload of this server",
            )
        })?;
        let part = uploads::load(app, id).await.map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidConcat,
                format!("part {id} does not exist"),
            )
        })?;
        if part.concat != Some(ConcatKind::Partial) {
            return Err(ApiError::new(
                ErrorCode::InvalidConcat,
                format!("upload {id} was not created as a partial upload"),
            ));
        }
        if !part.is_complete() {
            return Err(ApiError::new(
                ErrorCode::InvalidConcat,
                format!("part {id} is not complete"),
            ));
        }
        total = total.saturating_add(part.offset);
        part_ids.push(id.to_owned());
    }
    if total > app.config.max_size {
        return Err(ApiError::new(
            ErrorCode::MaxSizeExceeded,
            format!(
                "the parts add up to more than the maximum of {} bytes",
                app.config.max_size
            ),
        ));
    }
    // The concatenation is a copy: all of it must fit above the reserve.
    app.space.check(total, None).await?;
    let asset = NewAsset {
        id: crate::ids::new_id(),
        metadata: asset_metadata,
    };
    let row = create_upload(
        app,
        Some(total),
        metadata,
        Some(ConcatKind::Final),
        part_ids.clone(),
        None,
        Some(&asset),
    )
    .await?;
    let written = app
        .store
        .concat(&row.id, &part_ids)
        .await
        .map_err(|e| space::store_error(e, None))?;
    if written != total {
        return Err(ApiError::internal(format!(
            "concatenation wrote {written} bytes, expected {total}"
        )));
    }
    let (id, expiry, now) = (row.id.clone(), app.expiry_ms(), app.now_ms());
    let row = app
        .db
        .call(move |ops| ops.record_progress(&id, total, now, expiry))
        .await?;
    app.events_enqueued();
    Ok(created(app, &row, false))
}
