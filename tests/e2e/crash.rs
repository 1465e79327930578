//! Durability through crashes (issue 9), on the real `spool serve`: the
//! server is made to abort at each step the durability argument has (bytes
//! written but not committed, committed but not recorded, a checksummed
//! chunk half merged, an upload created but not recorded, an end recorded
//! but its bytes not removed — `SPOOL_FAULT_POINT`), then restarted on the
//! same data folder. After every crash HEAD equals the bytes durably stored,
//! those bytes are exactly what was sent (never zeros), the upload completes
//! byte-identical, and no asset is ready without its bytes. Storage damaged
//! while the server was down is reported, never padded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;
use spool_e2e::*;

const CHUNK: usize = 3_000_000;

fn crashing_server(data: &Path, point: &str) -> SpoolServer {
    SpoolServer::start_with_env(data, 0, &[], &[("SPOOL_FAULT_POINT", point)])
}

/// Waits for the crashed server to be gone, then starts a healthy one.
fn restart(mut crashed: SpoolServer) -> SpoolServer {
    let status = crashed.proc.child.wait().unwrap();
    assert!(!status.success(), "the server was meant to abort");
    SpoolServer::start(&crashed.data, 0, &[])
}

async fn patch_raw(url: &str, offset: u64, data: Vec<u8>, extra: &[(&str, String)]) -> Option<u16> {
    let mut req = reqwest::Client::new()
        .patch(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset);
    for (k, v) in extra {
        req = req.header(*k, v);
    }
    req.body(data)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// After a restart: HEAD's offset equals what storage holds, and storage
/// holds exactly a prefix of what was sent; then the rest completes it.
async fn check_truthful_then_complete(
    server: &SpoolServer,
    url: &str,
    sent: &[u8],
    whole: &[u8],
) -> u64 {
    let url = rebase(url, &server.base);
    let (code, offset, _) = Tus::default().head(&url).await;
    assert_eq!(code, 200);
    let offset = offset.unwrap();
    let id = upload_id(&url);
    assert_eq!(offset, server.disk_len(&id), "HEAD equals the bytes stored");
    assert!(offset as usize <= sent.len());
    let stored = std::fs::read(server.data.join("uploads").join(&id)).unwrap();
    assert_eq!(
        &stored[..],
        &whole[..offset as usize],
        "stored bytes are what was sent, no zeros"
    );
    let (code, end) = Tus::default()
        .patch(
            &url,
            offset,
            whole[offset as usize..].to_vec(),
            Some(whole.len() as u64),
        )
        .await;
    assert_eq!((code, end), (204, Some(whole.len() as u64)));
    assert_eq!(
        sha256_hex(&Tus::default().get(&url).await),
        sha256_hex(whole)
    );
    offset
}

async fn new_upload(server: &SpoolServer) -> (String, String) {
    let r = server.on_demand(serde_json::json!({})).await;
    (
        r["asset_id"].as_str().unwrap().to_owned(),
        r["upload_url"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_writing_before_commit_keeps_what_reached_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = crashing_server(&dir.path().join("data"), "written-before-commit");
    let (asset, url) = new_upload(&server).await;
    let whole = random_bytes(2 * CHUNK, 1);
    patch_raw(&url, 0, whole[..CHUNK].to_vec(), &[]).await;
    let server = restart(server);
    check_truthful_then_complete(&server, &url, &whole[..CHUNK], &whole).await;
    assert!(all_bytes_in(&server.asset(&asset).await));
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_commit_before_recording_counts_the_durable_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let server = crashing_server(&dir.path().join("data"), "committed-before-record");
    let (_, url) = new_upload(&server).await;
    let whole = random_bytes(2 * CHUNK, 2);
    patch_raw(&url, 0, whole[..CHUNK].to_vec(), &[]).await;
    let server = restart(server);
    let offset = check_truthful_then_complete(&server, &url, &whole[..CHUNK], &whole).await;
    assert_eq!(offset, CHUNK as u64, "the fsynced chunk survived");
}

fn checksum(data: &[u8]) -> (&'static str, String) {
    (
        "upload-checksum",
        format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data))
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checksummed_chunk_caught_mid_merge_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = crashing_server(&dir.path().join("data"), "stage-copied-before-sync");
    let (_, url) = new_upload(&server).await;
    let whole = random_bytes(3 * CHUNK, 3);
    // A plain chunk, then a checksummed one that is being merged at the crash.
    assert_eq!(
        patch_raw(&url, 0, whole[..CHUNK].to_vec(), &[]).await,
        Some(204)
    );
    let second = &whole[CHUNK..2 * CHUNK];
    let (k, v) = checksum(second);
    patch_raw(&url, CHUNK as u64, second.to_vec(), &[(k, v)]).await;
    let server = restart(server);
    let offset = check_truthful_then_complete(&server, &url, &whole[..2 * CHUNK], &whole).await;
    assert_eq!(
        offset, CHUNK as u64,
        "only the recorded offset is trusted mid-merge"
    );
    let id = upload_id(&url);
    assert!(
        !server
            .data
            .join("uploads")
            .join(format!("{id}.stage"))
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_chunk_merged_before_the_crash_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = crashing_server(&dir.path().join("data"), "stage-merged-before-record");
    let (_, url) = new_upload(&server).await;
    let whole = random_bytes(2 * CHUNK, 4);
    let first = &whole[..CHUNK];
    let (k, v) = checksum(first);
    patch_raw(&url, 0, first.to_vec(), &[(k, v)]).await;
    let server = restart(server);
    let offset = check_truthful_then_complete(&server, &url, first, &whole).await;
    assert_eq!(offset, CHUNK as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_created_but_never_recorded_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = crashing_server(&dir.path().join("data"), "created-before-row");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/on-demand", server.base))
        .header("authorization", basic_auth())
        .json(&serde_json::json!({}))
        .send()
        .await;
    assert!(resp.is_err(), "the server aborted mid-request");
    let uploads = server.data.join("uploads");
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        1,
        "the orphan exists before the restart"
    );
    let server = restart(server);
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        0,
        "startup removed the orphan"
    );
    // And the server works.
    let (_, url) = new_upload(&server).await;
    assert_eq!(
        Tus::default()
            .patch(&url, 0, b"ok".to_vec(), Some(2))
            .await
            .0,
        204
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_recorded_before_its_bytes_went_finishes_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let server = crashing_server(&dir.path().join("data"), "end-recorded-before-delete");
    let (asset, url) = new_upload(&server).await;
    assert_eq!(
        Tus::default()
            .patch(&url, 0, b"secret bytes".to_vec(), Some(12))
            .await
            .0,
        204
    );
    let resp = reqwest::Client::new()
        .delete(format!("{}/v1/assets/{asset}", server.base))
        .header("authorization", basic_auth())
        .send()
        .await;
    assert!(resp.is_err(), "the server aborted mid-request");
    let file = server.data.join("uploads").join(upload_id(&url));
    assert!(file.exists());
    let server = restart(server);
    assert!(
        !file.exists(),
        "the deleted recording's bytes are gone after the restart"
    );
    assert_eq!(server.asset(&asset).await["status"], "deleted");
    let r = reqwest::Client::new()
        .get(format!("{}/v/{asset}/media", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_that_lost_acknowledged_bytes_is_reported_never_padded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = SpoolServer::start(&data, 0, &[]);
    // An unfinished upload with 1 MB acknowledged, and a complete one.
    let (partial_asset, partial) = new_upload(&server).await;
    let bytes = random_bytes(1_000_000, 5);
    assert_eq!(
        Tus::default()
            .patch(&partial, 0, bytes.clone(), None)
            .await
            .0,
        204
    );
    let (done_asset, done) = new_upload(&server).await;
    assert_eq!(
        Tus::default()
            .patch(&done, 0, bytes.clone(), Some(1_000_000))
            .await
            .0,
        204
    );
    assert!(all_bytes_in(&server.asset(&done_asset).await));
    server.proc.kill9();

    // The disk loses data while the server is down.
    let partial_file = data.join("uploads").join(upload_id(&partial));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&partial_file)
        .unwrap()
        .set_len(400_000)
        .unwrap();
    std::fs::remove_file(data.join("uploads").join(upload_id(&done))).unwrap();

    let server = SpoolServer::start(&data, 0, &[]);
    let partial = rebase(&partial, &server.base);
    let (code, _, _) = Tus::default().head(&partial).await;
    assert_eq!(code, 410);
    let r = reqwest::Client::new()
        .head(&partial)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["spool-error-code"], "ERR_UPLOAD_DAMAGED");
    assert_eq!(
        std::fs::metadata(&partial_file).unwrap().len(),
        400_000,
        "never padded"
    );
    let (code, _) = Tus::default()
        .patch(&partial, 1_000_000, b"x".to_vec(), None)
        .await;
    assert_eq!(code, 410, "no byte lands after a hole");
    for asset in [&partial_asset, &done_asset] {
        let a = server.asset(asset).await;
        assert_eq!(a["status"], "errored", "{a}");
        assert_eq!(a["error"]["code"], "ERR_UPLOAD_DAMAGED", "{a}");
    }
    let media = reqwest::Client::new()
        .get(format!("{}/v/{done_asset}/media", server.base))
        .send()
        .await
        .unwrap();
    assert_ne!(media.status(), 200, "no ready asset without bytes");
}
