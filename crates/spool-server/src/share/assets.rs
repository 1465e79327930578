//! The share page's static files, compiled into the binary: its script,
//! style and icon (from `web/`) and hls.js (bundled by `build.rs` from the pinned npm
//! package). Each is served under a name carrying a hash of its content,
//! with `Cache-Control: public, max-age=31536000, immutable` and a strong
//! ETag: a new build that changes a file changes its URL, so a cached copy
//! is never stale.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

/// One static file.
pub struct Asset {
    /// `/static/{stem}.{hash}.{ext}`.
    pub path: String,
    /// The strong ETag (the hash, quoted).
    etag: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        let hash = hex::encode(&sha2::Sha256::digest(bytes)[..8]);
        Asset {
            path: format!("/static/{stem}.{hash}.{ext}"),
            etag: format!("\"{hash}\""),
            content_type,
            bytes,
        }
    }
}

/// The page's own script (no inline script: the policy allows only files).
pub static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "share",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/share.js"),
    )
});

/// The page's style.
pub static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "share",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/share.css"),
    )
});

/// The tab's icon.
pub static ICON: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "favicon",
        "svg",
        "image/svg+xml",
        include_bytes!("../../web/favicon.svg"),
    )
});

/// hls.js (light build: HLS playback without subtitles, alternate audio or
/// DRM, none of which Spool's playlists have). It needs no `eval`.
pub static HLS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "hls.light.min",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!(concat!(env!("OUT_DIR"), "/hls.light.min.js")),
    )
});

fn all() -> [&'static Asset; 4] {
    [&SCRIPT, &STYLE, &ICON, &HLS]
}

/// `GET /static/{file}`: a file by its hashed name; any other name is 404,
/// including an older build's hash.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let want = format!("/static/{file}");
    let Some(asset) = all().into_iter().find(|a| a.path == want) else {
        let mut resp =
            crate::error::ApiError::new(spool_proto::ErrorCode::NotFound, "no such static file")
                .into_response();
        nosniff(&mut resp);
        return resp;
    };
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| crate::http_util::etag_matches(v, &asset.etag, true));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.bytes.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, v);
    }
    nosniff(&mut resp);
    resp
}

fn nosniff(resp: &mut Response) {
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
