//! The core protocol: OPTIONS, the version rule, HEAD, and PATCH with its
//! offset, content-type and size rules.

use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;

use super::common::*;

#[tokio::test]
async fn options_needs_no_auth_and_lists_capabilities() {
    let t = T::new().await;
    for uri in [
        "/v1/uploads",
        "/v1/uploads/00000000000000000000000000000000",
    ] {
        let r = t.req("OPTIONS", uri, &[], Body::empty()).await;
        assert!(r.status == StatusCode::OK || r.status == StatusCode::NO_CONTENT);
        assert_eq!(r.header("tus-version"), Some("1.0.0"));
        let ext = r.header("tus-extension").unwrap();
        for e in [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "expiration",
            "checksum",
            "termination",
            "concatenation",
        ] {
            assert!(ext.split(',').any(|x| x == e), "{e} missing from {ext}");
        }
        assert_eq!(
            r.header("tus-max-size"),
            Some(t.app.config.max_size.to_string().as_str())
        );
        assert_eq!(r.header("tus-checksum-algorithm"), Some("sha1,sha256"));
    }
}

#[tokio::test]
async fn unsupported_version_is_412_with_tus_version() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "3")]).await;
    for (method, uri) in [
        ("POST", "/v1/uploads"),
        ("PATCH", url.as_str()),
        ("HEAD", url.as_str()),
        ("DELETE", url.as_str()),
    ] {
        for version in [Some("0.2.2"), None] {
            let mut h = vec![
                ("authorization", basic()),
                ("upload-length", "3".into()),
                ("content-type", "application/offset+octet-stream".into()),
                ("upload-offset", "0".into()),
            ];
            if let Some(v) = version {
                h.push(("tus-resumable", v.into()));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = t.req(method, uri, &h, "abc").await;
            assert_eq!(
                r.status,
                StatusCode::PRECONDITION_FAILED,
                "{method} {version:?}"
            );
            assert_eq!(r.header("tus-version"), Some("1.0.0"));
        }
    }
    // Nothing was processed.
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("0"));
}

#[tokio::test]
async fn head_reports_offset_without_caching() {
    let t = T::new().await;
    let url = t
        .create(&[
            ("upload-length", "10"),
            ("upload-metadata", "filename YS5tcDQ=,empty"),
        ])
        .await;
    t.patch(&url, 0, &[], b"abcd").await;
    let h = t.head(&url).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("cache-control"), Some("no-store"));
    assert_eq!(h.header("upload-offset"), Some("4"));
    assert_eq!(h.header("upload-length"), Some("10"));
    assert_eq!(h.header("upload-metadata"), Some("filename YS5tcDQ=,empty"));
    assert_eq!(h.header("tus-resumable"), Some("1.0.0"));
    assert!(h.body.is_empty());
    // Unknown uploads: 404 without a body or an offset.
    let h = t
        .req(
            "HEAD",
            "/v1/uploads/00000000000000000000000000000000",
            &[("tus-resumable", "1.0.0"), ("authorization", &basic())],
            Body::empty(),
        )
        .await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    assert!(h.header("upload-offset").is_none());
}

#[tokio::test]
async fn patch_appends_and_answers_offset_and_expiry() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "6")]).await;
    let r = t.patch(&url, 0, &[], b"abc").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("upload-offset"), Some("3"));
    assert!(httpdate::parse_http_date(r.header("upload-expires").unwrap()).is_ok());
    let r = t.patch(&url, 3, &[], b"def").await;
    assert_eq!(r.header("upload-offset"), Some("6"));
    assert!(r.header("upload-expires").is_some());
    // Complete: the upload URL no longer patches (issue 9's scope); with
    // the credentials a repeated, empty final PATCH is idempotent and more
    // bytes are refused.
    assert_eq!(t.patch(&url, 6, &[], b"").await.code(), "ERR_FORBIDDEN");
    let b = basic();
    let auth = [("authorization", b.as_str())];
    assert_eq!(
        t.patch(&url, 6, &auth, b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.patch(&url, 6, &auth, b"x").await.code(),
        "ERR_UPLOAD_COMPLETE"
    );
}

#[tokio::test]
async fn patch_with_wrong_content_type_is_415() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "3")]).await;
    for content_type in [Some("application/octet-stream"), None] {
        let mut headers = vec![("tus-resumable", "1.0.0"), ("upload-offset", "0")];
        headers.extend(content_type.map(|v| ("content-type", v)));
        let r = t.req("PATCH", &url, &headers, "abc").await;
        assert_eq!(
            r.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(r.code(), "ERR_INVALID_CONTENT_TYPE", "{content_type:?}");
    }
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("0"));
}

#[tokio::test]
async fn malformed_offsets_are_400() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "3")]).await;
    // (headers beyond Tus-Resumable and Content-Type, expected code): every
    // row is a 400.
    let mut cases: Vec<(Vec<(&str, &str)>, &str)> =
        ["-1", "abc", "1.5", " 1", "99999999999999999999999"]
            .into_iter()
            .map(|bad| (vec![("upload-offset", bad)], "ERR_INVALID_OFFSET"))
            .collect();
    cases.push((vec![], "ERR_INVALID_OFFSET"));
    cases.push((
        vec![("upload-offset", "0"), ("upload-length", "-3")],
        "ERR_INVALID_LENGTH",
    ));
    for (extra, code) in cases {
        let mut headers = vec![
            ("tus-resumable", "1.0.0"),
            ("content-type", "application/offset+octet-stream"),
        ];
        headers.extend(extra.iter().copied());
        let r = t.req("PATCH", &url, &headers, "a").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra:?}");
        assert_eq!(r.code(), code, "{extra:?}");
    }
}

#[tokio::test]
async fn offset_mismatch_is_409_with_the_current_offset() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "10")]).await;
    t.patch(&url, 0, &[], b"abc").await;
    for wrong in [0, 2, 4] {
        let r = t.patch(&url, wrong, &[], b"zzz").await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.header("upload-offset"), Some("3"));
        assert_eq!(r.code(), "ERR_MISMATCHED_OFFSET");
    }
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("3"));
}

#[tokio::test]
async fn max_size_is_413_also_for_a_growing_deferred_upload() {
    let t = T::with(|c| c.max_size = 10).await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    assert_eq!(
        t.patch(&url, 0, &[], b"123456").await.status,
        StatusCode::NO_CONTENT
    );
    // With Content-Length: refused before reading.
    let r = t.patch(&url, 6, &[], b"78901").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    // Streamed without Content-Length: refused when it crosses, nothing kept.
    let (tx, body) = channel_body();
    tx.send(Ok(Bytes::from_static(b"789"))).await.unwrap();
    tx.send(Ok(Bytes::from_static(b"01"))).await.unwrap();
    drop(tx);
    let r = t.send(streaming_patch(&url, 6, body)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("6"));
    // Declaring a length over the maximum is refused too.
    assert_eq!(
        t.patch(&url, 6, &[("upload-length", "11")], b"")
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        t.patch(&url, 6, &[("upload-length", "10")], b"7890")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn bytes_beyond_the_declared_length_are_413() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "4")]).await;
    let r = t.patch(&url, 0, &[], b"12345").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "ERR_UPLOAD_SIZE_EXCEEDED");
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("0"));
}

#[tokio::test]
async fn error_bodies_are_json_with_stable_codes() {
    let t = T::new().await;
    let r = t.req("PUT", "/v1/uploads", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let j = r.json();
    assert_eq!(j["code"], "ERR_METHOD_NOT_ALLOWED");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(spool_proto::ErrorCode::parse(j["code"].as_str().unwrap()).is_some());
}
