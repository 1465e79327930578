//! Spool's resumable upload client. A [`Session`] appends bytes to an
//! upload of deferred length (TUS, or the IETF draft where the server
//! speaks it: [`Protocol`]) while its producer is still producing them
//! (fragments of a recording, slices of a file) and declares the length on
//! `finish`. Every piece is on local disk and in the [`journal::Journal`]
//! before it may be sent, with a digest that lets a resume prove its bytes
//! did not change; the worker sends pieces in order, one PATCH in flight, in
//! chunks sized by [`policy::ChunkSizer`], and takes the upload's SHA-256
//! from the bytes as they are read for sending ([`digest`]); after any
//! failure it asks the server (HEAD) where it stands and goes on from
//! there, backing off per [`policy::RetryPolicy`]. [`Client`] opens the journal, starts
//! sessions, resumes every unfinished upload after a crash or restart, and
//! follows the ones running in the background ([`Uploads`]); every failure
//! has a [`FailureClass`] for front ends to act on.

pub mod digest;
pub mod error;
pub mod journal;
pub mod owner;
pub mod policy;
pub mod remote;
pub mod session;
pub mod source;
pub mod tus;
pub mod uploads;
pub mod wire;

use std::path::Path;

pub use error::{ClientError, FailureClass, Result};
pub use journal::{Journal, SourceRecord, UploadRecord, UploadState};
pub use owner::OwnerLock;
pub use session::{
    Checksum, Completed, Event, Options, Session, State, Status, StopHandle, Target,
};
pub use uploads::{HistoryEntry, HistoryState, LiveUpload, Resumed, Resumption, Skip, Uploads};
pub use wire::Protocol;

/// The entry point: a journal plus sessions over it.
#[derive(Clone)]
pub struct Client {
    journal: Journal,
    uploads: Uploads,
}

impl Client {
    /// Opens the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Client> {
        Ok(Client::new(Journal::open(state_dir)?))
    }

    /// A client over an open journal, following no uploads yet.
    pub fn new(journal: Journal) -> Client {
        Client {
            journal,
            uploads: Uploads::new(),
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Starts a new upload.
    pub async fn start(
        &self,
        target: Target,
        source: SourceRecord,
        options: Options,
    ) -> Result<Session> {
        Session::start(self.journal.clone(), target, source, options).await
    }

    /// Continues a journaled upload (`target` supplies credentials if a new
    /// upload must be created).
    pub async fn resume(&self, id: &str, target: Option<Target>) -> Result<Session> {
        Session::resume(self.journal.clone(), id, target).await
    }

    /// Continues a journaled upload whose producer is gone (a recorder that
    /// crashed, was killed or quit): what the journal holds is all there is,
    /// so an unfinished stream is finished with the bytes on disk. A file
    /// upload still being read is returned unfinished; its caller produces
    /// the rest (see [`source`]).
    pub async fn resume_orphaned(&self, id: &str, target: Option<Target>) -> Result<Session> {
        let session = self.resume(id, target).await?;
        if let Some(rec) = self.journal.get(id).await?
            && matches!(rec.source, SourceRecord::Stream { .. })
            && !rec.finished
        {
            session.finish().await?;
        }
        Ok(session)
    }

    /// Every upload in the journal that is not complete and not being
    /// deleted (a deletion is finished by whoever started it, never resumed
    /// as an upload).
    pub async fn unfinished(&self) -> Result<Vec<UploadRecord>> {
        Ok(self
            .journal
            .list()
            .await?
            .into_iter()
            .filter(|r| !matches!(r.state, UploadState::Complete | UploadState::Deleting))
            .collect())
    }
}
