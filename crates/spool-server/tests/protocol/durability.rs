//! Durability and concurrency: cut-off, stalled and interrupted bodies, and
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

use spool_server::clock::ManualClock;

use super::common::*;

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
    let clock = Arc::new(ManualClock::starting_now());
    let t = T::with(|c| {
        c.clock = clock.clone();
        c.stall_grace = Duration::from_millis(400);
    })
    .await;
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
    clock.advance(Duration::from_millis(600));
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
