//! Router tests (no socket) of the headers that protect the share page and
//! the media it plays: the Content-Security-Policy (exactly what the player
//! needs: this server's script and style files, media and `blob:`, fetches
//! and images from here; framing per `--frame-ancestors`), nosniff, no
//! referrer, no caching of the page or its status, static files immutable
//! under hashed names, media that caches must revalidate (strong ETag, 304
//! on If-None-Match, If-Range), a deleted asset's page telling nothing, and
//! link previews escaped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use spool_server::config::FrameAncestors;

/// A tiny "MP4": an ftyp box, then filler.
fn mp4() -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypisom".to_vec();
    v.extend((0..500u32).map(|i| (i % 251) as u8));
    v
}

impl T {
    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Resp {
        self.req("GET", uri, headers, Body::empty()).await
    }

    /// An asset with `title`; with `bytes`, uploaded whole (ready).
    async fn titled_asset(&self, title: &str, bytes: Option<Vec<u8>>) -> String {
        let body = serde_json::json!({"metadata": {"title": title}}).to_string();
        let r = self
            .req(
                "POST",
                "/v1/on-demand",
                &[
                    ("authorization", &basic()),
                    ("content-type", "application/json"),
                ],
                Body::from(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let id = j["asset_id"].as_str().unwrap().to_owned();
        if let Some(bytes) = bytes {
            let u = url::Url::parse(j["upload_url"].as_str().unwrap()).unwrap();
            let path = format!("{}?{}", u.path(), u.query().unwrap());
            let len = bytes.len().to_string();
            let r = self
                .req(
                    "PATCH",
                    &path,
                    &[
                        ("tus-resumable", "1.0.0"),
                        ("content-type", "application/offset+octet-stream"),
                        ("upload-offset", "0"),
                        ("upload-length", &len),
                    ],
                    Body::from(bytes),
                )
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.text());
        }
        id
    }

    async fn delete_asset(&self, id: &str) {
        let r = self
            .req(
                "DELETE",
                &format!("/v1/assets/{id}"),
                &[("authorization", &basic())],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
}

/// The directives of a policy, by name.
fn directives(csp: &str) -> Vec<(String, Vec<String>)> {
    csp.split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut it = d.split_whitespace();
            let name = it.next().unwrap().to_owned();
            (name, it.map(str::to_owned).collect())
        })
        .collect()
}

fn directive(csp: &str, name: &str) -> Option<Vec<String>> {
    directives(csp)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Checks the page headers, that the policy allows exactly what the player
/// needs (this server's script and style files, media from here and MSE's
/// `blob:` URLs, fetches and the poster from here) and nothing inline.
fn assert_protected_page(r: &Resp, frame_ancestors: &[&str]) {
    let csp = r.header("content-security-policy").expect("a CSP");
    let names: Vec<String> = directives(csp).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "default-src",
            "script-src",
            "style-src",
            "img-src",
            "media-src",
            "connect-src",
            "base-uri",
            "form-action",
            "frame-ancestors"
        ],
        "{csp}"
    );
    assert_eq!(directive(csp, "default-src").unwrap(), ["'none'"], "{csp}");
    assert_eq!(directive(csp, "script-src").unwrap(), ["'self'"], "{csp}");
    assert_eq!(directive(csp, "style-src").unwrap(), ["'self'"], "{csp}");
    assert_eq!(directive(csp, "img-src").unwrap(), ["'self'"], "{csp}");
    assert_eq!(
        directive(csp, "media-src").unwrap(),
        ["'self'", "blob:"],
        "{csp}"
    );
    assert_eq!(directive(csp, "connect-src").unwrap(), ["'self'"], "{csp}");
    assert!(!csp.contains("unsafe-"), "{csp}");
    assert_eq!(directive(csp, "base-uri").unwrap(), ["'none'"], "{csp}");
    assert_eq!(directive(csp, "form-action").unwrap(), ["'none'"], "{csp}");
    assert_eq!(
        directive(csp, "frame-ancestors").unwrap(),
        frame_ancestors,
        "{csp}"
    );
    let html = r.text();
    // Scripts only as files from /static/, empty elements; no style
    // element or attribute, no event-handler attributes.
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.starts_with("<script src=\"/static/"), "{tag}");
        assert!(html[i..].contains("></script>"), "{html}");
    }
    assert!(!html.contains("<style"), "{html}");
    assert!(!html.contains("style=\""), "no inline style attributes");
    let lower = html.to_ascii_lowercase();
    for handler in [" onload=", " onerror=", " onclick=", " onkeydown="] {
        assert!(!lower.contains(handler), "{html}");
    }
    assert!(!lower.contains("http-equiv=\"refresh\""), "{html}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

/// The `src`/`href` values of the page's static files.
fn static_urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"/static/", "href=\"/static/"] {
        for (i, _) in html.match_indices(attr) {
            let start = i + attr.len() - "/static/".len();
            let end = start + html[start..].find('"').unwrap();
            out.push(html[start..end].to_owned());
        }
    }
    out
}

