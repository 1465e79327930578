//! The termination extension: DELETE ends the upload and deletes its asset.

use axum::body::Body;
use axum::http::StatusCode;

use super::common::*;

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
