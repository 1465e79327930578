//! The upload API: `POST /v1/on-demand` issuing signed upload URLs.

use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine as _;

use super::common::*;

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
