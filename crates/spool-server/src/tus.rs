//! The TUS 1.0.0 endpoint: creation (with upload, deferred length,
//! concatenation) at `/v1/uploads`, and HEAD, PATCH, DELETE, GET and OPTIONS
//! on each upload resource, with the expiration and checksum extensions.
//! Protocol rules live here; bytes go through the [`Store`](crate::store::Store)
//! trait and state through the database. The append path is shared by PATCH
//! and creation-with-upload: stream the body into a writer, stop on a
//! stall, an interruption or shutdown, and commit durably before answering;
//! a chunk that would cross the free-space reserve ([`crate::space`]) is
//! refused with 507, none of it kept.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha1::Digest as _;
use spool_proto::ErrorCode;
use spool_proto::tus::{self, Checksum, ChecksumAlgorithm, Concat};

use crate::app::App;
use crate::auth;
use crate::db::{ConcatKind, NewAsset, NewUpload, UploadRow, UploadState, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{CorsPolicy, apply_cors, effective_method, header_str, serve_bytes};
use crate::locks::{LockError, Mode, WriteGuard};
use crate::space;
use crate::store::WriteMode;

/// `/v1/uploads`: OPTIONS and POST (creation).
pub async fn creation_endpoint(State(app): State<App>, req: Request) -> Response {
    let method = effective_method(req.method(), req.headers());
    let req_headers = req.headers().clone();
    let result = match method {
        Method::OPTIONS => Ok(options(&app)),
        Method::POST => create(&app, req).await,
        _ => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "the creation endpoint answers POST and OPTIONS",
        )),
    };
    finish(result, &req_headers, &method, CorsPolicy::Any)
}

/// `/v1/uploads/{id}`: OPTIONS, HEAD, PATCH, DELETE, GET.
pub async fn upload_endpoint(
    State(app): State<App>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let method = effective_method(req.method(), req.headers());
    let req_headers = req.headers().clone();
    // The row is read first only to answer CORS for this upload's origin;
    // every decision below re-reads it.
    let row = if crate::ids::is_valid_id(&id) {
        let rid = id.clone();
        app.db
            .call(move |ops| ops.upload(&rid))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let cors_origin = row.as_ref().and_then(|r| r.cors_origin.clone());
    let result = match method {
        Method::OPTIONS => Ok(options(&app)),
        Method::HEAD => head(&app, &id, &req_headers, req.uri().query()).await,
        Method::PATCH => patch(&app, &id, req).await,
        Method::DELETE => terminate(&app, &id, &req_headers, req.uri().query()).await,
        Method::GET => download(&app, &id, &req_headers, req.uri().query()).await,
        _ => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "an upload answers HEAD, PATCH, DELETE, GET and OPTIONS",
        )),
    };
    let policy = match cors_origin.as_deref() {
        Some(o) => CorsPolicy::Only(o),
        None => CorsPolicy::Any,
    };
    finish(result, &req_headers, &method, policy)
}

fn finish(
    result: ApiResult<Response>,
    req_headers: &HeaderMap,
    method: &Method,
    cors: CorsPolicy<'_>,
) -> Response {
    let mut resp = match result {
        Ok(r) => r,
        // HEAD answers carry no body, errors included.
        Err(e) if *method == Method::HEAD => {
            let mut r = e.status().into_response();
            for (k, v) in e.headers {
                r.headers_mut().insert(k, v);
            }
            r.headers_mut().insert(
                spool_proto::error::ERROR_CODE_HEADER,
                HeaderValue::from_static(e.code.as_str()),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(
        tus::TUS_RESUMABLE,
        HeaderValue::from_static(tus::TUS_VERSION),
    );
    apply_cors(&mut resp, req_headers, *method == Method::OPTIONS, cors);
    resp
}

fn options(app: &App) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(
        tus::TUS_VERSION_HEADER,
        HeaderValue::from_static(tus::TUS_VERSION),
    );
    h.insert(
        tus::TUS_EXTENSION,
        HeaderValue::from_static(tus::TUS_EXTENSIONS),
    );
    h.insert(tus::TUS_MAX_SIZE, HeaderValue::from(app.config.max_size));
    h.insert(
        tus::TUS_CHECKSUM_ALGORITHM,
        HeaderValue::from_static(tus::CHECKSUM_ALGORITHMS),
    );
    resp
}

fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    match header_str(headers, tus::TUS_RESUMABLE) {
        Some(tus::TUS_VERSION) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            "this server speaks TUS 1.0.0 only",
        )
        .with_header(tus::TUS_VERSION_HEADER, tus::TUS_VERSION)),
        None => Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            "Tus-Resumable: 1.0.0 is required",
        )
        .with_header(tus::TUS_VERSION_HEADER, tus::TUS_VERSION)),
    }
}

