//! The worker task behind a [`super::Session`]: one loop that, in named
//! steps, asks the server where it stands when it must
//! ([`Worker::sync_with_server`]), completes once every byte is acknowledged
//! and the length declared ([`Worker::complete`]), picks the next chunk or
//! waits for the producer ([`Worker::next_chunk`]), sends it with one PATCH
//! in flight ([`Worker::send_chunk`]), and records the acknowledgement
//! ([`Worker::on_acknowledged`]) or recovers from the failure
//! ([`Worker::on_patch_failed`], see `recovery.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::recovery::Recovery;
use super::{Completed, Event, Options, PROGRESS_EVERY, Shared, State, Status, Target};
use crate::error::{ClientError, Result};
use crate::journal::{Piece, UploadRecord, UploadState};
use crate::owner::OwnerLock;
use crate::policy::ChunkSizer;
use crate::tus::{BodyProgress, Tus};
use crate::wire::{Discovery, Wire};
use spool_proto::checksum::Checksum;

/// Sends `true` to [`super::StopHandle`]s when dropped: the worker has let
/// go of the journal entry (its owner lock is dropped before this).
pub(super) struct Released(pub(super) watch::Sender<bool>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) tus: Tus,
    pub(super) target: Target,
    pub(super) options: Options,
    pub(super) rec: UploadRecord,
    pub(super) status: watch::Sender<Status>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) last_progress: Instant,
    /// This process's ownership of the journal entry, held until the
    /// worker ends (released by the kernel if the process dies first).
    pub(super) _owner: OwnerLock,
    /// Declared after `_owner`, so it drops after it: whoever awaits a stop
    /// may take the entry over at once.
    pub(super) _released: Released,
}

/// Consecutive failures of the chunk (or request) in hand.
#[derive(Default)]
pub(super) struct Failures {
    pub(super) count: u32,
    pub(super) since: Option<Instant>,
    pub(super) stalled: bool,
}

/// Where the upload stands, as the run loop tracks it between steps.
struct Position {
    url: String,
    /// The protocol the upload at `url` is spoken in.
    wire: Wire,
    /// The server's acknowledged offset.
    acked: u64,
    /// Whether the server needs only the remaining bytes to complete: it
    /// knows the length (TUS), or it saw the completing append (the draft).
    declared: bool,
    /// The figures shown, which never go backwards even when the server does.
    shown_confirmed: u64,
    shown_sent: u64,
    /// Whether the server must be asked (HEAD) before the next PATCH.
    need_head: bool,
    failures: Failures,
    sizer: ChunkSizer,
}

impl Position {
    /// Moves to a newly created upload, in the protocol it speaks.
    fn start_over(&mut self, (url, found): (String, Discovery)) {
        self.url = url;
        self.wire = found.wire;
        self.sizer.max_size = found.max_size;
    }
}

/// What the producer has queued, as of one turn of the loop.
struct Queued {
    pieces: Vec<Piece>,
    end: u64,
    finished: bool,
}

/// The next PATCH.
struct Chunk {
    size: u64,
    /// The length to declare with it (the last chunk of a finished upload).
    upload_length: Option<u64>,
    checksum: Option<Checksum>,
}

