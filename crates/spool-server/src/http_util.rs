//! Small HTTP pieces the handlers share: the method override, CORS answers,
//! byte-range responses over stored bytes (with a strong `ETag`, answered
//! 304 on `If-None-Match`, and `Cache-Control: private, no-cache` so that no
//! cache serves a deleted asset's bytes without asking first), and header
//! readers.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use spool_proto::ErrorCode;
use spool_proto::tus;

use sha2::Digest as _;

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// The method a request means: `X-HTTP-Method-Override` on a POST wins, as
/// TUS requires for clients behind proxies that only pass GET and POST.
pub fn effective_method(method: &Method, headers: &HeaderMap) -> Method {
    if method == Method::POST
        && let Some(m) = headers
            .get(tus::METHOD_OVERRIDE)
            .and_then(|v| v.to_str().ok())
        && let Ok(m) = Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
    {
        return m;
    }
    method.clone()
}

/// A header as text; `None` if absent. Non-text values count as absent
/// only for optional headers — callers that need a value treat them as malformed.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Which origins may read an answer.
pub enum CorsPolicy<'a> {
    /// Any origin (the creation endpoint, uploads created without an origin).
    Any,
    /// Only this origin.
    Only(&'a str),
    /// No origin: what an upload allows could not be read, so no browser
    /// page is let read the answer.
    NoOrigin,
}

/// Adds CORS headers for the request's Origin, if allowed, and the preflight
/// headers on OPTIONS.
pub fn apply_cors(
    resp: &mut Response,
    req_headers: &HeaderMap,
    is_options: bool,
    policy: CorsPolicy<'_>,
) {
    let Some(origin) = req_headers.get(header::ORIGIN) else {
        return;
    };
    let allowed = match policy {
        CorsPolicy::Any => true,
        CorsPolicy::Only(o) => origin.as_bytes() == o.as_bytes(),
        CorsPolicy::NoOrigin => false,
    };
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if !allowed {
        return;
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(tus::CORS_EXPOSE_HEADERS),
    );
    if is_options {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, HEAD, PATCH, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(tus::CORS_ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
}

/// Parses a single `bytes=` range against a resource of `len` bytes.
/// `Ok(None)`: serve the whole resource (no header, or a form we do not serve
/// partially such as several ranges). `Err`: unsatisfiable.
/// A Range header that does not fit the resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

pub fn parse_range(
    value: Option<&str>,
    len: u64,
) -> Result<Option<std::ops::Range<u64>>, Unsatisfiable> {
    let Some(value) = value else { return Ok(None) };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n = tus::parse_u64(b).map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        len.saturating_sub(n)..len
    } else {
        let start = tus::parse_u64(a).map_err(|_| Unsatisfiable)?;
        let end = if b.is_empty() {
            len
        } else {
            tus::parse_u64(b)
                .map_err(|_| Unsatisfiable)?
                .saturating_add(1)
                .min(len)
        };
        if start >= len || end <= start {
            return Err(Unsatisfiable);
        }
        start..end
    };
    Ok(Some(range))
}

/// Cached copies must be revalidated before every use: a deleted asset then
/// stops playing from any cache at once (revalidation answers 404), and the
/// revalidation of bytes that still exist is a cheap 304.
pub const BYTES_CACHE_CONTROL: &str = "private, no-cache";

/// A strong validator for the bytes of complete upload `upload_id` of `len`
/// bytes. A complete upload never changes and ids are never reused, so id
/// and length name its bytes exactly; they are hashed so that the upload id,
/// half of an upload URL, is not disclosed to share-page viewers.
pub fn bytes_etag(upload_id: &str, len: u64) -> String {
    let digest = sha2::Sha256::digest(format!("spool-bytes\0{upload_id}\0{len}"));
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether an `If-None-Match` / `If-Range` value names `etag`. `weak`
/// comparison (for If-None-Match) ignores a `W/` prefix; strong comparison
/// (If-Range) does not accept it, nor `*`.
pub fn etag_matches(value: &str, etag: &str, weak: bool) -> bool {
    value.split(',').map(str::trim).any(|tag| {
        if weak {
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        } else {
            tag == etag
        }
    })
}

/// A part of a served object: bytes in memory, a range of an upload's
/// stored bytes, or a range of a local file (processing outputs).
pub enum Piece {
    Bytes(bytes::Bytes),
    Store {
        upload_id: String,
        range: std::ops::Range<u64>,
    },
    File {
        path: std::path::PathBuf,
        range: std::ops::Range<u64>,
    },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Store { range, .. } | Piece::File { range, .. } => range.end - range.start,
        }
    }
}

/// Answers GET (or HEAD) for stored bytes of upload `upload_id` of `len`
/// bytes, honouring Range, If-Range and If-None-Match.
pub async fn serve_bytes(
    app: &App,
    upload_id: &str,
    len: u64,
    headers: &HeaderMap,
    content_type: &str,
    head_only: bool,
) -> ApiResult<Response> {
    let pieces = vec![Piece::Store {
        upload_id: upload_id.to_owned(),
        range: 0..len,
    }];
    let etag = bytes_etag(upload_id, len);
    serve_pieces(app, pieces, &etag, headers, content_type, head_only).await
}