fn parse_num(headers: &HeaderMap, name: &str, code: ErrorCode) -> ApiResult<Option<u64>> {
    header_str(headers, name)
        .map(|v| tus::parse_u64(v).map_err(|e| ApiError::new(code, format!("{name} {e}"))))
        .transpose()
}

fn parse_checksum(headers: &HeaderMap) -> ApiResult<Option<Checksum>> {
    header_str(headers, tus::UPLOAD_CHECKSUM)
        .map(|v| {
            tus::parse_checksum(v)
                .map_err(|e| ApiError::new(ErrorCode::InvalidChecksum, e.to_string()))
        })
        .transpose()
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(tus::OFFSET_OCTET_STREAM))
}

fn upload_expires(expires_at_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(expires_at_ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// Refuses uploads that are gone: terminated, expired, or past their expiry
/// with no writer on them (`writer_active` is true when the caller holds or
/// sees a live writer, whose bytes keep the upload alive).
fn check_live(row: &UploadRow, writer_active: bool) -> ApiResult<()> {
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
        UploadState::Active if !writer_active && row.expires_at < now_ms() => Err(ApiError::new(
            ErrorCode::UploadExpired,
            "the upload expired",
        )),
        _ => Ok(()),
    }
}

async fn load(app: &App, id: &str) -> ApiResult<UploadRow> {
    let not_found = || ApiError::new(ErrorCode::UploadNotFound, "no upload has this id");
    if !crate::ids::is_valid_id(id) {
        return Err(not_found());
    }
    let rid = id.to_owned();
    app.db
        .call(move |ops| ops.upload(&rid))
        .await?
        .ok_or_else(not_found)
}

/// Authorises a `method` request to an upload resource and loads the upload.
async fn authorize_and_load(
    app: &App,
    id: &str,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<UploadRow> {
    let auth = auth::authorize_upload(app, headers, query, id)?;
    let row = load(app, id).await?;
    // An upload that is gone says so (410) whatever its URL's age.
    let writer_active = app.locks.is_held(id);
    check_live(&row, writer_active)?;
    auth::check_signature_time(&auth, &row, writer_active)?;
    auth::check_signature_scope(&auth, method, &row)?;
    Ok(row)
}

async fn head(
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

/// `Spool-Asset-Id` and `Spool-Share-Url` of an upload with an asset.
fn asset_headers(app: &App, row: &UploadRow, h: &mut HeaderMap) {
    if let Some(asset) = &row.asset_id
        && let (Ok(id), Ok(url)) = (
            HeaderValue::from_str(asset),
            HeaderValue::from_str(&app.db.share_url(asset)),
        )
    {
        h.insert(tus::SPOOL_ASSET_ID, id);
        h.insert(tus::SPOOL_SHARE_URL, url);
    }
}

async fn patch(app: &App, id: &str, req: Request) -> ApiResult<Response> {
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

    let guard = lock(
        app,
        id,
        Mode::InterruptStalled {
            grace: app.config.stall_grace,
        },
    )
    .await?;
    // Re-read under the lock: the previous writer may have moved the offset.
    let mut row = load(app, id).await?;
    check_live(&row, true)?;
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
    let row = append(app, &row, &guard, body, checksum, content_length).await?;
    drop(guard);
    app.events_enqueued();
    Ok(patch_ok(app, &row))
}

/// Whether a body (of unknown length) carries at least one byte.
async fn body_has_bytes(body: Body, idle: Duration) -> bool {
    let mut stream = body.into_data_stream();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(data))) if data.is_empty() => continue,
            Ok(Some(Ok(_))) => return true,
            _ => return false,
        }
    }
}

