//! The uploads a process runs in the background, and what front ends do
//! with them: [`Uploads`] follows live sessions by id (their status watch
//! and a [`StopHandle`]) and forgets each once its worker let go;
//! [`Client::resume_live`] resumes one and follows it (with `retry_now`,
//! stopping a live one that waits out a backoff and awaiting its release
//! first); [`Client::resume_unfinished`] does that for every unfinished
//! upload and says which were started or skipped and why;
//! [`Client::history`] merges the journal with the live statuses. The CLI's
//! `resume`/`uploads` and the desktop app call these same functions.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::watch;

use crate::Client;
use crate::error::{ClientError, Result};
use crate::journal::{UploadRecord, UploadState};
use crate::session::{Session, State, Status, StopHandle, Target};

/// A session followed by [`Uploads`].
#[derive(Clone)]
pub struct LiveUpload {
    /// The session's live status.
    pub status: watch::Receiver<Status>,
    /// Stops it; `stop().await` returns once it let go of the entry.
    pub stop: StopHandle,
    /// Tells this session from a later one of the same upload.
    generation: u64,
}

impl LiveUpload {
    /// The status now.
    pub fn current(&self) -> Status {
        self.status.borrow().clone()
    }
}

#[derive(Default)]
struct Registry {
    live: HashMap<String, LiveUpload>,
    next_generation: u64,
}

/// The registry of live uploads, keyed by upload id. Cloning shares it.
#[derive(Clone, Default)]
pub struct Uploads {
    inner: Arc<Mutex<Registry>>,
}

impl Uploads {
    pub fn new() -> Uploads {
        Uploads::default()
    }

    /// A poisoned lock means a thread panicked mid-update: what it holds is
    /// not to be trusted as "running" or "not running".
    fn lock(&self) -> Result<MutexGuard<'_, Registry>> {
        self.inner
            .lock()
            .map_err(|_| ClientError::Internal("the live uploads registry is poisoned".into()))
    }

    /// Follows `session` until its worker ends (then it is forgotten by
    /// itself). Replaces whatever was followed under the same id. Must be
    /// called within a Tokio runtime.
    pub fn track(&self, session: &Session) -> Result<()> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ClientError::Internal("tracking an upload outside a runtime".into()))?;
        let stop = session.stopper();
        let generation = {
            let mut reg = self.lock()?;
            reg.next_generation += 1;
            let generation = reg.next_generation;
            reg.live.insert(
                session.id.clone(),
                LiveUpload {
                    status: session.status(),
                    stop: stop.clone(),
                    generation,
                },
            );
            generation
        };
        let (uploads, id) = (self.clone(), session.id.clone());
        runtime.spawn(async move {
            stop.released().await;
            uploads.forget(&id, generation);
        });
        Ok(())
    }

    /// The live upload `id`, if one is followed.
    pub fn get(&self, id: &str) -> Result<Option<LiveUpload>> {
        Ok(self.lock()?.live.get(id).cloned())
    }

    /// The live status of `id`, if it is followed.
    pub fn status(&self, id: &str) -> Result<Option<Status>> {
        Ok(self.get(id)?.map(|l| l.current()))
    }

    /// The ids followed now.
    pub fn ids(&self) -> Result<Vec<String>> {
        Ok(self.lock()?.live.keys().cloned().collect())
    }

    /// Stops following `id` (without stopping it); what was followed.
    pub fn untrack(&self, id: &str) -> Result<Option<LiveUpload>> {
        Ok(self.lock()?.live.remove(id))
    }

    /// Stops the live upload `id` and returns once its worker let go of the
    /// journal entry; `false` if none was followed.
    pub async fn stop(&self, id: &str) -> Result<bool> {
        let Some(live) = self.get(id)? else {
            return Ok(false);
        };
        live.stop.stop().await;
        self.forget(id, live.generation);
        Ok(true)
    }

    /// Forgets `id` if it is still the session of `generation` (a later
    /// session of the same upload stays followed).
    fn forget(&self, id: &str, generation: u64) {
        match self.inner.lock() {
            Ok(mut reg) => {
                if reg.live.get(id).is_some_and(|l| l.generation == generation) {
                    reg.live.remove(id);
                }
            }
            Err(_) => tracing::error!(%id, "the live uploads registry is poisoned"),
        }
    }
}

/// What [`Client::resume_live`] did.
pub enum Resumed {
    /// A new session runs (and is followed); take its events, wait for it.
    Started(Session),
    /// A session of this upload already runs here; its status.
    Running(Status),
}

/// Why [`Client::resume_unfinished`] left an upload alone.
#[derive(Debug)]
pub enum Skip {
    /// It failed before: it waits for the user (when failed ones are skipped).
    Failed,
    /// A session of it already runs in this process.
    Running,
    /// It could not be resumed: [`ClientError::RecordingInProgress`] when
    /// another live process owns it, or why it cannot go on.
    Error(ClientError),
}

