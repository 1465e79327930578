//! The public share page, `/v/{asset_id}`: anyone with the link (asset ids
//! are unguessable) sees the video once it is ready, or its upload progress
//! until then; a deleted asset's page tells only that it was deleted. Every
//! value put into the page is HTML-escaped, and the page runs under a
//! Content-Security-Policy that allows no script at all, its one inline
//! style by hash, media from this server only, and framing only by
//! `--frame-ancestors`; it is never cached and sends no referrer.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

use crate::app::App;
use crate::db::{AssetStatus, AssetView};

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn title(asset: &AssetView) -> String {
    ["title", "name", "filename"]
        .iter()
        .find_map(|k| asset.metadata.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("Spool recording")
        .to_owned()
}

/// The page's only style, inline; the policy allows exactly this text.
const STYLE: &str = "
body{margin:0;font:16px/1.5 system-ui,sans-serif;background:#111;color:#eee;display:flex;flex-direction:column;align-items:center;min-height:100vh}
main{width:min(1100px,100% - 32px);margin:32px auto} h1{font-size:20px;font-weight:600;margin:0 0 16px}
video{width:100%;background:#000;border-radius:8px} .status{padding:48px;text-align:center;background:#1c1c1c;border-radius:8px}
footer{color:#888;font-size:13px;margin-top:12px}
";

/// `'sha256-…'` of [`STYLE`], as CSP wants it.
static STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    let digest = sha2::Sha256::digest(STYLE.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// The share page's policy: nothing is allowed unless named, and no script
/// is named.
pub fn content_security_policy(app: &App) -> String {
    format!(
        "default-src 'none'; style-src {}; media-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        *STYLE_SOURCE,
        app.config.frame_ancestors.as_csp()
    )
}

fn page(title: &str, body: &str, refresh: bool) -> String {
    let refresh = if refresh {
        r#"<meta http-equiv="refresh" content="3">"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>{title}</title>
<style>{STYLE}</style></head>
<body><main><h1>{title}</h1>{body}<footer>Shared with Spool</footer></main></body></html>"#
    )
}

/// Headers every answer of the share routes carries.
pub(crate) fn protect(resp: &mut Response, app: &App, page: bool) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !page {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(app)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Some(xfo) = app.config.frame_ancestors.x_frame_options() {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(xfo));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub(crate) async fn load(app: &App, id: &str) -> Option<AssetView> {
    if !crate::ids::is_valid_id(id) {
        return None;
    }
    let aid = id.to_owned();
    app.db.call(move |ops| ops.asset(&aid)).await.ok().flatten()
}

/// `GET /v/{id}`.
pub async fn share_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let mut resp = page_for(load(&app, &id).await);
    protect(&mut resp, &app, true);
    resp
}

fn page_for(asset: Option<AssetView>) -> Response {
    let Some(asset) = asset else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(
                "Not found",
                r#"<div class="status">This link does not lead to a recording.</div>"#,
                false,
            )),
        )
            .into_response();
    };
    let (body, refresh) = match asset.status {
        AssetStatus::Ready => (
            format!(
                r#"<video data-testid="share-video" controls preload="metadata" src="/v/{}/media"></video>"#,
                escape(&asset.id)
            ),
            false,
        ),
        AssetStatus::Waiting => (
            r#"<div class="status">Waiting for the recording to start uploading…</div>"#.to_owned(),
            true,
        ),
        AssetStatus::Uploading => {
            let mb = asset.offset as f64 / 1e6;
            (
                format!(r#"<div class="status">Uploading… {mb:.1} MB received so far.</div>"#),
                true,
            )
        }
        AssetStatus::Processing => (r#"<div class="status">Processing…</div>"#.to_owned(), true),
        AssetStatus::Errored => (
            r#"<div class="status">This recording's upload did not complete.</div>"#.to_owned(),
            false,
        ),
        // Nothing of a deleted recording is shown, not even its title.
        AssetStatus::Deleted => {
            return (
                StatusCode::GONE,
                Html(page(
                    "Recording deleted",
                    r#"<div class="status">This recording was deleted.</div>"#,
                    false,
                )),
            )
                .into_response();
        }
    };
    Html(page(&escape(&title(&asset)), &body, refresh)).into_response()
}

/// The share page's routes: the page itself (and, with it, what the page
/// loads).
pub fn routes() -> axum::Router<App> {
    axum::Router::new().route("/v/{id}", axum::routing::get(share_page))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}