fn mismatch(server: u64, client: u64) -> ApiError {
    ApiError::new(
        ErrorCode::MismatchedOffset,
        format!("Upload-Offset {client} does not match the upload's offset {server}"),
    )
    .with_header(tus::UPLOAD_OFFSET, server)
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
        now_ms() + app.expiry_ms()
    };
    if let Ok(v) = HeaderValue::from_str(&upload_expires(expires)) {
        h.insert(tus::UPLOAD_EXPIRES, v);
    }
    resp
}

async fn lock(app: &App, id: &str, mode: Mode) -> ApiResult<WriteGuard> {
    app.locks
        .acquire(id, mode)
        .await
        .map_err(|LockError::Locked| {
            ApiError::new(
                ErrorCode::UploadLocked,
                "another request is writing to this upload",
            )
            .with_header("retry-after", 1)
        })
}

async fn declare_length(app: &App, row: &UploadRow, len: u64) -> ApiResult<UploadRow> {
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
    let row = app
        .db
        .call(move |ops| {
            ops.declare_length(&id, len)?;
            // Declaring the length at the current offset completes the upload.
            ops.record_progress(&id, offset, now_ms(), expiry)
        })
        .await?;
    crate::live::on_progress(app, &row).await;
    app.events_enqueued();
    Ok(row)
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(alg: ChecksumAlgorithm) -> Self {
        match alg {
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// How reading a body ended.
enum BodyEnd {
    Complete,
    ClientGone,
    Stalled,
    Interrupted,
    ShuttingDown,
    TooLarge,
    /// Storing more would cross the free-space reserve.
    NoSpace,
}

/// Streams `body` into the upload at its current offset and records the
/// result. Bytes that arrived are kept when the body is cut off (unless the
/// chunk had to be verified by checksum, which a partial chunk cannot be).
async fn append(
    app: &App,
    row: &UploadRow,
    guard: &WriteGuard,
    body: Body,
    checksum: Option<Checksum>,
    content_length: Option<u64>,
) -> ApiResult<UploadRow> {
    let (limit, limit_error) = match row.length {
        Some(len) => (len - row.offset, ErrorCode::UploadSizeExceeded),
        None => (
            row.size_limit(app.config.max_size)
                .saturating_sub(row.offset),
            ErrorCode::MaxSizeExceeded,
        ),
    };
    let too_large = || {
        ApiError::new(
            limit_error,
            format!("the body exceeds the {limit} bytes this upload can still take"),
        )
    };
    if content_length.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // The free-space reserve: what is still to come must fit (a body of
    // unknown length: its next window), checked before any of it is read.
    let still_to_come =
        |received: u64| content_length.map_or(space::CHECK_EVERY, |n| n.saturating_sub(received));
    let idle = app.config.idle_timeout;
    let stop = async {
        tokio::select! {
            _ = guard.interrupted() => {},
            _ = app.shutdown.cancelled() => {},
        }
    };
    if let Err(e) = app.space.check(still_to_come(0), Some(row.offset)).await {
        space::discard(&mut body.into_data_stream(), idle, stop).await;
        return Err(e);
    }
    let mut space_counted: u64 = 0;
    let mode = if checksum.is_some() {
        WriteMode::Staged
    } else {
        WriteMode::Direct
    };
    let mut writer = app.store.writer(&row.id, row.offset, mode).await?;
    let mut hasher = checksum.as_ref().map(|c| Hasher::new(c.algorithm));
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    let end = loop {
        let frame = tokio::select! {
            biased;
            _ = guard.interrupted() => break BodyEnd::Interrupted,
            _ = app.shutdown.cancelled() => break BodyEnd::ShuttingDown,
            frame = tokio::time::timeout(idle, stream.next()) => frame,
        };
        match frame {
            Err(_) => break BodyEnd::Stalled,
            Ok(None) => break BodyEnd::Complete,
            Ok(Some(Err(_))) => break BodyEnd::ClientGone,
            Ok(Some(Ok(data))) => {
                received += data.len() as u64;
                if received > limit {
                    break BodyEnd::TooLarge;
                }
                // Other uploads fill the volume too: look again as bytes
                // arrive, and stop before this chunk crosses the reserve.
                if received - space_counted >= space::CHECK_EVERY {
                    let (arrived, need) = (received - space_counted, still_to_come(received));
                    space_counted = received;
                    let check = app.space.check_streaming(arrived, need, Some(row.offset));
                    if check.await.is_err() {
                        break BodyEnd::NoSpace;
                    }
                }
                guard.touch();
                if let Some(h) = hasher.as_mut() {
                    h.update(&data);
                }
                if let Err(e) = writer.write(data).await {
                    let _ = writer.abort().await;
                    return Err(space::store_error(e, Some(row.offset)));
                }
            }
        }
    };

    let outcome: Result<(), ApiError> = match end {
        BodyEnd::Complete => {
            let verified = match (checksum, hasher) {
                (Some(expected), Some(h)) => h.finish() == expected.digest,
                _ => true,
            };
            if !verified {
                writer.abort().await?;
                return Err(ApiError::new(
                    ErrorCode::ChecksumMismatch,
                    "the body's checksum does not match Upload-Checksum; nothing was stored",
                ));
            }
            Ok(())
        }
        BodyEnd::TooLarge => {
            writer.abort().await?;
            return Err(too_large());
        }
        // A 507 promises that nothing of the chunk was stored.
        BodyEnd::NoSpace => {
            writer.abort().await?;
            tracing::info!(upload = %row.id, received, "free-space reserve reached mid-body; the partial chunk is discarded");
            space::discard(&mut stream, idle, stop).await;
            return Err(space::insufficient(Some(row.offset)));
        }
        BodyEnd::ClientGone => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body ended early; what arrived was saved",
        )),
        BodyEnd::Stalled => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "no bytes arrived for {} s; what arrived was saved",
                idle.as_secs()
            ),
        )
        .with_header("connection", "close")),
        BodyEnd::Interrupted => Err(ApiError::new(
            ErrorCode::UploadInterrupted,
            ErrorCode::UploadInterrupted.description(),
        )
        .with_header("connection", "close")),
        BodyEnd::ShuttingDown => Err(ApiError::new(
            ErrorCode::ShuttingDown,
            ErrorCode::ShuttingDown.description(),
        )
        .with_header("connection", "close")),
    };
    if let Err(e) = outcome {
        if mode == WriteMode::Staged {
            // A partial chunk cannot be verified against its checksum.
            writer.abort().await?;
            return Err(e);
        }
        let added = writer
            .commit()
            .await
            .map_err(|e| space::store_error(e, Some(row.offset)))?;
        record(app, row, added).await?;
        tracing::info!(upload = %row.id, saved = added, code = %e.code, "body ended early");
        app.events_enqueued();
        return Err(e);
    }
    crate::fault::point("written-before-commit");
    let added = writer
        .commit()
        .await
        .map_err(|e| space::store_error(e, Some(row.offset)))?;
    crate::fault::point("committed-before-record");
    record(app, row, added).await
}

