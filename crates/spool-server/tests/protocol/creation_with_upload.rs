//! The creation-with-upload extension: a body on the creating POST is stored.

use axum::http::StatusCode;

use super::common::*;

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
