//! The concatenation extension: a final upload made of finished partial
//! uploads.

use axum::body::Body;
use axum::http::StatusCode;

use super::common::*;

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