async fn record(app: &App, row: &UploadRow, added: u64) -> ApiResult<UploadRow> {
    let new_offset = row.offset + added;
    let (id, expiry) = (row.id.clone(), app.expiry_ms());
    let row = app
        .db
        .call(move |ops| ops.record_progress(&id, new_offset, now_ms(), expiry))
        .await?;
    // Before the client hears the new offset, so a fragment it was told is
    // stored is already in the live playlist.
    crate::live::on_progress(app, &row).await;
    Ok(row)
}

async fn create(app: &App, req: Request) -> ApiResult<Response> {
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
    let metadata_header = spool_proto::metadata::encode(&metadata);
    let asset_metadata: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .filter_map(|(k, v)| {
            std::str::from_utf8(v)
                .ok()
                .map(|s| (k.clone(), serde_json::Value::String(s.to_owned())))
        })
        .collect();

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
        let guard = lock(app, &row.id, Mode::Try).await?;
        match append(app, &row, &guard, body, checksum, content_length).await {
            Ok(r) => r,
            // The upload exists either way: answer 201 with the offset that
            // was saved, so the client can resume rather than start over.
            Err(e) if e.code == ErrorCode::ChecksumMismatch => return Err(e),
            Err(e) => {
                tracing::info!(upload = %row.id, code = %e.code, "creation-with-upload body ended early");
                load(app, &row.id).await?
            }
        }
    } else {
        row
    };
    app.events_enqueued();
    Ok(created(app, &row, with_upload))
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

