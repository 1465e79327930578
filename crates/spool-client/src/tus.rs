//! The upload requests over reqwest, in either [`Wire`] (TUS 1.0.0 or the
//! IETF draft, whose differing headers `wire.rs` builds and reads):
//! discovery (OPTIONS), creation (Spool's on-demand API, or a creation
//! endpoint with the length unknown), HEAD, and PATCH with a body streamed
//! from the journaled pieces on disk (read a block ahead on the blocking
//! pool into reused buffers, feeding the upload's SHA-256 on the way). Every
//! request has a connect timeout;
//! a PATCH also has a no-progress watchdog on its body (a stalled
//! connection is cut, not waited on forever) and a timeout for the answer.

use std::io::{Read, Seek};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::HeaderMap;
use spool_proto::checksum::{Checksum, ChecksumAlgorithm, Hasher};
use spool_proto::ondemand::OnDemandResponse;
use spool_proto::tus as h;
use spool_proto::{ErrorBody, ErrorCode};

use crate::digest::WholeHash;
use crate::error::{ClientError, Result};
use crate::journal::Piece;
use crate::wire::{Decided, Discovery, Protocol, Wire};

/// Timeouts that catch dead connections.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    /// For HEAD/POST answers, and for a PATCH answer once its body is sent.
    pub response: Duration,
    /// A PATCH body that makes no progress for this long is cut.
    pub no_progress: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(30),
            no_progress: Duration::from_secs(15),
        }
    }
}

/// What HEAD says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInfo {
    pub offset: u64,
    pub length: Option<u64>,
    /// Whether the server needs only the remaining bytes to complete (see
    /// [`Wire::head_info`]).
    pub declared: bool,
}

/// A created upload.
#[derive(Debug, Clone)]
pub struct Created {
    pub url: String,
    pub asset_id: Option<String>,
    pub share_url: Option<String>,
}

/// The HTTP side of the client.
#[derive(Clone)]
pub struct Tus {
    http: reqwest::Client,
    pub timeouts: Timeouts,
}

/// The size of the blocks a PATCH body is read and handed to hyper in.
const READ_BLOCK: usize = 1024 * 1024;
/// Buffers kept for reuse: the block hyper is writing, the one read ahead,
/// and a spare for the moment they change hands.
const POOL_KEEP: usize = 4;

/// Read buffers given back by the blocks hyper has written (see [`Block`]).
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A block of a body: `Bytes` own it, and hyper dropping them gives its
/// buffer back to [`POOL`], so a body is read into buffers allocated (and
/// zeroed) once, not a fresh one per block.
struct Block {
    buf: Vec<u8>,
    len: usize,
}

impl Block {
    fn buffer() -> Vec<u8> {
        let pooled = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
        pooled.unwrap_or_else(|| vec![0u8; READ_BLOCK])
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL_KEEP {
            pool.push(buf);
        }
    }
}

/// The answer's `Retry-After`, either form (see [`spool_proto::retry`]).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    spool_proto::retry::parse_retry_after(v, std::time::SystemTime::now())
}

/// The most of an error answer's body that is read: enough for any
/// `{"code","message"}`, and a bound on what a hostile or broken server can
/// make the client hold.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The longest an error answer's body is waited for (or the response
/// timeout, if shorter): a body that never ends must not hang recovery.
pub const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads at most `limit` bytes of a body, for at most `timeout`; what arrived
/// by then, and whether the body was cut short.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> (Vec<u8>, Option<&'static str>) {
    let mut body = Vec::new();
    let read = async {
        while body.len() < limit {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let take = chunk.len().min(limit - body.len());
                    body.extend_from_slice(&chunk[..take]);
                }
                Ok(None) => return None,
                Err(_) => return Some("the body was cut off"),
            }
        }
        Some("the body is too large; only its start was read")
    };
    let cut = match tokio::time::timeout(timeout, read).await {
        Ok(cut) => cut,
        Err(_) => Some("the body did not arrive in time"),
    };
    (body, cut)
}

async fn server_error(resp: reqwest::Response, timeout: Duration) -> ClientError {
    let status = resp.status().as_u16();
    let ra = retry_after(resp.headers());
    // Dropping the response after this closes a connection whose body was
    // not read to its end.
    let (body, cut) = read_bounded(resp, ERROR_BODY_LIMIT, timeout.min(ERROR_BODY_TIMEOUT)).await;
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => (b.error_code(), b.message),
        Err(_) => {
            let start = String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned();
            match cut {
                Some(why) if start.is_empty() => (None, format!("({why})")),
                Some(why) => (None, format!("{start}… ({why})")),
                None => (None, start),
            }
        }
    };
    ClientError::Server {
        status,
        code,
        message,
        retry_after: ra,
    }
}