/// One unfinished upload and what [`Client::resume_unfinished`] did with it.
pub enum Resumption {
    Started {
        /// The journal's record as it was before resuming.
        record: UploadRecord,
        session: Session,
    },
    Skipped {
        record: UploadRecord,
        reason: Skip,
    },
}

/// An upload's state in a history, live status first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryState {
    /// Being deleted (by whoever started the deletion).
    Deleting,
    Uploading,
    Reconnecting,
    Stalled,
    Complete,
    Failed,
    /// Unfinished and not running in this process: it needs a resume.
    Waiting,
}

impl HistoryState {
    /// The lowercase word, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryState::Deleting => "deleting",
            HistoryState::Uploading => "uploading",
            HistoryState::Reconnecting => "reconnecting",
            HistoryState::Stalled => "stalled",
            HistoryState::Complete => "complete",
            HistoryState::Failed => "failed",
            HistoryState::Waiting => "waiting",
        }
    }
}

impl From<State> for HistoryState {
    fn from(s: State) -> Self {
        match s {
            State::Uploading => HistoryState::Uploading,
            State::Reconnecting => HistoryState::Reconnecting,
            State::Stalled => HistoryState::Stalled,
            State::Complete => HistoryState::Complete,
            State::Failed => HistoryState::Failed,
        }
    }
}

/// One upload of a history: its journal record merged with its live status.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub record: UploadRecord,
    /// The live status, when a session of it runs in this process.
    pub live: Option<Status>,
    pub state: HistoryState,
    /// Bytes the server acknowledged (the live figure when running).
    pub confirmed: u64,
    pub last_error: Option<String>,
    /// The local file the bytes come from ([`crate::SourceRecord::local_path`]).
    pub local_path: PathBuf,
    pub local_exists: bool,
}

impl HistoryEntry {
    /// Merges `record` with `live` (a deletion in progress wins; then the
    /// live status; then the journal's state).
    pub fn new(record: UploadRecord, live: Option<Status>) -> HistoryEntry {
        let (state, confirmed, last_error) = match (&live, record.state) {
            (_, UploadState::Deleting) => (
                HistoryState::Deleting,
                record.acked,
                record.last_error.clone(),
            ),
            (Some(s), _) => (s.state.into(), s.confirmed, s.last_error.clone()),
            (None, UploadState::Complete) => (
                HistoryState::Complete,
                record.acked,
                record.last_error.clone(),
            ),
            (None, UploadState::Failed) => (
                HistoryState::Failed,
                record.acked,
                record.last_error.clone(),
            ),
            (None, _) => (
                HistoryState::Waiting,
                record.acked,
                record.last_error.clone(),
            ),
        };
        let local_path = record.source.local_path().to_path_buf();
        HistoryEntry {
            local_exists: local_path.is_file(),
            local_path,
            state,
            confirmed,
            last_error,
            live,
            record,
        }
    }
}

