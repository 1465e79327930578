//! An upload session: the append-while-producing core. A producer appends
//! pieces of bytes (already on disk, or written to the journal's spool
//! directory first) and finally calls `finish`; a worker task sends them in
//! order, one PATCH in flight, coalescing pieces into adaptive chunks, and
//! recovers from any failure by asking the server (HEAD) where it stands.
//! Only what the server acknowledged counts as uploaded; everything stays on
//! disk and in the journal until then.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use spool_proto::ErrorCode;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{ClientError, Result};
use crate::journal::{
    Journal, OptionsRecord, Piece, SourceRecord, TargetRecord, UploadRecord, UploadState,
};
use crate::owner::OwnerLock;
use crate::policy::{ChunkSizer, RetryPolicy};
use crate::tus::{BodyProgress, Timeouts, Tus};

/// Where uploads are created.
#[derive(Clone)]
pub enum Target {
    /// Spool's upload API (`POST /v1/on-demand` with API credentials).
    OnDemand {
        server: String,
        token_id: String,
        token_secret: String,
    },
    /// Any TUS creation endpoint (`Upload-Defer-Length: 1`), with extra headers.
    Endpoint {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// An existing upload URL.
    UploadUrl(String),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::OnDemand {
                server, token_id, ..
            } => write!(f, "OnDemand({server}, {token_id}, <secret>)"),
            Target::Endpoint { url, .. } => write!(f, "Endpoint({url})"),
            Target::UploadUrl(_) => f.write_str("UploadUrl(<signed>)"),
        }
    }
}

impl Target {
    fn record(&self) -> TargetRecord {
        match self {
            Target::OnDemand {
                server, token_id, ..
            } => TargetRecord::OnDemand {
                server: server.clone(),
                token_id: token_id.clone(),
            },
            Target::Endpoint { url, .. } => TargetRecord::Endpoint { url: url.clone() },
            Target::UploadUrl(_) => TargetRecord::Attached,
        }
    }
}

/// Checksum algorithm for `Upload-Checksum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Sha1,
    Sha256,
}

impl Checksum {
    fn name(self) -> &'static str {
        match self {
            Checksum::Sha1 => "sha1",
            Checksum::Sha256 => "sha256",
        }
    }
}

/// Session options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fixed chunk size; `None` adapts to throughput.
    pub chunk_size: Option<u64>,
    /// The smallest non-final PATCH the server accepts (e.g. 5 MiB for S3-backed servers).
    pub min_chunk: u64,
    pub checksum: Option<Checksum>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// Metadata for a created upload (asset metadata on Spool, Upload-Metadata elsewhere).
    pub metadata: Vec<(String, String)>,
}

impl Options {
    fn record(&self) -> OptionsRecord {
        OptionsRecord {
            chunk_size: self.chunk_size,
            min_chunk: self.min_chunk,
            checksum: self.checksum.map(|c| c.name().to_owned()),
            stall_timeout_secs: Some(self.timeouts.no_progress.as_secs().max(1)),
        }
    }

    /// Options restored from the journal, with default policies.
    pub fn from_record(r: &OptionsRecord) -> Options {
        let mut options = Options {
            chunk_size: r.chunk_size,
            min_chunk: r.min_chunk,
            checksum: match r.checksum.as_deref() {
                Some("sha1") => Some(Checksum::Sha1),
                Some("sha256") => Some(Checksum::Sha256),
                _ => None,
            },
            ..Options::default()
        };
        if let Some(s) = r.stall_timeout_secs {
            options.timeouts.no_progress = Duration::from_secs(s.max(1));
        }
        options
    }
}

/// The session's state, as a UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Uploading,
    Reconnecting,
    Stalled,
    Complete,
    Failed,
}

/// What the session reports; `confirmed` and `sent` never decrease.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: State,
    /// Bytes the server acknowledged (its Upload-Offset).
    pub confirmed: u64,
    /// Bytes handed to the network.
    pub sent: u64,
    /// Bytes queued so far.
    pub produced: u64,
    /// The total, once the producer finished.
    pub total: Option<u64>,
    pub attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub last_error: Option<String>,
    /// The share link, once the server created the upload (from Start).
    pub share_url: Option<String>,
}

