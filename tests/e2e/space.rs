//! End-to-end tests of the free-space reserve on a real, tiny filesystem: a
//! tmpfs of a few MiB mounted for each test (this needs root, as the
//! project's machines and CI run), holding `spool serve`'s data folder, and
//! filled or freed by the test with a filler file. A chunk that would cross
//! `--min-free-space` is answered 507 `ERR_INSUFFICIENT_STORAGE` with nothing
//! of it stored; `spool upload` shows `stalled` at once, retries at the capped
//! interval rather than in a loop, and completes once space returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_e2e::*;

const MIB: u64 = 1024 * 1024;
/// The tmpfs's size and the server's reserve on it.
const VOLUME: u64 = 64 * MIB;
const RESERVE: u64 = 16 * MIB;

/// `program` as root: itself when this process is root, else through
/// passwordless `sudo -n` (a CI runner that is not root but may sudo).
fn as_root(program: &str) -> Command {
    if rustix::process::geteuid().is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(program);
        c
    }
}

/// A tmpfs mounted on a fresh temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = as_root("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=1777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("mount(8) is part of util-linux");
        assert!(
            out.status.success(),
            "these tests mount a tmpfs and need root or passwordless sudo (as the project's machines and CI have): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes available on it now.
    fn available(&self) -> u64 {
        let s = rustix::fs::statvfs(self.path()).unwrap();
        s.f_bavail * s.f_frsize
    }

    /// Writes a filler file so that about `free` bytes stay available.
    fn fill_to(&self, free: u64) -> PathBuf {
        use std::io::Write as _;
        let path = self
            .path()
            .join(format!("filler-{}", rand::random::<u32>()));
        let mut left = self.available().saturating_sub(free);
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0xa5u8; MIB as usize];
        while left > 0 {
            let n = left.min(MIB) as usize;
            f.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
        f.sync_all().unwrap();
        let got = self.available();
        assert!(got.abs_diff(free) < MIB, "wanted {free} free, have {got}");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, in case a process still holds a file there; the folder is
        // removed after this, once it is an ordinary empty folder again.
        let _ = as_root("umount").arg("-l").arg(self.path()).status();
    }
}

/// `spool serve` with its data folder on `fs` and the test reserve.
fn serve_on(fs: &Tmpfs) -> SpoolServer {
    SpoolServer::start(
        &fs.path().join("data"),
        0,
        &["--min-free-space", &RESERVE.to_string()],
    )
}

