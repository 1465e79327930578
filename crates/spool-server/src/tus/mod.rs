//! The TUS 1.0.0 endpoint: creation (with upload, deferred length,
//! concatenation) at `/v1/uploads`, and HEAD, PATCH, DELETE, GET and OPTIONS
//! on each upload resource, with the expiration and checksum extensions.
//! Protocol rules live here, one module per concern: this one dispatches
//! methods and parses the shared headers, [`core`] answers HEAD and PATCH
//! (with the append path in [`append`], shared with creation-with-upload),
//! [`creation`] creates uploads and concatenations, [`termination`] ends
//! them and applies expiry. Bytes go through the [`Store`](crate::store::Store)
//! trait, and the upload lifecycle shared with the asset API (create, end,
//! expire) through [`crate::uploads`]. A request that names an interop
//! version of the IETF draft is handed to [`crate::ietf`] at the top of
//! each endpoint: the same resources, the other protocol.

pub(crate) mod append;
pub(crate) mod core;
pub(crate) mod creation;
pub(crate) mod termination;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use spool_proto::ErrorCode;
use spool_proto::tus::{self, Checksum};

use crate::app::App;
use crate::auth;
use crate::db::UploadRow;
use crate::error::{ApiError, ApiResult};
use crate::http_util::{CorsPolicy, apply_cors, effective_method, header_str, serve_bytes};
use crate::uploads;

/// `/v1/uploads`: OPTIONS and POST (creation).
pub async fn creation_endpoint(State(app): State<App>, req: Request) -> Response {
    let method = effective_method(req.method(), req.headers());
    match crate::ietf::requested(req.headers()) {
        Some(Ok(interop)) => {
            return crate::ietf::creation_endpoint(&app, interop, method, req).await;
        }
        Some(Err(e)) => return crate::ietf::unsupported(&app, e, req.headers(), &method),
        None => {}
    }
    let req_headers = req.headers().clone();
    let result = match method {
        Method::OPTIONS => Ok(options(&app)),
        Method::POST => creation::create(&app, req).await,
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
    // every decision below re-reads it. If it cannot be read, the origin the
    // upload allows is unknown: the answer is an internal error that no
    // origin may read, not one any origin may.
    let row = if crate::ids::is_valid_id(&id) {
        let rid = id.clone();
        match app.db.read(move |ops| ops.upload(&rid)).await {
            Ok(row) => row,
            Err(e) => {
                return finish(Err(e.into()), &req_headers, &method, CorsPolicy::NoOrigin);
            }
        }
    } else {
        None
    };
    let cors_origin = row.as_ref().and_then(|r| r.cors_origin.clone());
    let policy = match cors_origin.as_deref() {
        Some(o) => CorsPolicy::Only(o),
        None => CorsPolicy::Any,
    };
    match crate::ietf::requested(&req_headers) {
        Some(Ok(interop)) => {
            return crate::ietf::upload_endpoint(&app, &id, interop, method, req, policy).await;
        }
        Some(Err(e)) => return crate::ietf::unsupported(&app, e, &req_headers, &method),
        None => {}
    }
    let result = match method {
        Method::OPTIONS => Ok(options(&app)),
        Method::HEAD => core::head(&app, &id, &req_headers, req.uri().query()).await,
        Method::PATCH => core::patch(&app, &id, req).await,
        Method::DELETE => termination::terminate(&app, &id, &req_headers, req.uri().query()).await,
        Method::GET => download(&app, &id, &req_headers, req.uri().query()).await,
        _ => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "an upload answers HEAD, PATCH, DELETE, GET and OPTIONS",
        )),
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
    // The draft's clients discover it from OPTIONS too (it must name the
    // limits); they learn the interop versions by asking with theirs.
    if let Ok(v) = HeaderValue::from_str(&crate::ietf::server_limit(
        app,
        spool_proto::ietf::Interop::NEWEST,
    )) {
        h.insert(spool_proto::ietf::UPLOAD_LIMIT, v);
    }
    resp
}

pub(super) fn check_version(headers: &HeaderMap) -> ApiResult<()> {
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

pub(crate) fn parse_num(
    headers: &HeaderMap,
    name: &str,
    code: ErrorCode,
) -> ApiResult<Option<u64>> {
    header_str(headers, name)
        .map(|v| tus::parse_u64(v).map_err(|e| ApiError::new(code, format!("{name} {e}"))))
        .transpose()
}

pub(super) fn parse_checksum(headers: &HeaderMap) -> ApiResult<Option<Checksum>> {
    header_str(headers, tus::UPLOAD_CHECKSUM)
        .map(|v| {
            tus::parse_checksum(v)
                .map_err(|e| ApiError::new(ErrorCode::InvalidChecksum, e.to_string()))
        })
        .transpose()
}

pub(super) fn is_offset_stream(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(tus::OFFSET_OCTET_STREAM))
}

/// Authorises a `method` request to an upload resource and loads the upload.
pub(crate) async fn authorize_and_load(
    app: &App,
    id: &str,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<UploadRow> {
    let auth = auth::authorize_upload(app, headers, query, id)?;
    let row = uploads::load(app, id).await?;
    // An upload that is gone says so (410) whatever its URL's age.
    let writer_active = app.locks.is_held(id)?;
    termination::check_live(&row, writer_active, app.now_ms())?;
    auth::check_signature_time(&auth, &row, writer_active, app.now_ms())?;
    auth::check_signature_scope(&auth, method, &row)?;
    Ok(row)
}

/// `Spool-Asset-Id` and `Spool-Share-Url` of an upload with an asset.
pub(crate) fn asset_headers(app: &App, row: &UploadRow, h: &mut HeaderMap) {
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