/// Counts a PATCH body's progress for the watchdog and the sent figure.
#[derive(Debug, Default)]
pub struct BodyProgress {
    pub pulled: AtomicU64,
    last_ms: AtomicI64,
    done_ms: AtomicI64,
}

fn mono_ms(start: Instant) -> i64 {
    start.elapsed().as_millis() as i64
}

/// The blocking side of a body: where it stands in the pieces.
struct BodyReader {
    pieces: std::vec::IntoIter<Piece>,
    cur: Option<(std::fs::File, u64)>,
    pos: u64,
    end: u64,
    whole: Option<WholeHash>,
}

impl BodyReader {
    /// The next block, `None` at the end. Blocking.
    fn next_block(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            if let Some((file, left)) = self.cur.as_mut()
                && *left > 0
            {
                let want = (*left).min(READ_BLOCK as u64).min(self.end - self.pos) as usize;
                let mut buf = Block::buffer();
                file.read_exact(&mut buf[..want])?;
                if let Some(whole) = &self.whole {
                    whole.feed(self.pos, &buf[..want]);
                }
                *left -= want as u64;
                self.pos += want as u64;
                return Ok(Some(Bytes::from_owner(Block { buf, len: want })));
            }
            self.cur = None;
            let piece = self.pieces.next().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "no piece covers the next byte",
                )
            })?;
            if piece.end() <= self.pos {
                continue;
            }
            let skip = self.pos - piece.start;
            let mut file = std::fs::File::open(&piece.path)?;
            file.seek(std::io::SeekFrom::Start(piece.file_offset + skip))?;
            self.cur = Some((file, piece.len - skip));
        }
    }
}

type ReadAhead = tokio::task::JoinHandle<(BodyReader, std::io::Result<Option<Bytes>>)>;

fn read_ahead(mut reader: BodyReader) -> ReadAhead {
    tokio::task::spawn_blocking(move || {
        let block = reader.next_block();
        (reader, block)
    })
}

/// The bytes [start, start+len) of the upload, read from the pieces; each
/// block is offered to `whole` as it is read. The next block is read while
/// hyper writes this one.
pub fn piece_stream(
    pieces: Vec<Piece>,
    start: u64,
    len: u64,
    progress: Arc<BodyProgress>,
    epoch: Instant,
    whole: Option<WholeHash>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    enum Next {
        /// Not polled yet (no runtime needed until then).
        Idle(BodyReader),
        Reading(ReadAhead),
        Done,
    }
    struct St {
        next: Next,
        progress: Arc<BodyProgress>,
        epoch: Instant,
    }
    let reader = BodyReader {
        pieces: pieces.into_iter(),
        cur: None,
        pos: start,
        end: start + len,
        whole,
    };
    let st = St {
        next: Next::Idle(reader),
        progress,
        epoch,
    };
    futures_util::stream::try_unfold(st, |mut st| async move {
        let reading = match std::mem::replace(&mut st.next, Next::Done) {
            Next::Idle(reader) => read_ahead(reader),
            Next::Reading(r) => r,
            Next::Done => return Ok(None),
        };
        let (reader, block) = reading.await.map_err(std::io::Error::other)?;
        match block? {
            Some(block) => {
                st.next = Next::Reading(read_ahead(reader));
                st.progress
                    .pulled
                    .fetch_add(block.len() as u64, Ordering::Relaxed);
                st.progress
                    .last_ms
                    .store(mono_ms(st.epoch), Ordering::Relaxed);
                Ok(Some((block, st)))
            }
            None => {
                st.progress
                    .done_ms
                    .store(mono_ms(st.epoch).max(1), Ordering::Relaxed);
                Ok(None)
            }
        }
    })
}

/// The checksum of bytes [start, start+len) of the pieces, hashed with the
/// same [`Hasher`] the server verifies with (sent as `Upload-Checksum` or
/// `Content-Digest`, per [`Wire`]).
pub async fn checksum_of(
    pieces: &[Piece],
    start: u64,
    len: u64,
    algorithm: ChecksumAlgorithm,
) -> Result<Checksum> {
    use futures_util::TryStreamExt;
    let progress = Arc::new(BodyProgress::default());
    let mut stream = std::pin::pin!(piece_stream(
        pieces.to_vec(),
        start,
        len,
        progress,
        Instant::now(),
        None
    ));
    let mut hasher = Hasher::new(algorithm);
    while let Some(b) = stream.try_next().await.map_err(|e| ClientError::Io {
        path: "queued pieces".into(),
        source: e,
    })? {
        hasher.update(&b);
    }
    Ok(Checksum {
        algorithm,
        digest: hasher.finish(),
    })
}