impl Worker {
    pub(super) fn emit(&self, e: Event) {
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

    pub(super) async fn set_state(&mut self, state: State, error: Option<String>) {
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

    pub(super) async fn run(mut self) -> Result<Completed> {
        match self.run_inner().await {
            Ok(c) => Ok(c),
            Err(ClientError::Stopped) => Err(ClientError::Stopped),
            Err(e) => {
                self.set_state(State::Failed, Some(e.to_string())).await;
                Err(e)
            }
        }
    }

    pub(super) async fn sleep(&self, d: Duration) -> Result<()> {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => Err(ClientError::Stopped),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    async fn run_inner(&mut self) -> Result<Completed> {
        let mut pos = self.begin().await?;
        loop {
            if self.shared.cancel.is_cancelled() {
                return Err(ClientError::Stopped);
            }
            let queued = self.queued().await;
            if pos.need_head && !self.sync_with_server(&mut pos, &queued).await? {
                continue;
            }
            self.show_position(&mut pos, &queued);
            if queued.finished && pos.acked == queued.end && pos.declared {
                return self.complete(&pos.url, &queued).await;
            }
            let Some(chunk) = self.next_chunk(&pos, &queued).await? else {
                self.wait_for_bytes().await?;
                continue;
            };
            let started = Instant::now();
            match self.send_chunk(&mut pos, queued.pieces, &chunk).await? {
                Ok(offset) => {
                    self.on_acknowledged(&mut pos, &chunk, offset, started.elapsed())
                        .await?
                }
                Err(e) => self.on_patch_failed(&mut pos, &chunk, e).await?,
            }
        }
    }

    /// Creates the upload if it does not exist yet (or asks an existing one
    /// which protocol it speaks) and sets out from what the journal knows.
    async fn begin(&mut self) -> Result<Position> {
        let (url, found) = match self.rec.upload_url.clone() {
            Some(u) => {
                let found = self.discover(&u, &[]).await?;
                (u, found)
            }
            None => self.create().await?,
        };
        let mut sizer = ChunkSizer::new(self.options.chunk_size, self.options.min_chunk);
        sizer.max_size = found.max_size;
        let acked = self.rec.acked;
        // A resumed or attached session first asks where the server stands.
        let need_head = self.rec.acked > 0
            || self.rec.state != UploadState::Creating
            || matches!(self.target, Target::UploadUrl(_));
        self.set_state(State::Uploading, None).await;
        Ok(Position {
            url,
            wire: found.wire,
            acked,
            declared: self.rec.length_declared,
            shown_confirmed: acked,
            shown_sent: acked,
            need_head,
            failures: Failures::default(),
            sizer,
        })
    }

    async fn queued(&self) -> Queued {
        let p = self.shared.produced.lock().await;
        Queued {
            pieces: p.pieces.clone(),
            end: p.end,
            finished: p.finished,
        }
    }

    /// HEAD: takes the server's offset and length as the truth. `false` when
    /// it failed and was dealt with (the loop goes round again).
    async fn sync_with_server(&mut self, pos: &mut Position, queued: &Queued) -> Result<bool> {
        let end = queued.end;
        let info = match self.tus.head(pos.wire, &pos.url).await {
            Ok(info) => info,
            Err(e) => {
                match self.classify(e, &pos.failures) {
                    Recovery::Gone(why) => {
                        pos.start_over(self.recreate(&why).await?);
                        pos.acked = 0;
                        pos.declared = false;
                        pos.need_head = false;
                    }
                    Recovery::Fatal(e) => return Err(e),
                    Recovery::Head { delay, error, .. } | Recovery::Retry { delay, error } => {
                        self.note_failure(&mut pos.failures, &error, delay).await;
                        self.sleep(delay).await?;
                    }
                    Recovery::Stall { delay, error } => {
                        self.note_stall(&mut pos.failures, &error, delay).await;
                        self.sleep(delay).await?;
                    }
                }
                return Ok(false);
            }
        };
        pos.need_head = false;
        if info.offset > end {
            return Err(ClientError::Protocol(format!(
                "the server has {} bytes but only {end} were queued",
                info.offset
            )));
        }
        if info.offset < pos.acked {
            tracing::warn!(
                server = info.offset,
                journal = pos.acked,
                "the server is behind what it acknowledged; sending again from its offset"
            );
        }
        pos.acked = info.offset;
        pos.declared = info.declared;
        if let Some(l) = info.length
            && (l < end || (queued.finished && l != end))
        {
            return Err(ClientError::Protocol(format!(
                "the server's Upload-Length {l} does not match the {end} bytes queued"
            )));
        }
        self.shared
            .journal
            .set_acked(
                &self.shared.id,
                pos.acked,
                pos.declared,
                self.digests().await,
            )
            .await?;
        Ok(true)
    }

    /// The digests taken as pieces were read for sending since the last
    /// call, also set on the pieces in memory (a re-created upload checks
    /// them); journaled with the next acknowledged offset.
    async fn digests(&self) -> Vec<(u64, String)> {
        let taken = self.shared.whole.take_digests();
        if !taken.is_empty() {
            let mut produced = self.shared.produced.lock().await;
            for (seq, digest) in &taken {
                if let Some(p) = produced.pieces.get_mut(*seq as usize) {
                    p.digest.clone_from(digest);
                }
            }
        }
        taken
    }

    fn show_position(&mut self, pos: &mut Position, queued: &Queued) {
        pos.shown_confirmed = pos.shown_confirmed.max(pos.acked);
        pos.shown_sent = pos.shown_sent.max(pos.shown_confirmed);
        let (c, s, end, finished) = (
            pos.shown_confirmed,
            pos.shown_sent,
            queued.end,
            queued.finished,
        );
        self.publish(false, |st| {
            st.confirmed = c;
            st.sent = s;
            st.produced = end;
            st.total = finished.then_some(end);
        });
    }

    /// Every byte is acknowledged and the length declared: the upload's
    /// SHA-256 is completed (reading what this process never read, if
    /// anything) and journaled with the state.
    async fn complete(&mut self, url: &str, queued: &Queued) -> Result<Completed> {
        let (whole, pieces, end) = (self.shared.whole.clone(), queued.pieces.clone(), queued.end);
        if whole.hashed() < end {
            tracing::info!(
                hashed = whole.hashed(),
                end,
                "reading the bytes this process did not send for the upload's SHA-256"
            );
        }
        let sha = tokio::task::spawn_blocking(move || whole.finish(&pieces, end))
            .await
            .map_err(|e| ClientError::Internal(e.to_string()))??;
        self.shared
            .journal
            .set_complete(&self.shared.id, &sha)
            .await?;
        self.status.send_modify(|s| {
            s.state = State::Complete;
            s.last_error = None;
        });
        // Bytes the session copied into its spool directory are no longer
        // needed once the server has them (a producer's own files are never
        // touched).
        let spooled = self
            .shared
            .journal
            .dir()
            .join("spool")
            .join(&self.shared.id);
        let _ = tokio::fs::remove_dir_all(spooled).await;
        self.publish(true, |_| {});
        let done = Completed {
            upload_url: url.to_owned(),
            asset_id: self.rec.asset_id.clone(),
            share_url: self.rec.share_url.clone(),
            bytes: queued.end,
            sha256: sha,
        };
        self.emit(Event::Complete {
            upload_url: done.upload_url.clone(),
            asset_id: done.asset_id.clone(),
            share_url: done.share_url.clone(),
            bytes: done.bytes,
            sha256: done.sha256.clone(),
        });
        Ok(done)
    }

    /// The next chunk, or `None` while it must wait for more bytes: a
    /// non-final chunk must reach the server's minimum.
    async fn next_chunk(&self, pos: &Position, queued: &Queued) -> Result<Option<Chunk>> {
        let (acked, end) = (pos.acked, queued.end);
        let mut size = (end - acked).min(pos.sizer.target());
        if let Some(max) = pos.sizer.max_size {
            if end > max {
                return Err(ClientError::Invalid(format!(
                    "{end} bytes exceed the server's maximum upload size of {max}"
                )));
            }
            size = size.min(max - acked);
        }
        let is_last = queued.finished && acked + size == end;
        if (size == 0 && (pos.declared || !queued.finished))
            || (!is_last && size < self.options.min_chunk.max(1))
        {
            return Ok(None);
        }
        let checksum = match self.options.checksum {
            Some(c) if size > 0 => {
                let algorithm = pos.wire.checksum_algorithm(c);
                Some(crate::tus::checksum_of(&queued.pieces, acked, size, algorithm).await?)
            }
            _ => None,
        };
        Ok(Some(Chunk {
            size,
            upload_length: (is_last && !pos.declared).then_some(end),
            checksum,
        }))
    }

    async fn wait_for_bytes(&self) -> Result<()> {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => Err(ClientError::Stopped),
            _ = self.shared.changed.notified() => Ok(()),
        }
    }

    /// One PATCH, publishing the bytes sent as the body goes out. The outer
    /// error is a stop; the inner result is the server's answer.
    async fn send_chunk(
        &mut self,
        pos: &mut Position,
        pieces: Vec<Piece>,
        chunk: &Chunk,
    ) -> Result<Result<u64>> {
        let acked = pos.acked;
        let progress = Arc::new(BodyProgress::default());
        let (tus, url, body_progress) = (self.tus.clone(), pos.url.clone(), progress.clone());
        let whole = self.shared.whole.clone();
        let (wire, size, upload_length, checksum) = (
            pos.wire,
            chunk.size,
            chunk.upload_length,
            chunk.checksum.clone(),
        );
        let patch = async move {
            tus.patch(
                wire,
                &url,
                pieces,
                acked,
                size,
                upload_length,
                checksum,
                body_progress,
                Some(whole),
            )
            .await
        };
        tokio::pin!(patch);
        let result = loop {
            tokio::select! {
                r = &mut patch => break r,
                _ = self.shared.cancel.cancelled() => return Err(ClientError::Stopped),
                _ = tokio::time::sleep(PROGRESS_EVERY) => {
                    pos.shown_sent = pos.shown_sent.max(acked + progress.pulled.load(Ordering::Relaxed));
                    let s = pos.shown_sent;
                    self.publish(false, |st| st.sent = s);
                }
            }
        };
        pos.shown_sent = pos
            .shown_sent
            .max(acked + progress.pulled.load(Ordering::Relaxed));
        Ok(result)
    }

    async fn on_acknowledged(
        &mut self,
        pos: &mut Position,
        chunk: &Chunk,
        new_offset: u64,
        took: Duration,
    ) -> Result<()> {
        let acked = pos.acked;
        if new_offset < acked || new_offset > acked + chunk.size {
            return Err(ClientError::Protocol(format!(
                "the server answered offset {new_offset} for a chunk of {acked}..{}",
                acked + chunk.size
            )));
        }
        pos.acked = new_offset;
        if chunk.upload_length.is_some() {
            pos.declared = true;
        }
        self.shared
            .journal
            .set_acked(
                &self.shared.id,
                pos.acked,
                pos.declared,
                self.digests().await,
            )
            .await?;
        pos.sizer.record(chunk.size, took);
        if pos.failures.count > 0 || pos.failures.stalled {
            self.set_state(State::Uploading, None).await;
            self.status.send_modify(|s| {
                s.attempt = 0;
                s.next_retry_in_ms = None;
            });
        }
        pos.failures = Failures::default();
        Ok(())
    }

    async fn on_patch_failed(
        &mut self,
        pos: &mut Position,
        chunk: &Chunk,
        e: ClientError,
    ) -> Result<()> {
        if super::recovery::chunk_too_large(&e)
            && chunk.upload_length.is_none()
            && pos.sizer.shrink(chunk.size)
        {
            tracing::info!(
                size = chunk.size,
                "server refused the chunk size; shrinking"
            );
            pos.need_head = true;
            return Ok(());
        }
        match self.classify(e, &pos.failures) {
            Recovery::Gone(why) => {
                pos.start_over(self.recreate(&why).await?);
                pos.acked = 0;
                pos.declared = false;
            }
            Recovery::Fatal(e) => return Err(e),
            Recovery::Retry { delay, error } => {
                self.note_failure(&mut pos.failures, &error, delay).await;
                self.sleep(delay).await?;
            }
            Recovery::Stall { delay, error } => {
                pos.sizer.no_space();
                self.note_stall(&mut pos.failures, &error, delay).await;
                self.sleep(delay).await?;
                pos.need_head = true;
            }
            Recovery::Head {
                delay,
                error,
                counts,
            } => {
                if counts {
                    self.note_failure(&mut pos.failures, &error, delay).await;
                }
                self.sleep(delay).await?;
                pos.need_head = true;
            }
        }
        Ok(())
    }
}
