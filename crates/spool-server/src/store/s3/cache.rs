//! Local copies of uploads kept in the bucket, for the parts of the server
//! that read files (the processor, the live index, posters). An upload only
//! ever grows, so a copy is filled incrementally: asked to reach `len`, it
//! fetches just `[what it has, len)`. A writer on this node tees what it
//! stores into the copy ([`Cache::tee`]), so the node that receives an
//! upload never reads it back from the bucket. The copies are a cache —
//! rebuilt from the bucket when lost, never fsynced, removed with their
//! upload.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use crate::store::{ByteStream, StoreError};

pub(super) struct Cache {
    dir: PathBuf,
    /// One filler per upload at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn io(id: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        id: id.to_owned(),
        source,
    }
}

impl Cache {
    pub fn open(dir: PathBuf) -> std::io::Result<Cache> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Cache {
            dir,
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StoreError::Precondition {
                id: id.to_owned(),
                reason: "not an upload id".into(),
            });
        }
        Ok(self.dir.join(id))
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    /// For a writer appending at `offset`: the copy to append to as well,
    /// if it holds exactly the bytes before `offset` (else it is filled
    /// later from the bucket). Holds the copy for the writer's life.
    pub async fn tee(&self, id: &str, offset: u64) -> Option<Tee> {
        let path = self.path(id).ok()?;
        let guard = self.lock(id).lock_owned().await;
        let have = match tokio::fs::metadata(&path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(_) => return None,
        };
        if have != offset {
            return None;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .ok()?;
        Some(Tee {
            file: Some(file),
            start: offset,
            _guard: guard,
        })
    }

    /// The copy of upload `id`, holding at least its first `len` bytes;
    /// `read` fetches what it lacks.
    pub async fn fill<F, Fut>(&self, id: &str, len: u64, read: F) -> Result<PathBuf, StoreError>
    where
        F: FnOnce(Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<ByteStream, StoreError>>,
    {
        let path = self.path(id)?;
        let lock = self.lock(id);
        let _one = lock.lock().await;
        let have = match tokio::fs::metadata(&path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(id)(e)),
        };
        if have < len {
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
                .map_err(io(id))?;
            let mut stream = read(have..len).await?;
            let mut got = have;
            while let Some(chunk) = stream.try_next().await.map_err(io(id))? {
                file.write_all(&chunk).await.map_err(io(id))?;
                got += chunk.len() as u64;
            }
            file.flush().await.map_err(io(id))?;
            if got < len {
                return Err(StoreError::Unavailable(format!(
                    "the bucket gave {got} of the {len} bytes of upload {id}"
                )));
            }
        }
        Ok(path)
    }

    /// Forgets upload `id`'s copy.
    pub fn remove(&self, id: &str) {
        if let Ok(p) = self.path(id) {
            let _ = std::fs::remove_file(p);
        }
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// A writer's share of a local copy: what it stores is appended; an abort
/// cuts it back. A failure only stops the tee (the copy is then short and
/// filled from the bucket when read).
pub(super) struct Tee {
    file: Option<tokio::fs::File>,
    start: u64,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Tee {
    pub async fn write(&mut self, data: &[u8]) {
        if let Some(f) = self.file.as_mut()
            && f.write_all(data).await.is_err()
        {
            self.cut().await;
        }
    }

    /// Back to the bytes before this writer (an abort, or a failed write:
    /// the copy must never hold bytes that were not stored).
    pub async fn cut(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.set_len(self.start).await;
        }
    }

    pub async fn finish(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush().await;
        }
    }
}
