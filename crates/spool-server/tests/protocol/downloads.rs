//! Downloads, the asset API and the share page.

use axum::body::Body;
use axum::http::StatusCode;

use super::common::*;

#[tokio::test]
async fn get_returns_completed_bytes_with_ranges() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "10")]).await;
    let auth = [("authorization", basic())];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    t.patch(&url, 0, &[], b"01234").await;
    let r = t.req("GET", &url, &auth, Body::empty()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "ERR_UPLOAD_INCOMPLETE");
    t.patch(&url, 5, &[], b"56789").await;
    let r = t.req("GET", &url, &auth, Body::empty()).await;
    assert_eq!(&r.body[..], b"0123456789");
    let range = [auth[0], ("range", "bytes=2-4")];
    let r = t.req("GET", &url, &range, Body::empty()).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], b"234");
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    let range = [auth[0], ("range", "bytes=20-")];
    let r = t.req("GET", &url, &range, Body::empty()).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let path = url.split_once('?').unwrap().0;
    assert_eq!(
        t.req("GET", path, &[], Body::empty()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        &t.req("GET", path, &[("authorization", &basic())], Body::empty())
            .await
            .body[..],
        b"0123456789"
    );
}

#[tokio::test]
async fn asset_api_errors() {
    let t = T::new().await;
    let (asset, _) = t.on_demand("{}").await;
    let r = t
        .req("GET", &format!("/v1/assets/{asset}"), &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .req(
            "GET",
            "/v1/assets/00000000000000000000000000000000",
            &[("authorization", &basic())],
            Body::empty(),
        )
        .await;
    assert_eq!(r.code(), "ERR_ASSET_NOT_FOUND");
    let r = t
        .req(
            "GET",
            &format!("/v1/assets/{asset}/original"),
            &[("authorization", &basic())],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "ERR_ASSET_NOT_READY");
    let r = t
        .req(
            "DELETE",
            &format!("/v1/assets/{asset}"),
            &[("authorization", &basic())],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.asset(&asset).await["status"], "deleted");
}

#[tokio::test]
async fn original_supports_ranges_and_share_page_plays_it() {
    let t = T::new().await;
    let (asset, url) = t.on_demand(r#"{"metadata":{"title":"<b>Demo</b>"}}"#).await;
    let page = t
        .req("GET", &format!("/v/{asset}"), &[], Body::empty())
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.body).contains("Waiting"));
    let mut mp4 = b"\0\0\0\x18ftypisom".to_vec();
    mp4.extend_from_slice(&[7u8; 100]);
    let mp4: &'static [u8] = Box::leak(mp4.into_boxed_slice());
    t.patch(&url, 0, &[("upload-length", &mp4.len().to_string())], mp4)
        .await;
    let page = String::from_utf8(
        t.req("GET", &format!("/v/{asset}"), &[], Body::empty())
            .await
            .body
            .to_vec(),
    )
    .unwrap();
    // The page's script takes it from there (status.json, then the player).
    assert!(page.contains(&format!("data-asset=\"{asset}\"")), "{page}");
    assert!(page.contains("&lt;b&gt;Demo&lt;/b&gt;") && !page.contains("<b>Demo"));
    let media = t
        .req(
            "GET",
            &format!("/v/{asset}/media"),
            &[("range", "bytes=4-11")],
            Body::empty(),
        )
        .await;
    assert_eq!(media.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(media.header("content-type"), Some("video/mp4"));
    assert_eq!(&media.body[..], b"ftypisom");
    let orig = t
        .req(
            "GET",
            &format!("/v1/assets/{asset}/original"),
            &[("authorization", &basic()), ("range", "bytes=-4")],
            Body::empty(),
        )
        .await;
    assert_eq!(&orig.body[..], &[7u8; 4]);
    let missing = t
        .req(
            "GET",
            "/v/00000000000000000000000000000000",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
