//! The expiration extension, on a manual clock: an unused upload expires after
//! its TTL, one that receives bytes does not.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use tower::ServiceExt;

use spool_server::clock::{Clock as _, ManualClock};

use super::common::*;

#[tokio::test]
async fn unused_upload_expires_after_the_ttl() {
    let clock = Arc::new(ManualClock::starting_now());
    let t = T::with(|c| {
        c.clock = clock.clone();
        c.upload_ttl = Duration::from_millis(400);
    })
    .await;
    let url = t.create(&[("upload-defer-length", "1")]).await;
    clock.advance(Duration::from_millis(1200));
    assert_eq!(t.head(&url).await.status, StatusCode::GONE);
    let r = t.patch(&url, 0, &[], b"a").await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.code(), "ERR_UPLOAD_EXPIRED");
}

#[tokio::test]
async fn an_upload_receiving_bytes_never_expires_an_idle_one_does() {
    let clock = Arc::new(ManualClock::starting_now());
    let t = T::with(|c| {
        c.clock = clock.clone();
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
        // In the server's time, which is what expires the upload (HTTP dates
        // have whole seconds). Not against the wall clock: the manual clock
        // runs ahead of it, and the wall clock's lead over setup depends on
        // how loaded the machine is.
        let server_now = std::time::UNIX_EPOCH + Duration::from_millis(clock.now_ms() as u64);
        assert!(expires + Duration::from_secs(1) > server_now);
        clock.advance(Duration::from_millis(200));
    }
    clock.advance(Duration::from_millis(1500));
    assert_eq!(t.head(&url).await.status, StatusCode::GONE);
    spool_server::uploads::sweep_expired(&t.app).await.unwrap();
    assert_eq!(t.asset(&asset).await["status"], "errored");
}

#[tokio::test]
async fn one_long_patch_keeps_the_upload_alive() {
    let clock = Arc::new(ManualClock::starting_now());
    let t = T::with(|c| {
        c.clock = clock.clone();
        c.upload_ttl = Duration::from_millis(300);
        c.upload_expiry = Duration::from_millis(300);
    })
    .await;
    let (_, url) = t.on_demand("{}").await;
    let (tx, body) = channel_body();
    let router = t.router.clone();
    let req = streaming_patch(&url, 0, body);
    let task = tokio::spawn(async move { router.oneshot(req).await.unwrap().status() });
    // The writer must hold the upload before its time runs out (waiting on
    // that, not on the clock).
    let id = id_of(&url);
    for _ in 0..200 {
        if t.app.locks.is_held(&id).unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(t.app.locks.is_held(&id).unwrap());
    for _ in 0..10 {
        tx.send(Ok(Bytes::from_static(b"0123456789")))
            .await
            .unwrap();
        clock.advance(Duration::from_millis(100));
        spool_server::uploads::sweep_expired(&t.app).await.unwrap();
        assert_eq!(t.head(&url).await.status, StatusCode::OK);
    }
    drop(tx);
    assert_eq!(task.await.unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(t.head(&url).await.header("upload-offset"), Some("100"));
}
