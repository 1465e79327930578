//! End-to-end tests of the resumable client: `spool upload` and `spool
//! resume` as real processes against `spool serve` and @tus/server (npm),
//! through a fault-injecting proxy. Each fault costs at most one chunk, the
//! stored bytes equal the source, and progress never goes backwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/draft.rs"]
mod draft;
#[path = "client/faults.rs"]
mod faults;
#[path = "client/storage.rs"]
mod storage;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use spool_e2e::proxy::{FaultProxy, Faults};
use spool_e2e::*;

const SIZE: usize = 100_000_000;
const CHUNK: u64 = 8 * 1024 * 1024;

fn spool_upload(file: &Path, state: &Path, target: &[&str], extra: &[&str]) -> Command {
    let mut cmd = spool("upload");
    cmd.arg(file)
        .args(target)
        .arg("--state-dir")
        .arg(state)
        .arg("--json")
        .args(extra);
    cmd
}

/// Progress never goes backwards; returns the complete event.
fn check_events(lines: &[String]) -> serde_json::Value {
    let evs = json_lines(lines);
    let (mut confirmed, mut sent) = (0, 0);
    for e in &evs {
        if e["event"] == "progress" {
            let (c, s) = (
                e["confirmed"].as_u64().unwrap(),
                e["sent"].as_u64().unwrap(),
            );
            assert!(
                c >= confirmed && s >= sent,
                "progress went backwards: {e} after confirmed {confirmed} sent {sent}"
            );
            assert!(s >= c, "sent below confirmed: {e}");
            (confirmed, sent) = (c, s);
        }
    }
    evs.into_iter()
        .rev()
        .find(|e| e["event"] == "complete")
        .unwrap_or_else(|| panic!("no complete event in {lines:?}"))
}

/// `spool serve` behind a fault proxy: the upload URLs it hands out point
/// at the proxy, so every request goes through it.
async fn server_behind_proxy(dir: &Path, faults: Faults) -> (SpoolServer, FaultProxy) {
    server_on_behind_proxy(&Backend::Fs, dir, faults).await
}

/// [`server_behind_proxy`] keeping uploads in `backend`.
async fn server_on_behind_proxy(
    backend: &Backend,
    dir: &Path,
    faults: Faults,
) -> (SpoolServer, FaultProxy) {
    let proxy = FaultProxy::start_unconnected(faults).await;
    let public = proxy.url();
    let server = SpoolServer::start_on(backend, &dir.join("data"), 0, &["--public-url", &public]);
    proxy.set_upstream(server.addr);
    (server, proxy)
}

/// Kills `spool upload` once it reports `at` confirmed bytes; returns the
/// last confirmed figure it printed.
fn kill_upload_at(cmd: Command, at: u64) -> u64 {
    let mut p = Proc::spawn(cmd);
    let line = p.wait_line(Duration::from_secs(120), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v["confirmed"].as_u64())
            .is_some_and(|c| c >= at)
    });
    p.kill9();
    serde_json::from_str::<serde_json::Value>(&line).unwrap()["confirmed"]
        .as_u64()
        .unwrap()
}

fn spool_resume(state: &Path, extra: &[&str]) -> Command {
    let mut cmd = spool("resume");
    cmd.arg("--state-dir").arg(state).arg("--json").args(extra);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_spool_upload_then_resume_sends_nothing_acknowledged_again() {
    let seen = kill_9_then_resume(&["--protocol", "tus"]).await;
    assert!(seen.iter().all(|r| r.interop.is_none()), "{seen:?}");
}

/// `spool upload` with `extra` killed by -9 at 40 MB, then `spool resume`:
/// nothing acknowledged is sent again and the stored bytes are the
/// source's. Returns every request the proxy saw.
async fn kill_9_then_resume(extra: &[&str]) -> Vec<spool_e2e::proxy::Seen> {
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_behind_proxy(
        dir.path(),
        Faults {
            throttle_bps: Some(60_000_000),
            ..Faults::default()
        },
    )
    .await;
    let file = dir.path().join("source.bin");
    let sha = random_file(&file, SIZE, 8);
    let state = dir.path().join("state");
    let target = server_args(&proxy.url());
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let args = [&["--chunk-size", "8388608"], extra].concat();
    let confirmed = kill_upload_at(spool_upload(&file, &state, &target, &args), 40_000_000);
    let before = proxy
        .stats
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed);

    let (status, lines) = Proc::spawn(spool_resume(&state, &[])).finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    let complete = check_events(&lines);
    assert_eq!(complete["sha256"], sha.as_str());
    let resent = proxy
        .stats
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert!(
        resent <= SIZE as u64 - confirmed,
        "resume sent {resent} bytes but only {} were unacknowledged",
        SIZE as u64 - confirmed
    );
    let stored = Tus::default()
        .get(&rebase(
            complete["upload_url"].as_str().unwrap(),
            &server.base,
        ))
        .await;
    assert_eq!(sha256_hex(&stored), sha);
    // The journal says it is done; a second resume has nothing to do.
    let (status, lines) = Proc::spawn(spool_resume(&state, &[])).finish(Duration::from_secs(30));
    assert!(status.success() && lines.is_empty(), "{lines:?}");
    proxy.stats.requests()
}

