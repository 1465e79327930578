//! An upload session: the append-while-producing core. A producer appends
//! pieces of bytes (already on disk, or written to the journal's spool
//! directory first) and finally calls `finish`; a worker task sends them in
//! order, one PATCH in flight, coalescing pieces into adaptive chunks, and
//! recovers from any failure by asking the server (HEAD) where it stands.
//! Only what the server acknowledged counts as uploaded; everything stays on
//! disk and in the journal until then. This module holds the handle
//! ([`Session`], [`StopHandle`]); the vocabulary is in `types.rs`, the loop in
//! `worker.rs`, creation in `create.rs`, failure handling in `recovery.rs`.

mod create;
mod recovery;
mod types;
mod worker;

pub use types::{Checksum, Completed, Event, Options, State, Status, Target};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::digest::{self, WholeHash};
use crate::error::{ClientError, Result};
use crate::journal::{Journal, Piece, SourceRecord, TargetRecord, UploadRecord, UploadState};
use crate::owner::OwnerLock;
use crate::tus::Tus;
use worker::{Released, Worker};

struct Produced {
    pieces: Vec<Piece>,
    end: u64,
    finished: bool,
}

struct Shared {
    id: String,
    journal: Journal,
    produced: Mutex<Produced>,
    /// The upload's SHA-256 so far, fed by the PATCH bodies as they read.
    whole: WholeHash,
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
    released: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<Completed>>,
}

/// Stops a session's worker and waits until it has let go: once
/// [`StopHandle::stop`] returns, the worker has journaled its last state and
/// released the entry's owner lock, so the upload can be resumed at once.
/// Cloneable, and usable after [`Session::wait`] took the session.
#[derive(Clone)]
pub struct StopHandle {
    cancel: CancellationToken,
    released: watch::Receiver<bool>,
}

impl StopHandle {
    /// Stops the worker (if it still runs) and returns once it has released
    /// the journal entry.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.released().await;
    }

    /// Returns once the worker has ended, however it ended, without stopping it.
    pub async fn released(&self) {
        let mut released = self.released.clone();
        // An error means the sender is gone, which only happens after it sent.
        let _ = released.wait_for(|r| *r).await;
    }

    /// Whether the worker still runs (owns the entry).
    pub fn is_running(&self) -> bool {
        !*self.released.borrow()
    }

    /// The token that stops the worker without waiting.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

