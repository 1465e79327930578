//! The checksum extension: `Upload-Checksum` verifies a chunk, and a mismatch
//! stores nothing.

use axum::http::StatusCode;
use base64::Engine as _;
use sha2::Digest;

use super::common::*;

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
