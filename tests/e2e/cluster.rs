//! Several `spool serve` nodes behind nginx on one Garage bucket and one
//! PostgreSQL database (`spool_e2e::cluster`): a node killed with -9 in the
//! middle of a PATCH, twice, the database restarted mid-upload, and the
//! bucket's store stopped mid-upload, cost the upload at most a chunk each
//! and nothing else — byte-identical
//! result, webhooks created → uploaded → ready delivered in order, the
//! video processed exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use spool_e2e::cluster::Cluster;
use spool_e2e::*;

const CHUNK: u64 = 8 << 20;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(serde::Deserialize, Debug)]
struct Delivery {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    asset_id: String,
    verified: bool,
}

/// A fragmented MP4 of about `mb` MB (lossless H.264 of moving test
/// content: big and quick to make, and a video the processor remuxes).
fn video(path: &Path, mb: u64) -> String {
    // ~2 MB a second at 720p, qp 0.
    let secs = (mb / 2).max(2);
    spool_e2e::media::ffmpeg_make(
        path,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    );
    sha256_hex(&std::fs::read(path).unwrap())
}

fn spool_upload(file: &Path, state: &Path, base: &str) -> std::process::Command {
    let mut cmd = spool("upload");
    cmd.arg(file)
        .args(server_args(base))
        .arg("--state-dir")
        .arg(state)
        .args(["--json", "--chunk-size", &CHUNK.to_string()]);
    cmd
}

fn confirmed(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["confirmed"].as_u64())
}

/// Starts the webhook receiver on `port`, writing deliveries to `out`.
fn receiver(port: u16, out: &Path) -> Proc {
    let mut cmd = python("webhook_receiver.py");
    cmd.args([&port.to_string(), SECRET, out.to_str().unwrap()]);
    let mut p = Proc::spawn(cmd);
    p.wait_line(Duration::from_secs(20), |l| l.starts_with("listening"));
    p
}

fn deliveries(out: &Path) -> Vec<Delivery> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The asset's event kinds in delivery order, each webhook once (at least
/// once: a repeat carries the same webhook id).
fn kinds_of(out: &Path, asset: &str) -> Vec<String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for d in deliveries(out).into_iter().filter(|d| d.asset_id == asset) {
        assert!(d.verified, "a signature did not verify: {d:?}");
        if !seen.iter().any(|(id, _)| *id == d.id) {
            seen.push((d.id, d.kind));
        }
    }
    seen.into_iter().map(|(_, k)| k).collect()
}