/// Events for a consumer (the CLI's `--json` lines, the app's UI).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The upload exists on the server (at Start): its asset and share link
    /// can be handed out now. Never carries the signed upload URL.
    Created {
        asset_id: Option<String>,
        share_url: Option<String>,
    },
    Progress {
        confirmed: u64,
        sent: u64,
        total: Option<u64>,
    },
    Reconnecting {
        attempt: u32,
        retry_in_ms: u64,
        error: String,
    },
    Stalled {
        error: String,
    },
    /// The upload was gone from the server (expired or deleted); a new one
    /// was created and every byte is being sent again from local disk.
    Recreated {
        reason: String,
    },
    Complete {
        upload_url: String,
        asset_id: Option<String>,
        share_url: Option<String>,
        bytes: u64,
        sha256: String,
    },
}

/// A finished upload.
#[derive(Debug, Clone)]
pub struct Completed {
    pub upload_url: String,
    pub asset_id: Option<String>,
    pub share_url: Option<String>,
    pub bytes: u64,
    pub sha256: String,
}

struct Produced {
    pieces: Vec<Piece>,
    end: u64,
    finished: bool,
    whole: Sha256,
    sha256: Option<String>,
}

struct Shared {
    id: String,
    journal: Journal,
    produced: Mutex<Produced>,
    changed: Notify,
    cancel: CancellationToken,
    finished: AtomicBool,
}

/// A running upload session.
pub struct Session {
    pub id: String,
    shared: Arc<Shared>,
    status: watch::Receiver<Status>,
    events: Option<mpsc::Receiver<Event>>,
    task: tokio::task::JoinHandle<Result<Completed>>,
}

const EVENT_QUEUE: usize = 256;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

fn sha256_hex(d: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(d))
}

