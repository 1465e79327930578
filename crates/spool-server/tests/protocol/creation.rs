//! The creation extension: POST needs credentials, answers a signed Location,
//! and follows the length rules.

use axum::body::Body;
use axum::http::StatusCode;

use super::common::*;

#[tokio::test]
async fn creation_needs_credentials_and_answers_a_signed_location() {
    let t = T::new().await;
    let r = t
        .req(
            "POST",
            "/v1/uploads",
            &[("tus-resumable", "1.0.0"), ("upload-length", "5")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .req(
            "POST",
            "/v1/uploads",
            &[
                ("tus-resumable", "1.0.0"),
                ("upload-length", "5"),
                ("authorization", &basic()),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with("http://spool.test/v1/uploads/") && loc.contains("sig="));
    assert!(r.header("upload-expires").is_some());
    let h = t.head(&local(loc)).await;
    assert_eq!(h.header("upload-length"), Some("5"));
    assert_eq!(h.header("upload-defer-length"), None);
}

#[tokio::test]
async fn creation_length_rules() {
    let t = T::with(|c| c.max_size = 1000).await;
    let b = basic();
    for (headers, status, code) in [
        (
            vec![("upload-length", "5"), ("upload-defer-length", "1")],
            400,
            "ERR_INVALID_LENGTH",
        ),
        (vec![], 400, "ERR_INVALID_LENGTH"),
        (
            vec![("upload-defer-length", "2")],
            400,
            "ERR_INVALID_LENGTH",
        ),
        (vec![("upload-length", "-1")], 400, "ERR_INVALID_LENGTH"),
        (vec![("upload-length", "abc")], 400, "ERR_INVALID_LENGTH"),
        (
            vec![("upload-length", "1001")],
            413,
            "ERR_MAX_SIZE_EXCEEDED",
        ),
        (
            vec![("upload-length", "5"), ("upload-metadata", "a !!!")],
            400,
            "ERR_INVALID_METADATA",
        ),
        (
            vec![("upload-length", "5"), ("upload-metadata", "a YQ==,a Yg==")],
            400,
            "ERR_INVALID_METADATA",
        ),
        (
            vec![("upload-length", "5"), ("upload-concat", "whole")],
            400,
            "ERR_INVALID_CONCAT",
        ),
    ] {
        let mut h = vec![("tus-resumable", "1.0.0"), ("authorization", b.as_str())];
        h.extend(headers.iter().copied());
        let r = t.req("POST", "/v1/uploads", &h, Body::empty()).await;
        assert_eq!(r.status.as_u16(), status, "{headers:?}");
        assert_eq!(r.code(), code, "{headers:?}");
    }
}