#[tokio::test]
async fn share_page_runs_under_a_policy_that_allows_only_the_player_in_every_state() {
    let t = T::with(|_| {}).await;
    let waiting = t.titled_asset("Waiting one", None).await;
    let uploaded = t.titled_asset("Uploaded one", Some(mp4())).await;
    for uri in [
        format!("/v/{waiting}"),
        format!("/v/{uploaded}"),
        "/v/00000000000000000000000000000000".to_owned(),
    ] {
        let r = t.get(&uri, &[]).await;
        assert_protected_page(&r, &["'self'"]);
        assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"), "{uri}");
    }
    let r = t.get(&format!("/v/{waiting}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(
        html.contains("Waiting for the recording to start"),
        "{html}"
    );
    assert!(!html.contains("share-video"), "no player while waiting");
    // Whatever the uploaded one became, the page shows the player exactly
    // when the status offers something to play.
    let s = t
        .get(&format!("/v/{uploaded}/status.json"), &[])
        .await
        .json();
    let html = t.get(&format!("/v/{uploaded}"), &[]).await.text();
    let playable = s["status"] == "ready" && s["playback_url"].is_string();
    assert_eq!(
        html.contains("data-testid=\"share-video\""),
        playable,
        "{s} {html}"
    );
}

#[tokio::test]
async fn static_files_are_immutable_under_hashed_names() {
    let t = T::with(|_| {}).await;
    let id = t.titled_asset("Static", None).await;
    let html = t.get(&format!("/v/{id}"), &[]).await.text();
    let urls = static_urls(&html);
    assert_eq!(
        urls.len(),
        4,
        "hls.js, the script, the style, the icon: {urls:?}"
    );
    for url in &urls {
        let r = t.get(url, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        let ct = r.header("content-type").unwrap();
        if url.ends_with(".js") {
            assert_eq!(ct, "text/javascript; charset=utf-8");
            let js = r.text();
            // The policy has no 'unsafe-eval': nothing may need it.
            assert!(!js.contains("eval("), "{url} calls eval");
            assert!(!js.contains("new Function"), "{url} builds functions");
        } else if url.ends_with(".css") {
            assert_eq!(ct, "text/css; charset=utf-8");
        } else {
            assert_eq!(ct, "image/svg+xml");
        }
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let etag = r.header("etag").unwrap().to_owned();
        let hash = etag.trim_matches('"');
        assert!(url.contains(&format!(".{hash}.")), "{url} {etag}");
        let again = t.get(url, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());
    }
    assert!(
        urls.iter().any(|u| u.starts_with("/static/hls.light.min.")),
        "{urls:?}"
    );
    let hls = t
        .get(urls.iter().find(|u| u.contains("hls.")).unwrap(), &[])
        .await;
    assert!(hls.body.len() > 100_000, "the real hls.js is bundled");
    for wrong in [
        "/static/share.0000000000000000.js",
        "/static/hls.js",
        "/static/..%2fCargo.toml",
    ] {
        assert_eq!(
            t.get(wrong, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{wrong}"
        );
    }
}

#[tokio::test]
async fn status_json_tells_the_public_state_only() {
    let t = T::with(|_| {}).await;
    let body = serde_json::json!({"metadata": {"title": "Demo", "secret": "s3cr3t", "filename": "spool-x.mp4"}}).to_string();
    let r = t
        .req(
            "POST",
            "/v1/on-demand",
            &[
                ("authorization", &basic()),
                ("content-type", "application/json"),
            ],
            Body::from(body),
        )
        .await;
    let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let id = j["asset_id"].as_str().unwrap().to_owned();
    let upload = id_of(j["upload_url"].as_str().unwrap());
    let r = t.get(&format!("/v/{id}/status.json"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let s = r.json();
    let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "duration_ms",
            "error",
            "height",
            "length",
            "live",
            "mp4_url",
            "offset",
            "playback_url",
            "progress",
            "status",
            "thumbnail_url",
            "title",
            "width"
        ]
    );
    assert_eq!(s["status"], "waiting");
    assert_eq!(s["title"], "Demo");
    assert_eq!(s["live"], false);
    let text = r.text();
    for leak in ["s3cr3t", "spool-x.mp4", upload.as_str()] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    t.delete_asset(&id).await;
    let r = t.get(&format!("/v/{id}/status.json"), &[]).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.json(), serde_json::json!({"status": "deleted"}));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = t
        .get("/v/00000000000000000000000000000000/status.json", &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "ERR_ASSET_NOT_FOUND");
}

#[tokio::test]
async fn the_heading_is_the_title_never_the_file_name_and_previews_are_escaped() {
    let t = T::with(|_| {}).await;
    let body =
        serde_json::json!({"metadata": {"filename": "spool-20261201-072230.829.mp4"}}).to_string();
    let r = t
        .req(
            "POST",
            "/v1/on-demand",
            &[
                ("authorization", &basic()),
                ("content-type", "application/json"),
            ],
            Body::from(body),
        )
        .await;
    let id = r.json()["asset_id"].as_str().unwrap().to_owned();
    let html = t.get(&format!("/v/{id}"), &[]).await.text();
    assert!(!html.contains("spool-20261201"), "{html}");
    assert!(
        html.contains("<h1 data-testid=\"share-title\" id=\"title\">Screen recording · "),
        "{html}"
    );

    let nasty = r#"<script>alert("x")</script> & 'quotes'"#;
    let id = t.titled_asset(nasty, None).await;
    let html = t.get(&format!("/v/{id}"), &[]).await.text();
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;";
    assert!(!html.contains(nasty), "{html}");
    for tag in [
        format!(r#"<meta property="og:title" content="{escaped}">"#),
        format!(r#"<meta name="twitter:title" content="{escaped}">"#),
        format!("<title>{escaped}</title>"),
        r#"<meta property="og:type" content="video.other">"#.to_owned(),
        r#"<meta name="twitter:card" content="summary_large_image">"#.to_owned(),
        r#"<meta property="og:description" content="Screen recording · shared with Spool">"#
            .to_owned(),
    ] {
        assert!(html.contains(&tag), "{tag} missing: {html}");
    }
    assert!(html.contains(r#"<meta property="og:url" content="http"#));
    assert!(html.contains(&format!(r#"/v/{id}">"#)));
    // Not ready: no video to preview yet.
    assert!(!html.contains("og:video"), "{html}");
}

#[tokio::test]
async fn frame_ancestors_come_from_the_configuration() {
    let t = T::with(|c| {
        c.frame_ancestors = FrameAncestors::parse("'self' https://app.example:8443").unwrap();
    })
    .await;
    let id = t.titled_asset("Embedded", Some(mp4())).await;
    let r = t.get(&format!("/v/{id}"), &[]).await;
    assert_protected_page(&r, &["'self'", "https://app.example:8443"]);
    // X-Frame-Options cannot say "these origins": it is left out, and
    // browsers that know CSP follow frame-ancestors.
    assert_eq!(r.header("x-frame-options"), None);

    let t = T::with(|c| c.frame_ancestors = FrameAncestors::parse("none").unwrap()).await;
    let id = t.titled_asset("Never framed", None).await;
    let r = t.get(&format!("/v/{id}"), &[]).await;
    assert_protected_page(&r, &["'none'"]);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn a_deleted_assets_page_shows_no_title() {
    let t = T::with(|_| {}).await;
    let title = "Quarterly layoffs plan";
    for bytes in [None, Some(mp4())] {
        let id = t.titled_asset(title, bytes).await;
        let before = t.get(&format!("/v/{id}"), &[]).await;
        assert!(before.text().contains(title));
        t.delete_asset(&id).await;
        let r = t.get(&format!("/v/{id}"), &[]).await;
        assert_eq!(r.status, StatusCode::GONE);
        let html = r.text();
        assert!(html.contains("This recording was deleted."), "{html}");
        assert!(!html.contains("Quarterly"), "the title leaked: {html}");
        assert!(html.contains("<title>Recording deleted</title>"), "{html}");
        assert!(html.contains(">Recording deleted</h1>"), "{html}");
        assert!(!html.contains("og:"), "no link preview: {html}");
        assert_protected_page(&r, &["'self'"]);
    }
}

#[tokio::test]
async fn media_must_be_revalidated_and_revalidation_is_cheap() {
    let t = T::with(|_| {}).await;
    let bytes = mp4();
    let id = t.titled_asset("Media", Some(bytes.clone())).await;
    let auth = basic();
    for (uri, extra) in [
        (format!("/v/{id}/media"), vec![]),
        (
            format!("/v1/assets/{id}/original"),
            vec![("authorization", auth.as_str())],
        ),
    ] {
        let full = t.get(&uri, &extra).await;
        assert_eq!(full.status, StatusCode::OK, "{uri}");
        assert_eq!(&full.body[..], &bytes[..]);
        assert_eq!(full.header("cache-control"), Some("private, no-cache"));
        assert_eq!(full.header("x-content-type-options"), Some("nosniff"));
        let etag = full.header("etag").unwrap().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong: {etag}"
        );

        let mut h = extra.clone();
        h.push(("if-none-match", &etag));
        let cached = t.get(&uri, &h).await;
        assert_eq!(cached.status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(cached.body.is_empty());
        assert_eq!(cached.header("etag"), Some(etag.as_str()));
        assert_eq!(cached.header("cache-control"), Some("private, no-cache"));

        let mut h = extra.clone();
        h.push(("if-none-match", "\"something-else\""));
        assert_eq!(t.get(&uri, &h).await.status, StatusCode::OK);

        // If-Range with the current tag: the range; with another: all of it.
        let mut h = extra.clone();
        h.extend([("range", "bytes=4-11"), ("if-range", etag.as_str())]);
        let part = t.get(&uri, &h).await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&part.body[..], b"ftypisom");
        let mut h = extra.clone();
        h.extend([("range", "bytes=4-11"), ("if-range", "\"stale\"")]);
        let whole = t.get(&uri, &h).await;
        assert_eq!(whole.status, StatusCode::OK);
        assert_eq!(whole.body.len(), bytes.len());
    }
    let r = t.get(&format!("/v/{id}/media"), &[]).await;
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let etag = r.header("etag").unwrap().to_owned();

    // Once deleted, a cache revalidating its copy is told it is gone.
    t.delete_asset(&id).await;
    let r = t
        .get(&format!("/v/{id}/media"), &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = t
        .get(
            &format!("/v1/assets/{id}/original"),
            &[("authorization", &basic()), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
