//! Helpers for Spool's end-to-end suites: start and kill the real `spool`
//! binary on its own data directory and port, run the third-party peers
//! (npm and PyPI packages installed by `scripts/setup.sh`), make random
//! source files, and speak minimal TUS over real HTTP (`tus`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod audio;
pub mod chromium;
pub mod cluster;
pub mod media;
pub mod proxy;
pub mod timeline;
pub mod tus;
pub mod webdriver;

pub use spool_testkit::{Xvfb, duration_s, ffprobe, frame_count, keyframe_times};
pub use tus::{NodeTus, Tus, node_tus};

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

pub const TOKEN_ID: &str = "e2e-token";
pub const TOKEN_SECRET: &str = "e2e-secret-0123456789";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The third-party peers' folder.
pub fn peers() -> PathBuf {
    root().join("tests/peers")
}

/// The folder cargo built this test into, and so the `spool` binaries too:
/// the test executable lives in `<target>/<profile>/deps/`. Only when it does
/// not (a test copied elsewhere) `$CARGO_TARGET_DIR` — absolute, since a
/// relative one names a folder relative to where cargo ran — else `target/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let deps = exe.as_deref().and_then(Path::parent);
    if let Some(deps) = deps.filter(|d| d.file_name().is_some_and(|n| n == "deps"))
        && let Some(target) = deps.parent().and_then(Path::parent)
    {
        return target.to_path_buf();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root().join(d))
        .unwrap_or_else(|| root().join("target"))
}

/// The `spool` binary under test: `$SPOOL_BIN`, else the debug build.
pub fn spool_bin() -> PathBuf {
    let bin = std::env::var_os("SPOOL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/spool"));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p spool-cli` first (make test does)",
        bin.display()
    );
    bin
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes
/// (false, after one last look): a wait on a condition, where a fixed sleep
/// would either waste time or be too short on a loaded machine.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_until`] for async conditions.
pub async fn wait_until_async<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut cond: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `Authorization` header value for the test credentials.
pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_ID}:{TOKEN_SECRET}"))
    )
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process whose stdout lines are collected on a thread.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with piped stdout.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line satisfying `pred`; panics after `timeout`.
    pub fn wait_line(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no matching line within {timeout:?}; saw {:?}; exit {:?}",
                    self.seen,
                    self.child.try_wait()
                ),
            }
        }
    }

    /// Every line printed until the process exits.
    pub fn finish(mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return (status, std::mem::take(&mut self.seen));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "process did not exit within {timeout:?}; saw {:?}",
                    self.seen
                );
            }
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGUSR1 (`spool record`: pause or resume).
    pub fn sigusr1(&self) {
        self.signal("-USR1");
    }

    /// Sends SIGUSR2 (`spool record`: mute or unmute).
    pub fn sigusr2(&self) {
        self.signal("-USR2");
    }

    fn signal(&self, which: &str) {
        let ok = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill {which} failed");
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill -TERM failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where a test's `spool serve` keeps uploaded bytes: files under its data
/// folder (the default), or a private Garage (`--store s3`), so a suite can
/// run the same test on both.
pub enum Backend {
    Fs,
    S3(spool_testkit::garage::Garage),
    /// `--store s3` with `--database-url postgres://…`: the engines
    /// several nodes share.
    S3Pg(
        spool_testkit::garage::Garage,
        spool_testkit::postgres::Postgres,
    ),
}

impl Backend {
    /// A fresh Garage node for the test.
    pub fn s3() -> Backend {
        Backend::S3(spool_testkit::garage::Garage::start_new())
    }

    /// A fresh Garage node and PostgreSQL cluster for the test.
    pub fn s3_pg() -> Backend {
        let (garage, postgres) = std::thread::scope(|s| {
            let pg = s.spawn(spool_testkit::postgres::Postgres::start_new);
            (
                spool_testkit::garage::Garage::start_new(),
                pg.join().expect("starting PostgreSQL"),
            )
        });
        Backend::S3Pg(garage, postgres)
    }

    /// The environment `spool serve` needs for it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Backend::Fs => Vec::new(),
            Backend::S3(g) => g.serve_env(),
            Backend::S3Pg(g, pg) => {
                let mut env = g.serve_env();
                env.push(("SPOOL_DATABASE_URL", pg.url.clone()));
                env
            }
        }
    }

    pub fn garage(&mut self) -> Option<&mut spool_testkit::garage::Garage> {
        match self {
            Backend::Fs => None,
            Backend::S3(g) | Backend::S3Pg(g, _) => Some(g),
        }
    }

    pub fn postgres(&mut self) -> Option<&mut spool_testkit::postgres::Postgres> {
        match self {
            Backend::S3Pg(_, pg) => Some(pg),
            _ => None,
        }
    }
}

/// A running `spool serve`.
pub struct SpoolServer {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub base: String,
    pub data: PathBuf,
}

impl SpoolServer {
    /// Starts `spool serve` on `data` and `port` (0 picks one) with the test
    /// credentials and `extra` arguments; returns once it is listening.
    pub fn start(data: &Path, port: u16, extra: &[&str]) -> SpoolServer {
        Self::start_with_env(data, port, extra, &[])
    }

    /// [`SpoolServer::start`] keeping uploads in `backend`.
    pub fn start_on(backend: &Backend, data: &Path, port: u16, extra: &[&str]) -> SpoolServer {
        let env = backend.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Self::start_with_env(data, port, extra, &env)
    }

