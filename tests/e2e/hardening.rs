//! End-to-end tests of issue 9's hardening on the real binaries: one owner
//! per recording (a live `spool record` cannot be finished by `spool
//! resume`), a long recording outliving its upload URL's TTL, one server per
//! data folder, private files, and secrets from files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use spool_e2e::*;

/// A synthetic 320×240 recording at 10 fps in 1 s fragments, `secs` long.
fn synthetic(secs: &str) -> [&str; 8] {
    [
        "--source",
        "synthetic:320x240",
        "--fps",
        "10",
        "--fragment-secs",
        "1",
        "--duration",
        secs,
    ]
}

fn event(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_leaves_a_live_recording_alone_and_it_completes_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let state = dir.path().join("state");
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut rec = Proc::spawn(spool_record(
        &state,
        &dir.path().join("out"),
        &target,
        &synthetic("8"),
    ));
    rec.wait_line(Duration::from_secs(30), |l| {
        event(l).is_some_and(|e| e["event"] == "fragment" && e["index"] == 2)
    });

    // `spool resume` while the recorder is capturing: it says so, exits
    // non-zero, and leaves the upload deferred and unfinished.
    let mut resume = spool("resume");
    resume.args(["--json", "--state-dir"]).arg(&state);
    resume.args(server_args(&server.base));
    let (status, out) = Proc::spawn(resume).finish(Duration::from_secs(30));
    assert!(
        !status.success(),
        "resume must fail while the recorder is alive: {out:?}"
    );
    let skipped = out
        .iter()
        .filter_map(|l| event(l))
        .find(|e| e["event"] == "error")
        .unwrap_or_else(|| panic!("no error line: {out:?}"));
    assert_eq!(skipped["code"], "ERR_RECORDING_IN_PROGRESS", "{skipped}");
    let journal = spool_client::Journal::open(&state).unwrap();
    let rec_entry = journal.list().await.unwrap().pop().unwrap();
    let url = rebase(rec_entry.upload_url.as_deref().unwrap(), &server.base);
    let (code, _, length) = Tus::default().head(&url).await;
    assert_eq!((code, length), (200, None), "the length is still deferred");
    let asset = server.asset(rec_entry.asset_id.as_deref().unwrap()).await;
    assert_ne!(asset["status"], "ready", "{asset}");

    // The recorder goes on and uploads the whole recording.
    let (status, lines) = rec.finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    let c = complete(&json_lines(&lines));
    let local = std::fs::read(c["local_path"].as_str().unwrap()).unwrap();
    let uploaded = Tus::default().get(&url).await;
    assert_eq!(sha256_hex(&uploaded), sha256_hex(&local));
    let path = dir.path().join("uploaded.mp4");
    std::fs::write(&path, &uploaded).unwrap();
    // Every frame recorded is in the upload: 8 s at 10 fps, nothing cut off.
    let frames = c["frames"].as_u64().unwrap();
    assert!(frames >= 78, "{frames} frames");
    assert_eq!(frame_count(&path), frames);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_longer_than_the_upload_ttl_completes() {
    let dir = tempfile::tempdir().unwrap();
    // The upload URL is good for 2 s unused; the recording takes 7 s and
    // keeps sending bytes the whole time.
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--upload-ttl", "2"]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let (status, lines) = Proc::spawn(spool_record(
        &dir.path().join("state"),
        &dir.path().join("out"),
        &target,
        &synthetic("7"),
    ))
    .finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    let c = complete(&json_lines(&lines));
    let asset = spool_e2e::media::wait_asset(
        &server,
        c["asset_id"].as_str().unwrap(),
        Duration::from_secs(10),
        |a| a["status"] != "processing",
    )
    .await;
    assert_eq!(asset["status"], "ready", "{asset}");
    let local = std::fs::read(c["local_path"].as_str().unwrap()).unwrap();
    let uploaded = Tus::default()
        .get(&rebase(c["upload_url"].as_str().unwrap(), &server.base))
        .await;
    assert_eq!(sha256_hex(&uploaded), sha256_hex(&local));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_folder_fails_clearly_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = SpoolServer::start(&data, 0, &[]);
    let mut second = spool("serve");
    second
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stderr(std::process::Stdio::piped());
    let out = second.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another spool server")
            && err.contains(&format!("process {}", server.proc.child.id())),
        "{err}"
    );
    // The first server is untouched.
    let r = server.on_demand(serde_json::json!({})).await;
    assert!(r["upload_url"].is_string());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_data_folder_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = SpoolServer::start(&data, 0, &[]);
    let url = server.on_demand(serde_json::json!({})).await["upload_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _) = Tus::default()
        .patch(&url, 0, b"hello".to_vec(), Some(5))
        .await;
    assert_eq!(code, 204);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data folder");
    assert_eq!(mode(&data.join("uploads")), 0o700, "uploads folder");
    for f in ["spool.db", "spool.db-wal", "server.lock"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&data.join("uploads").join(upload_id(&url))), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_secret_comes_from_a_file_and_is_never_suggested_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A server with generated credentials prints how to try it.
    let mut serve = spool("serve");
    serve
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("SPOOL_TOKEN_SECRET")
        .env_remove("SPOOL_TOKEN_ID");
    let mut serve = Proc::spawn(serve);
    let line = serve.wait_line(Duration::from_secs(20), |l| l.starts_with("listening on "));
    let base = line.trim_start_matches("listening on ").to_owned();
    serve.wait_line(Duration::from_secs(5), |l| l.contains("spool record"));
    for l in &serve.seen {
        assert!(
            !l.contains("--token-secret ") && !l.contains("--token-secret="),
            "the banner suggests a secret on the command line: {l}"
        );
    }
    // `spool upload` with the server's own credentials file.
    let file = dir.path().join("f.bin");
    let sha = random_file(&file, 300_000, 3);
    let mut up = spool("upload");
    up.arg(&file)
        .args(["--server", &base, "--token-secret-file"])
        .arg(data.join("credentials"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--json");
    let (status, lines) = Proc::spawn(up).finish(Duration::from_secs(30));
    assert!(status.success(), "{lines:?}");
    let c = json_lines(&lines).pop().unwrap();
    assert_eq!(c["sha256"], sha);
}
