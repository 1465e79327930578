//! Upload URLs stay scoped (issue 9): an upload URL authorises the upload
//! protocol on its one upload — HEAD, PATCH, OPTIONS and, while unfinished,
//! DELETE — and nothing else, before or after completion; a URL signed for
//! another purpose is no upload URL; v1 URLs handed out before v2 keep
//! working for their unfinished uploads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use spool_proto::token::{self, Purpose};

fn with_token(url: &str, token: &str) -> String {
    format!("{}?sig={token}", url.split_once('?').unwrap().0)
}

#[tokio::test]
async fn a_used_upload_url_cannot_read_or_delete_a_completed_upload() {
    let t = T::new().await;
    let (asset, url) = t.on_demand("{}").await;
    assert!(url.contains("sig=v2."), "{url}");
    // While unfinished: the upload protocol works, reading does not.
    assert_eq!(
        t.patch(&url, 0, &[], b"hello").await.status,
        StatusCode::NO_CONTENT
    );
    let r = t.req("GET", &url, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_FORBIDDEN");
    let r = t
        .patch(&url, 5, &[("upload-length", "11")], b" world")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.asset(&asset).await["status"], "processing");

    // Complete: HEAD still tells the truth (a client must learn it is
    // done), everything else is refused with a code, and the asset is intact.
    let h = t.head(&url).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("upload-offset"), Some("11"));
    for (method, body) in [("GET", ""), ("DELETE", ""), ("PATCH", "x")] {
        let r = t
            .req(
                method,
                &url,
                &[
                    ("tus-resumable", "1.0.0"),
                    ("content-type", "application/offset+octet-stream"),
                    ("upload-offset", "11"),
                ],
                body.to_owned(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(r.code(), "ERR_FORBIDDEN", "{method}");
        assert_eq!(r.header("spool-error-code"), Some("ERR_FORBIDDEN"));
    }
    assert_eq!(t.asset(&asset).await["status"], "processing");
    // The bytes are for the API credentials (or the share page).
    assert_eq!(&t.get_basic(&url).await.body[..], b"hello world");
}

#[tokio::test]
async fn a_used_url_can_cancel_its_unfinished_upload_once() {
    let t = T::new().await;
    let (asset, url) = t.on_demand("{}").await;
    t.patch(&url, 0, &[], b"part").await;
    let r = t
        .req("DELETE", &url, &[("tus-resumable", "1.0.0")], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.asset(&asset).await["status"], "deleted");
    // Terminated, not expired: the code says so, on HEAD too (no body).
    let h = t.head(&url).await;
    assert_eq!(h.status, StatusCode::GONE);
    assert_eq!(h.header("spool-error-code"), Some("ERR_UPLOAD_TERMINATED"));
}

#[tokio::test]
async fn a_url_signed_for_another_purpose_is_refused() {
    let t = T::new().await;
    let (_, url) = t.on_demand("{}").await;
    let id = id_of(&url);
    let keys = &t.app.keys;
    let exp = chrono::Utc::now().timestamp() as u64 + 600;
    let media = token::sign(
        &keys.current_kid,
        keys.current_secret(),
        Purpose::Media,
        &id,
        exp,
    );
    for method in ["HEAD", "PATCH", "DELETE", "GET"] {
        let r = t
            .req(
                method,
                &with_token(&url, &media),
                &[
                    ("tus-resumable", "1.0.0"),
                    ("content-type", "application/offset+octet-stream"),
                    ("upload-offset", "0"),
                ],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(
            r.header("spool-error-code"),
            Some("ERR_INVALID_SIGNATURE"),
            "{method}"
        );
    }
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("0"));
}

#[tokio::test]
async fn v1_urls_keep_working_for_unfinished_uploads_until_they_complete() {
    let t = T::new().await;
    let (_, url) = t.on_demand("{}").await;
    let id = id_of(&url);
    let keys = &t.app.keys;
    let exp = chrono::Utc::now().timestamp() as u64 + 600;
    let v1 = with_token(
        &url,
        &token::sign_v1(&keys.current_kid, keys.current_secret(), &id, exp),
    );
    assert_eq!(
        t.patch(&v1, 0, &[], b"abc").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.head(&v1).await.header("upload-offset"), Some("3"));
    let r = t.patch(&v1, 3, &[("upload-length", "6")], b"def").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Complete: the old URL is as scoped as a new one.
    assert_eq!(
        t.req("GET", &v1, &[], Body::empty()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.req("DELETE", &v1, &[("tus-resumable", "1.0.0")], Body::empty())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_expired_unused_url_stays_refused_and_credentials_are_unscoped() {
    let t = T::with(|c| c.upload_ttl = std::time::Duration::from_secs(1)).await;
    let (asset, url) = t.on_demand("{}").await;
    let id = id_of(&url);
    let keys = &t.app.keys;
    let past = token::sign(
        &keys.current_kid,
        keys.current_secret(),
        Purpose::Upload,
        &id,
        1,
    );
    let r = t.patch(&with_token(&url, &past), 0, &[], b"x").await;
    assert_eq!(r.code(), "ERR_SIGNATURE_EXPIRED");
    // The API credentials may do all of it, on a complete upload too.
    let b = basic();
    let auth = [("authorization", b.as_str())];
    let path = url.split_once('?').unwrap().0;
    let r = t
        .patch(path, 0, &[auth[0], ("upload-length", "1")], b"x")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(&t.get_basic(path).await.body[..], b"x");
    let r = t
        .req(
            "DELETE",
            path,
            &[auth[0], ("tus-resumable", "1.0.0")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.asset(&asset).await["status"], "deleted");
}