impl Client {
    /// The uploads this client runs in the background.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// Resumes upload `id` in the background (as [`Client::resume_orphaned`])
    /// and follows it in [`Client::uploads`]. If a session of it already
    /// runs here, nothing changes ([`Resumed::Running`]) — unless
    /// `retry_now` and it is waiting out a backoff (reconnecting or
    /// stalled): then it is stopped, its release awaited, and it starts
    /// over at once. An upload being deleted is refused.
    pub async fn resume_live(
        &self,
        id: &str,
        target: Option<Target>,
        retry_now: bool,
    ) -> Result<Resumed> {
        if let Some(live) = self.uploads.get(id)?
            && live.stop.is_running()
        {
            let status = live.current();
            if !(retry_now && matches!(status.state, State::Reconnecting | State::Stalled)) {
                return Ok(Resumed::Running(status));
            }
            self.uploads.stop(id).await?;
        }
        let rec = self
            .journal
            .get(id)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("no upload {id} in the journal")))?;
        if rec.state == UploadState::Deleting {
            return Err(ClientError::Invalid(format!(
                "upload {id} is being deleted"
            )));
        }
        let session = self.resume_orphaned(id, target).await?;
        self.uploads.track(&session)?;
        Ok(Resumed::Started(session))
    }

    /// Stops upload `id` if it runs here, awaits its release, and resumes it
    /// at once: a "retry now" for one waiting out a backoff.
    pub async fn retry_now(&self, id: &str, target: Option<Target>) -> Result<Resumed> {
        self.resume_live(id, target, true).await
    }

    /// Resumes every unfinished upload ([`Client::unfinished`]) in the
    /// background, each with the target `target_for` gives for its record
    /// (credentials for one that must be created again), and says for
    /// each whether it started or why not. With `include_failed` false,
    /// failed ones are left for the user to retry.
    pub async fn resume_unfinished<F, Fut>(
        &self,
        include_failed: bool,
        mut target_for: F,
    ) -> Result<Vec<Resumption>>
    where
        F: FnMut(&UploadRecord) -> Fut,
        Fut: Future<Output = Option<Target>>,
    {
        let mut out = Vec::new();
        for record in self.unfinished().await? {
            if !include_failed && record.state == UploadState::Failed {
                out.push(Resumption::Skipped {
                    record,
                    reason: Skip::Failed,
                });
                continue;
            }
            let target = target_for(&record).await;
            out.push(match self.resume_live(&record.id, target, false).await {
                Ok(Resumed::Started(session)) => Resumption::Started { record, session },
                Ok(Resumed::Running(_)) => Resumption::Skipped {
                    record,
                    reason: Skip::Running,
                },
                Err(e) => Resumption::Skipped {
                    record,
                    reason: Skip::Error(e),
                },
            });
        }
        Ok(out)
    }

    /// Every journaled upload, newest first, with the live status of those
    /// running here.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        let mut entries = Vec::new();
        for record in self.journal.list().await? {
            let live = self.uploads.status(&record.id)?;
            entries.push(HistoryEntry::new(record, live));
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.record.created_at));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SourceRecord;
    use crate::owner::OwnerLock;
    use crate::policy::RetryPolicy;
    use crate::session::Options;
    use std::time::Duration;

    /// Nothing listens there: every creation fails at once, unreachable, and
    /// is retried (nothing can have been created).
    fn nowhere() -> Target {
        Target::Endpoint {
            url: "http://127.0.0.1:9/files".into(),
            headers: Vec::new(),
        }
    }

    async fn wait_state(uploads: &Uploads, id: &str, want: State) {
        let status = uploads.get(id).unwrap().unwrap().status;
        let mut status = status.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            status.wait_for(|s| s.state == want),
        )
        .await
        .unwrap()
        .unwrap();
    }

    #[tokio::test]
    async fn retry_now_stops_awaits_the_release_and_follows_the_new_session() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::open(dir.path()).unwrap();
        let options = Options {
            retry: RetryPolicy {
                base: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                ..RetryPolicy::default()
            },
            ..Options::default()
        };
        let source = SourceRecord::Stream {
            label: dir.path().join("rec.mp4").display().to_string(),
        };
        let session = client.start(nowhere(), source, options).await.unwrap();
        session
            .append(bytes::Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        session.finish().await.unwrap();
        let id = session.id.clone();
        client.uploads().track(&session).unwrap();
        wait_state(client.uploads(), &id, State::Reconnecting).await;

        // Live and not waiting to be hurried: left alone.
        let Resumed::Running(_) = client.resume_live(&id, None, false).await.unwrap() else {
            panic!("a live upload was resumed twice");
        };
        let Resumed::Started(again) = client.retry_now(&id, None).await.unwrap() else {
            panic!("retry now did not start a new session");
        };
        // The old session's end does not unfollow the new one.
        session.wait().await.unwrap_err();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let live = client.uploads().get(&id).unwrap().expect("followed");
        assert!(live.stop.is_running());
        assert!(OwnerLock::is_held(dir.path(), &id));

        // An awaited stop has let go: the entry can be taken over at once.
        assert!(client.uploads().stop(&id).await.unwrap());
        assert!(!OwnerLock::is_held(dir.path(), &id));
        assert!(client.uploads().get(&id).unwrap().is_none());
        assert!(matches!(again.wait().await, Err(ClientError::Stopped)));

        let history = client.history().await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].state, HistoryState::Waiting);
        assert_eq!(history[0].local_path, dir.path().join("rec.mp4"));
        assert!(!history[0].local_exists);
    }

    #[tokio::test]
    async fn resume_unfinished_says_what_it_skipped_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::open(dir.path()).unwrap();
        let source = SourceRecord::Stream {
            label: "rec".into(),
        };
        let mut ids = Vec::new();
        for _ in 0..3 {
            let s = client
                .start(nowhere(), source.clone(), Options::default())
                .await
                .unwrap();
            s.append(bytes::Bytes::from_static(b"abc")).await.unwrap();
            ids.push(s.id.clone());
            s.stop_and_wait().await;
        }
        client
            .journal()
            .set_state(&ids[0], UploadState::Failed, Some("gave up"))
            .await
            .unwrap();
        // Owned by a live process (this one, standing in for a recorder).
        let _owner = OwnerLock::acquire(dir.path(), &ids[1]).unwrap();

        let out = client
            .resume_unfinished(false, |_| std::future::ready(None))
            .await
            .unwrap();
        let mut started = Vec::new();
        for r in out {
            match r {
                Resumption::Started { record, session } => {
                    started.push(record.id.clone());
                    session.stop_and_wait().await;
                }
                Resumption::Skipped { record, reason } => match reason {
                    Skip::Failed => assert_eq!(record.id, ids[0]),
                    Skip::Error(e) => {
                        assert_eq!(record.id, ids[1]);
                        assert_eq!(e.code(), Some(spool_proto::ErrorCode::RecordingInProgress));
                        assert_eq!(e.class(), crate::FailureClass::Conflict);
                    }
                    Skip::Running => panic!("nothing runs"),
                },
            }
        }
        assert_eq!(started, vec![ids[2].clone()]);
    }
}