    /// [`SpoolServer::start`] with extra environment variables (e.g. a
    /// crash point for durability tests).
    pub fn start_with_env(
        data: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> SpoolServer {
        let mut cmd = Command::new(spool_bin());
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(data)
            .args(["--token-id", TOKEN_ID, "--token-secret", TOKEN_SECRET])
            .args(extra)
            // A test run may ask for more (SPOOL_TEST_SERVER_LOG=debug).
            .env(
                "SPOOL_LOG",
                std::env::var("SPOOL_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            );
        // The server's log goes beside its data directory, for post-mortems.
        let log = data.with_extension("log");
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            cmd.stderr(f);
        }
        let mut proc = Proc::spawn(cmd);
        let line = proc.wait_line(Duration::from_secs(20), |l| {
            l.starts_with("listening on http://")
        });
        let addr: SocketAddr = line
            .trim_start_matches("listening on http://")
            .parse()
            .unwrap();
        SpoolServer {
            proc,
            addr,
            base: format!("http://{addr}"),
            data: data.to_path_buf(),
        }
    }

    /// The creation endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}/v1/uploads", self.base)
    }

    /// `POST /v1/on-demand` with the test credentials; the JSON answer.
    pub async fn on_demand(&self, body: serde_json::Value) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/on-demand", self.base))
            .header("authorization", basic_auth())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// `GET /v1/assets/{id}`.
    pub async fn asset(&self, id: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}/v1/assets/{id}", self.base))
            .header("authorization", basic_auth())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `DELETE /v1/assets/{id}`; the status.
    pub async fn delete_asset(&self, id: &str) -> u16 {
        reqwest::Client::new()
            .delete(format!("{}/v1/assets/{id}", self.base))
            .header("authorization", basic_auth())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The bytes currently on disk for upload `id` (test-only knowledge of
    /// the filesystem store's layout).
    pub fn disk_len(&self, id: &str) -> u64 {
        std::fs::metadata(self.data.join("uploads").join(id))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The server's log so far (stderr, kept beside its data directory),
    /// without colour codes.
    pub fn log(&self) -> String {
        let raw = std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default();
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
}

/// Runs a Node script from the peers' folder.
pub fn node(script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(peers().join(script)).current_dir(peers());
    cmd
}

/// Runs a Python script from the peers' folder with their packages.
pub fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(peers().join(script))
        .env("PYTHONPATH", peers().join(".py"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Writes `size` pseudo-random bytes (from `seed`) to `path`; returns their SHA-256.
pub fn random_file(path: &Path, size: usize, seed: u64) -> String {
    let data = random_bytes(size, seed);
    std::fs::write(path, &data).unwrap();
    sha256_hex(&data)
}

pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `spool SUBCOMMAND` isolated from the caller's environment: no target,
/// credentials or state directory leak in from `SPOOL_*` variables.
pub fn spool(subcommand: &str) -> Command {
    let mut cmd = Command::new(spool_bin());
    cmd.arg(subcommand).env("SPOOL_LOG", "warn");
    for k in [
        "SPOOL_SERVER_URL",
        "SPOOL_TOKEN_ID",
        "SPOOL_TOKEN_SECRET",
        "SPOOL_STATE_DIR",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

/// `spool record --json` with `target` and `extra` arguments, its journal in
/// `state` and its recordings in `output`.
pub fn spool_record(state: &Path, output: &Path, target: &[&str], extra: &[&str]) -> Command {
    let mut cmd = spool("record");
    cmd.args(target)
        .arg("--state-dir")
        .arg(state)
        .arg("--output")
        .arg(output)
        .arg("--json")
        .args(extra);
    cmd
}

/// Whether the server has every byte of the asset: processing, ready, or
/// errored only because the bytes are not a video (random test bytes).
pub fn all_bytes_in(asset: &serde_json::Value) -> bool {
    asset["status"] == "processing"
        || asset["status"] == "ready"
        || (asset["status"] == "errored" && asset["error"]["code"] == "ERR_UNSUPPORTED_MEDIA")
}

/// The last `complete` event among `events`.
pub fn complete(events: &[serde_json::Value]) -> serde_json::Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "complete")
        .cloned()
        .unwrap_or_else(|| panic!("no complete event: {events:?}"))
}

/// `--server URL --token-id … --token-secret …` with the test credentials.
pub fn server_args(base: &str) -> Vec<String> {
    [
        "--server",
        base,
        "--token-id",
        TOKEN_ID,
        "--token-secret",
        TOKEN_SECRET,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Parses `--json` output, one object per line.
pub fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The path and query of `url`, against another base (e.g. past a proxy).
pub fn rebase(url: &str, base: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    format!("{base}{}?{}", u.path(), u.query().unwrap_or_default())
}

/// The id (last path segment) of an upload URL.
pub fn upload_id(url: &str) -> String {
    url.split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Reads all of a child's stderr (for failure messages).
pub fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// The one file in `dir`.
pub fn only_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

/// Runs `spool resume --json [extra…]` on the journal in `state`, expects it to
/// complete, and downloads what the server then holds (through `base`):
/// the `complete` event and the bytes.
pub async fn resume_and_fetch(
    state: &Path,
    base: &str,
    extra: &[&str],
) -> (serde_json::Value, Vec<u8>) {
    let mut resume = spool("resume");
    resume
        .args(["--json", "--state-dir"])
        .arg(state)
        .args(extra);
    let (status, lines) = Proc::spawn(resume).finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    let c = json_lines(&lines)
        .into_iter()
        .rev()
        .find(|e| e["event"] == "complete")
        .unwrap();
    let uploaded = Tus::default()
        .get(&rebase(c["upload_url"].as_str().unwrap(), base))
        .await;
    (c, uploaded)
}

/// A numeric setting from the environment (benchmarks' knobs).
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