/// Creates an upload (and its asset) in the database and the store.
pub async fn create_upload(
    app: &App,
    length: Option<u64>,
    metadata: String,
    concat: Option<ConcatKind>,
    parts: Vec<String>,
    cors_origin: Option<String>,
    asset: Option<&NewAsset>,
) -> ApiResult<UploadRow> {
    let now = now_ms();
    let ttl_ms = app.config.upload_ttl.as_millis() as i64;
    let up = NewUpload {
        id: crate::ids::new_id(),
        length,
        metadata,
        concat,
        parts,
        cors_origin,
        created_at: now,
        expires_at: now + ttl_ms,
        // Rounded up so the URL is never shorter-lived than the upload.
        sig_exp: ((now + ttl_ms + 999) / 1000).max(0) as u64,
    };
    // Storage first: a row without bytes behind it must never exist (a
    // file without a row is an orphan that startup removes).
    app.store
        .create(&up.id)
        .await
        .map_err(|e| space::store_error(e, None))?;
    crate::fault::point("created-before-row");
    let asset = asset.cloned();
    let id = up.id.clone();
    let row = app
        .db
        .call(move |ops| {
            ops.create_upload(&up, asset.as_ref())?;
            ops.upload(&id)
        })
        .await?
        .ok_or_else(|| ApiError::internal("created upload vanished"))?;
    Ok(row)
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
        let part = load(app, id).await.map_err(|_| {
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
    let (id, expiry) = (row.id.clone(), app.expiry_ms());
    let row = app
        .db
        .call(move |ops| ops.record_progress(&id, total, now_ms(), expiry))
        .await?;
    app.events_enqueued();
    Ok(created(app, &row, false))
}

async fn terminate(
    app: &App,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<Response> {
    check_version(headers)?;
    authorize_and_load(app, id, &Method::DELETE, headers, query).await?;
    end_upload(app, id, UploadState::Terminated).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Ends an upload (termination, asset deletion, expiry): interrupts any
/// writer, removes the bytes, and records the end with its webhook.
pub async fn end_upload(app: &App, id: &str, state: UploadState) -> ApiResult<()> {
    let _guard = lock(app, id, Mode::Force).await?;
    // The end state is committed before any byte goes: a crash in between
    // leaves an orphan file that startup removes, never an upload that
    // looks alive with its bytes gone.
    let rid = id.to_owned();
    let asset_id = app
        .db
        .call(move |ops| {
            ops.end_upload(&rid, state, now_ms())?;
            ops.asset_of_upload(&rid)
        })
        .await?;
    crate::fault::point("end-recorded-before-delete");
    app.store.delete(id).await?;
    app.live.forget(id);
    if let Some(asset_id) = asset_id
        && state == UploadState::Terminated
    {
        // Derived outputs go with the asset (startup removes any left by a crash here).
        let outputs = crate::outputs::Outputs::new(&app.config.data_dir, &asset_id);
        tokio::task::spawn_blocking(move || outputs.remove())
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    app.events_enqueued();
    Ok(())
}

async fn download(
    app: &App,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<Response> {
    let row = authorize_and_load(app, id, &Method::GET, headers, query).await?;
    if !row.is_complete() {
        return Err(ApiError::new(
            ErrorCode::UploadIncomplete,
            format!(
                "the upload has {} bytes so far and is not complete",
                row.offset
            ),
        ));
    }
    serve_bytes(
        app,
        id,
        row.offset,
        headers,
        "application/octet-stream",
        false,
    )
    .await
}

/// Expires unfinished uploads whose time has passed, in the background;
/// requests already answer 410 for them, this frees their bytes and tells the
/// asset's owner.
pub async fn sweep_expired(app: &App) -> ApiResult<usize> {
    let now = now_ms();
    let candidates = app.db.call(move |ops| ops.expired_candidates(now)).await?;
    let mut expired = 0;
    for id in candidates {
        // A live writer keeps its upload alive; look again next round.
        let Ok(guard) = app.locks.acquire(&id, Mode::Try).await else {
            continue;
        };
        let row = load(app, &id).await?;
        if row.state == UploadState::Active && row.expires_at < now_ms() {
            let rid = id.clone();
            app.db
                .call(move |ops| ops.end_upload(&rid, UploadState::Expired, now_ms()))
                .await?;
            app.store.delete(&id).await?;
            expired += 1;
            tracing::info!(upload = %id, "upload expired");
        }
        drop(guard);
    }
    if expired > 0 {
        app.events_enqueued();
    }
    Ok(expired)
}