/// Reads `[offset, offset+len)` of `path`, feeding it to `f` block by block.
fn read_range(path: &Path, offset: u64, len: u64, mut f: impl FnMut(&[u8])) -> Result<()> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| ClientError::io(path, e))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| ClientError::io(path, e))?;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])
            .map_err(|e| ClientError::io(path, e))?;
        f(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

impl Session {
    /// Starts a new upload to `target` for bytes from `source`.
    pub async fn start(
        journal: Journal,
        target: Target,
        source: SourceRecord,
        options: Options,
    ) -> Result<Session> {
        let id = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            hex::encode(rand::random::<[u8; 4]>())
        );
        // Owned before it exists in the journal, so no `resume` can ever
        // see it unowned while its producer lives.
        let owner = OwnerLock::acquire(journal.dir(), &id)?;
        journal
            .insert(
                &id,
                &target.record(),
                &source,
                &options.record(),
                options
                    .metadata
                    .iter()
                    .find(|(k, _)| k == "title")
                    .map(|(_, v)| v.as_str()),
            )
            .await?;
        let rec = journal
            .get(&id)
            .await?
            .ok_or_else(|| ClientError::Internal("journal lost a new upload".into()))?;
        Self::spawn(
            journal,
            rec,
            Vec::new(),
            target,
            options,
            Sha256::new(),
            owner,
        )
    }

    /// Continues a journaled upload. `target` supplies credentials in case a
    /// new upload must be created (a journal never stores secrets); without
    /// it the journaled target is used as far as it goes.
    /// Fails with [`ClientError::RecordingInProgress`], touching nothing,
    /// while another live process (or session) owns the entry.
    pub async fn resume(journal: Journal, id: &str, target: Option<Target>) -> Result<Session> {
        let owner = OwnerLock::acquire(journal.dir(), id)?;
        let rec = journal
            .get(id)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("no upload {id} in the journal")))?;
        if rec.state == UploadState::Complete {
            return Err(ClientError::Invalid(format!(
                "upload {id} is already complete"
            )));
        }
        let pieces = journal.pieces(id).await?;
        // Every byte not yet acknowledged must still be the byte that was queued.
        let (check_pieces, acked, finished) = (pieces.clone(), rec.acked, rec.finished);
        let whole = tokio::task::spawn_blocking(move || -> Result<Sha256> {
            let mut whole = Sha256::new();
            for p in &check_pieces {
                let mut h = Sha256::new();
                let rebuild = !finished;
                if p.end() <= acked && !rebuild {
                    continue;
                }
                read_range(&p.path, p.file_offset, p.len, |b| {
                    h.update(b);
                    if rebuild {
                        whole.update(b);
                    }
                })
                .map_err(|e| {
                    ClientError::LocalDataChanged(format!(
                        "piece {} ({}): {e}",
                        p.seq,
                        p.path.display()
                    ))
                })?;
                if hex::encode(h.finalize()) != p.sha256 {
                    return Err(ClientError::LocalDataChanged(format!(
                        "piece {} of {} no longer matches its SHA-256",
                        p.seq,
                        p.path.display()
                    )));
                }
            }
            Ok(whole)
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))?;
        let whole = match whole {
            Ok(w) => w,
            Err(e) => {
                journal
                    .set_state(id, UploadState::Failed, Some(&e.to_string()))
                    .await?;
                return Err(e);
            }
        };
        let target = match (target, &rec.target, &rec.upload_url) {
            (Some(t), _, _) => t,
            (None, TargetRecord::Endpoint { url }, _) => Target::Endpoint {
                url: url.clone(),
                headers: Vec::new(),
            },
            (None, _, Some(url)) => Target::UploadUrl(url.clone()),
            (None, TargetRecord::OnDemand { .. }, None) => {
                return Err(ClientError::Invalid("the upload was never created and the API secret is needed to create it: pass --server, --token-id and --token-secret-file (or SPOOL_TOKEN_SECRET)".into()));
            }
            (None, TargetRecord::Attached, None) => {
                return Err(ClientError::Internal(
                    "attached upload without a URL".into(),
                ));
            }
        };
        let options = Options::from_record(&rec.options);
        Self::spawn(journal, rec, pieces, target, options, whole, owner)
    }

    fn spawn(
        journal: Journal,
        rec: UploadRecord,
        pieces: Vec<Piece>,
        target: Target,
        options: Options,
        whole: Sha256,
        owner: OwnerLock,
    ) -> Result<Session> {
        let end = pieces.last().map(Piece::end).unwrap_or(0);
        let shared = Arc::new(Shared {
            id: rec.id.clone(),
            journal,
            produced: Mutex::new(Produced {
                pieces,
                end,
                finished: rec.finished,
                whole,
                sha256: rec.sha256.clone(),
            }),
            changed: Notify::new(),
            cancel: CancellationToken::new(),
            finished: AtomicBool::new(rec.finished),
        });
        let status = Status {
            state: State::Uploading,
            confirmed: rec.acked,
            sent: rec.acked,
            produced: end,
            total: rec.finished.then_some(end),
            attempt: 0,
            next_retry_in_ms: None,
            last_error: None,
            share_url: rec.share_url.clone(),
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let tus = Tus::new(options.timeouts.clone())?;
        let worker = Worker {
            shared: shared.clone(),
            tus,
            target,
            options: options.clone(),
            rec,
            status: status_tx,
            events: events_tx,
            last_progress: Instant::now() - PROGRESS_EVERY,
            _owner: owner,
        };
        let span = tracing::info_span!("upload", id = %shared.id);
        let task = tokio::spawn(tracing::Instrument::instrument(worker.run(), span));
        Ok(Session {
            id: shared.id.clone(),
            shared,
            status: status_rx,
            events: Some(events_rx),
            task,
        })
    }

    /// The live status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Takes the event stream (once).
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<Event>> {
        self.events.take()
    }

    /// Bytes queued so far.
    pub async fn produced(&self) -> u64 {
        self.shared.produced.lock().await.end
    }

    /// Queues `data`: written to the journal's spool directory and fsynced
    /// before it is journaled and may be sent.
    pub async fn append(&self, data: Bytes) -> Result<()> {
        let seq = self.shared.produced.lock().await.pieces.len();
        let dir = self
            .shared
            .journal
            .dir()
            .join("spool")
            .join(&self.shared.id);
        let path = dir.join(format!("{seq:08}.bin"));
        let p = path.clone();
        let d = data.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir).map_err(|e| ClientError::io(&dir, e))?;
            let mut f = std::fs::File::create(&p).map_err(|e| ClientError::io(&p, e))?;
            f.write_all(&d).map_err(|e| ClientError::io(&p, e))?;
            f.sync_all().map_err(|e| ClientError::io(&p, e))
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))??;
        self.append_file(&path, 0, data.len() as u64).await
    }

    /// Queues `[offset, offset+len)` of a file that is already durable on
    /// disk (a finished fragment, a slice of a file) and stays there until
    /// the upload completes.
    pub async fn append_file(&self, path: &Path, offset: u64, len: u64) -> Result<()> {
        if self.shared.finished.load(Ordering::Relaxed) {
            return Err(ClientError::Invalid(
                "the upload is finished; nothing more can be appended".into(),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        let mut produced = self.shared.produced.lock().await;
        let whole = produced.whole.clone();
        let p: PathBuf = path.to_path_buf();
        let (sha, whole) = tokio::task::spawn_blocking(move || -> Result<(String, Sha256)> {
            let mut h = Sha256::new();
            let mut whole = whole;
            read_range(&p, offset, len, |b| {
                h.update(b);
                whole.update(b);
            })?;
            Ok((hex::encode(h.finalize()), whole))
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))??;
        let piece = Piece {
            seq: produced.pieces.len() as u64,
            path: path.to_path_buf(),
            file_offset: offset,
            len,
            start: produced.end,
            sha256: sha,
        };
        self.shared
            .journal
            .add_piece(&self.shared.id, &piece)
            .await?;
        produced.end = piece.end();
        produced.whole = whole;
        produced.pieces.push(piece);
        drop(produced);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Declares that nothing more will be appended: the length is known.
    pub async fn finish(&self) -> Result<()> {
        let mut produced = self.shared.produced.lock().await;
        if produced.finished {
            return Ok(());
        }
        let sha = hex::encode(produced.whole.clone().finalize());
        self.shared
            .journal
            .set_finished(&self.shared.id, &sha)
            .await?;
        produced.finished = true;
        produced.sha256 = Some(sha);
        self.shared.finished.store(true, Ordering::Relaxed);
        drop(produced);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Stops the worker; the journal keeps everything for a later resume.
    pub fn stop(&self) {
        self.shared.cancel.cancel();
    }

    /// A handle that stops the worker, usable after `wait` took the session.
    pub fn stop_handle(&self) -> CancellationToken {
        self.shared.cancel.clone()
    }

    /// Waits for the upload to complete (or fail, or be stopped).
    pub async fn wait(self) -> Result<Completed> {
        self.task
            .await
            .map_err(|e| ClientError::Internal(e.to_string()))?
    }
}

/// The journaled SHA-256 of a whole piece, for callers that hash elsewhere.
pub fn sha256_of(data: &[u8]) -> String {
    sha256_hex(data)
}

struct Worker {
    shared: Arc<Shared>,
    tus: Tus,
    target: Target,
    options: Options,
    rec: UploadRecord,
    status: watch::Sender<Status>,
    events: mpsc::Sender<Event>,
    last_progress: Instant,
    /// This process's ownership of the journal entry, held until the
    /// worker ends (released by the kernel if the process dies first).
    _owner: OwnerLock,
}

/// What to do after a failure.
enum Recovery {
    /// Ask the server where it stands, after `delay`.
    Head {
        delay: Duration,
        error: String,
        counts: bool,
    },
    /// Send the same chunk again after `delay` (e.g. checksum mismatch).
    Retry { delay: Duration, error: String },
    /// The server cannot take bytes for a while (507, its disk is full):
    /// report stalled now, and ask again (HEAD) after `delay`.
    Stall { delay: Duration, error: String },
    /// The upload is gone from the server.
    Gone(String),
    /// Cannot go on.
    Fatal(ClientError),
}

struct Failures {
    count: u32,
    since: Option<Instant>,
    stalled: bool,
}

impl Worker {
    fn emit(&self, e: Event) {
        // Progress may be dropped when the consumer lags; other events wait.
        if let Err(mpsc::error::TrySendError::Full(e)) = self.events.try_send(e)
            && !matches!(e, Event::Progress { .. })
        {
            let tx = self.events.clone();
            tokio::spawn(async move {
                let _ = tx.send(e).await;
            });
        }
    }

    fn publish(&mut self, force: bool, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
        if force || self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            let s = self.status.borrow().clone();
            self.emit(Event::Progress {
                confirmed: s.confirmed,
                sent: s.sent,
                total: s.total,
            });
        }
    }

    async fn set_state(&mut self, state: State, error: Option<String>) {
        let js = match state {
            State::Stalled => UploadState::Stalled,
            State::Complete => UploadState::Complete,
            State::Failed => UploadState::Failed,
            State::Uploading | State::Reconnecting => UploadState::Uploading,
        };
        if let Err(e) = self
            .shared
            .journal
            .set_state(&self.shared.id, js, error.as_deref())
            .await
        {
            tracing::warn!(error = %e, "journal state");
        }
        self.status.send_modify(|s| {
            s.state = state;
            s.last_error = error;
        });
    }

    async fn run(mut self) -> Result<Completed> {
        match self.run_inner().await {
            Ok(c) => Ok(c),
            Err(ClientError::Stopped) => Err(ClientError::Stopped),
            Err(e) => {
                self.set_state(State::Failed, Some(e.to_string())).await;
                Err(e)
            }
        }
    }

    async fn sleep(&self, d: Duration) -> Result<()> {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => Err(ClientError::Stopped),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Creates the upload resource, retrying only what cannot have created
    /// one already (a connection never made, an explicit 5xx/429 answer).
    async fn create(&mut self) -> Result<String> {
        let mut failures = Failures {
            count: 0,
            since: None,
            stalled: false,
        };
        loop {
            let result = match &self.target {
                Target::OnDemand {
                    server,
                    token_id,
                    token_secret,
                } => {
                    let md: serde_json::Map<String, serde_json::Value> = self
                        .options
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect();
                    self.tus
                        .on_demand(
                            server,
                            token_id,
                            token_secret,
                            &serde_json::Value::Object(md),
                        )
                        .await
                }
                Target::Endpoint { url, headers } => {
                    let md: Vec<(String, Vec<u8>)> = self
                        .options
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                        .collect();
                    self.tus
                        .create(url, headers, &spool_proto::metadata::encode(&md))
                        .await
                }
                Target::UploadUrl(url) => {
                    // Attached, not created: journal it all the same, so a
                    // crash before the first PATCH can still be resumed.
                    let url = url.clone();
                    self.shared
                        .journal
                        .set_created(&self.shared.id, &url, None, None)
                        .await?;
                    self.rec.upload_url = Some(url.clone());
                    return Ok(url);
                }
            };
            match result {
                Ok(c) => {
                    self.shared
                        .journal
                        .set_created(
                            &self.shared.id,
                            &c.url,
                            c.asset_id.as_deref(),
                            c.share_url.as_deref(),
                        )
                        .await?;
                    self.rec.upload_url = Some(c.url.clone());
                    self.emit(Event::Created {
                        asset_id: c.asset_id.clone(),
                        share_url: c.share_url.clone(),
                    });
                    let link = c.share_url.clone();
                    self.status.send_modify(|s| s.share_url = link);
                    self.rec.asset_id = c.asset_id;
                    self.rec.share_url = c.share_url;
                    return Ok(c.url);
                }
                Err(e) => {
                    let safe = matches!(&e, ClientError::Unreachable(_))
                        || matches!(e.status(), Some(429 | 500 | 502 | 503 | 504 | 507));
                    if !safe {
                        return Err(match e {
                            ClientError::Network(m) => ClientError::Network(format!(
                                "{m}; the upload may or may not have been created, so it is not created again blindly: run `spool resume` to try again"
                            )),
                            e => e,
                        });
                    }
                    let retry_after = if let ClientError::Server { retry_after, .. } = &e {
                        *retry_after
                    } else {
                        None
                    };
                    // Same reporting as for PATCHes: reconnecting, then
                    // stalled after the cap (at once for 507), retrying
                    // until stopped.
                    if e.status() == Some(507) {
                        let delay = self.options.retry.stalled_delay(retry_after);
                        self.note_stall(&mut failures, &e.to_string(), delay).await;
                        self.sleep(delay).await?;
                        continue;
                    }
                    let delay = if failures.stalled {
                        self.options.retry.max_delay
                    } else {
                        self.options.retry.delay(failures.count + 1, retry_after)
                    };
                    self.note_failure(&mut failures, &e.to_string(), delay)
                        .await;
                    self.sleep(delay).await?;
                }
            }
        }
    }

    fn classify(&self, e: ClientError, failures: &Failures) -> Recovery {
        let attempt = failures.count + 1;
        let backoff = |ra: Option<Duration>| {
            if failures.stalled {
                self.options.retry.max_delay
            } else {
                self.options.retry.delay(attempt, ra)
            }
        };
        match e {
            // Terminated on purpose (a TUS DELETE, or its asset deleted):
            // re-creating it would resurrect what someone deleted.
            ClientError::Server {
                code: Some(ErrorCode::UploadTerminated),
                message,
                ..
            } => Recovery::Fatal(ClientError::Terminated(message)),
            ClientError::Server {
                status: 404 | 410, ..
            } => Recovery::Gone(e.to_string()),
            ClientError::Server {
                code: Some(ErrorCode::SignatureExpired),
                ..
            } => Recovery::Gone(e.to_string()),
            ClientError::Server { status: 409, .. } => Recovery::Head {
                delay: Duration::ZERO,
                error: e.to_string(),
                counts: true,
            },
            ClientError::Server {
                status: 423,
                retry_after,
                ..
            } => Recovery::Head {
                delay: retry_after
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(10)),
                error: e.to_string(),
                counts: true,
            },
            ClientError::Server { status: 460, .. } => Recovery::Retry {
                delay: Duration::ZERO,
                error: e.to_string(),
            },
            ClientError::Server {
                status: 408 | 429,
                retry_after,
                ..
            } => Recovery::Head {
                delay: backoff(retry_after),
                error: e.to_string(),
                counts: true,
            },
            ClientError::Server {
                code: Some(ErrorCode::UploadInterrupted),
                ..
            } => Recovery::Head {
                delay: Duration::ZERO,
                error: e.to_string(),
                counts: true,
            },
            ClientError::Server {
                status: 507,
                retry_after,
                ..
            } => Recovery::Stall {
                delay: self.options.retry.stalled_delay(retry_after),
                error: e.to_string(),
            },
            ClientError::Server {
                status,
                retry_after,
                ..
            } if status >= 500 => Recovery::Head {
                delay: backoff(retry_after),
                error: e.to_string(),
                counts: true,
            },
            ClientError::Server { .. } => Recovery::Fatal(e),
            ClientError::Network(_) | ClientError::Unreachable(_) => Recovery::Head {
                delay: backoff(None),
                error: e.to_string(),
                counts: true,
            },
            e => Recovery::Fatal(e),
        }
    }

    async fn note_failure(&mut self, failures: &mut Failures, error: &str, delay: Duration) {
        failures.count += 1;
        let since = *failures.since.get_or_insert_with(Instant::now);
        let policy = &self.options.retry;
        if !failures.stalled
            && (failures.count >= policy.stall_failures || since.elapsed() >= policy.stall_after)
        {
            failures.stalled = true;
            tracing::warn!(%error, "upload stalled; retrying at the capped interval");
            // State first, then the event: whoever reacts to the event sees it.
            self.set_state(State::Stalled, Some(error.to_owned())).await;
            self.emit(Event::Stalled {
                error: error.to_owned(),
            });
        } else if !failures.stalled {
            self.set_state(State::Reconnecting, Some(error.to_owned()))
                .await;
        }
        self.emit(Event::Reconnecting {
            attempt: failures.count,
            retry_in_ms: delay.as_millis() as u64,
            error: error.to_owned(),
        });
        self.status.send_modify(|s| {
            s.attempt = failures.count;
            s.next_retry_in_ms = Some(delay.as_millis() as u64);
        });
    }

    /// A failure that will not clear within seconds (507: the server's disk
    /// is full): stalled at once, not after the failure cap; then counted
    /// like any failure, and reset by the next success.
    async fn note_stall(&mut self, failures: &mut Failures, error: &str, delay: Duration) {
        failures.since.get_or_insert_with(Instant::now);
        if !failures.stalled {
            failures.stalled = true;
            tracing::warn!(%error, "upload stalled: the server has no space; retrying at the capped interval");
            self.set_state(State::Stalled, Some(error.to_owned())).await;
            self.emit(Event::Stalled {
                error: error.to_owned(),
            });
        }
        self.note_failure(failures, error, delay).await;
    }

    /// Whether every byte is still on local disk as queued.
    async fn all_bytes_on_disk(&self) -> bool {
        let pieces = self.shared.produced.lock().await.pieces.clone();
        tokio::task::spawn_blocking(move || {
            pieces.iter().all(|p| {
                let mut h = Sha256::new();
                read_range(&p.path, p.file_offset, p.len, |b| h.update(b)).is_ok()
                    && hex::encode(h.finalize()) == p.sha256
            })
        })
        .await
        .unwrap_or(false)
    }

    async fn run_inner(&mut self) -> Result<Completed> {
        let mut url = match self.rec.upload_url.clone() {
            Some(u) => u,
            None => self.create().await?,
        };
        let mut sizer = ChunkSizer::new(self.options.chunk_size, self.options.min_chunk);
        sizer.max_size = self.tus.max_size(&url).await;
        let mut acked = self.rec.acked;
        let mut declared = self.rec.length_declared;
        let mut shown_confirmed = acked;
        let mut shown_sent = acked;
        // A resumed or attached session first asks where the server stands.
        let mut need_head = self.rec.acked > 0
            || self.rec.state != UploadState::Creating
            || matches!(self.target, Target::UploadUrl(_));
        let mut failures = Failures {
            count: 0,
            since: None,
            stalled: false,
        };
        self.set_state(State::Uploading, None).await;

        loop {
            if self.shared.cancel.is_cancelled() {
                return Err(ClientError::Stopped);
            }
            let (pieces, end, finished, sha) = {
                let p = self.shared.produced.lock().await;
                (p.pieces.clone(), p.end, p.finished, p.sha256.clone())
            };
            if need_head {
                match self.tus.head(&url).await {
                    Ok(info) => {
                        need_head = false;
                        if info.offset > end {
                            return Err(ClientError::Protocol(format!(
                                "the server has {} bytes but only {end} were queued",
                                info.offset
                            )));
                        }
                        if info.offset < acked {
                            tracing::warn!(
                                server = info.offset,
                                journal = acked,
                                "the server is behind what it acknowledged; sending again from its offset"
                            );
                        }
                        acked = info.offset;
                        declared = info.length.is_some();
                        if let Some(l) = info.length
                            && (l < end || (finished && l != end))
                        {
                            return Err(ClientError::Protocol(format!(
                                "the server's Upload-Length {l} does not match the {end} bytes queued"
                            )));
                        }
                        self.shared
                            .journal
                            .set_acked(&self.shared.id, acked, declared)
                            .await?;
                    }
                    Err(e) => {
                        match self.classify(e, &failures) {
                            Recovery::Gone(why) => {
                                url = self.recreate(&why).await?;
                                acked = 0;
                                declared = false;
                                need_head = false;
                            }
                            Recovery::Fatal(e) => return Err(e),
                            Recovery::Head { delay, error, .. }
                            | Recovery::Retry { delay, error } => {
                                self.note_failure(&mut failures, &error, delay).await;
                                self.sleep(delay).await?;
                            }
                            Recovery::Stall { delay, error } => {
                                self.note_stall(&mut failures, &error, delay).await;
                                self.sleep(delay).await?;
                            }
                        }
                        continue;
                    }
                }
            }
            shown_confirmed = shown_confirmed.max(acked);
            shown_sent = shown_sent.max(shown_confirmed);
            let (c, s) = (shown_confirmed, shown_sent);
            self.publish(false, |st| {
                st.confirmed = c;
                st.sent = s;
                st.produced = end;
                st.total = finished.then_some(end);
            });

            if finished && acked == end && declared {
                let sha = sha.unwrap_or_default();
                self.set_state(State::Complete, None).await;
                // Bytes the session copied into its spool directory are no
                // longer needed once the server has them (a producer's own
                // files are never touched).
                let spooled = self
                    .shared
                    .journal
                    .dir()
                    .join("spool")
                    .join(&self.shared.id);
                let _ = tokio::fs::remove_dir_all(spooled).await;
                self.publish(true, |_| {});
                let done = Completed {
                    upload_url: url.clone(),
                    asset_id: self.rec.asset_id.clone(),
                    share_url: self.rec.share_url.clone(),
                    bytes: end,
                    sha256: sha,
                };
                self.emit(Event::Complete {
                    upload_url: done.upload_url.clone(),
                    asset_id: done.asset_id.clone(),
                    share_url: done.share_url.clone(),
                    bytes: done.bytes,
                    sha256: done.sha256.clone(),
                });
                return Ok(done);
            }

            let available = end - acked;
            let mut size = available.min(sizer.target());
            if let Some(max) = sizer.max_size {
                if end > max {
                    return Err(ClientError::Invalid(format!(
                        "{end} bytes exceed the server's maximum upload size of {max}"
                    )));
                }
                size = size.min(max - acked);
            }
            let is_last = finished && acked + size == end;
            // Wait for more bytes unless this can be sent now: a non-final
            // chunk must reach the server's minimum.
            if (size == 0 && (declared || !finished))
                || (!is_last && size < self.options.min_chunk.max(1))
            {
                tokio::select! {
                    _ = self.shared.cancel.cancelled() => return Err(ClientError::Stopped),
                    _ = self.shared.changed.notified() => {}
                }
                continue;
            }
            let upload_length = (is_last && !declared).then_some(end);
            let checksum = match self.options.checksum {
                Some(c) if size > 0 => {
                    Some(crate::tus::checksum_of(&pieces, acked, size, c.name()).await?)
                }
                _ => None,
            };
            let progress = Arc::new(BodyProgress::default());
            let started = Instant::now();
            let (tus, patch_url, body_progress) = (self.tus.clone(), url.clone(), progress.clone());
            let patch = async move {
                tus.patch(
                    &patch_url,
                    pieces,
                    acked,
                    size,
                    upload_length,
                    checksum,
                    body_progress,
                )
                .await
            };
            tokio::pin!(patch);
            let result = loop {
                tokio::select! {
                    r = &mut patch => break r,
                    _ = self.shared.cancel.cancelled() => return Err(ClientError::Stopped),
                    _ = tokio::time::sleep(PROGRESS_EVERY) => {
                        shown_sent = shown_sent.max(acked + progress.pulled.load(Ordering::Relaxed));
                        let s = shown_sent;
                        self.publish(false, |st| st.sent = s);
                    }
                }
            };
            shown_sent = shown_sent.max(acked + progress.pulled.load(Ordering::Relaxed));
            match result {
                Ok(new_offset) => {
                    if new_offset < acked || new_offset > acked + size {
                        return Err(ClientError::Protocol(format!(
                            "the server answered offset {new_offset} for a chunk of {acked}..{}",
                            acked + size
                        )));
                    }
                    acked = new_offset;
                    if upload_length.is_some() {
                        declared = true;
                    }
                    self.shared
                        .journal
                        .set_acked(&self.shared.id, acked, declared)
                        .await?;
                    sizer.record(size, started.elapsed());
                    if failures.count > 0 || failures.stalled {
                        self.set_state(State::Uploading, None).await;
                        self.status.send_modify(|s| {
                            s.attempt = 0;
                            s.next_retry_in_ms = None;
                        });
                    }
                    failures = Failures {
                        count: 0,
                        since: None,
                        stalled: false,
                    };
                }
                Err(e) => {
                    let too_large = e.status() == Some(413);
                    if too_large && upload_length.is_none() && sizer.shrink(size) {
                        tracing::info!(size, "server refused the chunk size; shrinking");
                        need_head = true;
                        continue;
                    }
                    match self.classify(e, &failures) {
                        Recovery::Gone(why) => {
                            url = self.recreate(&why).await?;
                            acked = 0;
                            declared = false;
                        }
                        Recovery::Fatal(e) => return Err(e),
                        Recovery::Retry { delay, error } => {
                            self.note_failure(&mut failures, &error, delay).await;
                            self.sleep(delay).await?;
                        }
                        Recovery::Stall { delay, error } => {
                            sizer.no_space();
                            self.note_stall(&mut failures, &error, delay).await;
                            self.sleep(delay).await?;
                            need_head = true;
                        }
                        Recovery::Head {
                            delay,
                            error,
                            counts,
                        } => {
                            if counts {
                                self.note_failure(&mut failures, &error, delay).await;
                            }
                            self.sleep(delay).await?;
                            need_head = true;
                        }
                    }
                }
            }
        }
    }

    /// The upload vanished (expired, deleted): start a new one from local
    /// bytes if every byte is still here, or fail clearly.
    async fn recreate(&mut self, why: &str) -> Result<String> {
        if matches!(self.target, Target::UploadUrl(_)) {
            return Err(ClientError::Gone(format!(
                "it was attached by URL, so no new upload can be created ({why}); give --server or --endpoint"
            )));
        }
        if !self.all_bytes_on_disk().await {
            return Err(ClientError::Gone(format!(
                "some queued bytes are no longer on local disk, so it cannot be sent again ({why})"
            )));
        }
        let reason = format!(
            "the upload is gone from the server ({why}); creating a new one and sending every byte again from local disk"
        );
        tracing::warn!("{reason}");
        self.emit(Event::Recreated { reason });
        self.create().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_the_journal() {
        let mut o = Options {
            chunk_size: Some(1 << 20),
            min_chunk: 5 << 20,
            checksum: Some(Checksum::Sha1),
            ..Options::default()
        };
        o.timeouts.no_progress = Duration::from_secs(7);
        let back = Options::from_record(&o.record());
        assert_eq!(
            (back.chunk_size, back.min_chunk, back.checksum),
            (o.chunk_size, o.min_chunk, o.checksum)
        );
        assert_eq!(back.timeouts.no_progress, Duration::from_secs(7));
        // A journal written before the timeout was recorded still loads.
        let old: OptionsRecord =
            serde_json::from_str(r#"{"chunk_size":null,"min_chunk":0,"checksum":null}"#).unwrap();
        assert_eq!(
            Options::from_record(&old).timeouts.no_progress,
            Timeouts::default().no_progress
        );
    }
}