/// The server's log without colour codes.
fn log_of(server: &SpoolServer) -> String {
    let raw = std::fs::read_to_string(server.data.with_extension("log")).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many requests the server answered 507 (it logs every 5xx).
fn refusals(server: &SpoolServer) -> usize {
    log_of(server)
        .lines()
        .filter(|l| l.contains("status=507"))
        .count()
}

fn uploads_on_disk(server: &SpoolServer) -> usize {
    std::fs::read_dir(server.data.join("uploads"))
        .unwrap()
        .count()
}

/// A PATCH whose body has no Content-Length, fed in `piece`-sized parts
/// until the server answers; the answer.
async fn streamed_patch(url: &str, offset: u64, data: &[u8], piece: usize) -> reqwest::Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let parts: Vec<Bytes> = data.chunks(piece).map(Bytes::copy_from_slice).collect();
    tokio::spawn(async move {
        for p in parts {
            if tx.send(Ok(p)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    reqwest::Client::new()
        .patch(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
}

/// A completed upload's bytes, read with the API credentials (an upload URL
/// is for uploading).
async fn stored_bytes(url: &str) -> Vec<u8> {
    let resp = reqwest::Client::new()
        .get(url.split('?').next().unwrap())
        .header("authorization", basic_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

async fn code_of(resp: reqwest::Response) -> String {
    let v: serde_json::Value = resp.json().await.unwrap();
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_that_would_cross_the_reserve_is_507_and_stores_nothing() {
    let fs = Tmpfs::mount(VOLUME);
    let server = serve_on(&fs);
    let tus = Tus::default();
    let data = random_bytes(8 * MIB as usize, 21);
    let url = tus
        .create(&server.endpoint(), Some(data.len() as u64))
        .await;
    let id = upload_id(&url);
    let first = 2 * MIB as usize;
    assert_eq!(
        tus.patch(&url, 0, data[..first].to_vec(), None).await,
        (204, Some(first as u64))
    );

    // 20 MiB free: the remaining 6 MiB would leave 14, below the 16 kept.
    let filler = fs.fill_to(20 * MIB);
    let resp = tus
        .http
        .patch(&url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", first)
        .body(data[first..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 507);
    assert_eq!(resp.headers()["retry-after"], "10");
    assert_eq!(resp.headers()["upload-offset"], first.to_string().as_str());
    assert_eq!(code_of(resp).await, "ERR_INSUFFICIENT_STORAGE");
    assert_eq!(tus.head(&url).await.1, Some(first as u64));
    assert_eq!(server.disk_len(&id), first as u64, "no byte of it on disk");

    // Without Content-Length the first MiB fits, so the body is read; the
    // reserve is reached while it streams, and what arrived is discarded.
    let resp = streamed_patch(&url, first as u64, &data[first..], 256 * 1024).await;
    assert_eq!(resp.status(), 507);
    assert_eq!(code_of(resp).await, "ERR_INSUFFICIENT_STORAGE");
    assert_eq!(tus.head(&url).await.1, Some(first as u64));
    assert_eq!(
        server.disk_len(&id),
        first as u64,
        "the partial chunk was kept"
    );
    assert!(
        log_of(&server).contains("reserve reached mid-body"),
        "refused before streaming"
    );
    assert!(
        fs.available() >= RESERVE,
        "the reserve was crossed: {} free",
        fs.available()
    );

    // Creation with upload is refused before anything is created.
    let before = uploads_on_disk(&server);
    let resp = tus
        .http
        .post(server.endpoint())
        .header("tus-resumable", "1.0.0")
        .header("authorization", basic_auth())
        .header("upload-length", 6 * MIB)
        .header("content-type", "application/offset+octet-stream")
        .body(data[first..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 507);
    assert_eq!(code_of(resp).await, "ERR_INSUFFICIENT_STORAGE");
    assert_eq!(uploads_on_disk(&server), before);

    // Space returns: the same upload goes on from where it was.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(
        tus.patch(&url, first as u64, data[first..].to_vec(), None)
            .await,
        (204, Some(data.len() as u64))
    );
    assert!(stored_bytes(&url).await == data, "stored bytes differ");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concatenation_that_would_cross_the_reserve_is_507() {
    let fs = Tmpfs::mount(VOLUME);
    let server = serve_on(&fs);
    let tus = Tus::default();
    let (a, b) = (
        random_bytes(3 * MIB as usize, 1),
        random_bytes(3 * MIB as usize, 2),
    );
    let mut parts = Vec::new();
    for data in [&a, &b] {
        let resp = tus
            .http
            .post(server.endpoint())
            .header("tus-resumable", "1.0.0")
            .header("authorization", basic_auth())
            .header("upload-length", data.len())
            .header("upload-concat", "partial")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let url = resp.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(tus.patch(&url, 0, data.clone(), None).await.0, 204);
        parts.push(url);
    }
    let concat = format!(
        "final;{}",
        parts
            .iter()
            .map(|u| u.split('?').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let finish = || async {
        tus.http
            .post(server.endpoint())
            .header("tus-resumable", "1.0.0")
            .header("authorization", basic_auth())
            .header("upload-concat", concat.as_str())
            .send()
            .await
            .unwrap()
    };
    // The 6 MiB copy would leave 14 MiB of the 20 free, below the 16 kept.
    let filler = fs.fill_to(20 * MIB);
    let before = uploads_on_disk(&server);
    let resp = finish().await;
    assert_eq!(resp.status(), 507);
    assert_eq!(code_of(resp).await, "ERR_INSUFFICIENT_STORAGE");
    assert_eq!(uploads_on_disk(&server), before);

    std::fs::remove_file(filler).unwrap();
    let resp = finish().await;
    assert_eq!(resp.status(), 201);
    let url = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        stored_bytes(&url).await == [a, b].concat(),
        "stored bytes differ"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_to_a_full_server_stalls_at_once_retries_slowly_and_completes() {
    let fs = Tmpfs::mount(VOLUME);
    let server = serve_on(&fs);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("source.bin");
    let size = 6 * MIB as usize;
    let sha = random_file(&file, size, 33);
    // Below the reserve already: no chunk fits.
    let filler = fs.fill_to(RESERVE - 4 * MIB);

    let mut cmd = spool("upload");
    cmd.arg(&file)
        .args(server_args(&server.base))
        .arg("--state-dir")
        .arg(local.path().join("state"))
        .arg("--json");
    let started = Instant::now();
    let mut upload = Proc::spawn(cmd);
    let stalled = upload.wait_line(Duration::from_secs(30), |l| {
        l.contains(r#""event":"stalled""#)
    });
    let to_stall = started.elapsed();
    assert!(
        stalled.contains("ERR_INSUFFICIENT_STORAGE") && stalled.contains("507"),
        "{stalled}"
    );
    // On the first refusal, not after the failure cap (6 failures, ~30 s).
    assert_eq!(refusals(&server), 1, "stalled after more than one 507");
    let first = upload.wait_line(Duration::from_secs(5), |l| {
        l.contains(r#""event":"reconnecting""#)
    });
    let wait: serde_json::Value = serde_json::from_str(&first).unwrap();
    let retry_ms = wait["retry_in_ms"].as_u64().unwrap();
    assert!(retry_ms >= 10_000, "Retry-After is the floor: {first}");

    // It keeps retrying while the disk stays full, at that interval: the
    // second attempt comes no sooner, and nothing in between.
    let second = upload.wait_line(Duration::from_secs(60), |l| {
        l.contains(r#""event":"reconnecting""#)
    });
    let between = started.elapsed() - to_stall;
    assert!(second.contains(r#""attempt":2"#), "{second}");
    assert!(
        between >= Duration::from_millis(retry_ms) - Duration::from_millis(500),
        "retried after {between:?}, announced {retry_ms} ms"
    );
    let refused = refusals(&server);
    assert_eq!(refused, 2, "PATCHes refused while the disk was full");
    // A tight loop would have sent one PATCH per round trip (well over a
    // thousand in that time on loopback).
    println!(
        "space: stalled {to_stall:?} after start; {refused} PATCHes refused in {between:?} (retry every {retry_ms} ms)"
    );

    // Space returns: the upload completes, byte-identical.
    std::fs::remove_file(filler).unwrap();
    let (status, lines) = upload.finish(Duration::from_secs(90));
    assert!(status.success(), "{lines:?}");
    let events = json_lines(&lines);
    let complete = events
        .iter()
        .find(|e| e["event"] == "complete")
        .unwrap_or_else(|| panic!("no complete event: {lines:?}"));
    assert_eq!(complete["sha256"], sha.as_str());
    let stored = stored_bytes(complete["upload_url"].as_str().unwrap()).await;
    assert_eq!(sha256_hex(&stored), sha, "stored bytes differ");
    assert_eq!(
        refusals(&server),
        2,
        "a PATCH was refused after space returned"
    );
}
