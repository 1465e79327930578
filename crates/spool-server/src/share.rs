//! The public share page, `/v/{asset_id}`: anyone with the link (asset ids
//! are unguessable) watches the recording — live while it uploads, then as
//! a normal video — or reads why not (waiting, processing with progress,
//! the error); a deleted asset's page tells only that it was deleted. The
//! page is rendered here with every value HTML-escaped; its script
//! (`web/share.js`, served from [`assets`]) polls [`status_json`] while the
//! recording is not ready and switches states in place, and plays the HLS
//! playlist through hls.js (bundled into the binary) or the browser's own
//! HLS, else the MP4. It runs under a Content-Security-Policy that allows
//! only this server's files (no inline script or style, no eval), media
//! from this server and the `blob:` URLs of Media Source Extensions, and
//! framing only by `--frame-ancestors`; it is never cached and sends no
//! referrer.

pub mod assets;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::app::App;
use crate::db::{AssetError, AssetStatus, AssetView};

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

/// `1 Dec 2026` from an RFC 3339 timestamp.
fn date(rfc3339: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|d| d.format("%-d %b %Y").to_string())
}

/// The heading: the recording's title, else "Screen recording" and the day
/// it was made. Never the local file name (`filename` metadata is the
/// recorder's, e.g. `spool-20261201-072230.829.mp4`, and says nothing).
fn heading(asset: &AssetView) -> String {
    match &asset.title {
        Some(t) => t.clone(),
        None => match date(&asset.created_at) {
            Some(d) => format!("Screen recording · {d}"),
            None => "Screen recording".to_owned(),
        },
    }
}

/// `1:23`, `1:02:03`.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The path (and query) of one of the asset's absolute URLs: the page loads
/// its media from the origin it was loaded from, whatever `--public-url`
/// says, so `'self'` in the policy always covers it.
fn local(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

/// The share page's policy: nothing is allowed unless named. Scripts and
/// the style are this server's static files; media is this server's, plus
/// the `blob:` URLs hls.js gives the video (Media Source Extensions);
/// hls.js fetches playlists and segments and the page its status from here
/// (`connect-src`); the poster is an image from here. hls.js runs without
/// its worker, so no `worker-src`.
pub fn content_security_policy(app: &App) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        app.config.frame_ancestors.as_csp()
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

/// The asset behind a share link; a database failure is an error (500),
/// never "no such asset".
pub(crate) async fn load(app: &App, id: &str) -> crate::error::ApiResult<Option<AssetView>> {
    if !crate::ids::is_valid_id(id) {
        return Ok(None);
    }
    let aid = id.to_owned();
    Ok(app.db.call(move |ops| ops.asset(&aid)).await?)
}

/// What `status.json` tells the page: the public part of an asset. Never
/// metadata beyond the title, never the upload's id.
#[derive(Serialize)]
struct PublicStatus<'a> {
    status: AssetStatus,
    live: bool,
    title: Option<&'a str>,
    duration_ms: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
    playback_url: Option<&'a str>,
    mp4_url: Option<&'a str>,
    thumbnail_url: Option<&'a str>,
    progress: Option<f64>,
    error: Option<&'a AssetError>,
    offset: u64,
    length: Option<u64>,
}

impl<'a> PublicStatus<'a> {
    fn of(a: &'a AssetView) -> Self {
        PublicStatus {
            status: a.status,
            live: a.live,
            title: a.title.as_deref(),
            duration_ms: a.duration_ms,
            width: a.width,
            height: a.height,
            playback_url: a.playback_url.as_deref(),
            mp4_url: a.mp4_url.as_deref(),
            thumbnail_url: a.thumbnail_url.as_deref(),
            progress: a.progress,
            error: a.error.as_ref(),
            offset: a.offset,
            length: a.length,
        }
    }
}