#[tokio::test(flavor = "multi_thread")]
async fn tus_node_server_plain_upload_and_resume_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let tus = node_tus(&dir.path().join("tus-store"));
    let file = dir.path().join("source.bin");
    let size = 40_000_000;
    let sha = random_file(&file, size, 9);
    let endpoint = tus.endpoint();
    let target = ["--endpoint", endpoint.as_str()];

    let state = dir.path().join("state-plain");
    let (status, lines) =
        Proc::spawn(spool_upload(&file, &state, &target, &[])).finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    let complete = check_events(&lines);
    assert_eq!(complete["sha256"], sha.as_str());
    assert_eq!(
        tus.stored_sha(complete["upload_url"].as_str().unwrap()),
        sha
    );

    // Killed mid-way, resumed from the journal.
    let proxy = FaultProxy::start(
        tus.base.trim_start_matches("http://").parse().unwrap(),
        Faults {
            throttle_bps: Some(30_000_000),
            ..Faults::default()
        },
    )
    .await;
    let endpoint = format!("{}/files", proxy.url());
    let state = dir.path().join("state-kill");
    let confirmed = kill_upload_at(
        spool_upload(
            &file,
            &state,
            &["--endpoint", &endpoint],
            &["--chunk-size", "4194304"],
        ),
        12_000_000,
    );
    assert!(confirmed < size as u64);
    let (status, lines) = Proc::spawn(spool_resume(&state, &[])).finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    let complete = check_events(&lines);
    assert_eq!(
        tus.stored_sha(complete["upload_url"].as_str().unwrap()),
        sha
    );
    drop(tus.proc);
}

