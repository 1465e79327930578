//! Protocol tests of the router without a socket: one test per rule of the
//! TUS 1.0.0 text and of Spool's upload API, each on its own data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use sha2::Digest;
use tower::ServiceExt;

mod common;
use common::*;

// ---- upload API ----

#[tokio::test]
async fn on_demand_issues_a_signed_url_for_a_new_asset() {
    let t = T::new().await;
    let r = t
        .req(
            "POST",
            "/v1/on-demand",
            &[("authorization", &basic())],
            r#"{"inputs":[{"type":"video"}],"metadata":{"k":"v"}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let j = r.json();
    let url = j["upload_url"].as_str().unwrap();
    assert!(
        url.starts_with("http://spool.test/v1/uploads/") && url.contains("?sig=v2."),
        "{url}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(j["expires_at"].as_str().unwrap()).is_ok());
    let asset = t.asset(j["asset_id"].as_str().unwrap()).await;
    assert_eq!(asset["status"], "waiting");
    assert_eq!(asset["metadata"]["k"], "v");
    assert_eq!(asset["offset"], 0);
    assert!(asset["length"].is_null());
    assert_eq!(
        asset["share_url"],
        format!("http://spool.test/v/{}", j["asset_id"].as_str().unwrap())
    );
    for key in [
        "id",
        "status",
        "offset",
        "length",
        "share_url",
        "metadata",
        "created_at",
        "updated_at",
    ] {
        assert!(asset.get(key).is_some(), "{key}");
    }
    // The URL alone is enough for HEAD: it is a deferred-length upload.
    let h = t.head(&local(url)).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("upload-defer-length"), Some("1"));
    assert_eq!(h.header("upload-metadata"), Some("k dg=="));
    // Every field is optional, the body too.
    let r = t
        .req(
            "POST",
            "/v1/on-demand",
            &[("authorization", &basic())],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn on_demand_needs_credentials() {
    let t = T::new().await;
    let r = t.req("POST", "/v1/on-demand", &[], "{}").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "ERR_UNAUTHORIZED");
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ID}:nope"))
    );
    let r = t
        .req("POST", "/v1/on-demand", &[("authorization", &wrong)], "{}")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .req(
            "POST",
            "/v1/on-demand",
            &[("authorization", "Basic !!!")],
            "{}",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn on_demand_rejects_bad_json() {
    let t = T::new().await;
    for (body, code) in [
        ("{not json", "ERR_INVALID_JSON"),
        (r#"{"metadata":"x"}"#, "ERR_INVALID_JSON"),
        (r#"{"inputs":[{"type":"audio"}]}"#, "ERR_INVALID_REQUEST"),
        (r#"{"metadata":{"k":1}}"#, "ERR_INVALID_REQUEST"),
        (
            r#"{"cors_origin":"https://app.example/path"}"#,
            "ERR_INVALID_REQUEST",
        ),
        (
            r#"{"cors_origin":"javascript:alert(1)"}"#,
            "ERR_INVALID_REQUEST",
        ),
    ] {
        let r = t
            .req(
                "POST",
                "/v1/on-demand",
                &[("authorization", &basic())],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.code(), code, "{body}");
    }
    let big = format!(r#"{{"metadata":{{"k":"{}"}}}}"#, "x".repeat(100_000));
    let r = t
        .req("POST", "/v1/on-demand", &[("authorization", &basic())], big)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

// ---- core protocol ----

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

#[tokio::test]
async fn creation_with_upload_stores_the_body() {
    let t = T::new().await;
    let r = t
        .req(
            "POST",
            "/v1/uploads",
            &[
                ("tus-resumable", "1.0.0"),
                ("authorization", &basic()),
                ("upload-length", "11"),
                ("content-type", "application/offset+octet-stream"),
            ],
            "hello",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("upload-offset"), Some("5"));
    let url = local(r.header("location").unwrap());
    assert_eq!(
        t.patch(&url, 5, &[], b" world").await.status,
        StatusCode::NO_CONTENT
    );
    let g = t.get_basic(&url).await;
    assert_eq!(&g.body[..], b"hello world");
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
    let r = t
        .req(
            "PATCH",
            &url,
            &[
                ("tus-resumable", "1.0.0"),
                ("content-type", "application/octet-stream"),
                ("upload-offset", "0"),
            ],
            "abc",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "ERR_INVALID_CONTENT_TYPE");
    let r = t
        .req(
            "PATCH",
            &url,
            &[("tus-resumable", "1.0.0"), ("upload-offset", "0")],
            "abc",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("0"));
}

#[tokio::test]
async fn malformed_offsets_are_400() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "3")]).await;
    for bad in ["-1", "abc", "1.5", " 1", "99999999999999999999999"] {
        let r = t
            .req(
                "PATCH",
                &url,
                &[
                    ("tus-resumable", "1.0.0"),
                    ("content-type", "application/offset+octet-stream"),
                    ("upload-offset", bad),
                ],
                "a",
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "ERR_INVALID_OFFSET");
    }
    let r = t
        .req(
            "PATCH",
            &url,
            &[
                ("tus-resumable", "1.0.0"),
                ("content-type", "application/offset+octet-stream"),
            ],
            "a",
        )
        .await;
    assert_eq!(r.code(), "ERR_INVALID_OFFSET");
    assert_eq!(
        t.patch(&url, 0, &[("upload-length", "-3")], b"a")
            .await
            .code(),
        "ERR_INVALID_LENGTH"
    );
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

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

#[tokio::test]
async fn checksums_verify_and_a_mismatch_stores_nothing() {
    let t = T::new().await;
    let url = t.create(&[("upload-length", "8")]).await;
    let sha1 = format!("sha1 {}", b64(&sha1::Sha1::digest(b"abcd")));
    assert_eq!(
        t.patch(&url, 0, &[("upload-checksum", &sha1)], b"abcd")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let bad = format!("sha256 {}", b64(&sha2::Sha256::digest(b"xxxx")));
    let r = t
        .patch(&url, 4, &[("upload-checksum", &bad)], b"efgh")
        .await;
    assert_eq!(r.status.as_u16(), 460);
    assert_eq!(r.code(), "ERR_CHECKSUM_MISMATCH");
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("4"));
    let r = t
        .patch(
            &url,
            4,
            &[("upload-checksum", "md5 4vxxTEcn7pOV8yTNLn8zHw==")],
            b"efgh",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "ERR_INVALID_CHECKSUM");
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("4"));
    let good = format!("sha256 {}", b64(&sha2::Sha256::digest(b"efgh")));
    assert_eq!(
        t.patch(&url, 4, &[("upload-checksum", &good)], b"efgh")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(&t.get_basic(&url).await.body[..], b"abcdefgh");
}

#[tokio::test]
async fn termination_ends_the_upload_and_deletes_the_asset() {
    let t = T::new().await;
    let (asset, url) = t.on_demand("{}").await;
    t.patch(&url, 0, &[], b"abc").await;
    let r = t
        .req("DELETE", &url, &[("tus-resumable", "1.0.0")], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.head(&url).await.status, StatusCode::GONE);
    let r = t.patch(&url, 3, &[], b"d").await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.code(), "ERR_UPLOAD_TERMINATED");
    assert_eq!(t.asset(&asset).await["status"], "deleted");
}

#[tokio::test]
async fn concatenation_of_finished_partial_uploads() {
    let t = T::new().await;
    let a = t
        .create(&[("upload-length", "3"), ("upload-concat", "partial")])
        .await;
    let b = t
        .create(&[("upload-length", "4"), ("upload-concat", "partial")])
        .await;
    t.patch(&a, 0, &[], b"abc").await;
    // An unfinished part is refused (no concatenation-unfinished).
    let concat = format!("final;{a} http://spool.test{b}");
    let r = t
        .req(
            "POST",
            "/v1/uploads",
            &[
                ("tus-resumable", "1.0.0"),
                ("authorization", &basic()),
                ("upload-concat", &concat),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "{:?} {:?}",
        r.headers,
        r.body
    );
    assert_eq!(r.code(), "ERR_INVALID_CONCAT");
    t.patch(&b, 0, &[], b"defg").await;
    assert_eq!(t.head(&a).await.header("upload-concat"), Some("partial"));
    let fin = t.create(&[("upload-concat", &concat)]).await;
    let h = t.head(&fin).await;
    assert_eq!(h.header("upload-offset"), Some("7"));
    assert_eq!(h.header("upload-length"), Some("7"));
    assert!(
        h.header("upload-concat")
            .unwrap()
            .starts_with("final;/v1/uploads/")
    );
    assert_eq!(&t.get_basic(&fin).await.body[..], b"abcdefg");
    let r = t.patch(&fin, 7, &[], b"x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_MODIFY_FINAL");
    // A non-partial upload cannot be a part; nor can a URL of another server's shape.
    let plain = t.create(&[("upload-length", "1")]).await;
    t.patch(&plain, 0, &[], b"z").await;
    for bad in [
        format!("final;{plain}"),
        "final;/etc/passwd".to_owned(),
        format!("final;/v1/uploads/{}0", id_of(&a)),
        format!("final;{a} /v1/uploads/00000000000000000000000000000000"),
    ] {
        let r = t
            .req(
                "POST",
                "/v1/uploads",
                &[
                    ("tus-resumable", "1.0.0"),
                    ("authorization", &basic()),
                    ("upload-concat", &bad),
                ],
                Body::empty(),
            )
            .await;
        assert_eq!(r.code(), "ERR_INVALID_CONCAT", "{bad}");
    }
}

#[tokio::test]
async fn unused_upload_expires_after_the_ttl() {
    let t = T::with(|c| c.upload_ttl = Duration::from_millis(400)).await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(t.head(&url).await.status, StatusCode::GONE);
    let r = t.patch(&url, 0, &[], b"a").await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.code(), "ERR_UPLOAD_EXPIRED");
}

#[tokio::test]
async fn an_upload_receiving_bytes_never_expires_an_idle_one_does() {
    let t = T::with(|c| {
        c.upload_ttl = Duration::from_millis(600);
        c.upload_expiry = Duration::from_millis(600);
    })
    .await;
    let (asset, url) = t.on_demand("{}").await;
    // Well past the TTL and several expiry periods, one chunk at a time.
    for i in 0..12u64 {
        let r = t.patch(&url, i, &[], b"x").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "chunk {i}: {:?}", r.body);
        let expires = httpdate::parse_http_date(r.header("upload-expires").unwrap()).unwrap();
        // HTTP dates have whole seconds.
        assert!(expires + Duration::from_secs(1) > std::time::SystemTime::now());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(t.head(&url).await.status, StatusCode::GONE);
    spool_server::uploads::sweep_expired(&t.app).await.unwrap();
    assert_eq!(t.asset(&asset).await["status"], "errored");
}

#[tokio::test]
async fn one_long_patch_keeps_the_upload_alive() {
    let t = T::with(|c| {
        c.upload_ttl = Duration::from_millis(300);
        c.upload_expiry = Duration::from_millis(300);
    })
    .await;
    let (_, url) = t.on_demand("{}").await;
    let (tx, body) = channel_body();
    let router = t.router.clone();
    let req = streaming_patch(&url, 0, body);
    let task = tokio::spawn(async move { router.oneshot(req).await.unwrap().status() });
    for _ in 0..10 {
        tx.send(Ok(Bytes::from_static(b"0123456789")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        spool_server::uploads::sweep_expired(&t.app).await.unwrap();
        assert_eq!(t.head(&url).await.status, StatusCode::OK);
    }
    drop(tx);
    assert_eq!(task.await.unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("100"));
}

// ---- signatures ----

#[tokio::test]
async fn forged_or_foreign_signatures_are_refused() {
    let t = T::new().await;
    let (_, a) = t.on_demand("{}").await;
    let (_, b) = t.on_demand("{}").await;
    let sig_b = b.split_once('?').unwrap().1;
    let a_path = a.split_once('?').unwrap().0;
    // B's signature on A's URL.
    let r = t.patch(&format!("{a_path}?{sig_b}"), 0, &[], b"x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_INVALID_SIGNATURE");
    // A tampered MAC, a malformed token, an unknown key.
    let (prefix, mac) = a.rsplit_once('.').unwrap();
    let flipped = format!(
        "{prefix}.{}{}",
        if mac.starts_with('A') { 'B' } else { 'A' },
        &mac[1..]
    );
    let unknown_key = a.replace("sig=v2.k", "sig=v2.zz");
    for url in [flipped, format!("{a_path}?sig=garbage"), unknown_key] {
        let r = t.patch(&url, 0, &[], b"x").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{url}");
        assert_eq!(r.code(), "ERR_INVALID_SIGNATURE");
    }
    // No signature, no credentials.
    let r = t.patch(a_path, 0, &[], b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Credentials instead of a signature.
    assert_eq!(
        t.patch(a_path, 0, &[("authorization", &basic())], b"x")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Nothing forged was stored.
    assert_eq!(t.head(&a).await.header("upload-offset"), Some("1"));
    // A signature is checked before the upload is looked up.
    let r = t
        .head("/v1/uploads/00000000000000000000000000000000?sig=v1.k1.1.AAAA")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_old_signature_works_once_bytes_flow_but_not_for_an_unused_url() {
    let t = T::new().await;
    let (_, used) = t.on_demand("{}").await;
    let (_, unused) = t.on_demand("{}").await;
    t.patch(&used, 0, &[], b"x").await;
    let keys = &t.app.keys;
    let resign = |url: &str| {
        let path = url.split_once('?').unwrap().0;
        let id = id_of(url);
        format!(
            "{path}?sig={}",
            spool_proto::token::sign(
                &keys.current_kid,
                keys.current_secret(),
                spool_proto::token::Purpose::Upload,
                &id,
                1
            )
        )
    };
    assert_eq!(
        t.patch(&resign(&used), 1, &[], b"y").await.status,
        StatusCode::NO_CONTENT
    );
    let r = t.patch(&resign(&unused), 0, &[], b"y").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ERR_SIGNATURE_EXPIRED");
}

// ---- downloads, assets, share page ----

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

// ---- CORS, method override, hostile input ----

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

// ---- durability and concurrency ----

#[tokio::test]
async fn a_cut_off_patch_keeps_what_arrived() {
    let t = T::new().await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    let (tx, body) = channel_body();
    let router = t.router.clone();
    let req = streaming_patch(&url, 0, body);
    let task = tokio::spawn(async move { router.oneshot(req).await.unwrap().status() });
    tx.send(Ok(Bytes::from(vec![1u8; 3000]))).await.unwrap();
    tx.send(Ok(Bytes::from(vec![2u8; 500]))).await.unwrap();
    tx.send(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "cut",
    )))
    .await
    .unwrap();
    let status = task.await.unwrap();
    assert!(status.is_client_error(), "{status}");
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("3500"));
    // The upload goes on from there.
    assert_eq!(
        t.patch(&url, 3500, &[("upload-length", "3501")], b"z")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let got = t.get_basic(&url).await.body;
    assert_eq!(&got[..3000], &[1u8; 3000][..]);
    assert_eq!(&got[3000..], &[[2u8; 500].as_slice(), b"z"].concat()[..]);
}

#[tokio::test]
async fn a_stalled_body_times_out_and_keeps_what_arrived() {
    let t = T::with(|c| c.idle_timeout = Duration::from_millis(300)).await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    let (tx, body) = channel_body();
    tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
    let r = t.send(streaming_patch(&url, 0, body)).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(r.code(), "ERR_REQUEST_TIMEOUT");
    drop(tx);
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("3"));
}

#[tokio::test]
async fn a_live_writer_gets_423_for_a_newcomer_a_stalled_one_is_interrupted() {
    let t = T::with(|c| c.stall_grace = Duration::from_millis(400)).await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    let (tx, body) = channel_body();
    let router = t.router.clone();
    let req = streaming_patch(&url, 0, body);
    let first = tokio::spawn(async move {
        let r = router.oneshot(req).await.unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    tx.send(Ok(Bytes::from_static(b"live"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The first writer is receiving bytes: the newcomer is told to wait.
    let r = t.patch(&url, 0, &[], b"dup").await;
    assert_eq!(r.status, StatusCode::LOCKED);
    assert_eq!(r.code(), "ERR_UPLOAD_LOCKED");
    assert_eq!(r.header("retry-after"), Some("1"));
    // HEAD is never blocked by a writer.
    assert_eq!(t.head(&url).await.status, StatusCode::OK);
    // Now the first writer stalls (a dead connection): the newcomer takes over.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = t.patch(&url, 4, &[], b"-next").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(r.header("upload-offset"), Some("9"));
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("ERR_UPLOAD_INTERRUPTED"));
    drop(tx);
    assert_eq!(
        t.patch(&url, 9, &[("upload-length", "9")], b"")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(&t.get_basic(&url).await.body[..], b"live-next");
}

#[tokio::test]
async fn shutdown_saves_an_in_flight_patch() {
    let t = T::new().await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    let (tx, body) = channel_body();
    let router = t.router.clone();
    let req = streaming_patch(&url, 0, body);
    let task = tokio::spawn(async move { router.oneshot(req).await.unwrap().status() });
    tx.send(Ok(Bytes::from_static(b"saved"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.app.shutdown.cancel();
    assert_eq!(task.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("5"));
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
