//! The creation-defer-length extension: a deferred length is declared once, on
//! a PATCH.

use axum::body::Body;
use axum::http::StatusCode;

use super::common::*;

#[tokio::test]
async fn deferred_length_is_set_exactly_once() {
    let t = T::new().await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    let h = t.head(&url).await;
    assert_eq!(h.header("upload-defer-length"), Some("1"));
    assert!(h.header("upload-length").is_none());
    t.patch(&url, 0, &[], b"abcd").await;
    // Below the received bytes: refused.
    assert_eq!(
        t.patch(&url, 4, &[("upload-length", "3")], b"")
            .await
            .code(),
        "ERR_LENGTH_BELOW_OFFSET"
    );
    let r = t.patch(&url, 4, &[("upload-length", "8")], b"ef").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let h = t.head(&url).await;
    assert_eq!(h.header("upload-length"), Some("8"));
    assert!(h.header("upload-defer-length").is_none());
    // The same value again is fine; another one is not.
    assert_eq!(
        t.patch(&url, 6, &[("upload-length", "8")], b"g")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = t.patch(&url, 7, &[("upload-length", "9")], b"h").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_LENGTH_ALREADY_SET");
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("7"));
}

#[tokio::test]
async fn final_patch_may_be_empty_and_completes_the_asset() {
    let t = T::new().await;
    let (asset, url) = t.on_demand("{}").await;
    t.patch(&url, 0, &[], b"recording").await;
    assert_eq!(t.asset(&asset).await["status"], "uploading");
    let r = t.patch(&url, 9, &[("upload-length", "9")], b"").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let a = t.asset(&asset).await;
    // Every byte is in; the processor (not run by the router harness) takes it from here.
    assert_eq!(a["status"], "processing");
    assert_eq!(a["length"], 9);
    let o = t
        .req(
            "GET",
            &format!("/v1/assets/{asset}/original"),
            &[("authorization", &basic())],
            Body::empty(),
        )
        .await;
    assert_eq!(&o.body[..], b"recording");
}