/// A producer that appends `n` pieces of `piece` bytes with pauses, like a
/// recorder emitting fragments.
async fn stream_upload(
    client: &spool_client::Client,
    target: spool_client::Target,
    options: spool_client::Options,
    n: usize,
    piece: usize,
) -> (spool_client::Completed, String, Vec<spool_client::Event>) {
    let mut session = client
        .start(
            target,
            spool_client::SourceRecord::Stream {
                label: "test stream".into(),
            },
            options,
        )
        .await
        .unwrap();
    let mut rx = session.take_events().unwrap();
    let collector = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let mut all = Vec::new();
    for i in 0..n {
        let data = random_bytes(piece, 100 + i as u64);
        all.extend_from_slice(&data);
        session.append(Bytes::from(data)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    session.finish().await.unwrap();
    let done = session.wait().await.unwrap();
    (done, sha256_hex(&all), collector.await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn deferred_length_streaming_to_tus_node_server_and_spool() {
    let dir = tempfile::tempdir().unwrap();
    let client = spool_client::Client::open(&dir.path().join("state")).unwrap();
    let tus = node_tus(&dir.path().join("tus-store"));
    let (done, sha, _) = stream_upload(
        &client,
        spool_client::Target::Endpoint {
            url: tus.endpoint(),
            headers: vec![],
        },
        spool_client::Options::default(),
        24,
        700_000,
    )
    .await;
    assert_eq!(done.sha256, sha);
    assert_eq!(tus.stored_sha(&done.upload_url), sha);
    // The session's spooled copies are removed once the server has them.
    let spool = dir.path().join("state").join("spool");
    assert_eq!(
        std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0),
        0,
        "spooled bytes left behind"
    );

    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let target = spool_client::Target::OnDemand {
        server: server.base.clone(),
        token_id: TOKEN_ID.into(),
        token_secret: TOKEN_SECRET.into(),
    };
    let (done, sha, events) = stream_upload(
        &client,
        target,
        spool_client::Options::default(),
        24,
        700_000,
    )
    .await;
    assert_eq!(sha256_hex(&Tus::default().get(&done.upload_url).await), sha);
    assert!(done.share_url.is_some() && done.asset_id.is_some());
    assert!(matches!(
        events.last(),
        Some(spool_client::Event::Complete { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_needs_5_mib_chunks_gets_none_smaller_but_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (server, proxy) = server_behind_proxy(dir.path(), Faults::default()).await;
    let client = spool_client::Client::open(&dir.path().join("state")).unwrap();
    let target = spool_client::Target::OnDemand {
        server: proxy.url(),
        token_id: TOKEN_ID.into(),
        token_secret: TOKEN_SECRET.into(),
    };
    let min = 5 * 1024 * 1024;
    let options = spool_client::Options {
        min_chunk: min,
        ..spool_client::Options::default()
    };
    // 1 MB pieces trickling in, 23 MB in all.
    let (done, sha, _) = stream_upload(&client, target, options, 23, 1_000_000).await;
    assert_eq!(
        sha256_hex(
            &Tus::default()
                .get(&rebase(&done.upload_url, &server.base))
                .await
        ),
        sha
    );
    let patches: Vec<_> = proxy
        .stats
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(patches.len() >= 2, "{patches:?}");
    let (last, rest) = patches.split_last().unwrap();
    for p in rest {
        assert!(
            p.content_length.unwrap() >= min,
            "a non-final PATCH of {:?} bytes",
            p.content_length
        );
    }
    assert_eq!(last.upload_length, Some(23_000_000));
}

/// Starts a stream upload of 3 MB to `server`, waits until the server has
/// it all, and stops the session (as a crash or a closed laptop would).
async fn stopped_stream_upload(
    client: &spool_client::Client,
    target: &spool_client::Target,
) -> (String, Vec<u8>) {
    let session = client
        .start(
            target.clone(),
            spool_client::SourceRecord::Stream {
                label: "gone".into(),
            },
            spool_client::Options::default(),
        )
        .await
        .unwrap();
    let first = random_bytes(3_000_000, 11);
    session.append(Bytes::from(first.clone())).await.unwrap();
    let mut status = session.status();
    tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.confirmed == 3_000_000),
    )
    .await
    .unwrap()
    .unwrap();
    session.stop();
    let id = session.id.clone();
    assert!(matches!(
        session.wait().await,
        Err(spool_client::ClientError::Stopped)
    ));
    (id, first)
}

fn on_demand_target(server: &SpoolServer) -> spool_client::Target {
    spool_client::Target::OnDemand {
        server: server.base.clone(),
        token_id: TOKEN_ID.into(),
        token_secret: TOKEN_SECRET.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_upload_is_created_again_from_local_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--upload-expiry", "2"]);
    let client = spool_client::Client::open(&dir.path().join("state")).unwrap();
    let target = on_demand_target(&server);
    let (id, first) = stopped_stream_upload(&client, &target).await;
    let rec = client.journal().get(&id).await.unwrap().unwrap();
    // No bytes for longer than --upload-expiry: the upload expires (410).
    let url = rec.upload_url.clone().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while Tus::default().head(&url).await.0 != 410 {
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut session = client.resume(&id, Some(target)).await.unwrap();
    let mut rx = session.take_events().unwrap();
    let second = random_bytes(2_000_000, 12);
    session.append(Bytes::from(second.clone())).await.unwrap();
    session.finish().await.unwrap();
    let done = session.wait().await.unwrap();
    let mut recreated = false;
    while let Ok(e) = rx.try_recv() {
        recreated |= matches!(e, spool_client::Event::Recreated { .. });
    }
    assert!(recreated, "the recreation is reported");
    assert_ne!(Some(done.upload_url.clone()), rec.upload_url);
    let whole = [first, second].concat();
    assert_eq!(done.sha256, sha256_hex(&whole));
    assert_eq!(
        sha256_hex(&Tus::default().get(&done.upload_url).await),
        sha256_hex(&whole)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_terminated_on_purpose_is_never_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let state = dir.path().join("state");
    let client = spool_client::Client::open(&state).unwrap();
    let target = on_demand_target(&server);
    let (id, _) = stopped_stream_upload(&client, &target).await;
    // Its asset is deleted on the server: the upload is terminated (410
    // ERR_UPLOAD_TERMINATED), which is not the same as expired.
    let rec = client.journal().get(&id).await.unwrap().unwrap();
    assert_eq!(
        server.delete_asset(rec.asset_id.as_deref().unwrap()).await,
        204
    );
    let session = client.resume(&id, Some(target)).await.unwrap();
    session.finish().await.unwrap();
    let err = session.wait().await.unwrap_err();
    assert!(
        matches!(err, spool_client::ClientError::Terminated(_)),
        "{err}"
    );
    assert_eq!(err.code(), Some(spool_proto::ErrorCode::UploadTerminated));
    let after = client.journal().get(&id).await.unwrap().unwrap();
    assert_eq!(after.state, spool_client::UploadState::Failed);
    assert!(
        after
            .last_error
            .as_deref()
            .unwrap()
            .contains("ERR_UPLOAD_TERMINATED"),
        "{after:?}"
    );
    assert_eq!(
        after.upload_url, rec.upload_url,
        "no new upload was created"
    );
    // The CLI says so and exits non-zero.
    let mut resume = spool("resume");
    resume
        .arg("--state-dir")
        .arg(&state)
        .args(server_args(&server.base));
    let out = resume.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERR_UPLOAD_TERMINATED"), "{err}");
}

#[test]
fn upload_errors_are_clear_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("f.bin");
    random_file(&file, 10, 1);
    for (args, needle) in [
        (vec![file.to_str().unwrap()], "no upload target"),
        (
            vec![
                "/nonexistent/file",
                "--endpoint",
                "http://127.0.0.1:9/files",
            ],
            "nonexistent",
        ),
        (
            vec![
                file.to_str().unwrap(),
                "--endpoint",
                "http://127.0.0.1:9/",
                "--upload-url",
                "http://127.0.0.1:9/x",
            ],
            "one upload target",
        ),
        (
            vec![
                file.to_str().unwrap(),
                "--endpoint",
                "http://127.0.0.1:9/",
                "--chunk-size",
                "lots",
            ],
            "chunk-size",
        ),
    ] {
        let out = Command::new(spool_bin())
            .arg("upload")
            .args(&args)
            .arg("--state-dir")
            .arg(&state)
            .env_remove("SPOOL_SERVER_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_to_a_signed_upload_url_and_list_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let r = server.on_demand(serde_json::json!({})).await;
    let url = r["upload_url"].as_str().unwrap();
    let file = dir.path().join("f.bin");
    let sha = random_file(&file, 3_000_000, 13);
    let state = dir.path().join("state");
    // The recorder holds no secret: only the signed URL.
    let (status, lines) = Proc::spawn(spool_upload(&file, &state, &["--upload-url", url], &[]))
        .finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    assert_eq!(check_events(&lines)["sha256"], sha.as_str());
    let asset = server.asset(r["asset_id"].as_str().unwrap()).await;
    assert!(all_bytes_in(&asset), "{asset}");
    assert_eq!(asset["length"], 3_000_000);

    let out = Command::new(spool_bin())
        .args(["uploads", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "complete");
    assert_eq!(listed[0]["confirmed"], 3_000_000);
    assert!(
        !listed[0]["upload_url"].as_str().unwrap().contains("sig="),
        "listings never show signatures"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_makes_the_session_stall_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let client = spool_client::Client::open(&dir.path().join("state")).unwrap();
    let target = spool_client::Target::OnDemand {
        server: format!("http://127.0.0.1:{}", free_port()),
        token_id: TOKEN_ID.into(),
        token_secret: TOKEN_SECRET.into(),
    };
    let options = spool_client::Options {
        retry: spool_client::policy::RetryPolicy {
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            stall_failures: 3,
            stall_after: Duration::from_secs(60),
        },
        ..spool_client::Options::default()
    };
    let mut session = client
        .start(
            target,
            spool_client::SourceRecord::Stream {
                label: "offline".into(),
            },
            options,
        )
        .await
        .unwrap();
    let mut rx = session.take_events().unwrap();
    session
        .append(Bytes::from_static(b"kept on disk"))
        .await
        .unwrap();
    let stalled = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = rx.recv().await {
            if let spool_client::Event::Stalled { error } = e {
                return error;
            }
        }
        panic!("events ended without a stall");
    })
    .await
    .unwrap();
    assert!(stalled.contains("unreachable"), "{stalled}");
    assert_eq!(
        session.status().borrow().state,
        spool_client::State::Stalled
    );
    session.stop();
    assert!(matches!(
        session.wait().await,
        Err(spool_client::ClientError::Stopped)
    ));
    // Nothing was lost: the journal still holds the upload and its bytes.
    let pending = client.unfinished().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].produced, 12);
}
