//! The filesystem backend of [`Store`]: one file per upload under one
//! directory, a staged file for a chunk awaiting its checksum, every commit
//! fsynced (file and directory) before it is acknowledged. A bulk upload
//! (chunks of [`WRITE_BUFFER`] and more) is written once and read back
//! much later, if at all, so its writer keeps it out of the page cache
//! ([`cache`]): each flushed piece starts its writeback at once (the
//! commit's fsync then has little left to wait for), and a commit drops the
//! pages before its chunk, durable and clean by then. Keeping every byte
//! of it cached instead made each write allocate a fresh page, which cost
//! more CPU than the copy itself. Small chunks (a recorder streaming live)
//! are left to the page cache: they are few bytes, and the live index and
//! the processor read their boxes back.

use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ByteStream, ChunkWriter, Store, StoreError, WriteMode};

/// Uploads as files under one directory: `<id>` holds the bytes, `<id>.stage`
/// a chunk awaiting verification.
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: Arc<PathBuf>,
}

/// Write buffer size: large enough that the blocking-pool round trip per
/// write is negligible, small enough to bound memory per upload.
const WRITE_BUFFER: usize = 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;

fn io_err(id: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        id: id.to_owned(),
        source,
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl FsStore {
    /// A store under `dir` (created if missing). The directory is made
    /// private (0700) and every file in it 0600, also for data folders
    /// written by versions that used the umask.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
        Ok(FsStore { dir: Arc::new(dir) })
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        // Defence in depth: ids come from the database, which only holds ids
        // this server generated, but a path is never built from anything else.
        if !crate::ids::is_valid_id(id) {
            return Err(StoreError::Precondition {
                id: id.to_owned(),
                reason: "not a server-issued id".into(),
            });
        }
        Ok(self.dir.join(id))
    }

    fn stage_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.path(id)?.with_extension("stage"))
    }
}

/// Options for a new upload file: private (0600) from its first byte.
fn private_file() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Advice to the kernel about an upload file's pages; nothing elsewhere.
/// Advice never changes what is durable: the fsyncs do that.
mod cache {
    use std::fs::File;

