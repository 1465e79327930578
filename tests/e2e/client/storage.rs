//! The client against `spool serve --store s3` when the object store goes
//! away mid-upload.

use super::*;

/// The object store stopped mid-upload: a PATCH gets 503
/// `ERR_STORAGE_UNAVAILABLE` with the offset unchanged (raw HTTP first),
/// then `spool upload` through a throttled link rides out an outage of a
/// few seconds: it reconnects, and once the store is back the upload
/// completes with the source's bytes, nothing lost, at most a chunk resent.
#[tokio::test(flavor = "multi_thread")]
async fn on_s3_a_store_outage_is_503_with_the_offset_unchanged_and_loses_nothing() {
    let mut backend = Backend::s3();
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_on_behind_proxy(
        &backend,
        dir.path(),
        Faults {
            throttle_bps: Some(8 << 20),
            ..Faults::default()
        },
    )
    .await;

    let tus = Tus::default();
    let url = rebase(
        &tus.create(&server.endpoint(), Some(3 << 20)).await,
        &server.base,
    );
    let bytes = random_bytes(3 << 20, 5);
    let (status, off) = tus.patch(&url, 0, bytes[..1 << 20].to_vec(), None).await;
    assert_eq!((status, off), (204, Some(1 << 20)));
    backend.garage().unwrap().stop();
    let resp = reqwest::Client::new()
        .patch(&url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", 1 << 20)
        .body(bytes[1 << 20..2 << 20].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers()["upload-offset"],
        (1u64 << 20).to_string().as_str()
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "ERR_STORAGE_UNAVAILABLE", "{body}");
    assert_eq!(tus.head(&url).await.1, Some(1 << 20), "HEAD stays truthful");
    backend.garage().unwrap().start();
    let (status, off) = tus
        .patch(&url, 1 << 20, bytes[1 << 20..].to_vec(), None)
        .await;
    assert_eq!((status, off), (204, Some(3 << 20)));
    assert_eq!(tus.get(&url).await, bytes);

    // `spool upload` across an outage.
    let file = dir.path().join("source.bin");
    let size = 40 << 20;
    let sha = random_file(&file, size, 12);
    let target = server_args(&proxy.url());
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut up = Proc::spawn(spool_upload(
        &file,
        &dir.path().join("state"),
        &target,
        &["--chunk-size", "4194304", "--stall-timeout", "5"],
    ));
    up.wait_line(Duration::from_secs(60), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v["confirmed"].as_u64())
            .is_some_and(|c| c >= 8 << 20)
    });
    backend.garage().unwrap().stop();
    let reconnecting = up.wait_line(Duration::from_secs(60), |l| l.contains("\"reconnecting\""));
    assert!(
        reconnecting.contains("ERR_STORAGE_UNAVAILABLE"),
        "{reconnecting}"
    );
    backend.garage().unwrap().start();
    let (status, lines) = up.finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    let complete = check_events(&lines);
    assert_eq!(complete["sha256"], sha.as_str());
    let stored = tus
        .get(&rebase(
            complete["upload_url"].as_str().unwrap(),
            &server.base,
        ))
        .await;
    assert_eq!(sha256_hex(&stored), sha);
    let sent = proxy
        .stats
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    // The raw PATCHes above went to the server directly.
    let resent = sent.saturating_sub(size as u64);
    assert!(resent <= 2 * (4 << 20), "{resent} bytes sent twice");
}
