//! Byte storage behind a trait, so that an S3-compatible object store can
//! replace the local filesystem without touching the protocol code. The
//! protocol handler streams a request body into a [`ChunkWriter`] and then
//! either commits it (durable before the client is answered) or aborts it
//! (nothing of it kept). Storage keys are server-generated upload ids only;
//! no path is ever built from request input. The filesystem backend is
//! [`fs::FsStore`].

use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

mod fs;
mod s3;

pub use fs::FsStore;
pub use s3::{MIN_PART, S3Config, S3Store};

/// A storage failure; always an internal error to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O on upload {id}: {source}")]
    Io { id: String, source: std::io::Error },
    #[error("storage task failed: {0}")]
    Task(String),
    #[error("storage precondition failed on upload {id}: {reason}")]
    Precondition { id: String, reason: String },
    /// The store cannot be reached (refused, timed out, its 5xx): nothing
    /// was acknowledged; clients get 503 `ERR_STORAGE_UNAVAILABLE`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// A stream of stored bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// How a writer treats bytes before commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Bytes go straight to the upload; a commit after a cut-off body keeps
    /// whatever arrived. Used for plain PATCHes.
    Direct,
    /// Bytes are staged apart and only join the upload on commit; an abort
    /// leaves the upload untouched. Used when the chunk must be verified
    /// (checksum) before any of it may count.
    Staged,
}

/// Receives one request body's bytes for one upload.
#[async_trait]
pub trait ChunkWriter: Send {
    /// Appends `data` after what this writer already received. May buffer.
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError>;
    /// Makes every byte written so far durable and part of the upload, and
    /// returns how many bytes were added. Only after this returns may the
    /// client be told the new offset.
    async fn commit(self: Box<Self>) -> Result<u64, StoreError>;
    /// Drops every byte written by this writer; the upload is as before.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Where uploads' bytes live.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates empty storage for a new upload.
    async fn create(&self, id: &str) -> Result<(), StoreError>;
    /// Opens a writer appending at `offset`, which must be the upload's
    /// committed length (the caller holds the upload's write lock).
    async fn writer(
        &self,
        id: &str,
        offset: u64,
        mode: WriteMode,
    ) -> Result<Box<dyn ChunkWriter>, StoreError>;
    /// After a crash: the length of the upload's valid bytes, given the
    /// offset last recorded and the declared length. Bytes a direct writer
    /// wrote before the crash count (they arrived, in order); a staged chunk
    /// caught mid-commit does not.
    async fn recover(
        &self,
        id: &str,
        recorded: u64,
        length: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// Streams the bytes in `range` of a stored upload.
    async fn read(&self, id: &str, range: Range<u64>) -> Result<ByteStream, StoreError>;
    /// Reads up to `n` bytes from the start (content sniffing).
    async fn head_bytes(&self, id: &str, n: usize) -> Result<Vec<u8>, StoreError>;
    /// Removes an upload's bytes; removing a missing upload is not an error.
    async fn delete(&self, id: &str) -> Result<(), StoreError>;
    /// Writes the concatenation of `parts` (complete uploads) as upload `id`
    /// and returns its length.
    async fn concat(&self, id: &str, parts: &[String]) -> Result<u64, StoreError>;
    /// How many bytes are stored for upload `id`, or `None` if it has no
    /// storage at all (startup checks that complete uploads kept theirs).
    async fn stored_len(&self, id: &str) -> Result<Option<u64>, StoreError>;
    /// The ids of every upload with storage (startup removes the orphans:
    /// storage whose upload ended or never got a row).
    async fn list(&self) -> Result<Vec<String>, StoreError>;
    /// The space of the volume the bytes go to, for the free-space reserve
    /// ([`crate::space`]); `None` (the default) means unlimited, as for an
    /// object store. Called at most every few milliseconds, so it may make a
    /// system call.
    async fn space(&self) -> Result<Option<crate::space::Space>, StoreError> {
        Ok(None)
    }
    /// Every byte of upload `id` (`length` of them) is acknowledged: a
    /// store that assembles uploads does it now (idempotent; on failure the
    /// bytes stay readable and a later call finishes it).
    async fn complete(&self, id: &str, length: u64) -> Result<(), StoreError> {
        let _ = (id, length);
        Ok(())
    }
    /// A local file holding at least the first `len` bytes of upload `id`,
    /// for readers of files (the processor, the live index): the store's
    /// own file where it has one, else a copy it keeps up to date.
    async fn local_copy(&self, id: &str, len: u64) -> Result<Option<PathBuf>, StoreError> {
        let _ = len;
        Ok(self.local_path(id))
    }
    /// Upload `id`'s local copy ([`Store::local_copy`]) is not needed any
    /// more (its processing is done); a store that made one may drop it.
    fn release_local_copy(&self, id: &str) {
        let _ = id;
    }
    /// The local file holding an upload's bytes, for stores that keep them
    /// on this machine's filesystem: the live index and the processor read
    /// it directly. `None` (the default) for stores without local files.
    fn local_path(&self, id: &str) -> Option<PathBuf> {
        let _ = id;
        None
    }
}