    /// Starts writing back `len` bytes at `offset`, without waiting, and
    /// drops whichever of their pages are already clean.
    pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
        dont_need(file, offset, len);
    }

    /// Drops the (clean) pages of the first `len` bytes.
    pub(super) fn drop_before(file: &File, len: u64) {
        dont_need(file, 0, len);
    }

    #[cfg(target_os = "linux")]
    fn dont_need(file: &File, offset: u64, len: u64) {
        // POSIX_FADV_DONTNEED on Linux begins writeback of dirty pages in
        // the range and evicts the clean ones; it is advice, so a failure
        // only means the pages stay cached.
        if let Some(len) = std::num::NonZeroU64::new(len) {
            let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn dont_need(_file: &File, _offset: u64, _len: u64) {}
}

fn sync_dir(dir: &Path) {
    // Makes a created or renamed entry durable; best effort where the
    // platform does not support syncing directories.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

struct FsWriter {
    id: String,
    file: Arc<std::fs::File>,
    main: PathBuf,
    stage: Option<PathBuf>,
    start: u64,
    written: u64,
    /// Bytes already written to `file` (at `start` in the upload file, at 0
    /// in a stage file).
    flushed: u64,
    /// A full [`WRITE_BUFFER`] was flushed: a bulk chunk, kept out of the
    /// page cache.
    bulk: bool,
    /// Received frames not yet written, kept as the `Bytes` hyper handed us
    /// (no copy); `pending` is their total size.
    buf: Vec<Bytes>,
    pending: usize,
}

impl FsWriter {
    /// Writes the buffered frames; with `writeback`, starts writing them
    /// back at once (more of the body is still to come).
    async fn flush_buf(&mut self, writeback: bool) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.buf);
        let len = std::mem::take(&mut self.pending) as u64;
        let at = self.flushed + if self.stage.is_some() { 0 } else { self.start };
        self.flushed += len;
        let file = self.file.clone();
        let id = self.id.clone();
        blocking(move || {
            for frame in frames {
                (&*file).write_all(&frame).map_err(io_err(&id))?;
            }
            if writeback {
                cache::start_writeback(&file, at, len);
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ChunkWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.written += data.len() as u64;
        self.pending += data.len();
        self.buf.push(data);
        if self.pending >= WRITE_BUFFER {
            self.bulk = true;
            self.flush_buf(true).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        self.flush_buf(false).await?;
        let FsWriter {
            id,
            file,
            main,
            stage,
            start,
            written,
            bulk,
            ..
        } = *self;
        blocking(move || {
            file.sync_data().map_err(io_err(&id))?;
            // What came before this chunk is durable and was read by the
            // live index already; this chunk stays cached for it.
            if bulk && stage.is_none() {
                cache::drop_before(&file, start);
            }
            if let Some(stage) = stage {
                let mut src = std::fs::File::open(&stage).map_err(io_err(&id))?;
                let mut dst = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&main)
                    .map_err(io_err(&id))?;
                dst.seek(SeekFrom::Start(start)).map_err(io_err(&id))?;
                dst.set_len(start).map_err(io_err(&id))?;
                std::io::copy(&mut src, &mut dst).map_err(io_err(&id))?;
                crate::fault::point("stage-copied-before-sync");
                dst.sync_data().map_err(io_err(&id))?;
                if bulk {
                    cache::drop_before(&dst, start);
                }
                // No directory fsync for the removal: if a power cut brings
                // the stage file back, recovery trusts only the recorded
                // offset, which is what a lost acknowledgement means anyway.
                std::fs::remove_file(&stage).map_err(io_err(&id))?;
                crate::fault::point("stage-merged-before-record");
            }
            Ok(written)
        })
        .await
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        let FsWriter {
            id,
            file,
            stage,
            start,
            ..
        } = *self;
        blocking(move || {
            match stage {
                Some(stage) => std::fs::remove_file(&stage).map_err(io_err(&id))?,
                None => {
                    file.set_len(start).map_err(io_err(&id))?;
                    file.sync_data().map_err(io_err(&id))?;
                }
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Store for FsStore {
    async fn create(&self, id: &str) -> Result<(), StoreError> {
        let path = self.path(id)?;
        let id = id.to_owned();
        let dir = self.dir.clone();
        blocking(move || {
            private_file()
                .create_new(true)
                .open(&path)
                .map_err(io_err(&id))?;
            sync_dir(&dir);
            Ok(())
        })
        .await
    }

    async fn writer(
        &self,
        id: &str,
        offset: u64,
        mode: WriteMode,
    ) -> Result<Box<dyn ChunkWriter>, StoreError> {
        let main = self.path(id)?;
        let stage = match mode {
            WriteMode::Direct => None,
            WriteMode::Staged => Some(self.stage_path(id)?),
        };
        let idc = id.to_owned();
        let (m, s) = (main.clone(), stage.clone());
        let file = blocking(move || {
            let on_disk = std::fs::metadata(&m).map_err(io_err(&idc))?.len();
            if on_disk < offset {
                // Never pad: zeros in place of acknowledged bytes would be
                // served as the recording.
                return Err(StoreError::Precondition {
                    id: idc,
                    reason: format!("{on_disk} bytes stored, below the offset {offset}"),
                });
            }
            let mut f = match &s {
                Some(stage) => private_file()
                    .create(true)
                    .truncate(true)
                    .open(stage)
                    .map_err(io_err(&idc))?,
                None => {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&m)
                        .map_err(io_err(&idc))?;
                    // Anything past the committed offset is left over from a
                    // write that was never acknowledged: drop it.
                    f.set_len(offset).map_err(io_err(&idc))?;
                    f.seek(SeekFrom::Start(offset)).map_err(io_err(&idc))?;
                    f
                }
            };
            f.flush().map_err(io_err(&idc))?;
            Ok(f)
        })
        .await?;
        Ok(Box::new(FsWriter {
            id: id.to_owned(),
            file: Arc::new(file),
            main,
            stage,
            start: offset,
            written: 0,
            flushed: 0,
            bulk: false,
            buf: Vec::new(),
            pending: 0,
        }))
    }

    async fn recover(
        &self,
        id: &str,
        recorded: u64,
        length: Option<u64>,
    ) -> Result<u64, StoreError> {
        let main = self.path(id)?;
        let stage = self.stage_path(id)?;
        let id = id.to_owned();
        blocking(move || {
            let file = match std::fs::OpenOptions::new().write(true).open(&main) {
                Ok(f) => f,
                // Nothing acknowledged, nothing lost: give it its (empty)
                // storage back. With bytes acknowledged the caller sees 0 <
                // recorded and marks the upload damaged; nothing is made up.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_file(&stage);
                    if recorded == 0 {
                        private_file()
                            .create(true)
                            .truncate(false)
                            .open(&main)
                            .map_err(io_err(&id))?;
                    }
                    return Ok(0);
                }
                Err(e) => return Err(io_err(&id)(e)),
            };
            let on_disk = file.metadata().map_err(io_err(&id))?.len();
            let valid = if stage.exists() {
                // A staged chunk may have been mid-copy: only the recorded
                // offset is known to be verified.
                let _ = std::fs::remove_file(&stage);
                recorded.min(on_disk)
            } else {
                on_disk.min(length.unwrap_or(u64::MAX))
            };
            if valid != on_disk {
                file.set_len(valid).map_err(io_err(&id))?;
            }
            file.sync_data().map_err(io_err(&id))?;
            Ok(valid)
        })
        .await
    }

    fn local_path(&self, id: &str) -> Option<PathBuf> {
        self.path(id).ok()
    }

    async fn read(&self, id: &str, range: Range<u64>) -> Result<ByteStream, StoreError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(id)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(io_err(id))?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(io_err(id))?;
        let limited = file.take(range.end.saturating_sub(range.start));
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            limited, READ_CHUNK,
        )))
    }

    async fn head_bytes(&self, id: &str, n: usize) -> Result<Vec<u8>, StoreError> {
        use tokio::io::AsyncReadExt;
        let path = self.path(id)?;
        let file = tokio::fs::File::open(&path).await.map_err(io_err(id))?;
        let mut out = Vec::with_capacity(n);
        file.take(n as u64)
            .read_to_end(&mut out)
            .await
            .map_err(io_err(id))?;
        Ok(out)
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let paths = [self.path(id)?, self.stage_path(id)?];
        let id = id.to_owned();
        let dir = self.dir.clone();
        blocking(move || {
            for p in paths {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&id)(e)),
                }
            }
            // A deleted recording must stay deleted after a power cut.
            sync_dir(&dir);
            Ok(())
        })
        .await
    }

    async fn stored_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(id)?;
        let id = id.to_owned();
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&id)(e)),
        })
        .await
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.dir.clone();
        blocking(move || {
            let mut ids = std::collections::BTreeSet::new();
            let entries = std::fs::read_dir(&*dir).map_err(io_err("-"))?;
            for entry in entries {
                let name = entry.map_err(io_err("-"))?.file_name();
                let name = name.to_string_lossy();
                let id = name.strip_suffix(".stage").unwrap_or(&name);
                // Only names this server could have made; anything else in
                // the folder is not ours to judge.
                if crate::ids::is_valid_id(id) {
                    ids.insert(id.to_owned());
                }
            }
            Ok(ids.into_iter().collect())
        })
        .await
    }

    async fn concat(&self, id: &str, parts: &[String]) -> Result<u64, StoreError> {
        let dst_path = self.path(id)?;
        let part_paths = parts
            .iter()
            .map(|p| self.path(p))
            .collect::<Result<Vec<_>, _>>()?;
        let id = id.to_owned();
        let dir = self.dir.clone();
        blocking(move || {
            let mut dst = private_file()
                .create(true)
                .truncate(true)
                .open(&dst_path)
                .map_err(io_err(&id))?;
            let mut total = 0;
            for part in part_paths {
                let mut src = std::fs::File::open(&part).map_err(io_err(&id))?;
                total += std::io::copy(&mut src, &mut dst).map_err(io_err(&id))?;
            }
            dst.sync_data().map_err(io_err(&id))?;
            sync_dir(&dir);
            Ok(total)
        })
        .await
    }

    async fn space(&self) -> Result<Option<crate::space::Space>, StoreError> {
        if !cfg!(unix) {
            return Ok(None);
        }
        let dir = self.dir.clone();
        blocking(move || {
            crate::space::statvfs(&dir)
                .map(Some)
                .map_err(io_err("(volume)"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    async fn read_all(store: &FsStore, id: &str, range: Range<u64>) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .read(id, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn direct_commit_and_abort() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id = crate::ids::new_id();
        store.create(&id).await.unwrap();
        let mut w = store.writer(&id, 0, WriteMode::Direct).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        assert_eq!(w.commit().await.unwrap(), 6);
        let mut w = store.writer(&id, 6, WriteMode::Direct).await.unwrap();
        w.write(Bytes::from_static(b"junk")).await.unwrap();
        w.abort().await.unwrap();
        let mut w = store.writer(&id, 6, WriteMode::Staged).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.commit().await.unwrap(), 5);
        let mut w = store.writer(&id, 11, WriteMode::Staged).await.unwrap();
        w.write(Bytes::from_static(b"nope")).await.unwrap();
        w.abort().await.unwrap();
        assert_eq!(read_all(&store, &id, 0..11).await, b"hello world");
        assert_eq!(read_all(&store, &id, 6..9).await, b"wor");
        assert_eq!(store.head_bytes(&id, 5).await.unwrap(), b"hello");
    }

    /// Bulk chunks (several write buffers, kept out of the page cache),
    /// direct and staged, store exactly what was sent.
    #[tokio::test]
    async fn bulk_chunks_store_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id = crate::ids::new_id();
        store.create(&id).await.unwrap();
        let data: Vec<u8> = (0..3 * WRITE_BUFFER + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let (first, second) = data.split_at(WRITE_BUFFER * 2 + 7);
        for (offset, chunk, mode) in [
            (0, first, WriteMode::Direct),
            (first.len() as u64, second, WriteMode::Staged),
        ] {
            let mut w = store.writer(&id, offset, mode).await.unwrap();
            for frame in chunk.chunks(64 * 1024 + 3) {
                w.write(Bytes::copy_from_slice(frame)).await.unwrap();
            }
            assert_eq!(w.commit().await.unwrap(), chunk.len() as u64);
        }
        assert_eq!(
            store.stored_len(&id).await.unwrap(),
            Some(data.len() as u64)
        );
        assert_eq!(read_all(&store, &id, 0..data.len() as u64).await, data);
    }

    #[tokio::test]
    async fn recover_counts_direct_bytes_but_not_a_half_copied_stage() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id = crate::ids::new_id();
        store.create(&id).await.unwrap();
        std::fs::write(dir.path().join(&id), b"0123456789").unwrap();
        assert_eq!(store.recover(&id, 4, None).await.unwrap(), 10);
        assert_eq!(store.recover(&id, 4, Some(8)).await.unwrap(), 8);
        std::fs::write(dir.path().join(format!("{id}.stage")), b"xx").unwrap();
        assert_eq!(store.recover(&id, 6, None).await.unwrap(), 6);
        assert!(!dir.path().join(format!("{id}.stage")).exists());
    }

    #[tokio::test]
    async fn concat_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let (a, b, f) = (
            crate::ids::new_id(),
            crate::ids::new_id(),
            crate::ids::new_id(),
        );
        for (id, data) in [(&a, &b"abc"[..]), (&b, &b"def"[..])] {
            store.create(id).await.unwrap();
            let mut w = store.writer(id, 0, WriteMode::Direct).await.unwrap();
            w.write(Bytes::copy_from_slice(data)).await.unwrap();
            w.commit().await.unwrap();
        }
        assert_eq!(store.concat(&f, &[a.clone(), b.clone()]).await.unwrap(), 6);
        assert_eq!(read_all(&store, &f, 0..6).await, b"abcdef");
        store.delete(&f).await.unwrap();
        store.delete(&f).await.unwrap();
        assert!(store.read(&f, 0..1).await.is_err());
        assert!(store.writer("../etc", 0, WriteMode::Direct).await.is_err());
    }
}