/// Waits for `spool upload` to end; past `timeout`, fails with the nodes' logs.
fn finish(
    upload: Proc,
    cluster: &Cluster,
    timeout: Duration,
) -> (std::process::ExitStatus, Vec<String>) {
    let mut upload = upload;
    let deadline = Instant::now() + timeout;
    while upload.child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            upload.kill9();
            let (_, lines) = upload.finish(Duration::from_secs(10));
            let path = std::env::temp_dir().join("spool-cluster-failure.log");
            let _ = std::fs::write(
                &path,
                format!("{}\n--- client ---\n{}", cluster.logs(), lines.join("\n")),
            );
            panic!(
                "spool upload did not finish in {timeout:?}; the nodes' logs are in {}\n{}",
                path.display(),
                cluster.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    upload.finish(Duration::from_secs(10))
}

async fn asset_status(base: &str, id: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/assets/{id}"))
        .header("authorization", basic_auth())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_through_three_nodes_survives_two_writers_killed_mid_patch() {
    let dir = tempfile::tempdir().unwrap();
    let hook_port = free_port();
    let hooks = dir.path().join("deliveries.jsonl");
    let _receiver = receiver(hook_port, &hooks);
    let hook_url = format!("http://127.0.0.1:{hook_port}/hooks");
    let mut cluster = Cluster::start(
        dir.path(),
        3,
        &["--webhook-url", &hook_url, "--webhook-secret", SECRET],
    )
    .await;
    let file = dir.path().join("video.mp4");
    let sha = video(&file, 300);
    let size = std::fs::metadata(&file).unwrap().len();
    // Slow enough that two kills land mid-upload at any machine speed.
    cluster.proxy.set_throttle(Some(40 << 20));

    let mut upload = Proc::spawn(spool_upload(
        &file,
        &dir.path().join("state"),
        &cluster.url(),
    ));
    let mut kills = Vec::new();
    for at in [size / 4, size * 3 / 5] {
        upload.wait_line(Duration::from_secs(120), |l| {
            confirmed(l).is_some_and(|c| c >= at)
        });
        let id = cluster
            .psql("SELECT id FROM uploads WHERE state = 'active' LIMIT 1")
            .trim()
            .to_owned();
        let writer = cluster
            .wait_writer(&id, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no node writes upload {id}: {}", cluster.logs()));
        cluster.kill(writer);
        kills.push(writer);
        // Back once the client has moved on through another node.
        let resumed_at = at + 2 * CHUNK;
        upload.wait_line(Duration::from_secs(120), |l| {
            confirmed(l).is_some_and(|c| c >= resumed_at)
        });
        cluster.restart(writer);
    }
    let (status, lines) = finish(upload, &cluster, Duration::from_secs(180));
    assert!(
        status.success(),
        "spool upload failed: {lines:?}\n{}",
        cluster.logs()
    );
    let complete = complete(&json_lines(&lines));
    let sent = cluster.proxy.stats.body_bytes.load(Ordering::Relaxed);
    let resent = sent.saturating_sub(size);
    println!(
        "re-sent {resent} bytes for {} kills (nodes {kills:?})",
        kills.len()
    );
    assert!(
        resent <= kills.len() as u64 * CHUNK,
        "{resent} bytes sent twice for {} kills",
        kills.len()
    );
    let stored = Tus::default()
        .get(complete["upload_url"].as_str().unwrap())
        .await;
    assert_eq!(stored.len() as u64, size);
    assert_eq!(
        sha256_hex(&stored),
        sha,
        "stored bytes differ from the source"
    );

    let asset = complete["asset_id"].as_str().unwrap().to_owned();
    let base = cluster.url();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let kinds = kinds_of(&hooks, &asset);
        if kinds.last().is_some_and(|k| k == "video.asset.ready") {
            // `live` comes when the first fragments are playable, before
            // the last byte.
            assert_eq!(
                kinds,
                [
                    "video.asset.created",
                    "video.asset.live",
                    "video.asset.uploaded",
                    "video.asset.ready"
                ],
                "webhooks out of order or missing"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks so far {kinds:?}; asset {}\n{}",
            asset_status(&base, &asset).await,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(asset_status(&base, &asset).await, "ready");
    // Processed once: one claim of its job, finished.
    let job = cluster.psql(&format!(
        "SELECT attempts, done_at IS NOT NULL FROM jobs WHERE asset_id = '{asset}'"
    ));
    assert_eq!(job.trim(), "1|t", "the processing job ran more than once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_mid_upload_is_503_then_resumed_losing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 2, &[]).await;
    let file = dir.path().join("source.bin");
    let size: u64 = 120 << 20;
    let sha = random_file(&file, size as usize, 11);
    cluster.proxy.set_throttle(Some(30 << 20));
    let mut upload = Proc::spawn(spool_upload(
        &file,
        &dir.path().join("state"),
        &cluster.url(),
    ));
    upload.wait_line(Duration::from_secs(120), |l| {
        confirmed(l).is_some_and(|c| c >= size / 3)
    });
    let before = cluster.proxy.stats.body_bytes.load(Ordering::Relaxed);
    cluster.backend.postgres().unwrap().stop();
    // Down until the client has been told to wait (a 503, or a request
    // that failed): then the database comes back.
    let told = upload.wait_line(Duration::from_secs(60), |l| l.contains("\"reconnecting\""));
    assert!(told.contains("reconnecting"));
    cluster.backend.postgres().unwrap().start();
    let (status, lines) = finish(upload, &cluster, Duration::from_secs(180));
    assert!(
        status.success(),
        "spool upload failed: {lines:?}\n{}",
        cluster.logs()
    );
    let complete = complete(&json_lines(&lines));
    let resent = cluster
        .proxy
        .stats
        .body_bytes
        .load(Ordering::Relaxed)
        .saturating_sub(size);
    println!("re-sent {resent} bytes across a database restart (sent {before} before it)");
    assert!(resent <= CHUNK, "{resent} bytes sent twice for one restart");
    let stored = Tus::default()
        .get(complete["upload_url"].as_str().unwrap())
        .await;
    assert_eq!(
        sha256_hex(&stored),
        sha,
        "stored bytes differ from the source"
    );
    let logs = cluster.logs();
    assert!(
        logs.contains("database unavailable"),
        "no node noticed the database was gone: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bucket_stopped_mid_upload_through_the_cluster_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 2, &[]).await;
    let file = dir.path().join("source.bin");
    let size: u64 = 80 << 20;
    let sha = random_file(&file, size as usize, 13);
    cluster.proxy.set_throttle(Some(30 << 20));
    let mut upload = Proc::spawn(spool_upload(
        &file,
        &dir.path().join("state"),
        &cluster.url(),
    ));
    upload.wait_line(Duration::from_secs(120), |l| {
        confirmed(l).is_some_and(|c| c >= size / 3)
    });
    cluster.backend.garage().unwrap().stop();
    upload.wait_line(Duration::from_secs(60), |l| l.contains("\"reconnecting\""));
    cluster.backend.garage().unwrap().start();
    let (status, lines) = finish(upload, &cluster, Duration::from_secs(180));
    assert!(
        status.success(),
        "spool upload failed: {lines:?}\n{}",
        cluster.logs()
    );
    let complete = complete(&json_lines(&lines));
    let resent = cluster
        .proxy
        .stats
        .body_bytes
        .load(Ordering::Relaxed)
        .saturating_sub(size);
    println!("re-sent {resent} bytes across a store outage");
    assert!(resent <= CHUNK, "{resent} bytes sent twice for one outage");
    let stored = Tus::default()
        .get(complete["upload_url"].as_str().unwrap())
        .await;
    assert_eq!(
        sha256_hex(&stored),
        sha,
        "stored bytes differ from the source"
    );
    assert!(
        cluster.logs().contains("storage unavailable"),
        "no node answered that the store was gone"
    );
}
