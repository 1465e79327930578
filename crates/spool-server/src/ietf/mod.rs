//! The IETF draft "Resumable Uploads for HTTP" on the same routes and the
//! same upload resources as TUS: a request carrying
//! `Upload-Draft-Interop-Version` is answered here (interop 6 and 8, the
//! version differences all in [`spool_proto::ietf::Interop`]), everything
//! else by [`crate::tus`]. Creation ([`creation`]) announces the upload
//! with `104 Upload Resumption Supported` before reading the body; appends
//! ([`append`]) go through the TUS side's append path, so the one-writer
//! lock, the stalled-writer takeover, durability before the answer, live
//! playback and webhooks are the same code. Errors are RFC 9457 problem
//! details that also carry Spool's `code` and `message`.

mod append;
mod creation;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use spool_proto::ErrorCode;
use spool_proto::ietf::{self as d, Interop, Problem, ProblemType, UploadLimit};
use spool_proto::tus::{UPLOAD_LENGTH, UPLOAD_OFFSET};

use crate::app::App;
use crate::db::{UploadRow, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{CorsPolicy, apply_cors, header_str};
use crate::tus::{asset_headers, authorize_and_load};
use crate::uploads;

/// The interop version a request asks for: `None` for a TUS request,
/// `Some(Err)` for a version Spool does not speak.
pub(crate) fn requested(headers: &HeaderMap) -> Option<Result<Interop, ApiError>> {
    let value = header_str(headers, d::INTEROP_VERSION)?;
    Some(Interop::parse(value).map_err(|e| {
        ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "Upload-Draft-Interop-Version {e}; this server speaks {}",
                Interop::ALL.map(|v| v.number().to_string()).join(" and ")
            ),
        )
    }))
}

/// A request with an interop version Spool does not speak.
pub(crate) fn unsupported(
    app: &App,
    e: ApiError,
    req_headers: &HeaderMap,
    method: &Method,
) -> Response {
    finish(
        app,
        Err(e),
        Interop::NEWEST,
        req_headers,
        method,
        CorsPolicy::Any,
    )
}

/// `/v1/uploads` for the draft: OPTIONS and upload creation.
pub(crate) async fn creation_endpoint(
    app: &App,
    interop: Interop,
    method: Method,
    req: Request,
) -> Response {
    let req_headers = req.headers().clone();
    let result = match method {
        Method::OPTIONS => Ok(options(app, interop)),
        Method::POST => creation::create(app, interop, req).await,
        _ => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "the creation endpoint answers POST and OPTIONS",
        )),
    };
    finish(app, result, interop, &req_headers, &method, CorsPolicy::Any)
}

/// `/v1/uploads/{id}` for the draft: offset retrieval (HEAD, GET), append
/// (PATCH), cancellation (DELETE) and OPTIONS.
pub(crate) async fn upload_endpoint(
    app: &App,
    id: &str,
    interop: Interop,
    method: Method,
    req: Request,
    cors: CorsPolicy<'_>,
) -> Response {
    let req_headers = req.headers().clone();
    let query = req.uri().query().map(str::to_owned);
    let result = match method {
        Method::OPTIONS => Ok(options(app, interop)),
        Method::HEAD | Method::GET => {
            offset(app, id, interop, &req_headers, query.as_deref()).await
        }
        Method::PATCH => append::append(app, id, interop, req).await,
        Method::DELETE => cancel(app, id, interop, &req_headers, query.as_deref()).await,
        _ => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "an upload answers HEAD, GET, PATCH, DELETE and OPTIONS",
        )),
    };
    finish(app, result, interop, &req_headers, &method, cors)
}

/// Every draft answer names its interop version (as Apple's server does,
/// so a client learns which version it was answered in) and carries CORS.
fn finish(
    app: &App,
    result: ApiResult<Response>,
    interop: Interop,
    req_headers: &HeaderMap,
    method: &Method,
    cors: CorsPolicy<'_>,
) -> Response {
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
            let mut r = problem(e, interop, *method == Method::HEAD);
            // A 413 names the limits it enforced.
            if too_large && let Ok(v) = HeaderValue::from_str(&server_limit(app, interop)) {
                r.headers_mut().insert(d::UPLOAD_LIMIT, v);
            }
            r
        }
    };
    resp.headers_mut()
        .insert(d::INTEROP_VERSION, HeaderValue::from(interop.number()));
    apply_cors(&mut resp, req_headers, *method == Method::OPTIONS, cors);
    resp
}

