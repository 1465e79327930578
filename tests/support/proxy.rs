//! A fault-injecting HTTP/1.1 proxy for resumability tests, in the spirit of
//! tusd's Toxiproxy suites: it forwards requests to an upstream server and,
//! on the client-to-server side, understands request boundaries, so it can
//! cut a connection after N body bytes (FIN or RST), stall one, throttle all,
//! corrupt a byte, answer a burst of requests with 503 itself, or buffer each
//! whole request body before forwarding it (as some reverse proxies do). It
//! records every request (with the headers that tell TUS from the IETF
//! draft) and counts the body bytes it read from the client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What happens when a trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close both connections (FIN).
    Close,
    /// Reset the client connection (RST).
    Reset,
    /// Forward nothing more on this connection for the duration, then close it.
    Stall(Duration),
    /// Flip one byte of the body (the server's checksum must catch it).
    Corrupt,
}

/// The proxy's behaviour.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Each fires once, when the count of body bytes read from clients crosses it.
    pub triggers: Vec<(u64, Action)>,
    /// Forwarding rate limit in bytes per second (request bodies).
    pub throttle_bps: Option<u64>,
    /// Answer requests number `start .. start + count` (0-based, counting PATCHes) with 503.
    pub burst_5xx: Option<(usize, usize)>,
    /// Read each whole request body before forwarding any of it.
    pub buffer_bodies: bool,
    /// Hold each request this long before forwarding it (a round trip's
    /// latency, per request, as a far-away server costs).
    pub request_delay: Option<Duration>,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub content_length: Option<u64>,
    pub upload_length: Option<u64>,
    pub upload_offset: Option<u64>,
    /// `Upload-Draft-Interop-Version`: which protocol the request speaks.
    pub interop: Option<u64>,
    pub content_type: Option<String>,
}

impl Seen {
    /// A request of the IETF draft at interop 8 (and an append of it a
    /// `PATCH` with the draft's media type).
    pub fn is_draft(&self) -> bool {
        self.interop == Some(8)
            && (self.method != "PATCH"
                || self.content_type.as_deref() == Some("application/partial-upload"))
    }
}

#[derive(Default)]
pub struct Stats {
    /// PATCH body bytes read from clients.
    pub body_bytes: AtomicU64,
    pub fired: AtomicUsize,
    patches: AtomicUsize,
    pub requests: Mutex<Vec<Seen>>,
}

impl Stats {
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

struct State {
    /// While set, the network is "cut": new requests are refused by closing
    /// their connection.
    down: std::sync::atomic::AtomicBool,
    /// The forwarding rate limit now (bytes per second; 0: none).
    throttle: AtomicU64,
    faults: Faults,
    next_trigger: Mutex<usize>,
    stats: Arc<Stats>,
    upstream: Mutex<Option<SocketAddr>>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> FaultProxy {
        let p = Self::start_unconnected(faults).await;
        p.set_upstream(upstream);
        p
    }

    /// Starts a proxy whose upstream is set later (so a server can be told
    /// the proxy's address before it starts).
    pub async fn start_unconnected(mut faults: Faults) -> FaultProxy {
        faults.triggers.sort_by_key(|(at, _)| *at);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let state = Arc::new(State {
            down: Default::default(),
            throttle: AtomicU64::new(faults.throttle_bps.unwrap_or(0)),
            faults,
            next_trigger: Mutex::new(0),
            stats: stats.clone(),
            upstream: Mutex::new(None),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            let state = accept_state;
            while let Ok((client, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = connection(state, client).await;
                });
            }
        });
        FaultProxy {
            addr,
            stats,
            state,
            task,
        }
    }