/// Opens the bytes of `span` (offsets into the concatenation of `pieces`)
/// as one stream.
async fn open_span(
    app: &App,
    pieces: Vec<Piece>,
    span: std::ops::Range<u64>,
) -> ApiResult<crate::store::ByteStream> {
    use futures_util::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut parts: Vec<crate::store::ByteStream> = Vec::new();
    let mut at = 0u64;
    for piece in pieces {
        let (start, end) = (at, at + piece.len());
        at = end;
        let (lo, hi) = (span.start.max(start), span.end.min(end));
        if lo >= hi {
            continue;
        }
        let (lo, hi) = (lo - start, hi - start);
        parts.push(match piece {
            Piece::Bytes(b) => {
                let chunk = b.slice(lo as usize..hi as usize);
                Box::pin(futures_util::stream::once(async move { Ok(chunk) }))
            }
            Piece::Store { upload_id, range } => {
                app.store
                    .read(&upload_id, range.start + lo..range.start + hi)
                    .await?
            }
            Piece::File { path, range } => {
                let mut f = tokio::fs::File::open(&path)
                    .await
                    .map_err(ApiError::internal)?;
                f.seek(std::io::SeekFrom::Start(range.start + lo))
                    .await
                    .map_err(ApiError::internal)?;
                Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    f.take(hi - lo),
                    256 * 1024,
                ))
            }
        });
    }
    Ok(Box::pin(futures_util::stream::iter(parts).flatten()))
}

/// Answers GET (or HEAD) for the object made of `pieces` in order, whose
/// bytes `etag` names exactly, honouring Range, If-Range and If-None-Match.
pub async fn serve_pieces(
    app: &App,
    pieces: Vec<Piece>,
    etag: &str,
    headers: &HeaderMap,
    content_type: &str,
    head_only: bool,
) -> ApiResult<Response> {
    let len: u64 = pieces.iter().map(Piece::len).sum();
    if header_str(headers, header::IF_NONE_MATCH.as_str())
        .is_some_and(|v| etag_matches(v, etag, true))
    {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag)
            .header(header::CACHE_CONTROL, BYTES_CACHE_CONTROL)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    // A Range made against other bytes (or a date, which we cannot check
    // without Last-Modified) gets the whole resource.
    let range_header = match header_str(headers, header::IF_RANGE.as_str()) {
        Some(v) if !etag_matches(v, etag, false) => None,
        _ => header_str(headers, header::RANGE.as_str()),
    };
    let range = parse_range(range_header, len).map_err(|_| {
        ApiError::new(
            ErrorCode::RangeNotSatisfiable,
            format!("the resource has {len} bytes"),
        )
        .with_header("content-range", format!("bytes */{len}"))
    })?;
    let (status, span) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
        None => (StatusCode::OK, 0..len),
    };
    let body = if head_only || span.is_empty() {
        Body::empty()
    } else {
        Body::from_stream(open_span(app, pieces, span.clone()).await?)
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, span.end - span.start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, BYTES_CACHE_CONTROL)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if range.is_some() {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{len}", span.start, span.end.saturating_sub(1)),
        );
    }
    resp.body(body).map_err(ApiError::internal)
}

/// The media type of stored bytes, from their first bytes: MP4 (and other
/// ISO-BMFF) is recognised by its `ftyp` box; anything else is served as
/// opaque bytes. A client-chosen type is never trusted.
pub async fn sniff_content_type(app: &App, upload_id: &str) -> &'static str {
    match app.store.head_bytes(upload_id, 12).await {
        Ok(b) if b.len() >= 8 && &b[4..8] == b"ftyp" => "video/mp4",
        Ok(b) if b.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) => "video/webm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_policies() {
        let mut req = HeaderMap::new();
        req.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        let allowed = |policy| {
            let mut resp = Response::new(Body::empty());
            apply_cors(&mut resp, &req, false, policy);
            resp.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            allowed(CorsPolicy::Any).as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            allowed(CorsPolicy::Only("https://a.example")).as_deref(),
            Some("https://a.example")
        );
        assert_eq!(allowed(CorsPolicy::Only("https://b.example")), None);
        assert_eq!(allowed(CorsPolicy::NoOrigin), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Ok(Some(0..5)));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some(5..10)));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some(7..10)));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some(8..10)));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=x-2"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=-0"), 10), Err(Unsatisfiable));
    }

    #[test]
    fn etags() {
        let tag = bytes_etag("u1", 10);
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert_ne!(tag, bytes_etag("u1", 11));
        assert_ne!(tag, bytes_etag("u2", 10));
        assert!(!tag.contains("u1"));
        assert!(etag_matches(&tag, &tag, true));
        assert!(etag_matches(&format!("\"x\", W/{tag}"), &tag, true));
        assert!(etag_matches("*", &tag, true));
        assert!(!etag_matches("\"x\"", &tag, true));
        assert!(etag_matches(&tag, &tag, false));
        assert!(!etag_matches(&format!("W/{tag}"), &tag, false));
        assert!(!etag_matches("*", &tag, false));
        assert!(!etag_matches("Wed, 21 Oct 2015 07:28:00 GMT", &tag, false));
    }
}
