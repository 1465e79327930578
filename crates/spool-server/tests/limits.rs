//! Router tests (no socket) of per-upload limits: the optional `max_size` of
//! `POST /v1/on-demand` — validated, stored with the upload, enforced for a
//! declared length and for a deferred upload that grows, reported on HEAD —
//! beside the server-wide `--max-size` that OPTIONS keeps reporting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::body::Body;
use axum::http::StatusCode;
use common::*;

/// The server-wide `--max-size` of these tests.
const SERVER_MAX: u64 = 1000;

fn server_max(c: &mut spool_server::Config) {
    c.max_size = SERVER_MAX;
}

impl T {
    async fn on_demand_raw(&self, json: &str) -> Resp {
        self.req(
            "POST",
            "/v1/on-demand",
            &[
                ("authorization", &basic()),
                ("content-type", "application/json"),
            ],
            json.to_owned(),
        )
        .await
    }

    /// An on-demand upload; its local signed URL.
    async fn on_demand_url(&self, json: &str) -> String {
        let r = self.on_demand_raw(json).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{:?}",
            String::from_utf8_lossy(&r.body)
        );
        local(r.json()["upload_url"].as_str().unwrap())
    }

    /// A PATCH of `len` bytes; with `content_length` false the body has no
    /// Content-Length (it is streamed, as a chunked body is).
    async fn patch_n(
        &self,
        url: &str,
        offset: u64,
        len: usize,
        content_length: bool,
        upload_length: Option<u64>,
    ) -> Resp {
        let (off, cl) = (offset.to_string(), len.to_string());
        let ul = upload_length.map(|l| l.to_string());
        let mut h = vec![
            ("tus-resumable", "1.0.0"),
            ("content-type", "application/offset+octet-stream"),
            ("upload-offset", off.as_str()),
        ];
        if content_length {
            h.push(("content-length", cl.as_str()));
        }
        if let Some(l) = &ul {
            h.push(("upload-length", l.as_str()));
        }
        self.req("PATCH", url, &h, vec![7u8; len]).await
    }

    async fn offset(&self, url: &str) -> u64 {
        let r = self.head(url).await;
        assert_eq!(r.status, StatusCode::OK);
        r.header("upload-offset").unwrap().parse().unwrap()
    }
}

#[tokio::test]
async fn on_demand_max_size_must_be_a_positive_integer_within_the_servers() {
    let t = T::with(server_max).await;
    for bad in [
        "-1",
        "0",
        "1.5",
        "1e3",
        "\"100\"",
        "true",
        "[100]",
        "{}",
        "1001",
        "18446744073709551616",
    ] {
        let r = t.on_demand_raw(&format!(r#"{{"max_size":{bad}}}"#)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "max_size {bad}");
        assert_eq!(r.code(), "ERR_INVALID_REQUEST", "max_size {bad}");
    }
    // At the server's maximum, or absent (null is absent), it is accepted.
    for ok in ["1", "1000", "null"] {
        let r = t.on_demand_raw(&format!(r#"{{"max_size":{ok}}}"#)).await;
        assert_eq!(r.status, StatusCode::CREATED, "max_size {ok}");
    }
    let r = t.on_demand_raw(r#"{"max_size":100}"#).await;
    assert_eq!(r.json()["max_size"], 100);
    let r = t.on_demand_raw("{}").await;
    assert!(r.json().get("max_size").is_none());
}

#[tokio::test]
async fn a_declared_length_above_the_uploads_max_size_is_413() {
    let t = T::with(server_max).await;
    let url = t.on_demand_url(r#"{"max_size":100}"#).await;
    // Declared on the first PATCH, above the upload's limit though below the server's.
    let r = t.patch_n(&url, 0, 10, true, Some(101)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    assert!(r.json()["message"].as_str().unwrap().contains("100"));
    assert_eq!(t.offset(&url).await, 0);
    // At the limit it completes.
    let r = t.patch_n(&url, 0, 100, true, Some(100)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("upload-offset"), Some("100"));
}

#[tokio::test]
async fn a_deferred_upload_cannot_grow_past_its_max_size() {
    let t = T::with(server_max).await;
    let url = t.on_demand_url(r#"{"max_size":100}"#).await;
    assert_eq!(
        t.patch_n(&url, 0, 60, true, None).await.status,
        StatusCode::NO_CONTENT
    );
    // Refused from Content-Length before any of it is read...
    let r = t.patch_n(&url, 60, 41, true, None).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    assert_eq!(t.offset(&url).await, 60);
    // ...and while streaming a body of unknown length, keeping none of it.
    let r = t.patch_n(&url, 60, 41, false, None).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    assert_eq!(t.offset(&url).await, 60);
    // Up to the limit is fine, and declaring it completes the upload.
    let r = t.patch_n(&url, 60, 40, false, Some(100)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("upload-offset"), Some("100"));
}

#[tokio::test]
async fn head_reports_the_uploads_own_limit_options_the_servers() {
    let t = T::with(server_max).await;
    let limited = t.on_demand_url(r#"{"max_size":100}"#).await;
    let plain = t.on_demand_url("{}").await;
    assert_eq!(t.head(&limited).await.header("tus-max-size"), Some("100"));
    assert_eq!(t.head(&plain).await.header("tus-max-size"), None);
    for url in [&limited, &plain] {
        let r = t.req("OPTIONS", url, &[], Body::empty()).await;
        assert_eq!(r.header("tus-max-size"), Some("1000"));
    }
    let r = t.req("OPTIONS", "/v1/uploads", &[], Body::empty()).await;
    assert_eq!(r.header("tus-max-size"), Some("1000"));
}

#[tokio::test]
async fn the_limit_is_stored_with_the_upload_and_survives_a_restart() {
    let t = T::with(server_max).await;
    let url = t.on_demand_url(r#"{"max_size":50}"#).await;
    assert_eq!(
        t.patch_n(&url, 0, 30, true, None).await.status,
        StatusCode::NO_CONTENT
    );
    let t = t.reopen(server_max).await;
    assert_eq!(t.head(&url).await.header("tus-max-size"), Some("50"));
    let r = t.patch_n(&url, 30, 21, true, None).await;
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    let r = t.patch_n(&url, 30, 20, true, Some(50)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn without_max_size_only_the_servers_limit_applies() {
    let t = T::with(server_max).await;
    let url = t.on_demand_url("{}").await;
    let r = t.patch_n(&url, 0, 10, true, Some(SERVER_MAX + 1)).await;
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    let r = t.patch_n(&url, 0, 500, true, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t.patch_n(&url, 500, 501, false, None).await;
    assert_eq!(r.code(), "ERR_MAX_SIZE_EXCEEDED");
    let r = t.patch_n(&url, 500, 500, true, Some(SERVER_MAX)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}