/// An error as problem details: the draft's problem type where it has one
/// (else `about:blank`), Spool's code and message as members too.
fn problem(e: ApiError, interop: Interop, head: bool) -> Response {
    let kind = match e.code {
        ErrorCode::MismatchedOffset => Some(ProblemType::MismatchingUploadOffset),
        ErrorCode::LengthAlreadySet | ErrorCode::LengthBelowOffset | ErrorCode::InvalidLength => {
            Some(ProblemType::InconsistentUploadLength)
        }
        ErrorCode::UploadComplete if interop.has_completed_upload_problem() => {
            Some(ProblemType::CompletedUpload)
        }
        _ => None,
    };
    // A second writer beside a live one gets the draft's conflict answer
    // (409 with the current offset) rather than TUS's 423.
    let status = match e.code {
        ErrorCode::UploadLocked => StatusCode::CONFLICT,
        _ => e.status(),
    };
    let (expected, provided) = e.offsets.unzip();
    let body = Problem {
        kind: kind.map_or("about:blank", ProblemType::uri).to_owned(),
        title: kind.map_or_else(
            || status.canonical_reason().unwrap_or("Error").to_owned(),
            |k| k.title().to_owned(),
        ),
        status: status.as_u16(),
        detail: e.message.clone(),
        code: e.code.as_str().to_owned(),
        message: e.message,
        expected_offset: expected,
        provided_offset: provided,
    };
    let mut resp = if head {
        status.into_response()
    } else {
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut r = (status, json).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(d::PROBLEM_JSON),
        );
        r
    };
    let h = resp.headers_mut();
    for (k, v) in e.headers {
        h.insert(k, v);
    }
    h.insert(
        spool_proto::error::ERROR_CODE_HEADER,
        HeaderValue::from_static(e.code.as_str()),
    );
    if status == StatusCode::CONFLICT {
        // The client resumes from this offset; the draft wants both fields.
        if let Some(off) = expected {
            h.insert(UPLOAD_OFFSET, HeaderValue::from(off));
        }
        h.insert(
            d::UPLOAD_COMPLETE,
            HeaderValue::from_static(d::boolean(false)),
        );
    }
    if head {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The server's limits, for OPTIONS (which must name them, `min-size=0`
/// at least) and for 413 answers.
pub(crate) fn server_limit(app: &App, interop: Interop) -> String {
    UploadLimit {
        max_size: Some(app.config.max_size),
        lifetime_secs: Some(app.config.upload_ttl.as_secs()),
        ..UploadLimit::default()
    }
    .to_header(interop)
}

/// One upload's limits: its maximum size and, while it is unfinished, the
/// seconds it has left before it expires without more bytes.
fn upload_limit(app: &App, row: &UploadRow, interop: Interop) -> String {
    let left = (row.state == UploadState::Active)
        .then(|| ((row.expires_at - app.now_ms()).max(0) / 1000) as u64);
    UploadLimit {
        max_size: Some(row.size_limit(app.config.max_size)),
        lifetime_secs: left,
        ..UploadLimit::default()
    }
    .to_header(interop)
}

fn options(app: &App, interop: Interop) -> Response {
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&server_limit(app, interop)) {
        resp.headers_mut().insert(d::UPLOAD_LIMIT, v);
    }
    resp.headers_mut().insert(
        axum::http::HeaderName::from_static("accept-patch"),
        HeaderValue::from_static(d::PARTIAL_UPLOAD),
    );
    resp
}

/// The fields -05 forbids on offset retrieval and cancellation.
fn refuse_upload_fields(interop: Interop, headers: &HeaderMap, what: &str) -> ApiResult<()> {
    let present = [UPLOAD_OFFSET, d::UPLOAD_COMPLETE, UPLOAD_LENGTH]
        .into_iter()
        .find(|h| headers.contains_key(*h));
    match present {
        Some(h) if interop.refuses_upload_fields_on_head_and_delete() => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{what} must not carry {h} (interop {})", interop.number()),
        )),
        _ => Ok(()),
    }
}

