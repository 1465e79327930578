//! End-to-end tests of `spool serve` as a real process over loopback: real
//! third-party TUS clients (tus-js-client from npm, tuspy from PyPI), webhook
//! signatures checked by the `standardwebhooks` package, and crashes
//! (kill -9) and graceful stops in the middle of uploads. tus-js-client in
//! its IETF draft mode is in [`ietf`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_e2e::*;

#[path = "server/ietf.rs"]
mod ietf;

fn url_of(lines: &[String]) -> String {
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("\"url\""))
        .unwrap_or_else(|| panic!("no url in {lines:?}"));
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    v["url"].as_str().unwrap().to_owned()
}

async fn stored_sha(url: &str) -> String {
    sha256_hex(&Tus::default().get(url).await)
}

fn run_tus_js(server: &SpoolServer, mode: &str, file: &std::path::Path, chunk: usize) -> String {
    let mut cmd = node("tus_js_upload.mjs");
    cmd.args([
        mode,
        &server.endpoint(),
        file.to_str().unwrap(),
        &chunk.to_string(),
        &basic_auth(),
    ]);
    let (status, lines) = Proc::spawn(cmd).finish(Duration::from_secs(120));
    assert!(status.success(), "tus-js-client {mode} failed: {lines:?}");
    url_of(&lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_stream_deferred_and_parallel_uploads() {
    tus_js_case(Backend::Fs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_tus_js_client_stream_deferred_and_parallel_uploads() {
    tus_js_case(Backend::s3()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_pg_tus_js_client_stream_deferred_and_parallel_uploads() {
    tus_js_case(Backend::s3_pg()).await;
}

async fn tus_js_case(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start_on(&backend, &dir.path().join("data"), 0, &[]);
    let file = dir.path().join("source.bin");
    let sha = random_file(&file, 12 * 1024 * 1024 + 4321, 1);
    // A file read as a Node stream, known length, 1 MiB chunks.
    let url = run_tus_js(&server, "stream", &file, 1024 * 1024);
    assert_eq!(stored_sha(&url).await, sha, "stream upload");
    // Deferred length over several chunks from a Buffer.
    let url = run_tus_js(&server, "deferred", &file, 3 * 1024 * 1024);
    assert_eq!(stored_sha(&url).await, sha, "deferred upload");
    let (_, offset, length) = Tus::default().head(&url).await;
    assert_eq!(
        (offset, length),
        (Some(sha_len(&file)), Some(sha_len(&file)))
    );
    // Parallel uploads through concatenation.
    let url = run_tus_js(&server, "parallel", &file, 0);
    assert_eq!(
        stored_sha(&url).await,
        sha,
        "parallel (concatenated) upload"
    );
}

fn sha_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn tuspy_with_checksums_resumes_after_being_killed() {
    tuspy_case(Backend::Fs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_tuspy_with_checksums_resumes_after_being_killed() {
    tuspy_case(Backend::s3()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_pg_tuspy_with_checksums_resumes_after_being_killed() {
    tuspy_case(Backend::s3_pg()).await;
}

async fn tuspy_case(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start_on(&backend, &dir.path().join("data"), 0, &[]);
    let file = dir.path().join("source.bin");
    let size = 16 * 1024 * 1024;
    let sha = random_file(&file, size, 2);
    let storage = dir.path().join("tuspy-urls.json");
    let tuspy = || {
        let mut cmd = python("tuspy_upload.py");
        cmd.args([
            &server.endpoint(),
            file.to_str().unwrap(),
            &(256 * 1024).to_string(),
            storage.to_str().unwrap(),
            &basic_auth(),
            "--checksum",
        ]);
        cmd
    };
    let mut first = Proc::spawn(tuspy());
    let line = first.wait_line(Duration::from_secs(60), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v["offset"].as_u64())
            .is_some_and(|o| o >= 4 * 1024 * 1024)
    });
    first.kill9();
    let acknowledged: u64 = serde_json::from_str::<serde_json::Value>(&line).unwrap()["offset"]
        .as_u64()
        .unwrap();

    let (status, lines) = Proc::spawn(tuspy()).finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let resumed_from = last["resumed_from"].as_u64().unwrap();
    assert!(
        resumed_from >= acknowledged && resumed_from < size as u64,
        "resumed from {resumed_from}, acknowledged {acknowledged}"
    );
    assert_eq!(stored_sha(last["url"].as_str().unwrap()).await, sha);
}

/// Starts a PATCH whose body is fed through the returned sender.
fn streaming_patch(
    url: &str,
    offset: u64,
) -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<Result<u16, String>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let req = reqwest::Client::new()
        .patch(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset)
        .body(reqwest::Body::wrap_stream(stream));
    let task = tokio::spawn(async move {
        req.send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });
    (tx, task)
}

async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_upload_keeps_durable_bytes_and_the_upload_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = SpoolServer::start(&data, port, &[]);
    let tus = Tus::default();
    let total = 24 * 1024 * 1024;
    let source = random_bytes(total, 3);
    let url = tus.create(&server.endpoint(), Some(total as u64)).await;
    let id = upload_id(&url);

    // 4 MiB acknowledged by a 204.
    let (status, offset) = tus.patch(&url, 0, source[..4 << 20].to_vec(), None).await;
    assert_eq!((status, offset), (204, Some(4 << 20)));
    // Then a PATCH cut off by kill -9 after 10 more MiB reached the disk.
    let (tx, task) = streaming_patch(&url, 4 << 20);
    for chunk in source[4 << 20..14 << 20].chunks(256 * 1024) {
        tx.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    wait_until(Duration::from_secs(20), || server.disk_len(&id) >= 13 << 20).await;
    server.proc.kill9();
    assert!(
        task.await.unwrap().is_err(),
        "the cut PATCH cannot have succeeded"
    );

    let server = SpoolServer::start(&data, port, &[]);
    let (status, offset, length) = tus.head(&url).await;
    assert_eq!(status, 200);
    let offset = offset.unwrap();
    assert_eq!(length, Some(total as u64));
    // HEAD tells exactly what is durable: at least what was acknowledged,
    // everything the disk holds, and those bytes are the source's.
    assert!((13 << 20..=14 << 20).contains(&offset), "offset {offset}");
    assert_eq!(offset, server.disk_len(&id));
    let on_disk = std::fs::read(data.join("uploads").join(&id)).unwrap();
    assert_eq!(&on_disk[..], &source[..offset as usize]);

    let (status, new_offset) = tus
        .patch(&url, offset, source[offset as usize..].to_vec(), None)
        .await;
    assert_eq!((status, new_offset), (204, Some(total as u64)));
    assert_eq!(sha256_hex(&tus.get(&url).await), sha256_hex(&source));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_saves_an_in_flight_patch_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let server = SpoolServer::start(&data, port, &[]);
    let tus = Tus::default();
    let source = random_bytes(3 * 1024 * 1024 + 17, 4);
    let url = tus.create(&server.endpoint(), None).await;
    let (tx, task) = streaming_patch(&url, 0);
    for chunk in source.chunks(64 * 1024) {
        tx.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    // The whole body has been handed over; the request stays open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.proc.sigterm();
    let status = task.await.unwrap();
    assert_eq!(
        status,
        Ok(503),
        "the interrupted PATCH is told the server is going away"
    );
    let (exit, _) = server.proc.finish(Duration::from_secs(15));
    assert!(exit.success(), "{exit:?}");
    drop(tx);

    let _server = SpoolServer::start(&data, port, &[]);
    let (_, offset, _) = tus.head(&url).await;
    assert_eq!(
        offset,
        Some(source.len() as u64),
        "every byte that arrived was saved"
    );
}

#[derive(Debug, serde::Deserialize)]
struct Delivery {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    asset_id: String,
    verified: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_ordered_and_survive_a_receiver_outage_and_a_restart() {
    webhooks_case(Backend::Fs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_webhooks_are_signed_ordered_and_survive_a_receiver_outage_and_a_restart() {
    webhooks_case(Backend::s3()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_pg_webhooks_are_signed_ordered_and_survive_a_receiver_outage_and_a_restart() {
    webhooks_case(Backend::s3_pg()).await;
}

async fn webhooks_case(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hook_port = free_port();
    let hook_url = format!("http://127.0.0.1:{hook_port}/hooks");
    let args = [
        "--webhook-url",
        hook_url.as_str(),
        "--webhook-secret",
        secret,
    ];
    let port = free_port();
    let server = SpoolServer::start_on(&backend, &data, port, &args);
    let tus = Tus::default();

    let mut expected: Vec<(String, Vec<&str>)> = Vec::new();
    for (i, plan) in [
        // Five bytes are not a video: processing errors them.
        vec![
            "video.asset.created",
            "video.asset.uploaded",
            "video.asset.errored",
        ],
        vec![
            "video.asset.created",
            "video.asset.uploaded",
            "video.asset.errored",
            "video.asset.deleted",
        ],
        vec!["video.asset.created"],
    ]
    .into_iter()
    .enumerate()
    {
        let r = server
            .on_demand(serde_json::json!({"metadata": {"n": i.to_string()}}))
            .await;
        let asset = r["asset_id"].as_str().unwrap().to_owned();
        let url = r["upload_url"].as_str().unwrap();
        if plan.contains(&"video.asset.uploaded") {
            assert_eq!(tus.patch(url, 0, b"bytes".to_vec(), Some(5)).await.0, 204);
            spool_e2e::media::wait_status(&server, &asset, "errored", Duration::from_secs(20))
                .await;
        }
        if plan.contains(&"video.asset.deleted") {
            assert_eq!(server.delete_asset(&asset).await, 204);
        }
        expected.push((asset, plan));
    }
    // The receiver is down: deliveries fail and back off — wait until the
    // server has logged a failed attempt for each asset's first webhook (the
    // head of its line). Then the server restarts (the outbox is durable)
    // and the receiver comes up.
    let failed = |log: &str| -> usize {
        let mut ids: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("webhook delivery failed"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("webhook="))
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    assert!(
        wait_until_async(Duration::from_secs(30), || std::future::ready(
            failed(&server.log()) >= expected.len()
        ))
        .await,
        "not every asset's first webhook failed while the receiver was down: {}",
        server.log()
    );
    server.proc.sigterm();
    server.proc.finish(Duration::from_secs(15));
    let _server = SpoolServer::start_on(&backend, &data, port, &args);
    let out = dir.path().join("deliveries.jsonl");
    let mut receiver_cmd = python("webhook_receiver.py");
    receiver_cmd.args([&hook_port.to_string(), secret, out.to_str().unwrap()]);
    let mut receiver = Proc::spawn(receiver_cmd);
    receiver.wait_line(Duration::from_secs(20), |l| l.starts_with("listening"));

    let total: usize = expected.iter().map(|(_, p)| p.len()).sum();
    let read = || -> Vec<Delivery> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids: Vec<String> = read().into_iter().map(|d| d.id).collect();
        ids.dedup();
        if ids.len() >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {total} webhooks arrived: {:?}",
            ids.len(),
            read()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deliveries = read();
    assert!(
        deliveries.iter().all(|d| d.verified),
        "a signature did not verify: {deliveries:?}"
    );
    for (asset, plan) in &expected {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for d in deliveries.iter().filter(|d| &d.asset_id == asset) {
            // At least once: a repeat carries the same webhook-id.
            if !seen.iter().any(|(id, _)| *id == d.id) {
                seen.push((&d.id, &d.kind));
            }
        }
        let kinds: Vec<&str> = seen.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            &kinds, plan,
            "events of asset {asset} out of order or missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_prints_generated_credentials_once_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = |data: &std::path::Path| {
        let mut cmd = std::process::Command::new(spool_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("SPOOL_LOG", "warn");
        for k in ["SPOOL_TOKEN_ID", "SPOOL_TOKEN_SECRET"] {
            cmd.env_remove(k);
        }
        let mut p = Proc::spawn(cmd);
        p.wait_line(Duration::from_secs(20), |l| l.starts_with("try it"));
        p
    };
    let first = start(&data);
    let secret_line = first
        .seen
        .iter()
        .find(|l| l.contains("token secret:"))
        .cloned()
        .expect("first start prints the secret");
    let secret = secret_line.rsplit(' ').next().unwrap().to_owned();
    drop(first);
    let second = start(&data);
    assert!(
        !second.seen.iter().any(|l| l.contains(&secret)),
        "a later start must not print the secret again"
    );
    let creds = std::fs::read_to_string(data.join("credentials")).unwrap();
    assert!(creds.trim().ends_with(&secret));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(data.join("credentials"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn serve_rejects_bad_flags_with_a_message() {
    for args in [
        vec![
            "--webhook-url",
            "http://127.0.0.1:1/",
            "--webhook-secret",
            "not-a-secret",
        ],
        vec!["--max-size", "0"],
        vec!["--upload-ttl", "0"],
        vec!["--listen", "nope"],
    ] {
        let out = std::process::Command::new(spool_bin())
            .arg("serve")
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} printed no message");
    }
}