/// `GET /v/{id}/status.json`: the asset's public state, for the page's
/// script; never cached. Deleted: 410 `{"status":"deleted"}`; unknown: 404.
pub async fn status_json(State(app): State<App>, Path(id): Path<String>) -> Response {
    let mut resp = match load(&app, &id).await {
        Err(e) => e.into_response(),
        Ok(None) => crate::error::ApiError::new(
            spool_proto::ErrorCode::AssetNotFound,
            "no asset has this id",
        )
        .into_response(),
        Ok(Some(a)) if a.status == AssetStatus::Deleted => (
            StatusCode::GONE,
            Json(serde_json::json!({"status": "deleted"})),
        )
            .into_response(),
        Ok(Some(a)) => Json(PublicStatus::of(&a)).into_response(),
    };
    protect(&mut resp, &app, false);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /v/{id}`.
pub async fn share_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let mut resp = match load(&app, &id).await {
        Ok(asset) => page_for(asset),
        Err(e) => e.into_response(),
    };
    protect(&mut resp, &app, true);
    resp
}

/// A page: `head_extra` (link-preview tags) and `body` are already escaped
/// HTML; `asset` (an id) turns the player script on.
fn page(title: &str, head_extra: &str, body: &str, asset: Option<(&str, AssetStatus)>) -> String {
    let (css, icon) = (&assets::STYLE.path, &assets::ICON.path);
    let (scripts, body_attrs) = match asset {
        Some((id, status)) => (
            format!(
                r#"<script src="{}" defer></script><script src="{}" defer></script>"#,
                assets::HLS.path,
                assets::SCRIPT.path
            ),
            format!(
                r#" data-asset="{}" data-status="{}""#,
                escape(id),
                AssetStatus::as_str(status)
            ),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<meta name="robots" content="noindex">{head_extra}
<link rel="icon" href="{icon}" type="image/svg+xml"><link rel="stylesheet" href="{css}">{scripts}</head>
<body{body_attrs}><header class="bar"><span class="brand">Spool</span></header>
<main>{body}</main></body></html>"#
    )
}

/// Open Graph and Twitter card tags, so a pasted link previews with the
/// title, the poster and (once ready) the video.
fn link_preview(asset: &AssetView, title: &str) -> String {
    let mut desc = String::from("Screen recording");
    if let Some(ms) = asset.duration_ms {
        desc.push_str(" · ");
        desc.push_str(&clock(ms));
    }
    desc.push_str(" · shared with Spool");
    let mut tags: Vec<(&str, &str, String)> = vec![
        ("property", "og:site_name", "Spool".into()),
        ("property", "og:title", title.into()),
        ("property", "og:description", desc.clone()),
        ("property", "og:type", "video.other".into()),
        ("property", "og:url", asset.share_url.clone()),
    ];
    let dims = asset.width.zip(asset.height);
    if let Some(img) = &asset.thumbnail_url {
        tags.push(("property", "og:image", img.clone()));
        if let Some((w, h)) = dims {
            tags.push(("property", "og:image:width", w.to_string()));
            tags.push(("property", "og:image:height", h.to_string()));
        }
    }
    if asset.status == AssetStatus::Ready
        && let Some(mp4) = &asset.mp4_url
    {
        tags.push(("property", "og:video", mp4.clone()));
        tags.push(("property", "og:video:secure_url", mp4.clone()));
        tags.push(("property", "og:video:type", "video/mp4".into()));
        if let Some((w, h)) = dims {
            tags.push(("property", "og:video:width", w.to_string()));
            tags.push(("property", "og:video:height", h.to_string()));
        }
    }
    tags.push(("name", "twitter:card", "summary_large_image".into()));
    tags.push(("name", "twitter:title", title.into()));
    tags.push(("name", "twitter:description", desc));
    if let Some(img) = &asset.thumbnail_url {
        tags.push(("name", "twitter:image", img.clone()));
    }
    tags.iter()
        .map(|(attr, name, value)| {
            format!("\n<meta {attr}=\"{name}\" content=\"{}\">", escape(value))
        })
        .collect()
}

/// The stage while the recording cannot be watched yet (or at all).
fn panel(asset: &AssetView) -> String {
    match asset.status {
        AssetStatus::Waiting => r#"<div class="panel" data-testid="share-state"><div class="spinner"></div><p class="big">Waiting for the recording to start</p><p class="sub">This page updates by itself as soon as it does.</p></div>"#.to_owned(),
        AssetStatus::Uploading => format!(
            r#"<div class="panel" data-testid="share-state"><div class="spinner"></div><p class="big">Recording in progress</p><p class="sub">{:.1} MB received so far; the video appears here as soon as it can be played.</p></div>"#,
            asset.offset as f64 / 1e6
        ),
        AssetStatus::Processing => {
            let pct = (asset.progress.unwrap_or(0.0).clamp(0.0, 1.0) * 100.0).round();
            format!(
                r#"<div class="panel" data-testid="share-state"><p class="big">Processing the recording… <span data-testid="share-progress">{pct}%</span></p><progress max="100" value="{pct}"></progress><p class="sub">It plays here as soon as it is ready.</p></div>"#
            )
        }
        AssetStatus::Errored => {
            let (code, message) = asset
                .error
                .as_ref()
                .map(|e| (e.code.as_str(), e.message.as_str()))
                .unwrap_or(("", "The upload did not complete."));
            format!(
                r#"<div class="panel error" data-testid="share-state"><p class="big">This recording can't be played</p><p class="sub" data-testid="share-error">{}</p><p class="code">{}</p></div>"#,
                escape(message),
                escape(code)
            )
        }
        AssetStatus::Ready | AssetStatus::Deleted => String::new(),
    }
}

fn player(asset: &AssetView) -> String {
    let attr = |name: &str, v: Option<&String>| {
        v.map(|v| format!(r#" {name}="{}""#, escape(&local(v))))
            .unwrap_or_default()
    };
    format!(
        r#"<div class="player" id="player"><video data-testid="share-video" id="video" controls playsinline preload="metadata"{}{}{}></video><span class="badge" data-testid="live-badge" id="live-badge"{}>Live</span></div>"#,
        attr("poster", asset.thumbnail_url.as_ref()),
        attr("data-playlist", asset.playback_url.as_ref()),
        attr("data-mp4", asset.mp4_url.as_ref()),
        if asset.live { "" } else { " hidden" },
    )
}

/// Without script the page cannot follow the upload or feed the player.
const NOSCRIPT: &str = r#"<noscript><p class="sub">This page needs JavaScript to play the recording and to follow its upload.</p></noscript>"#;

const SPEEDS: [&str; 5] = ["0.5", "1", "1.25", "1.5", "2"];

fn toolbar(asset: &AssetView, shown: bool) -> String {
    let options: String = SPEEDS
        .iter()
        .map(|s| {
            let sel = if *s == "1" { " selected" } else { "" };
            format!(r#"<option value="{s}"{sel}>{s}×</option>"#)
        })
        .collect();
    let download = match &asset.mp4_url {
        Some(mp4) => format!(
            r#"<a class="button" data-testid="download-link" id="download" href="{}" download>Download</a>"#,
            escape(&local(mp4))
        ),
        None => r#"<a class="button" data-testid="download-link" id="download" download hidden>Download</a>"#.to_owned(),
    };
    format!(
        r#"<div class="toolbar" id="toolbar"{}><label class="speed">Speed <select data-testid="speed-select" id="speed">{options}</select></label>{download}<span class="note" id="note"></span><span class="keys">Space play/pause · ←/→ 5 s · J/L 10 s · F full screen · M mute</span></div>"#,
        if shown { "" } else { " hidden" }
    )
}

fn page_for(asset: Option<AssetView>) -> Response {
    let Some(asset) = asset else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(
                "Not found",
                "",
                r#"<h1 data-testid="share-title">Not found</h1><section class="stage"><div class="panel" data-testid="share-state"><p class="big">This link does not lead to a recording.</p></div></section>"#,
                None,
            )),
        )
            .into_response();
    };
    // Nothing of a deleted recording is shown, not even its title.
    if asset.status == AssetStatus::Deleted {
        return (
            StatusCode::GONE,
            Html(page(
                "Recording deleted",
                "",
                r#"<h1 data-testid="share-title">Recording deleted</h1><section class="stage"><div class="panel" data-testid="share-state"><p class="big">This recording was deleted.</p></div></section>"#,
                None,
            )),
        )
            .into_response();
    }
    let title = heading(&asset);
    let playable =
        asset.playback_url.is_some() && (asset.status == AssetStatus::Ready || asset.live);
    let stage = if playable {
        player(&asset)
    } else {
        panel(&asset)
    };
    let mut meta = Vec::new();
    if let Some(ms) = asset.duration_ms {
        meta.push(clock(ms));
    }
    if asset.title.is_some()
        && let Some(d) = date(&asset.created_at)
    {
        meta.push(d);
    }
    let body = format!(
        r#"<h1 data-testid="share-title" id="title">{}</h1><p class="meta" id="meta">{}</p><section class="stage" id="stage" aria-live="polite">{stage}</section>{}{}"#,
        escape(&title),
        escape(&meta.join(" · ")),
        toolbar(&asset, playable),
        NOSCRIPT,
    );
    Html(page(
        &escape(&title),
        &link_preview(&asset, &title),
        &body,
        Some((&asset.id, asset.status)),
    ))
    .into_response()
}

/// The share page's routes: the page, its status, and its static files.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/v/{id}", axum::routing::get(share_page))
        .route("/v/{id}/status.json", axum::routing::get(status_json))
        .route("/static/{file}", axum::routing::get(assets::serve))
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

    #[test]
    fn clocks() {
        assert_eq!(super::clock(83_400), "1:23");
        assert_eq!(super::clock(3_723_000), "1:02:03");
        assert_eq!(super::clock(999), "0:00");
    }

    #[test]
    fn local_paths() {
        assert_eq!(
            super::local("http://example.com:8080/v/abc/playlist.m3u8"),
            "/v/abc/playlist.m3u8"
        );
    }
}
