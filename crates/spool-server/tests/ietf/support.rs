//! The suite's fixture and raw client: [`Srv`] is a real [`Server`] bound on
//! 127.0.0.1:0 with its own temporary data directory and a [`ManualClock`];
//! [`Req`] writes an HTTP/1.1 (or 1.0) request byte for byte, and [`Conn`]
//! reads what comes back off the socket — any number of 1xx heads, then the
//! final response and its body (by `Content-Length`, or chunked) — so the
//! interim responses the listener writes are seen exactly as a client sees
//! them. Waiting is always on a condition ([`wait_until`]), never a sleep.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use spool_proto::ietf::{Interop, UploadLimit};
use spool_server::clock::ManualClock;
use spool_server::{Config, Credentials, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const ID: &str = "test-id";
pub const SECRET: &str = "test-secret";
/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
/// The server's store writes a body to disk in pieces of this size, so a
/// file this long proves that many bytes of a request arrived.
pub const FLUSH: usize = 1024 * 1024;

pub fn basic() -> String {
    let pair = format!("{ID}:{SECRET}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `n` bytes without a short period, different per `seed`.
pub fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Path and query of an absolute URL.
pub fn local(url: &str) -> String {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// The upload id in an upload URL.
pub fn id_of(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Polls `cond` until it holds; fails the test after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running server on its own data directory and port.
pub struct Srv {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub dir: tempfile::TempDir,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), spool_server::Error>>>,
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Srv {
    pub async fn start() -> Srv {
        Srv::with(|_| {}).await
    }

    /// A server whose configuration `f` adjusted.
    pub async fn with(f: impl FnOnce(&mut Config)) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let mut cfg = Config::new(dir.path().join("data"));
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.clock = clock.clone();
        cfg.credentials = Some(Credentials {
            token_id: ID.into(),
            token_secret: SECRET.into(),
        });
        cfg.process_jobs = 1;
        f(&mut cfg);
        Srv::run(cfg, dir, clock).await
    }

    async fn run(config: Config, dir: tempfile::TempDir, clock: Arc<ManualClock>) -> Srv {
        let server = Server::bind(config.clone()).await.unwrap();
        let addr = server.addr;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(server.run(async move { token.cancelled().await }));
        Srv {
            addr,
            clock,
            config,
            dir,
            stop,
            task: Some(task),
        }
    }

    /// Stops the server (in-flight requests save what arrived) and serves
    /// the same data directory again on a new port, as after a restart.
    pub async fn restart(mut self, before: impl FnOnce(&std::path::Path)) -> Srv {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        before(&old.path().join("data"));
        Srv::run(self.config.clone(), old, self.clock.clone()).await
    }

    /// Bytes of upload `id` in the server's storage right now.
    pub fn stored(&self, id: &str) -> u64 {
        let path = self.dir.path().join("data").join("uploads").join(id);
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    pub async fn conn(&self) -> Conn {
        Conn::connect(self.addr).await
    }

    /// `req` on a fresh connection, and what came back.
    pub async fn send(&self, req: Req) -> Exchange {
        let mut c = self.conn().await;
        c.send(&req.bytes()).await;
        c.response(req.method == "HEAD").await
    }

    /// A draft creation (`POST /v1/uploads` with the API credentials).
    pub async fn create(&self, v: Interop, complete: bool, body: &[u8]) -> Exchange {
        self.send(Req::create(v, complete).body(body)).await
    }

    /// A new empty upload (`?0`, no body); its local upload URL.
    pub async fn new_upload(&self, v: Interop, extra: &[(&str, &str)]) -> String {
        let mut req = Req::create(v, false);
        for (k, val) in extra {
            req = req.h(k, val);
        }
        let x = self.send(req).await;
        assert_eq!(x.status(), 201, "{x:?}");
        x.location()
    }

    pub async fn head(&self, v: Interop, url: &str) -> Msg {
        self.send(Req::new("HEAD", url).draft(v)).await.fin
    }

    /// The upload's offset as offset retrieval reports it.
    pub async fn offset(&self, v: Interop, url: &str) -> u64 {
        let h = self.head(v, url).await;
        assert!(h.status < 300, "{h:?}");
        h.int("upload-offset")
    }

    pub async fn patch(
        &self,
        v: Interop,
        url: &str,
        offset: u64,
        complete: bool,
        body: &[u8],
    ) -> Exchange {
        self.send(Req::append(v, url, offset, Some(complete)).body(body))
            .await
    }

    /// Like [`Srv::patch`], retried while another writer (one that is
    /// finishing after its client went away) still holds the upload.
    pub async fn patch_when_free(
        &self,
        v: Interop,
        url: &str,
        offset: u64,
        complete: bool,
        body: &[u8],
    ) -> Exchange {
        let deadline = Instant::now() + WAIT;
        loop {
            let x = self.patch(v, url, offset, complete, body).await;
            if x.fin.code() != Some("ERR_UPLOAD_LOCKED") {
                return x;
            }
            assert!(Instant::now() < deadline, "the upload stayed locked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn delete(&self, v: Interop, url: &str) -> Msg {
        self.send(Req::new("DELETE", url).draft(v)).await.fin
    }

    /// The upload's bytes, as the API credentials read them (TUS GET).
    pub async fn bytes(&self, url: &str) -> Vec<u8> {
        let path = url.split('?').next().unwrap_or(url);
        let x = self.send(Req::new("GET", path).basic()).await;
        assert_eq!(x.status(), 200, "{x:?}");
        x.fin.body
    }

    /// `GET /v1/assets/{id}` with the API credentials.
    pub async fn asset(&self, asset_id: &str) -> serde_json::Value {
        let x = self
            .send(Req::new("GET", &format!("/v1/assets/{asset_id}")).basic())
            .await;
        assert_eq!(x.status(), 200, "{x:?}");
        x.fin.json()
    }

    /// `POST /v1/on-demand`: (asset id, local signed upload URL).
    pub async fn on_demand(&self, json: &str) -> (String, String) {
        let req = Req::new("POST", "/v1/on-demand")
            .basic()
            .h("content-type", "application/json")
            .body(json.as_bytes());
        let x = self.send(req).await;
        assert_eq!(x.status(), 201, "{x:?}");
        let j = x.fin.json();
        (
            j["asset_id"].as_str().unwrap().to_owned(),
            local(j["upload_url"].as_str().unwrap()),
        )
    }
}

/// A request, written out byte for byte.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    target: String,
    version: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.to_owned(),
            target: target.to_owned(),
            version: "HTTP/1.1",
            headers: vec![("host".into(), "spool.test".into())],
            body: Vec::new(),
        }
    }

    /// A draft creation with the API credentials.
    pub fn create(v: Interop, complete: bool) -> Req {
        Req::new("POST", "/v1/uploads")
            .basic()
            .draft(v)
            .complete(complete)
    }

    /// A draft append; `complete: None` leaves `Upload-Complete` out.
    pub fn append(v: Interop, url: &str, offset: u64, complete: Option<bool>) -> Req {
        let r = Req::new("PATCH", url)
            .draft(v)
            .h("content-type", "application/partial-upload")
            .h("upload-offset", &offset.to_string());
        match complete {
            Some(c) => r.complete(c),
            None => r,
        }
    }

    pub fn h(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes every field `name`.
    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    pub fn draft(self, v: Interop) -> Req {
        self.h("upload-draft-interop-version", &v.number().to_string())
    }

    pub fn complete(self, c: bool) -> Req {
        self.h("upload-complete", if c { "?1" } else { "?0" })
    }

    pub fn basic(self) -> Req {
        self.h("authorization", &basic())
    }

    pub fn http10(mut self) -> Req {
        self.version = "HTTP/1.0";
        self
    }

    pub fn body(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The head alone: the request line, the fields and the blank line. A
    /// request with a body, or a POST or PATCH, gets its `Content-Length`
    /// unless one (or `Transfer-Encoding`) was set.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} {}\r\n", self.method, self.target, self.version);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        let framed = self.has("content-length") || self.has("transfer-encoding");
        if !framed && (!self.body.is_empty() || matches!(&*self.method, "POST" | "PATCH")) {
            s.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = self.head_bytes();
        b.extend_from_slice(&self.body);
        b
    }
}

/// One response message as it came off the wire (names lowercased).
#[derive(Debug, Clone)]
pub struct Msg {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Msg {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An integer field that must be there.
    pub fn int(&self, name: &str) -> u64 {
        let v = self
            .header(name)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"));
        v.parse().unwrap_or_else(|e| panic!("{name}: {v:?}: {e}"))
    }

    /// `Upload-Complete` as a boolean; `None` when absent.
    pub fn complete(&self) -> Option<bool> {
        self.header("upload-complete").map(|v| match v {
            "?1" => true,
            "?0" => false,
            other => panic!("upload-complete is not an sf-boolean: {other:?}"),
        })
    }

    /// `Upload-Limit`, which must parse as the draft's dictionary.
    pub fn limit(&self) -> UploadLimit {
        let v = self
            .header("upload-limit")
            .unwrap_or_else(|| panic!("no upload-limit in {self:?}"));
        UploadLimit::parse(v).unwrap_or_else(|| panic!("upload-limit {v:?} does not parse"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Spool's error code, which every error answer names in a header (a
    /// HEAD answer has no body to carry it).
    pub fn code(&self) -> Option<&str> {
        self.header(spool_proto::error::ERROR_CODE_HEADER)
    }
}

/// The interim responses of one request and its final response.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub interims: Vec<Msg>,
    pub fin: Msg,
}

impl Exchange {
    pub fn status(&self) -> u16 {
        self.fin.status
    }

    /// The interims with status `status`.
    pub fn interim(&self, status: u16) -> Vec<&Msg> {
        self.interims
            .iter()
            .filter(|m| m.status == status)
            .collect()
    }

    /// The final response's `Location`, as a local URL.
    pub fn location(&self) -> String {
        local(
            self.fin
                .header("location")
                .unwrap_or_else(|| panic!("no location in {self:?}")),
        )
    }
}

/// A raw client connection that keeps what it read and not yet parsed.
pub struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        Conn {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Reads more; 0 at the end of the stream (or a reset).
    async fn fill(&mut self) -> usize {
        let mut chunk = vec![0; 64 * 1024];
        let r = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("the server went quiet");
        let n = r.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next message head (an interim's or a final response's).
    pub async fn next_head(&mut self) -> Msg {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let seen = String::from_utf8_lossy(&self.buf).into_owned();
            assert!(self.fill().await > 0, "connection ended mid-head: {seen:?}");
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let head = String::from_utf8(head).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_owned();
        let status = parts.next().unwrap().parse().unwrap();
        let reason = parts.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Msg {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "connection ended mid-body");
        }
        self.buf.drain(..n).collect()
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8_lossy(&l[..i]).into_owned();
            }
            assert!(self.fill().await > 0, "connection ended mid-chunk");
        }
    }

    /// Reads the body of final response `m` (none for a HEAD request).
    async fn body(&mut self, m: &mut Msg, head_request: bool) {
        if head_request || m.status == 204 || m.status == 304 {
            return;
        }
        if let Some(n) = m.header("content-length") {
            let n = n.parse().unwrap();
            m.body = self.take(n).await;
        } else if m.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = self.line().await;
                let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16);
                let size = size.unwrap();
                let chunk = self.take(size).await;
                m.body.extend_from_slice(&chunk);
                self.line().await;
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill().await > 0 {}
            m.body = std::mem::take(&mut self.buf);
        }
    }

    /// Every interim response, then the final one with its body.
    pub async fn response(&mut self, head_request: bool) -> Exchange {
        let mut interims = Vec::new();
        loop {
            let mut m = self.next_head().await;
            if (100..200).contains(&m.status) {
                interims.push(m);
                continue;
            }
            self.body(&mut m, head_request).await;
            return Exchange { interims, fin: m };
        }
    }

    /// The final response, or `None` when the server closes the connection
    /// without one.
    pub async fn response_or_close(&mut self, head_request: bool) -> Option<Exchange> {
        if self.buf.is_empty() && self.fill().await == 0 {
            return None;
        }
        Some(self.response(head_request).await)
    }

    /// Whether the server closes the connection (within [`WAIT`]) without
    /// sending anything more.
    pub async fn closed(&mut self) -> bool {
        self.fill().await == 0 && self.buf.is_empty()
    }

    /// Drops the connection with a TCP reset (`SO_LINGER` 0), as a network
    /// failure cuts a request off mid-body.
    pub fn reset(self) {
        self.s.set_zero_linger().unwrap();
        drop(self.s);
    }
}