impl Tus {
    pub fn new(timeouts: Timeouts) -> Result<Tus> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .user_agent(concat!("spool/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::network)?;
        Ok(Tus { http, timeouts })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        match tokio::time::timeout(self.timeouts.response, req.send()).await {
            Ok(Err(e)) if e.is_connect() => Err(ClientError::Unreachable(
                ClientError::network(e).to_string(),
            )),
            Ok(r) => r.map_err(ClientError::network),
            Err(_) => Err(ClientError::Network(format!(
                "no answer within {:?}",
                self.timeouts.response
            ))),
        }
    }

    /// Spool's `POST /v1/on-demand`.
    pub async fn on_demand(
        &self,
        server: &str,
        token_id: &str,
        secret: &str,
        metadata: &serde_json::Value,
    ) -> Result<Created> {
        let url = format!("{}/v1/on-demand", server.trim_end_matches('/'));
        let req = self
            .http
            .post(url)
            .basic_auth(token_id, Some(secret))
            .json(&serde_json::json!({ "inputs": [{"type": "video"}], "metadata": metadata }));
        let resp = self.send(req).await?;
        if resp.status().as_u16() != 201 {
            return Err(server_error(resp, self.timeouts.response).await);
        }
        // The answer is a small JSON object; nothing larger is held.
        let (body, cut) = read_bounded(resp, ERROR_BODY_LIMIT, self.timeouts.response).await;
        if let Some(why) = cut {
            return Err(ClientError::Protocol(format!("on-demand answer: {why}")));
        }
        // The server builds this answer from the same type, so a field it
        // lacks is a protocol error rather than something to guess around.
        let answer: OnDemandResponse = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("unreadable on-demand answer: {e}")))?;
        Ok(Created {
            url: answer.upload_url,
            asset_id: Some(answer.asset_id),
            share_url: Some(answer.share_url),
        })
    }

    /// Creation at `endpoint` of an upload whose length is not known yet
    /// (TUS `Upload-Defer-Length: 1`, or the draft's empty `?0` POST).
    pub async fn create(
        &self,
        wire: Wire,
        endpoint: &str,
        headers: &[(String, String)],
        metadata: &str,
        filename: Option<&str>,
    ) -> Result<Created> {
        let mut req = self
            .http
            .post(endpoint)
            .headers(wire.creation_headers(metadata, filename));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = self.send(req).await?;
        if !wire.created(resp.status().as_u16()) {
            return Err(server_error(resp, self.timeouts.response).await);
        }
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("creation answer without Location".into()))?;
        let url = url::Url::parse(endpoint)
            .and_then(|base| base.join(loc))
            .map_err(|_| ClientError::Protocol("unusable Location".into()))?;
        // Spool's server names the upload's asset on creation (either wire),
        // so the share link can be handed out before the first byte.
        let spool = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Created {
            url: url.to_string(),
            asset_id: spool(h::SPOOL_ASSET_ID),
            share_url: spool(h::SPOOL_SHARE_URL),
        })
    }

    /// Asks `url` (an upload, or a creation endpoint, sent `headers`) which
    /// wire to speak and its maximum size, with one OPTIONS. For
    /// [`Protocol::Tus`] this never fails (a server that does not answer
    /// just states no maximum, as before the draft); otherwise a failure
    /// that says nothing yet (no connection, 408, 429, 5xx) is an error to
    /// retry, and a server without the draft is
    /// [`ClientError::Unsupported`] for [`Protocol::Ietf`].
    pub async fn discover(
        &self,
        url: &str,
        protocol: Protocol,
        headers: &[(String, String)],
    ) -> Result<Discovery> {
        let mut req = self
            .http
            .request(reqwest::Method::OPTIONS, url)
            .headers(crate::wire::discovery_headers(protocol));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = match self.send(req).await {
            Ok(resp) => resp,
            Err(_) if protocol == Protocol::Tus => {
                return Ok(Discovery {
                    wire: Wire::Tus,
                    max_size: None,
                });
            }
            Err(e) => return Err(e),
        };
        match crate::wire::decide(protocol, resp.status().as_u16(), resp.headers())? {
            Decided::Speak(d) => Ok(d),
            Decided::Transient => Err(server_error(resp, self.timeouts.response).await),
        }
    }

    pub async fn head(&self, wire: Wire, url: &str) -> Result<HeadInfo> {
        let resp = self.send(self.http.head(url).headers(wire.tag())).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            // A HEAD answer has no body: Spool's server repeats the code in a
            // header (a terminated upload must not look like an expired one);
            // other TUS servers give only the status.
            let named = resp
                .headers()
                .get(spool_proto::error::ERROR_CODE_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(ErrorCode::parse);
            let code = named.or(match status {
                404 => Some(ErrorCode::UploadNotFound),
                410 => Some(ErrorCode::UploadExpired),
                _ => None,
            });
            return Err(ClientError::Server {
                status,
                code,
                message: "HEAD failed".into(),
                retry_after: retry_after(resp.headers()),
            });
        }
        wire.head_info(resp.headers())
    }

    /// PATCHes bytes [start, start+len) from `pieces`; `upload_length`
    /// declares the length (and, in the draft, completes the upload); the
    /// bytes read are offered to `whole` (see [`WholeHash::feed`]).
    /// Returns the server's new offset.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        wire: Wire,
        url: &str,
        pieces: Vec<Piece>,
        start: u64,
        len: u64,
        upload_length: Option<u64>,
        checksum: Option<Checksum>,
        progress: Arc<BodyProgress>,
        whole: Option<WholeHash>,
    ) -> Result<u64> {
        let epoch = Instant::now();
        progress.last_ms.store(0, Ordering::Relaxed);
        progress.done_ms.store(0, Ordering::Relaxed);
        let body = reqwest::Body::wrap_stream(piece_stream(
            pieces,
            start,
            len,
            progress.clone(),
            epoch,
            whole,
        ));
        let req = self.http.patch(url).headers(wire.patch_headers(
            start,
            len,
            upload_length,
            checksum.as_ref(),
        ));
        let send = req.body(body).send();
        let watchdog = async {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = mono_ms(epoch);
                let done = progress.done_ms.load(Ordering::Relaxed);
                if done > 0 {
                    if now - done > self.timeouts.response.as_millis() as i64 {
                        return format!(
                            "no answer within {:?} after the body was sent",
                            self.timeouts.response
                        );
                    }
                } else if now - progress.last_ms.load(Ordering::Relaxed)
                    > self.timeouts.no_progress.as_millis() as i64
                {
                    return format!(
                        "the connection made no progress for {:?}",
                        self.timeouts.no_progress
                    );
                }
            }
        };
        let resp = tokio::select! {
            r = send => r.map_err(ClientError::network)?,
            why = watchdog => return Err(ClientError::Network(why)),
        };
        progress.done_ms.store(0, Ordering::Relaxed);
        let status = resp.status().as_u16();
        if !wire.appended(status) {
            return Err(server_error(resp, self.timeouts.response).await);
        }
        let offset =
            wire.offset_after_append(resp.headers(), start, len, upload_length.is_some())?;
        if status != 204 {
            // The draft's final answer has a body (the asset, as JSON); it is
            // read (bounded) so the connection can be reused, and not needed:
            // the creation already named the asset.
            let _ = read_bounded(resp, ERROR_BODY_LIMIT, self.timeouts.response).await;
        }
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A checksum over a range that spans two pieces is the header the
    /// server's parser reads back, with the digest of exactly those bytes.
    #[tokio::test]
    async fn checksum_of_a_range_across_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"xxab").unwrap();
        std::fs::write(&b, b"cyy").unwrap();
        let piece = |seq, path: &std::path::Path, file_offset, len, start| Piece {
            seq,
            path: path.to_owned(),
            file_offset,
            len,
            start,
            digest: String::new(),
        };
        let pieces = [piece(0, &a, 2, 2, 0), piece(1, &b, 0, 3, 2)];
        let header = checksum_of(&pieces, 0, 3, ChecksumAlgorithm::Sha1)
            .await
            .unwrap()
            .to_header();
        // SHA-1 of "abc" (FIPS 180).
        assert_eq!(header, "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        let parsed = spool_proto::checksum::parse_checksum(&header).unwrap();
        assert_eq!(parsed.algorithm, ChecksumAlgorithm::Sha1);
        let checksum = checksum_of(&pieces, 1, 2, ChecksumAlgorithm::Sha256)
            .await
            .unwrap();
        let mut h = Hasher::new(ChecksumAlgorithm::Sha256);
        h.update(b"bc");
        assert_eq!(checksum.digest, h.finish());
    }
}
