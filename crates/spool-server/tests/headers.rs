//! Router tests (no socket) of the headers that protect the share page and
//! the media it plays: the Content-Security-Policy (no script, the inline
//! style by hash, framing per `--frame-ancestors`), nosniff, no referrer, no
//! caching of the page, media that caches must revalidate (strong ETag, 304
//! on If-None-Match, If-Range), and a deleted asset's page telling nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine as _;
use common::*;
use sha2::Digest;
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

/// Checks the page headers and that the policy allows the page's inline
/// style by its hash and nothing that could run script.
fn assert_protected_page(r: &Resp, frame_ancestors: &[&str]) {
    let csp = r.header("content-security-policy").expect("a CSP");
    assert_eq!(directive(csp, "default-src").unwrap(), ["'none'"], "{csp}");
    assert!(directive(csp, "script-src").is_none(), "{csp}");
    assert!(!csp.contains("unsafe-"), "{csp}");
    assert_eq!(directive(csp, "media-src").unwrap(), ["'self'"], "{csp}");
    assert_eq!(directive(csp, "base-uri").unwrap(), ["'none'"], "{csp}");
    assert_eq!(
        directive(csp, "frame-ancestors").unwrap(),
        frame_ancestors,
        "{csp}"
    );
    let html = r.text();
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    // The one inline style, hashed exactly as a browser hashes it.
    let start = html.find("<style>").unwrap() + "<style>".len();
    let end = html.find("</style>").unwrap();
    let hash = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(&html.as_bytes()[start..end]));
    assert_eq!(
        directive(csp, "style-src").unwrap(),
        [format!("'sha256-{hash}'")],
        "{csp}"
    );
    assert_eq!(html.matches("<style").count(), 1);
    assert!(!html.contains("style=\""), "no inline style attributes");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn share_page_runs_under_a_policy_without_script_in_every_state() {
    let t = T::with(|_| {}).await;
    let waiting = t.titled_asset("Waiting one", None).await;
    let ready = t.titled_asset("Ready one", Some(mp4())).await;
    for uri in [
        format!("/v/{waiting}"),
        format!("/v/{ready}"),
        "/v/00000000000000000000000000000000".to_owned(),
    ] {
        let r = t.get(&uri, &[]).await;
        assert_protected_page(&r, &["'self'"]);
        assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"), "{uri}");
    }
    let r = t.get(&format!("/v/{ready}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains(&format!("src=\"/v/{ready}/media\"")));
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
        assert!(html.contains("<h1>Recording deleted</h1>"), "{html}");
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