    /// Cuts (true) or restores (false) the network through this proxy.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Changes the forwarding rate limit (`None`: full speed) from now on.
    pub fn set_throttle(&self, bps: Option<u64>) {
        self.state
            .throttle
            .store(bps.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.state.upstream.lock().unwrap() = Some(upstream);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn header(head: &str, name: &str) -> Option<u64> {
    header_str(head, name).and_then(|v| v.parse().ok())
}

fn header_str(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The trigger that `[from, to)` of the body byte count crosses, if any (claimed once).
fn claim_trigger(state: &State, from: u64, to: u64) -> Option<(u64, Action)> {
    let mut next = state.next_trigger.lock().unwrap();
    let t = *state.faults.triggers.get(*next)?;
    if t.0 >= from && t.0 < to {
        *next += 1;
        state.stats.fired.fetch_add(1, Ordering::Relaxed);
        return Some(t);
    }
    None
}

async fn connection(state: Arc<State>, client: TcpStream) -> std::io::Result<()> {
    if state.down.load(Ordering::SeqCst) {
        return Ok(());
    }
    let target = state
        .upstream
        .lock()
        .unwrap()
        .ok_or_else(|| std::io::Error::other("proxy has no upstream yet"))?;
    let upstream = TcpStream::connect(target).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let (up_r, mut up_w) = upstream.into_split();
    let client_w = Arc::new(tokio::sync::Mutex::new(client_w));
    // Answers flow back untouched.
    let back = {
        let client_w = client_w.clone();
        tokio::spawn(async move {
            let mut up_r = up_r;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match up_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if client_w.lock().await.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_w.lock().await.shutdown().await;
        })
    };
    let mut reader = BufReader::with_capacity(64 * 1024, client_r);
    let result = async {
        loop {
            // One request head.
            let mut head = Vec::new();
            loop {
                let n = reader.read_until(b'\n', &mut head).await?;
                if n == 0 {
                    return Ok(());
                }
                if head.ends_with(b"\r\n\r\n") {
                    break;
                }
            }
            if state.down.load(Ordering::SeqCst) {
                return Ok(());
            }
            let head_str = String::from_utf8_lossy(&head).into_owned();
            let method = head_str
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let content_length = header(&head_str, "content-length");
            state.stats.requests.lock().unwrap().push(Seen {
                method: method.clone(),
                content_length,
                upload_length: header(&head_str, "upload-length"),
                upload_offset: header(&head_str, "upload-offset"),
                interop: header(&head_str, "upload-draft-interop-version"),
                content_type: header_str(&head_str, "content-type"),
            });
            if method == "PATCH" {
                let n = state.stats.patches.fetch_add(1, Ordering::Relaxed);
                if let Some((start, count)) = state.faults.burst_5xx
                    && n >= start
                    && n < start + count
                {
                    state.stats.fired.fetch_add(1, Ordering::Relaxed);
                    let mut w = client_w.lock().await;
                    w.write_all(&injected_503()).await?;
                    w.shutdown().await?;
                    return Ok(());
                }
            }
            if let Some(d) = state.faults.request_delay {
                tokio::time::sleep(d).await;
            }
            up_w.write_all(&head).await?;
            let mut left = content_length.unwrap_or(0);
            let mut buffered = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            while left > 0 {
                let want = (left as usize).min(buf.len());
                let n = reader.read(&mut buf[..want]).await?;
                if n == 0 || state.down.load(Ordering::SeqCst) {
                    return Ok(());
                }
                left -= n as u64;
                let chunk = &mut buf[..n];
                // Only upload bytes (PATCH bodies) count and trigger faults.
                let trigger = if method == "PATCH" {
                    let before = state
                        .stats
                        .body_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    claim_trigger(&state, before, before + n as u64).map(|(at, a)| (at - before, a))
                } else {
                    None
                };
                if let Some((keep, action)) = trigger {
                    let keep = keep as usize;
                    match action {
                        Action::Corrupt => chunk[keep] ^= 0xff,
                        Action::Close | Action::Reset | Action::Stall(_) => {
                            if !state.faults.buffer_bodies {
                                up_w.write_all(&chunk[..keep]).await?;
                            }
                            if let Action::Stall(d) = action {
                                tokio::time::sleep(d).await;
                            }
                            if action == Action::Reset {
                                // With a zero linger, closing sends RST at once (no blocking).
                                #[allow(deprecated)]
                                let _ = reader.get_ref().as_ref().set_linger(Some(Duration::ZERO));
                            }
                            return Ok(());
                        }
                    }
                }
                if state.faults.buffer_bodies {
                    buffered.extend_from_slice(chunk);
                } else {
                    up_w.write_all(chunk).await?;
                }
                let bps = state.throttle.load(Ordering::Relaxed);
                if bps > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(n as f64 / bps as f64)).await;
                }
            }
            if state.faults.buffer_bodies {
                up_w.write_all(&buffered).await?;
            }
        }
    }
    .await;
    // Closing the upstream side makes the server see the cut body.
    let _ = up_w.shutdown().await;
    drop(up_w);
    back.abort();
    drop(reader);
    result
}

/// The proxy's own 503: a `{"code","message"}` body as the server's, with a
/// Content-Length that is its length, so that a client reads and parses it
/// as it would the server's.
fn injected_503() -> Vec<u8> {
    let body = r#"{"code":"ERR_INTERNAL","message":"injected by the proxy"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    /// The injected answer's Content-Length is its body's length.
    #[test]
    fn the_injected_503_announces_its_body_length() {
        let answer = String::from_utf8(super::injected_503()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let announced: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(announced, body.len(), "{answer:?}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "ERR_INTERNAL");
    }
}
