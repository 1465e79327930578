//! CORS, method override and hostile input.

use axum::body::Body;
use axum::http::StatusCode;

use super::common::*;

#[tokio::test]
async fn cors_origin_is_answered_only_for_that_origin() {
    let t = T::new().await;
    let (_, url) = t
        .on_demand(r#"{"cors_origin":"https://app.example"}"#)
        .await;
    let r = t
        .req(
            "HEAD",
            &url,
            &[
                ("tus-resumable", "1.0.0"),
                ("origin", "https://app.example"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("Upload-Offset")
    );
    let r = t
        .req(
            "HEAD",
            &url,
            &[
                ("tus-resumable", "1.0.0"),
                ("origin", "https://evil.example"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let path = url.split_once('?').unwrap().0;
    let pre = t
        .req(
            "OPTIONS",
            path,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "PATCH"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap()
            .contains("PATCH")
    );
    assert!(
        pre.header("access-control-allow-headers")
            .unwrap()
            .contains("Upload-Offset")
    );
    let pre = t
        .req(
            "OPTIONS",
            path,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "PATCH"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(pre.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn method_override_turns_post_into_patch() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "3")]).await;
    let r = t
        .req(
            "POST",
            &url,
            &[
                ("x-http-method-override", "PATCH"),
                ("tus-resumable", "1.0.0"),
                ("content-type", "application/offset+octet-stream"),
                ("upload-offset", "0"),
            ],
            "abc",
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("upload-offset"), Some("3"));
}

#[tokio::test]
async fn hostile_paths_and_ids_get_json_404s() {
    let t = T::new().await;
    for uri in [
        "/v1/uploads/..%2F..%2Fetc%2Fpasswd",
        "/v1/uploads/ABCDEF",
        "/v1/uploads/00000000000000000000000000000000",
        "/nope",
    ] {
        let r = t
            .req(
                "PATCH",
                uri,
                &[
                    ("tus-resumable", "1.0.0"),
                    ("authorization", &basic()),
                    ("content-type", "application/offset+octet-stream"),
                    ("upload-offset", "0"),
                ],
                "x",
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(r.code().starts_with("ERR_"), "{uri}");
    }
}