/// The fields every answer about an upload carries: its offset (the
/// draft's -05 wants it everywhere, and tus-js-client reads it from every
/// answer), completeness, its limits, its asset.
fn describe(app: &App, row: &UploadRow, interop: Interop, h: &mut HeaderMap) {
    h.insert(UPLOAD_OFFSET, HeaderValue::from(row.offset));
    h.insert(
        d::UPLOAD_COMPLETE,
        HeaderValue::from_static(d::boolean(row.is_complete())),
    );
    if let Some(len) = row.length {
        h.insert(UPLOAD_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&upload_limit(app, row, interop)) {
        h.insert(d::UPLOAD_LIMIT, v);
    }
    asset_headers(app, row, h);
}

/// Offset retrieval: HEAD (or GET, which the newest text allows) answers
/// 204 with the upload's state and `Cache-Control: no-store`.
async fn offset(
    app: &App,
    id: &str,
    interop: Interop,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<Response> {
    refuse_upload_fields(interop, headers, "offset retrieval")?;
    let row = authorize_and_load(app, id, &Method::HEAD, headers, query).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    describe(app, &row, interop, h);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Cancellation: the upload ends as a TUS termination does (its writer
/// interrupted first), 204.
async fn cancel(
    app: &App,
    id: &str,
    interop: Interop,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<Response> {
    refuse_upload_fields(interop, headers, "cancellation")?;
    authorize_and_load(app, id, &Method::DELETE, headers, query).await?;
    uploads::end_upload(app, id, UploadState::Terminated).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The answer that ends an upload (`Upload-Complete: ?1`): what the
/// creation endpoint answers for a complete representation, the asset it
/// became and its share link, with `status` (201 for a creation, 200 for
/// an append).
fn completed(app: &App, row: &UploadRow, interop: Interop, status: StatusCode) -> Response {
    let body = d::Completed {
        length: row.offset,
        asset_id: row.asset_id.clone(),
        share_url: row.asset_id.as_deref().map(|a| app.db.share_url(a)),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    describe(app, row, interop, resp.headers_mut());
    resp
}

/// The answer to a creation or append that leaves the upload incomplete.
fn incomplete(app: &App, row: &UploadRow, interop: Interop, status: StatusCode) -> Response {
    let mut resp = status.into_response();
    describe(app, row, interop, resp.headers_mut());
    resp
}

/// Reads an optional SF integer field, refusing a malformed one with `code`.
fn integer_field(headers: &HeaderMap, name: &str, code: ErrorCode) -> ApiResult<Option<u64>> {
    header_str(headers, name)
        .map(|v| d::parse_integer(v).map_err(|e| ApiError::new(code, format!("{name} {e}"))))
        .transpose()
}

/// `Upload-Complete`, or what its absence means for `interop`.
fn complete_field(headers: &HeaderMap, interop: Interop) -> ApiResult<bool> {
    match header_str(headers, d::UPLOAD_COMPLETE) {
        Some(v) => d::parse_boolean(v)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("Upload-Complete {e}"))),
        None => interop.missing_complete_means().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "Upload-Complete (?0 or ?1) is required",
            )
        }),
    }
}

/// `Content-Digest`'s SHA-256, verified against the body like a TUS
/// checksum (a mismatch stores nothing).
fn content_digest(headers: &HeaderMap) -> ApiResult<Option<spool_proto::checksum::Checksum>> {
    header_str(headers, d::CONTENT_DIGEST)
        .map(|v| {
            d::parse_digest(v).map_err(|e| {
                ApiError::new(ErrorCode::InvalidChecksum, format!("Content-Digest {e}"))
            })
        })
        .transpose()
        .map(Option::flatten)
}

/// The two length indications of one request (`Upload-Length`, and the
/// end of a `?1` request's known content) must agree.
fn request_length(
    declared: Option<u64>,
    complete: bool,
    offset: u64,
    content_length: Option<u64>,
) -> ApiResult<Option<u64>> {
    let implied = if complete {
        content_length.map(|n| offset.saturating_add(n))
    } else {
        None
    };
    match (declared, implied) {
        (Some(a), Some(b)) if a != b => Err(ApiError::new(
            ErrorCode::InvalidLength,
            format!("Upload-Length {a} disagrees with the {b} bytes this request completes"),
        )),
        (a, b) => Ok(a.or(b)),
    }
}