const EVENT_QUEUE: usize = 256;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

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
        Self::spawn(journal, rec, Vec::new(), target, options, owner)
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
        if let Err(e) = crate::source::check_unchanged(&rec.source) {
            journal
                .set_state(id, UploadState::Failed, Some(&e.to_string()))
                .await?;
            return Err(e);
        }
        // Every byte not yet acknowledged must still be the byte that was
        // queued. (The acknowledged ones are checked if and when they are
        // read for the upload's SHA-256, at completion.)
        let unsent: Vec<Piece> = pieces
            .iter()
            .filter(|p| p.end() > rec.acked)
            .cloned()
            .collect();
        let checked = tokio::task::spawn_blocking(move || -> Result<()> {
            unsent.iter().try_for_each(digest::check_piece)
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))?;
        match checked {
            Ok(()) => {}
            Err(e) => {
                journal
                    .set_state(id, UploadState::Failed, Some(&e.to_string()))
                    .await?;
                return Err(e);
            }
        }
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
        Self::spawn(journal, rec, pieces, target, options, owner)
    }

    fn spawn(
        journal: Journal,
        rec: UploadRecord,
        pieces: Vec<Piece>,
        target: Target,
        options: Options,
        owner: OwnerLock,
    ) -> Result<Session> {
        let end = pieces.last().map(Piece::end).unwrap_or(0);
        let whole = WholeHash::new();
        pieces.iter().for_each(|p| whole.expect(p));
        let shared = Arc::new(Shared {
            id: rec.id.clone(),
            journal,
            produced: Mutex::new(Produced {
                pieces,
                end,
                finished: rec.finished,
            }),
            whole,
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
        let (released_tx, released_rx) = watch::channel(false);
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
            _released: Released(released_tx),
        };
        let span = tracing::info_span!("upload", id = %shared.id);
        let task = tokio::spawn(tracing::Instrument::instrument(worker.run(), span));
        Ok(Session {
            id: shared.id.clone(),
            shared,
            status: status_rx,
            released: released_rx,
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
    /// before it is journaled and may be sent (its digest is taken from
    /// memory, not read back).
    pub async fn append(&self, data: Bytes) -> Result<()> {
        self.check_open()?;
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
        let digest = tokio::task::spawn_blocking(move || -> Result<String> {
            use std::io::Write;
            std::fs::create_dir_all(&dir).map_err(|e| ClientError::io(&dir, e))?;
            let mut f = std::fs::File::create(&p).map_err(|e| ClientError::io(&p, e))?;
            f.write_all(&d).map_err(|e| ClientError::io(&p, e))?;
            f.sync_all().map_err(|e| ClientError::io(&p, e))?;
            Ok(digest::piece_digest(&d))
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))??;
        self.queue(&path, 0, data.len() as u64, digest).await
    }

    /// Queues `[offset, offset+len)` of a file that is already durable on
    /// disk (a finished fragment, a slice of a file) and stays there until
    /// the upload completes.
    pub async fn append_file(&self, path: &Path, offset: u64, len: u64) -> Result<()> {
        self.check_open()?;
        if len == 0 {
            return Ok(());
        }
        // Not read here: its digest is taken as it is read for sending, so
        // each byte is read once (see `digest::UNREAD`).
        self.queue(path, offset, len, digest::UNREAD.to_string())
            .await
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.finished.load(Ordering::Relaxed) {
            return Err(ClientError::Invalid(
                "the upload is finished; nothing more can be appended".into(),
            ));
        }
        Ok(())
    }

    /// Journals a piece whose digest is taken and makes it sendable.
    async fn queue(&self, path: &Path, offset: u64, len: u64, digest: String) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mut produced = self.shared.produced.lock().await;
        if produced.finished {
            return Err(ClientError::Invalid(
                "the upload is finished; nothing more can be appended".into(),
            ));
        }
        let piece = Piece {
            seq: produced.pieces.len() as u64,
            path: path.to_path_buf(),
            file_offset: offset,
            len,
            start: produced.end,
            digest,
        };
        self.shared
            .journal
            .add_piece(&self.shared.id, &piece)
            .await?;
        self.shared.whole.expect(&piece);
        produced.end = piece.end();
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
        self.shared.journal.set_finished(&self.shared.id).await?;
        produced.finished = true;
        self.shared.finished.store(true, Ordering::Relaxed);
        drop(produced);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Stops the worker; the journal keeps everything for a later resume.
    pub fn stop(&self) {
        self.shared.cancel.cancel();
    }

    /// A token that stops the worker, usable after `wait` took the session;
    /// [`Session::stopper`] can also wait for the worker to let go.
    pub fn stop_handle(&self) -> CancellationToken {
        self.shared.cancel.clone()
    }

    /// A handle whose `stop().await` returns once the worker has released
    /// the journal entry.
    pub fn stopper(&self) -> StopHandle {
        StopHandle {
            cancel: self.shared.cancel.clone(),
            released: self.released.clone(),
        }
    }

    /// Stops the worker and returns once it has released the journal entry
    /// (the session can then be resumed, by this process or another).
    pub async fn stop_and_wait(&self) {
        self.stopper().stop().await;
    }

    /// Waits for the upload to complete (or fail, or be stopped).
    pub async fn wait(self) -> Result<Completed> {
        self.task
            .await
            .map_err(|e| ClientError::Internal(e.to_string()))?
    }
}
